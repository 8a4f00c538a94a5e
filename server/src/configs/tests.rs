use std::collections::BTreeMap;

use super::broker::{describe_broker, describe_cluster_default, validate_dynamic, validate_static};
use super::topic::{find, validate_overrides, TOPIC_CONFIGS};
use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn syn(name: &str, value: &str, source: Source) -> Synonym {
    Synonym {
        name: name.into(),
        value: Some(value.into()),
        source,
    }
}

#[test]
fn defaults_validate_and_names_are_unique() {
    for t in TOPIC_CONFIGS {
        if let Some(d) = t.def.default {
            t.def.validate(d).expect(t.def.name);
        }
        assert_eq!(
            TOPIC_CONFIGS
                .iter()
                .filter(|o| o.def.name == t.def.name)
                .count(),
            1
        );
    }
    assert_eq!(
        TOPIC_CONFIGS.len(),
        33,
        "Kafka 4.1 describes 33 topic configs"
    );
}

#[test]
fn topic_defaults_and_synonyms_match_kafka() {
    let empty = BTreeMap::new();
    let layers = Layers {
        dynamic_broker: None,
        dynamic_default: None,
        static_props: &empty,
    };
    let d = |n: &str| find(n).expect(n).describe(&empty, &layers);
    // As Kafka 4.1 answers for a fresh topic on a broker with no log settings.
    let seg = d("segment.bytes");
    assert_eq!(seg.value.as_deref(), Some("1073741824"));
    assert_eq!(seg.source, Source::Default);
    assert_eq!(
        seg.synonyms,
        vec![syn("log.segment.bytes", "1073741824", Source::Default)]
    );
    let ret = d("retention.ms");
    assert_eq!(ret.value.as_deref(), Some("604800000"));
    assert!(ret.synonyms.is_empty(), "log.retention.ms is null: dropped");
    assert_eq!(d("cleanup.policy").ty, ConfigType::List);
    assert_eq!(d("min.cleanable.dirty.ratio").ty, ConfigType::Double);
    assert!(d("remote.storage.enable").synonyms.is_empty());
}

#[test]
fn precedence_topic_then_dynamic_broker_then_default_then_static() {
    let statics = map(&[
        ("log.retention.ms", "1000"),
        ("log.segment.bytes", "2097152"),
    ]);
    let cluster = map(&[("log.retention.ms", "2000")]);
    let node = map(&[("log.retention.ms", "3000")]);
    let overrides = map(&[("retention.ms", "4000")]);
    let mut layers = Layers {
        dynamic_broker: None,
        dynamic_default: None,
        static_props: &statics,
    };
    let def = find("retention.ms").expect("def");
    let d = def.describe(&BTreeMap::new(), &layers);
    assert_eq!(
        (d.value.as_deref(), d.source),
        (Some("1000"), Source::StaticBroker)
    );
    assert_eq!(
        d.synonyms,
        vec![
            syn("log.retention.ms", "1000", Source::StaticBroker),
            syn("log.retention.hours", "168", Source::Default)
        ]
    );
    layers.dynamic_default = Some(&cluster);
    assert_eq!(def.value(&BTreeMap::new(), &layers), "2000");
    layers.dynamic_broker = Some(&node);
    let d = def.describe(&BTreeMap::new(), &layers);
    assert_eq!(
        (d.value.as_deref(), d.source),
        (Some("3000"), Source::DynamicBroker)
    );
    let d = def.describe(&overrides, &layers);
    assert_eq!(
        (d.value.as_deref(), d.source),
        (Some("4000"), Source::DynamicTopic)
    );
    assert_eq!(d.synonyms.len(), 5);
    let s = TopicSettings::resolve(&overrides, &layers);
    assert_eq!(s.retention_ms, 4000);
    assert_eq!(s.segment_bytes, 2_097_152);
    assert!(s.cleanup_delete && !s.cleanup_compact);
}

