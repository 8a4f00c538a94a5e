// Prints server/src/configs/kafka_keys.rs: the name, type, default, validator and
// dynamic flag of every key of Apache Kafka's broker configuration, read from the
// Kafka jars on the class path. Run by compat-tests/kafka/gen/broker-keys.sh.
import org.apache.kafka.common.config.ConfigDef;
import java.util.*;
import java.util.regex.*;

public class BrokerKeys {
  static String rustStr(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  static String list(String inner) {
    StringBuilder b = new StringBuilder("&[");
    String[] items = inner.split(",");
    for (int i = 0; i < items.length; i++) {
      if (i > 0) b.append(", ");
      b.append(rustStr(items[i].trim()));
    }
    return b.append("]").toString();
  }

  static String f64(String n) {
    return n.contains(".") ? n : n + ".0";
  }

  static String typeMax(ConfigDef.Type t) {
    switch (t) {
      case SHORT: return "I16_MAX";
      case INT: return "I32_MAX";
      default: return "i64::MAX";
    }
  }

  static String valid(ConfigDef.ConfigKey k) {
    String v = k.validator == null ? "" : k.validator.toString().trim();
    Matcher m;
    boolean dbl = k.type == ConfigDef.Type.DOUBLE;
    if ((m = Pattern.compile("^\\[(-?[0-9.]+),\\.\\.\\.\\]$").matcher(v)).matches()) {
      return dbl ? "DoubleRange { min: " + f64(m.group(1)) + ", max: f64::MAX }"
                 : "Range { min: " + m.group(1) + ", max: " + typeMax(k.type) + " }";
    }
    if ((m = Pattern.compile("^\\[(-?[0-9.]+),\\.\\.\\.,(-?[0-9.]+)\\]$").matcher(v)).matches()) {
      return dbl ? "DoubleRange { min: " + f64(m.group(1)) + ", max: " + f64(m.group(2)) + " }"
                 : "Range { min: " + m.group(1) + ", max: " + m.group(2) + " }";
    }
    if ((m = Pattern.compile("^\\[(-?[0-9]+),\\.\\.\\.,(-?[0-9]+)\\] or -1$").matcher(v)).matches()) {
      return "LevelOrDefault { min: " + m.group(1) + ", max: " + m.group(2) + " }";
    }
    if ((m = Pattern.compile("^\\(case insensitive\\) \\[(.*)\\]$").matcher(v)).matches()) {
      return "OneOfIgnoreCase(" + list(m.group(1)) + ")";
    }
    if ((m = Pattern.compile("^\\[([A-Za-z_][^\\]]*)\\]$").matcher(v)).matches()) {
      return (k.type == ConfigDef.Type.LIST ? "ListOf(" : "OneOf(") + list(m.group(1)) + ")";
    }
    return "Any";
  }

  public static void main(String[] a) throws Exception {
    ConfigDef def = kafka.server.KafkaConfig$.MODULE$.configDef();
    Set<String> dyn = new HashSet<>();
    scala.collection.Iterator<String> it =
        kafka.server.DynamicBrokerConfig$.MODULE$.AllDynamicConfigs().iterator();
    while (it.hasNext()) dyn.add(it.next());
    List<String> names = new ArrayList<>(def.names());
    Collections.sort(names);
    System.out.println("//! Apache Kafka 4.1's broker configuration keys: name, type, default, validator");
    System.out.println("//! and whether Kafka can change the key at run time. Generated from Kafka's jars");
    System.out.println("//! by `compat-tests/kafka/gen/broker-keys.sh`; do not edit. Fjord's own catalogue");
    System.out.println("//! (`broker.rs`, `topic.rs`) says which of these Fjord acts on.");
    System.out.println();
    System.out.println("use super::ConfigType::{self, *};");
    System.out.println("use super::Valid::{self, *};");
    System.out.println();
    System.out.println("const I16_MAX: i64 = i16::MAX as i64;");
    System.out.println("const I32_MAX: i64 = i32::MAX as i64;");
    System.out.println();
    System.out.println("/// One key of Kafka's broker configuration.");
    System.out.println("#[derive(Clone, Copy, Debug)]");
    System.out.println("pub struct KafkaKey {");
    System.out.println("    pub name: &'static str,");
    System.out.println("    pub ty: ConfigType,");
    System.out.println("    /// Kafka's default as Kafka prints it; None is Kafka's null (or no default).");
    System.out.println("    pub default: Option<&'static str>,");
    System.out.println("    pub valid: Valid,");
    System.out.println("    /// Kafka can change it at run time (`DynamicBrokerConfig.AllDynamicConfigs`).");
    System.out.println("    pub dynamic: bool,");
    System.out.println("    /// Kafka's internal keys, which its DescribeConfigs does not list.");
    System.out.println("    pub internal: bool,");
    System.out.println("}");
    System.out.println();
    System.out.println("const fn k(");
    System.out.println("    name: &'static str,");
    System.out.println("    ty: ConfigType,");
    System.out.println("    default: Option<&'static str>,");
    System.out.println("    valid: Valid,");
    System.out.println("    dynamic: bool,");
    System.out.println("    internal: bool,");
    System.out.println(") -> KafkaKey {");
    System.out.println("    KafkaKey { name, ty, default, valid, dynamic, internal }");
    System.out.println("}");
    System.out.println();
    System.out.println("/// Every key, sorted by name.");
    System.out.println("#[rustfmt::skip]");
    System.out.println("pub const KAFKA_KEYS: &[KafkaKey] = &[");
    for (String n : names) {
      ConfigDef.ConfigKey k = def.configKeys().get(n);
      String d = "None";
      if (k.hasDefault() && k.defaultValue != null) {
        d = "Some(" + rustStr(ConfigDef.convertToString(k.defaultValue, k.type)) + ")";
      }
      String ty;
      switch (k.type) {
        case BOOLEAN: ty = "Boolean"; break;
        case STRING: ty = "String"; break;
        case INT: ty = "Int"; break;
        case SHORT: ty = "Short"; break;
        case LONG: ty = "Long"; break;
        case DOUBLE: ty = "Double"; break;
        case LIST: ty = "List"; break;
        case CLASS: ty = "Class"; break;
        default: ty = "Password";
      }
      System.out.println("    k(" + rustStr(n) + ", " + ty + ", " + d + ", " + valid(k) + ", "
          + dyn.contains(n) + ", " + k.internalConfig + "),");
    }
    System.out.println("];");
  }
}
