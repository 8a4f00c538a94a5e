// Op history_produce: franz-go as a history-recording producer for fault tests.
//
//	{"op": "history_produce", "bootstrap": "h1:p,h2:p", "topic": T, "partitions": N,
//	 "prefix": "fg", "rate": 300, "timeout_ms": ...}
//
// Writes unique values PREFIX-0, PREFIX-1, ... (value i to partition i % N, RATE records per
// second), idempotent (franz-go's default) with acks=all, until a non-empty line on stdin after
// the request, or its end; then flushes for up to 30 s. Every outcome is one JSON line on
// stdout in harness/history.py's format (send_ok with partition and offset, send_unknown with
// the error: with retries, an error says nothing about earlier attempts), and the answer line
// is {"type": "producer_done", ...}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func historyProduce(ctx context.Context, req *request, rest io.Reader, out map[string]any) error {
	if req.Partitions <= 0 {
		return fmt.Errorf("history_produce needs partitions > 0")
	}
	rate := req.Rate
	if rate <= 0 {
		rate = 400
	}
	stop := make(chan struct{})
	go func() {
		r := bufio.NewReader(rest)
		for {
			line, err := r.ReadString('\n')
			if strings.TrimSpace(line) != "" || err != nil {
				close(stop)
				return
			}
		}
	}()

	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(e map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
	pending := map[string]int32{}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(req.Bootstrap, ",")...),
		kgo.ClientID("fjord-compat-history-"+req.Prefix),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(60*time.Second), // records are stamped now, so this is from the send
		kgo.RequestTimeoutOverhead(10*time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	start := time.Now()
	i := 0
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-ctx.Done():
			break loop
		case <-time.After(5 * time.Millisecond):
		}
		for float64(i) < time.Since(start).Seconds()*rate {
			value := fmt.Sprintf("%s-%d", req.Prefix, i)
			partition := int32(i % int(req.Partitions))
			i++
			mu.Lock()
			pending[value] = partition
			mu.Unlock()
			cl.Produce(ctx, &kgo.Record{Topic: req.Topic, Partition: partition, Value: []byte(value)},
				func(r *kgo.Record, err error) {
					mu.Lock()
					delete(pending, value)
					mu.Unlock()
					if err == nil {
						emit(map[string]any{"type": "send_ok", "value": value, "partition": r.Partition, "offset": r.Offset})
					} else {
						emit(map[string]any{"type": "send_unknown", "value": value, "partition": partition, "error": describe(err)})
					}
				})
			select {
			case <-stop:
				break loop
			default:
			}
		}
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer fcancel()
	flushErr := cl.Flush(fctx)
	mu.Lock()
	left := make(map[string]int32, len(pending))
	for v, p := range pending {
		left[v] = p
	}
	mu.Unlock()
	for v, p := range left {
		emit(map[string]any{"type": "send_unknown", "value": v, "partition": p, "error": "no outcome after a 30 s flush"})
	}
	out["type"] = "producer_done"
	out["sent"] = i
	out["unflushed"] = len(left)
	if flushErr != nil {
		out["flush_error"] = flushErr.Error()
	}
	return nil
}