#[test]
fn invalid_values_name_the_key() {
    let e = validate_overrides(&map(&[("segment.bytes", "100")])).expect_err("too small");
    assert!(
        e.0.contains("segment.bytes") && e.0.contains("at least 1048576"),
        "{e}"
    );
    let e = validate_overrides(&map(&[("no.such", "1")])).expect_err("unknown");
    assert_eq!(e.0, "Unknown topic config name: no.such");
    for (k, v) in [
        ("retention.ms", "-2"),
        ("retention.ms", "x"),
        ("max.message.bytes", "3000000000"),
        ("cleanup.policy", "delete,forever"),
        ("message.timestamp.type", "Now"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("unclean.leader.election.enable", "maybe"),
        ("compression.type", "brotli"),
        ("preallocate", "true"),
        ("leader.replication.throttled.replicas", "1:x"),
    ] {
        let e = validate_overrides(&map(&[(k, v)])).expect_err(k);
        assert!(e.0.contains(k), "{e}");
    }
    // Throttled replicas are `*` or partition:broker pairs.
    validate_overrides(&map(&[
        ("leader.replication.throttled.replicas", "0:1, 2:3"),
        ("follower.replication.throttled.replicas", "*"),
    ]))
    .expect("throttled replicas");
    // Defaults of configs Fjord ignores may be restated.
    validate_overrides(&map(&[
        ("preallocate", "false"),
        ("cleanup.policy", "compact,delete"),
    ]))
    .expect("ok");
    let e = validate_overrides(&map(&[
        ("min.compaction.lag.ms", "10"),
        ("max.compaction.lag.ms", "5"),
    ]))
    .expect_err("conflict");
    assert!(e.0.contains("min.compaction.lag.ms"), "{e}");
}

#[test]
fn broker_configs_describe_and_validate() {
    let statics = map(&[("num.partitions", "3")]);
    let cluster = map(&[("log.retention.ms", "5000")]);
    let layers = Layers {
        dynamic_broker: None,
        dynamic_default: Some(&cluster),
        static_props: &statics,
    };
    let all = describe_broker(&layers, |n| (n == "num.partitions").then_some("1"));
    let get = |n: &str| all.iter().find(|d| d.name == n).expect(n).clone();
    let np = get("num.partitions");
    assert!(np.read_only);
    assert_eq!(
        np.synonyms,
        vec![
            syn("num.partitions", "3", Source::StaticBroker),
            syn("num.partitions", "1", Source::Default)
        ]
    );
    let lr = get("log.retention.ms");
    assert!(!lr.read_only);
    assert_eq!(
        (lr.value.as_deref(), lr.source),
        (Some("5000"), Source::DynamicDefaultBroker)
    );
    let cd = describe_cluster_default(&layers);
    assert_eq!(cd.len(), 1);
    assert_eq!(cd[0].source, Source::DynamicDefaultBroker);

    let empty = BTreeMap::new();
    let bare = Layers {
        dynamic_broker: None,
        dynamic_default: None,
        static_props: &empty,
    };
    let all = describe_broker(&bare, |_| None);
    let lr = all
        .iter()
        .find(|d| d.name == "log.retention.ms")
        .expect("lr");
    assert_eq!((lr.value.as_deref(), lr.source), (None, Source::Default));

    assert_eq!(
        validate_dynamic("message.max.bytes", " 2000 ").as_deref(),
        Ok("2000")
    );
    assert!(validate_dynamic("num.partitions", "2").is_err());
    // The broker's own dynamic keys: replication throttles.
    assert_eq!(
        validate_dynamic("leader.replication.throttled.rate", "1000").as_deref(),
        Ok("1000")
    );
    assert!(
        validate_dynamic("follower.replication.throttled.rate", "-1")
            .expect_err("negative")
            .0
            .contains("follower.replication.throttled.rate")
    );
    assert!(validate_dynamic("log.local.retention.ms", "5").is_err());
    assert!(validate_dynamic("nope", "1")
        .expect_err("unknown")
        .0
        .contains("nope"));
    assert!(validate_static("log.cleanup.policy", "compact").is_ok());
    assert!(validate_static("log.cleanup.policy", "x").is_err());
}

#[test]
fn settings_timestamps_and_compact_policy() {
    let empty = BTreeMap::new();
    let layers = Layers {
        dynamic_broker: None,
        dynamic_default: None,
        static_props: &empty,
    };
    let s = TopicSettings::resolve(&map(&[("cleanup.policy", "compact")]), &layers);
    assert!(s.cleanup_compact && !s.cleanup_delete);
    assert_eq!(s.max_message_bytes, 1_048_588);
    let now = 10_000_000;
    assert!(s.check_timestamps(now - 5, now, now).is_ok());
    assert!(s.check_timestamps(now, now + 3_600_001, now).is_err());
    let s = TopicSettings::resolve(
        &map(&[("message.timestamp.before.max.ms", "1000")]),
        &layers,
    );
    assert!(s.check_timestamps(now - 1001, now, now).is_err());
    assert!(s.check_timestamps(-1, -1, now).is_ok());
}

#[test]
fn broker_keys_are_named_once_and_typed_as_checked() {
    use super::broker::{startup_keys, BROKER_KEYS};
    let mut names: Vec<&str> = BROKER_KEYS.iter().map(|k| k.name).collect();
    names.extend(
        TOPIC_CONFIGS
            .iter()
            .filter_map(|t| t.broker)
            .map(|b| b.name),
    );
    for name in &names {
        assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
    }
    for k in BROKER_KEYS {
        match (k.rule, k.ty) {
            (StaticRule::Int { max, .. }, ConfigType::Int) => {
                assert!(max <= i32::MAX as i64, "{}: an INT above i32", k.name)
            }
            (StaticRule::Int { max, .. }, ConfigType::Short) => {
                assert!(max <= i16::MAX as i64, "{}: a SHORT above i16", k.name)
            }
            (StaticRule::Int { .. }, ConfigType::Long)
            | (StaticRule::Bool, ConfigType::Boolean) => {}
            (StaticRule::Int { .. } | StaticRule::Bool, _) | (_, ConfigType::Boolean) => {
                panic!(
                    "{}: type {:?} disagrees with rule {:?}",
                    k.name, k.ty, k.rule
                )
            }
            _ => {}
        }
    }
    // Every key config.rs checks is in the catalogue, synonyms included.
    assert!(startup_keys().any(|k| k.name == "log.segment.bytes"));
    assert!(!startup_keys().any(|k| k.name == "log.cleanup.policy"));
}

#[test]
fn kafka_keys_are_sorted_and_their_defaults_pass_their_rules() {
    use super::kafka_keys::KAFKA_KEYS;
    assert!(KAFKA_KEYS.windows(2).all(|w| w[0].name < w[1].name));
    for k in KAFKA_KEYS {
        if let Some(d) = k.default {
            super::broker::validate_kafka(k, d).expect(k.name);
        }
    }
}

#[test]
fn fjords_keys_are_kafkas_with_kafkas_types() {
    use super::broker::{kafka_key, BROKER_KEYS};
    // Dynamic-only in Kafka (not in its static definition), or from before Kafka 4.
    let not_static_in_kafka = [
        "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "leader.imbalance.per.broker.percentage",
    ];
    for key in BROKER_KEYS {
        if key.name.starts_with("fjord.") || not_static_in_kafka.contains(&key.name) {
            continue;
        }
        let k = kafka_key(key.name).unwrap_or_else(|| panic!("{} is not Kafka's", key.name));
        assert_eq!(k.ty, key.ty, "{}", key.name);
    }
    for t in TOPIC_CONFIGS {
        let Some(b) = t.broker else { continue };
        for name in b.chain() {
            assert!(kafka_key(name).is_some(), "{name} is not Kafka's");
        }
    }
}

#[test]
fn broker_describe_lists_every_kafka_key_once() {
    use super::kafka_keys::KAFKA_KEYS;
    let props = map(&[
        ("num.io.threads", "8"),
        ("log.retention.hours", "5"),
        ("ssl.keystore.password", "secret"),
    ]);
    let layers = Layers {
        dynamic_broker: None,
        dynamic_default: None,
        static_props: &props,
    };
    let all = describe_broker(&layers, crate::config::default_of);
    let mut names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "a key is listed twice");
    for k in KAFKA_KEYS.iter().filter(|k| !k.internal) {
        assert!(names.contains(&k.name), "{} missing", k.name);
    }
    let get = |n: &str| all.iter().find(|d| d.name == n).expect(n);
    let io = get("num.io.threads");
    assert_eq!(
        (io.value.as_deref(), io.source),
        (Some("8"), Source::StaticBroker)
    );
    assert!(
        io.read_only && io.doc.contains("no effect in Fjord"),
        "{io:?}"
    );
    let hours = get("log.retention.hours");
    assert_eq!(hours.value.as_deref(), Some("5"));
    assert_eq!(hours.synonyms[0].source, Source::StaticBroker);
    // log.retention.ms is unset: null, as Kafka reports it.
    assert_eq!(get("log.retention.ms").value, None);
    let pw = get("ssl.keystore.password");
    assert!(pw.sensitive && pw.value.is_none() && pw.synonyms.iter().all(|s| s.value.is_none()));
    let net = get("num.network.threads");
    assert_eq!(
        (net.value.as_deref(), net.source),
        (Some("3"), Source::Default)
    );
    // The topic's retention.ms is the hours in milliseconds.
    let retention = find("retention.ms")
        .expect("retention.ms")
        .describe(&BTreeMap::new(), &layers);
    assert_eq!(retention.value.as_deref(), Some("18000000"));
}
