// franz-go (v1.22.3, with kadm) for the compat suite: one operation per run.
//
//	fjord-compat-go < request.json > answer.json
//
// The request is one JSON object {"op": ..., "bootstrap": ..., ...}; bytes travel as base64
// (JSON null stays null). The answer is one JSON object on stdout; client errors are data in it
// ({"error": "..."}), so the test sees what the client saw. Ops: produce, consume, list_offsets,
// create_topic, delete_topic, list_topics, describe_topics, describe_cluster, describe_configs,
// and history_produce (history.go: a producer that streams JSON lines until told to stop).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type header struct {
	Key   string
	Value []byte
}

func (h *header) UnmarshalJSON(b []byte) error {
	var pair [2]json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if err := json.Unmarshal(pair[0], &h.Key); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &h.Value)
}

func (h header) MarshalJSON() ([]byte, error) { return json.Marshal([]any{h.Key, h.Value}) }

type record struct {
	Offset        int64    `json:"offset"`
	Key           []byte   `json:"key"`
	Value         []byte   `json:"value"`
	Headers       []header `json:"headers"`
	Timestamp     *int64   `json:"timestamp"`
	TimestampType string   `json:"timestamp_type,omitempty"`
}

type request struct {
	Op         string             `json:"op"`
	Bootstrap  string             `json:"bootstrap"`
	Topic      string             `json:"topic"`
	Topics     []string           `json:"topics"`
	Partition  *int32             `json:"partition"`
	Partitions int32              `json:"partitions"`
	Records    []record           `json:"records"`
	Count      int                `json:"count"`
	TimeoutMs  int64              `json:"timeout_ms"`
	Timestamps []int64            `json:"timestamps"`
	Configs    map[string]*string `json:"configs"`
	// Client options: codec (none|gzip|snappy|lz4|zstd), max_batch_bytes, disable_idempotence,
	// acks (all|1|0), max_partition_fetch_bytes.
	Codec              string `json:"codec"`
	MaxBatchBytes      int32  `json:"max_batch_bytes"`
	DisableIdempotence bool   `json:"disable_idempotence"`
	Acks               string `json:"acks"`
	// history_produce (history.go): value prefix and records per second.
	Prefix string  `json:"prefix"`
	Rate   float64 `json:"rate"`
}

// What follows the request on stdin (history_produce's stop line).
var stdinRest io.Reader = os.Stdin

func main() {
	var req request
	out := map[string]any{}
	dec := json.NewDecoder(os.Stdin)
	err := dec.Decode(&req)
	stdinRest = io.MultiReader(dec.Buffered(), os.Stdin)
	if err != nil {
		out["error"] = "bad request: " + err.Error()
	} else if err := run(&req, out); err != nil {
		out["error"] = describe(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func describe(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return fmt.Sprintf("%s (%d): %v", ke.Message, ke.Code, err)
	}
	return err.Error()
}

func client(req *request, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(req.Bootstrap),
		kgo.ClientID("fjord-compat-franz-go"),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		// No RecordDeliveryTimeout: franz-go measures it from each record's Timestamp, and the
		// tests produce records stamped in the past. The context bounds every operation instead.
		kgo.RetryTimeout(30 * time.Second),
	}
	return kgo.NewClient(append(opts, extra...)...)
}

func run(req *request, out map[string]any) error {
	timeout := 60 * time.Second
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs)*time.Millisecond + 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch req.Op {
	case "produce":
		return produce(ctx, req, out)
	case "consume":
		return consume(ctx, req, out)
	case "list_offsets":
		return listOffsets(ctx, req, out)
	case "history_produce":
		return historyProduce(ctx, req, stdinRest, out)
	default:
		return admin(ctx, req, out)
	}
}

func produce(ctx context.Context, req *request, out map[string]any) error {
	opts := []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(20 * time.Millisecond)}
	switch req.Codec {
	case "", "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return fmt.Errorf("unknown codec %q", req.Codec)
	}
	if req.MaxBatchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(req.MaxBatchBytes))
	}
	if req.DisableIdempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	switch req.Acks {
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	}
	cl, err := client(req, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	partition := int32(0)
	if req.Partition != nil {
		partition = *req.Partition
	}
	recs := make([]*kgo.Record, len(req.Records))
	for i, r := range req.Records {
		kr := &kgo.Record{Topic: req.Topic, Partition: partition, Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if r.Timestamp != nil {
			kr.Timestamp = time.UnixMilli(*r.Timestamp)
		}
		recs[i] = kr
	}
	results := make([]map[string]any, 0, len(recs))
	for _, pr := range cl.ProduceSync(ctx, recs...) {
		if pr.Err != nil {
			results = append(results, map[string]any{"error": describe(pr.Err)})
		} else {
			results = append(results, map[string]any{"partition": pr.Record.Partition, "offset": pr.Record.Offset,
				"timestamp": pr.Record.Timestamp.UnixMilli()})
		}
	}
	out["results"] = results
	return nil
}

func consume(ctx context.Context, req *request, out map[string]any) error {
	partition := int32(0)
	if req.Partition != nil {
		partition = *req.Partition
	}
	cl, err := client(req, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		req.Topic: {partition: kgo.NewOffset().At(0)}, // by position, not ListOffsets
	}), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	pctx, pcancel := context.WithTimeout(ctx, timeout)
	defer pcancel()
	got := []record{}
	for len(got) < req.Count && pctx.Err() == nil {
		fs := cl.PollFetches(pctx)
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				out["records"] = got
				return fmt.Errorf("fetch %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			ts := r.Timestamp.UnixMilli()
			rec := record{Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: &ts, Headers: []header{}}
			rec.TimestampType = "create"
			if r.Attrs.TimestampType() == 1 {
				rec.TimestampType = "append"
			}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, header{h.Key, h.Value})
			}
			got = append(got, rec)
		})
	}
	out["records"] = got
	return nil
}

