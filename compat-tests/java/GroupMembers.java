// Several Java consumers (kafka-clients 4.1.0) of one group, each polling in its own thread,
// for test_groups_java.py.
//
//   java -cp '<classes>:<kafka libs>/*' GroupMembers <bootstrap> <topic> <group> <classic|consumer> <members>
//
// Stdout is one JSON object per line:
//   {"ev":"assignment","m":i,"gen":g,"parts":[...]}   member i's whole assignment after a change
//   {"ev":"records","m":i,"gen":g,"recs":[[partition,"value"],...]}   what one poll returned
//   {"ev":"overlap","m":i,"p":p,"owner":j}            i was given p while j still owned it
//   {"ev":"closed","m":i} / {"ev":"error","m":i,"msg":...}
// Stdin takes commands, one a line: "close <i>" (member i closes: revokes, commits, leaves)
// and "exit" (every member closes, then the program ends).
//
// Invariant checked here: a partition is owned by at most one member at any instant. The
// members share one JVM, so "owned" is tracked in one table: a member takes a partition in
// onPartitionsAssigned and gives it up in onPartitionsRevoked/onPartitionsLost.

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class GroupMembers {
  static final ObjectMapper JSON = new ObjectMapper();
  /** partition -> member that owns it now; guarded by itself. */
  static final Map<Integer, Integer> OWNERS = new HashMap<>();

  static synchronized void emit(ObjectNode o) {
    System.out.println(o.toString());
    System.out.flush();
  }

  static ObjectNode ev(String name, int member) {
    ObjectNode o = JSON.createObjectNode();
    o.put("ev", name);
    o.put("m", member);
    return o;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 5) {
      System.err.println("usage: GroupMembers <bootstrap> <topic> <group> <classic|consumer> <members>");
      System.exit(2);
    }
    String bootstrap = args[0], topic = args[1], group = args[2], protocol = args[3];
    int count = Integer.parseInt(args[4]);
    List<Member> members = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      Member m = new Member(i, bootstrap, topic, group, protocol);
      members.add(m);
      m.thread.start();
    }
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      line = line.trim();
      if (line.startsWith("close ")) {
        members.get(Integer.parseInt(line.substring(6).trim())).close = true;
      } else if (line.equals("exit")) {
        break;
      }
    }
    for (Member m : members) m.close = true;
    for (Member m : members) m.thread.join(60_000);
    System.exit(0);
  }

  static final class Member implements ConsumerRebalanceListener {
    final int id;
    final Thread thread;
    final KafkaConsumer<byte[], byte[]> consumer;
    final String topic;
    volatile boolean close;

    Member(int id, String bootstrap, String topic, String group, String protocol) {
      this.id = id;
      this.topic = topic;
      Properties p = new Properties();
      p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
      p.put(ConsumerConfig.CLIENT_ID_CONFIG, "java-" + protocol + "-" + id);
      p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
      p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true");
      p.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "500");
      if (protocol.equals("classic")) {
        // With group.protocol=consumer these are the broker's to set (the client rejects them).
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
      }
      p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      this.consumer = new KafkaConsumer<>(p);
      this.thread = new Thread(this::run, "member-" + id);
    }

    int generation() {
      try {
        return consumer.groupMetadata().generationId();
      } catch (RuntimeException e) {
        return -1;
      }
    }

    void report() {
      ObjectNode o = ev("assignment", id);
      o.put("gen", generation());
      ArrayNode parts = o.putArray("parts");
      TreeSet<Integer> sorted = new TreeSet<>();
      for (TopicPartition tp : consumer.assignment()) sorted.add(tp.partition());
      for (int part : sorted) parts.add(part);
      emit(o);
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      synchronized (OWNERS) {
        for (TopicPartition tp : partitions) {
          Integer owner = OWNERS.get(tp.partition());
          if (owner != null && owner != id) {
            ObjectNode o = ev("overlap", id);
            o.put("p", tp.partition());
            o.put("owner", owner);
            emit(o);
          }
          OWNERS.put(tp.partition(), id);
        }
      }
      report();
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      release(partitions);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      release(partitions);
    }

    void release(Collection<TopicPartition> partitions) {
      synchronized (OWNERS) {
        for (TopicPartition tp : partitions) OWNERS.remove(tp.partition(), id);
      }
      if (!partitions.isEmpty()) report();
    }

    void run() {
      try {
        consumer.subscribe(List.of(topic), this);
        while (!close) {
          ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(200));
          if (recs.isEmpty()) continue;
          ObjectNode o = ev("records", id);
          o.put("gen", generation());
          ArrayNode arr = o.putArray("recs");
          for (ConsumerRecord<byte[], byte[]> r : recs) {
            ArrayNode pair = arr.addArray();
            pair.add(r.partition());
            pair.add(new String(r.value(), StandardCharsets.UTF_8));
          }
          emit(o);
        }
        consumer.close(); // revokes (listener), commits, leaves the group
        emit(ev("closed", id));
      } catch (Throwable t) {
        ObjectNode o = ev("error", id);
        o.put("msg", t.getClass().getName() + ": " + t.getMessage());
        emit(o);
      }
    }
  }
}
