// The Java client (kafka-clients 4.1.0) for the compat suite: one operation per run.
//
//   java -cp '<kafka libs>/*:<classes>' FjordCompat < request.json > answer.json
//
// The request is one JSON object {"op": ..., "bootstrap": ..., ...}; bytes travel as base64
// (null stays null). The answer is one JSON object on stdout; client errors are data in it
// ({"error": "<exception class>: <message>"}), so the test sees what the client saw.
// Ops: produce (transactional when props has transactional.id), consume (props may set
// isolation.level), list_offsets, create_topic, delete_topic, list_topics,
// describe_topics, describe_cluster, describe_configs, list_config_resources.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class FjordCompat {
  static final ObjectMapper JSON = new ObjectMapper();
  static final Base64.Encoder B64E = Base64.getEncoder();
  static final Base64.Decoder B64D = Base64.getDecoder();

  public static void main(String[] args) throws Exception {
    JsonNode req = JSON.readTree(System.in);
    ObjectNode out = JSON.createObjectNode();
    try {
      switch (req.get("op").asText()) {
        case "produce" -> produce(req, out);
        case "consume" -> consume(req, out);
        case "list_offsets" -> listOffsets(req, out);
        case "create_topic", "delete_topic", "list_topics", "describe_topics",
            "describe_cluster", "describe_configs", "list_config_resources" -> admin(req, out);
        default -> throw new IllegalArgumentException("unknown op " + req.get("op"));
      }
    } catch (ExecutionException e) {
      out.put("error", describe(e.getCause()));
    } catch (Exception e) {
      out.put("error", describe(e));
    }
    System.out.println(JSON.writeValueAsString(out));
    System.out.flush();
    System.exit(0);
  }

  static String describe(Throwable t) {
    return t.getClass().getSimpleName() + ": " + t.getMessage();
  }

  static byte[] bytes(JsonNode n) {
    return n == null || n.isNull() ? null : B64D.decode(n.asText());
  }

  static String b64(byte[] b) {
    return b == null ? null : B64E.encodeToString(b);
  }

  static Properties props(JsonNode req) {
    Properties p = new Properties();
    p.put("bootstrap.servers", req.get("bootstrap").asText());
    JsonNode extra = req.get("props");
    if (extra != null) {
      for (Iterator<Map.Entry<String, JsonNode>> it = extra.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        p.put(e.getKey(), e.getValue().asText());
      }
    }
    return p;
  }

  // ------------------------------------------------------------------ produce

  static void produce(JsonNode req, ObjectNode out) throws Exception {
    Properties p = props(req);
    p.putIfAbsent(ProducerConfig.CLIENT_ID_CONFIG, "fjord-compat-java-producer");
    p.putIfAbsent(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
    p.putIfAbsent(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    p.putIfAbsent(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
    String topic = req.get("topic").asText();
    Integer partition = req.has("partition") && !req.get("partition").isNull()
        ? req.get("partition").asInt() : null;
    List<Future<RecordMetadata>> futures = new ArrayList<>();
    boolean transactional = p.containsKey(ProducerConfig.TRANSACTIONAL_ID_CONFIG);
    try (KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      if (transactional) {
        producer.initTransactions();
        producer.beginTransaction();
      }
      for (JsonNode r : req.get("records")) {
        List<Header> headers = new ArrayList<>();
        if (r.has("headers")) {
          for (JsonNode h : r.get("headers")) {
            headers.add(new RecordHeader(h.get(0).asText(), bytes(h.get(1))));
          }
        }
        Long ts = r.has("timestamp") && !r.get("timestamp").isNull() ? r.get("timestamp").asLong() : null;
        futures.add(producer.send(new ProducerRecord<>(topic, partition, ts, bytes(r.get("key")),
            bytes(r.get("value")), headers)));
      }
      if (transactional) {
        producer.commitTransaction();
      } else {
        producer.flush();
      }
      ArrayNode results = out.putArray("results");
      for (Future<RecordMetadata> f : futures) {
        ObjectNode o = results.addObject();
        try {
          RecordMetadata m = f.get(60, TimeUnit.SECONDS);
          o.put("partition", m.partition());
          o.put("offset", m.offset());
          o.put("timestamp", m.timestamp());
        } catch (ExecutionException e) {
          o.put("error", describe(e.getCause()));
        }
      }
    }
  }

  // ------------------------------------------------------------------ consume

  static KafkaConsumer<byte[], byte[]> consumer(JsonNode req) {
    Properties p = props(req);
    p.putIfAbsent(ConsumerConfig.CLIENT_ID_CONFIG, "fjord-compat-java-consumer");
    p.putIfAbsent(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.putIfAbsent(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    p.putIfAbsent(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  static void consume(JsonNode req, ObjectNode out) {
    TopicPartition tp = new TopicPartition(req.get("topic").asText(), req.get("partition").asInt(0));
    int expected = req.get("count").asInt();
    long deadline = System.currentTimeMillis() + req.path("timeout_ms").asLong(30000);
    ArrayNode recs = out.putArray("records");
    try (KafkaConsumer<byte[], byte[]> c = consumer(req)) {
      c.assign(List.of(tp));
      c.seek(tp, 0); // by position: reading must not depend on ListOffsets
      while (recs.size() < expected && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
          ObjectNode o = recs.addObject();
          o.put("offset", r.offset());
          o.put("key", b64(r.key()));
          o.put("value", b64(r.value()));
          ArrayNode hs = o.putArray("headers");
          for (Header h : r.headers()) {
            ArrayNode pair = hs.addArray();
            pair.add(h.key());
            pair.add(b64(h.value()));
          }
          o.put("timestamp", r.timestamp());
          o.put("timestamp_type", r.timestampType() == TimestampType.CREATE_TIME ? "create" : "append");
        }
      }
    }
  }

  // ------------------------------------------------------------------ offsets

  /** Consumer offsetsForTimes/beginning/end, and Admin.listOffsets (which adds max timestamp). */
  static void listOffsets(JsonNode req, ObjectNode out) throws Exception {
    TopicPartition tp = new TopicPartition(req.get("topic").asText(), req.get("partition").asInt(0));
    ObjectNode consumerSide = out.putObject("consumer");
    try (KafkaConsumer<byte[], byte[]> c = consumer(req)) {
      consumerSide.put("earliest", c.beginningOffsets(List.of(tp)).get(tp));
      consumerSide.put("latest", c.endOffsets(List.of(tp)).get(tp));
      ObjectNode byTime = consumerSide.putObject("by_time");
      for (JsonNode t : req.get("timestamps")) {
        OffsetAndTimestamp ot = c.offsetsForTimes(Map.of(tp, t.asLong())).get(tp);
        byTime.put(t.asText(), ot == null ? -1 : ot.offset());
      }
    }
    ObjectNode adminSide = out.putObject("admin");
    Properties p = props(req);
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "fjord-compat-java-admin");
    try (Admin admin = Admin.create(p)) {
      Map<String, OffsetSpec> specs = new HashMap<>();
      specs.put("earliest", OffsetSpec.earliest());
      specs.put("latest", OffsetSpec.latest());
      specs.put("max_timestamp", OffsetSpec.maxTimestamp());
      for (Map.Entry<String, OffsetSpec> e : specs.entrySet()) {
        try {
          ListOffsetsResult.ListOffsetsResultInfo info =
              admin.listOffsets(Map.of(tp, e.getValue())).partitionResult(tp).get(30, TimeUnit.SECONDS);
          adminSide.put(e.getKey(), info.offset());
        } catch (ExecutionException ex) {
          adminSide.put(e.getKey() + "_error", describe(ex.getCause()));
        }
      }
      ObjectNode byTime = adminSide.putObject("by_time");
      for (JsonNode t : req.get("timestamps")) {
        ListOffsetsResult.ListOffsetsResultInfo info = admin.listOffsets(
            Map.of(tp, OffsetSpec.forTimestamp(t.asLong()))).partitionResult(tp).get(30, TimeUnit.SECONDS);
        byTime.put(t.asText(), info.offset());
      }
    }
  }

  // ------------------------------------------------------------------ admin

  static void admin(JsonNode req, ObjectNode out) throws Exception {
    Properties p = props(req);
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "fjord-compat-java-admin");
    p.putIfAbsent(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    p.putIfAbsent(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    try (Admin admin = Admin.create(p)) {
      String op = req.get("op").asText();
      switch (op) {
        case "create_topic" -> {
          Map<String, String> configs = new HashMap<>();
          if (req.has("configs")) {
            req.get("configs").fields().forEachRemaining(e -> configs.put(e.getKey(), e.getValue().asText()));
          }
          NewTopic nt = new NewTopic(req.get("topic").asText(), req.path("partitions").asInt(1), (short) 1)
              .configs(configs);
          var res = admin.createTopics(List.of(nt));
          res.all().get(30, TimeUnit.SECONDS);
          String name = req.get("topic").asText();
          out.put("topic_id", res.topicId(name).get().toString());
          out.put("partitions", res.numPartitions(name).get());
          out.put("replication_factor", res.replicationFactor(name).get());
          ObjectNode cfg = out.putObject("configs");
          try {
            for (ConfigEntry e : res.config(name).get().entries()) {
              cfg.put(e.name(), e.value());
            }
          } catch (ExecutionException e) {
            out.put("configs_error", describe(e.getCause()));
          }
        }
        case "delete_topic" -> admin.deleteTopics(List.of(req.get("topic").asText())).all().get(30, TimeUnit.SECONDS);
        case "list_topics" -> {
          ArrayNode names = out.putArray("topics");
          admin.listTopics().names().get(30, TimeUnit.SECONDS).stream().sorted().forEach(names::add);
        }
        case "describe_topics" -> {
          List<String> names = new ArrayList<>();
          req.get("topics").forEach(n -> names.add(n.asText()));
          Map<String, TopicDescription> ds = admin.describeTopics(names).allTopicNames().get(30, TimeUnit.SECONDS);
          ObjectNode topics = out.putObject("topics");
          for (TopicDescription d : ds.values()) {
            ObjectNode t = topics.putObject(d.name());
            t.put("internal", d.isInternal());
            t.put("topic_id", d.topicId().toString());
            ArrayNode parts = t.putArray("partitions");
            for (TopicPartitionInfo pi : d.partitions()) {
              ObjectNode po = parts.addObject();
              po.put("partition", pi.partition());
              po.put("leader", pi.leader() == null ? -1 : pi.leader().id());
              ArrayNode reps = po.putArray("replicas");
              pi.replicas().forEach(n -> reps.add(n.id()));
              ArrayNode isr = po.putArray("isr");
              pi.isr().forEach(n -> isr.add(n.id()));
            }
          }
        }
        case "describe_cluster" -> {
          DescribeClusterResult r = admin.describeCluster();
          out.put("cluster_id", r.clusterId().get(30, TimeUnit.SECONDS));
          Node controller = r.controller().get(30, TimeUnit.SECONDS);
          out.put("controller", controller == null ? -1 : controller.id());
          ArrayNode nodes = out.putArray("nodes");
          for (Node n : r.nodes().get(30, TimeUnit.SECONDS)) {
            ObjectNode no = nodes.addObject();
            no.put("id", n.id());
            no.put("host", n.host());
            no.put("port", n.port());
          }
        }
        case "describe_configs" -> {
          ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, req.get("topic").asText());
          Config c = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
          ObjectNode cfg = out.putObject("configs");
          ObjectNode src = out.putObject("sources");
          for (ConfigEntry e : c.entries()) {
            cfg.put(e.name(), e.value());
            src.put(e.name(), e.source().name());
          }
        }
        case "list_config_resources" -> {
          // Types by name ("TOPIC", "BROKER", ...); none: every type the broker lists.
          Set<ConfigResource.Type> types = new HashSet<>();
          req.path("types").forEach(t -> types.add(ConfigResource.Type.valueOf(t.asText())));
          ArrayNode rows = out.putArray("resources");
          for (ConfigResource r : admin.listConfigResources(types, new ListConfigResourcesOptions())
              .all().get(30, TimeUnit.SECONDS)) {
            rows.addArray().add(r.type().name()).add(r.name());
          }
        }
        default -> throw new IllegalArgumentException(op);
      }
    }
  }
}