func listOffsets(ctx context.Context, req *request, out map[string]any) error {
	cl, err := client(req)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	partition := int32(0)
	if req.Partition != nil {
		partition = *req.Partition
	}
	pick := func(lo kadm.ListedOffsets, err error) (int64, error) {
		if err != nil {
			return 0, err
		}
		o, ok := lo.Lookup(req.Topic, partition)
		if !ok {
			return 0, fmt.Errorf("no answer for %s/%d", req.Topic, partition)
		}
		return o.Offset, o.Err
	}
	earliest, err := pick(adm.ListStartOffsets(ctx, req.Topic))
	if err != nil {
		return err
	}
	latest, err := pick(adm.ListEndOffsets(ctx, req.Topic))
	if err != nil {
		return err
	}
	out["earliest"], out["latest"] = earliest, latest
	byTime := map[string]int64{}
	for _, ts := range req.Timestamps {
		o, err := pick(adm.ListOffsetsAfterMilli(ctx, ts, req.Topic))
		if err != nil {
			return err
		}
		byTime[fmt.Sprint(ts)] = o
	}
	out["by_time"] = byTime
	// Max timestamp (-3, ListOffsets v7+) has no kadm helper: a raw request.
	lr := kmsg.NewPtrListOffsetsRequest()
	lr.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = req.Topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition = partition
	lp.Timestamp = -3
	lt.Partitions = append(lt.Partitions, lp)
	lr.Topics = append(lr.Topics, lt)
	resp, err := lr.RequestWith(ctx, cl)
	if err != nil {
		out["max_timestamp_error"] = describe(err)
		return nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				out["max_timestamp_error"] = describe(err)
			} else {
				out["max_timestamp"] = p.Offset
				out["max_timestamp_ts"] = p.Timestamp
			}
		}
	}
	return nil
}

func admin(ctx context.Context, req *request, out map[string]any) error {
	cl, err := client(req)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	switch req.Op {
	case "create_topic":
		parts := req.Partitions
		if parts == 0 {
			parts = 1
		}
		resps, err := adm.CreateTopics(ctx, parts, 1, req.Configs, req.Topic)
		if err != nil {
			return err
		}
		r, err := resps.On(req.Topic, nil)
		if err != nil {
			return err
		}
		if r.Err != nil {
			return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
		}
		cfg := map[string]any{}
		for k, v := range r.Configs {
			cfg[k] = v.Value
		}
		out["topic_id"], out["partitions"], out["replication_factor"], out["configs"] =
			r.ID.String(), r.NumPartitions, r.ReplicationFactor, cfg
	case "delete_topic":
		resps, err := adm.DeleteTopics(ctx, req.Topic)
		if err != nil {
			return err
		}
		return resps.Error()
	case "list_topics":
		td, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		names := td.Names()
		sort.Strings(names)
		out["topics"] = names
	case "describe_topics":
		td, err := adm.ListTopics(ctx, req.Topics...)
		if err != nil {
			return err
		}
		topics := map[string]any{}
		for _, t := range td {
			if t.Err != nil {
				return fmt.Errorf("%s: %w", t.Topic, t.Err)
			}
			parts := []map[string]any{}
			for _, p := range t.Partitions.Sorted() {
				parts = append(parts, map[string]any{"partition": p.Partition, "leader": p.Leader,
					"replicas": p.Replicas, "isr": p.ISR})
			}
			topics[t.Topic] = map[string]any{"internal": t.IsInternal, "topic_id": t.ID.String(), "partitions": parts}
		}
		out["topics"] = topics
	case "describe_cluster":
		md, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return err
		}
		nodes := []map[string]any{}
		for _, b := range md.Brokers {
			nodes = append(nodes, map[string]any{"id": b.NodeID, "host": b.Host, "port": b.Port})
		}
		out["cluster_id"], out["controller"], out["nodes"] = md.Cluster, md.Controller, nodes
	case "describe_configs":
		rcs, err := adm.DescribeTopicConfigs(ctx, req.Topic)
		if err != nil {
			return err
		}
		rc, err := rcs.On(req.Topic, nil)
		if err != nil {
			return err
		}
		if rc.Err != nil {
			return rc.Err
		}
		cfg, src := map[string]any{}, map[string]any{}
		for _, c := range rc.Configs {
			cfg[c.Key] = c.Value
			src[c.Key] = c.Source.String()
		}
		out["configs"], out["sources"] = cfg, src
	default:
		return fmt.Errorf("unknown op %q", req.Op)
	}
	return nil
}
