// The Java client (kafka-clients 4.1.0) as a history-recording producer for fault tests:
// unique values round-robin over a topic's partitions, idempotent and acks=all, until told
// to stop; each send's outcome is one JSON line on stdout in harness/history.py's format.
//
//   java -cp '<kafka libs>/*:<classes>' HistoryProducer BOOTSTRAP TOPIC PARTITIONS PREFIX [RATE]
//
// Values are PREFIX-0, PREFIX-1, ...; value i goes to partition i % PARTITIONS; RATE records
// per second in all (default 400). A line on stdin, or its end, stops it: it sends nothing
// more, flushes (close with a 30 s bound), prints send_unknown for every send still without an
// outcome, then {"type":"producer_done",...} and exits 0.
//
// Outcomes: the callback's metadata is send_ok; an exception the producer throws before the
// record could reach a broker (too large, bad topic, serialization) is send_failed; any other
// error (timeouts, a lost connection, an error answer after retries) is send_unknown.

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class HistoryProducer {
  static final ObjectMapper JSON = new ObjectMapper();

  static synchronized void emit(ObjectNode event) {
    try {
      System.out.println(JSON.writeValueAsString(event));
      System.out.flush();
    } catch (Exception e) {
      throw new RuntimeException(e);
    }
  }

  static ObjectNode event(String type, String value, int partition) {
    ObjectNode o = JSON.createObjectNode();
    o.put("type", type);
    o.put("value", value);
    o.put("partition", partition);
    return o;
  }

  static boolean definite(Throwable t) {
    return t instanceof RecordTooLargeException || t instanceof InvalidTopicException
        || t instanceof SerializationException;
  }

  static String describe(Throwable t) {
    return t.getClass().getSimpleName() + ": " + t.getMessage();
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String topic = args[1];
    int partitions = Integer.parseInt(args[2]);
    String prefix = args[3];
    double rate = args.length > 4 ? Double.parseDouble(args[4]) : 400.0;

    Thread stopper = new Thread(() -> {
      try {
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
      } catch (Exception ignored) {
        // end of input is the stop signal too
      }
    });
    stopper.setDaemon(true);
    stopper.start();

    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "fjord-compat-history-" + prefix);

    Map<String, Integer> pending = new ConcurrentHashMap<>();
    long i = 0;
    long start = System.nanoTime();
    KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    try {
      while (stopper.isAlive()) {
        while (i < (System.nanoTime() - start) / 1e9 * rate && stopper.isAlive()) {
          String value = prefix + "-" + i;
          int partition = (int) (i % partitions);
          i++;
          pending.put(value, partition);
          try {
            producer.send(new ProducerRecord<>(topic, partition, null,
                value.getBytes(StandardCharsets.UTF_8)), (m, e) -> {
                  pending.remove(value);
                  if (e == null) {
                    ObjectNode o = event("send_ok", value, m.partition());
                    o.put("offset", m.offset());
                    emit(o);
                  } else {
                    ObjectNode o = event(definite(e) ? "send_failed" : "send_unknown", value, partition);
                    o.put("error", describe(e));
                    emit(o);
                  }
                });
          } catch (Exception e) {
            pending.remove(value);
            ObjectNode o = event(definite(e) ? "send_failed" : "send_unknown", value, partition);
            o.put("error", describe(e));
            emit(o);
          }
        }
        Thread.sleep(5);
      }
    } finally {
      producer.close(Duration.ofSeconds(30));
    }
    for (Map.Entry<String, Integer> e : pending.entrySet()) {
      ObjectNode o = event("send_unknown", e.getKey(), e.getValue());
      o.put("error", "no outcome after a 30 s close");
      emit(o);
    }
    ObjectNode done = JSON.createObjectNode();
    done.put("type", "producer_done");
    done.put("sent", i);
    done.put("unflushed", pending.size());
    emit(done);
    System.exit(0);
  }
}
