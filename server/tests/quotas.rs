//! Client quotas against the real `fjord` binary over TCP: AlterClientQuotas and
//! DescribeClientQuotas as Kafka answers them, quotas kept across a restart, and
//! Produce, Fetch and request-time quotas throttling a client (throttle_time_ms,
//! then a muted connection).

mod common;

use std::time::{Duration, Instant};

use common::{batch, Broker, Client};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The client id `common::Client` sends.
const CLIENT: &str = "it";

fn entity(pairs: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    pairs
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(n.map(s))
        })
        .collect()
}

fn op(key: &str, value: Option<f64>) -> OpData {
    OpData::default()
        .with_key(s(key))
        .with_value(value.unwrap_or(0.0))
        .with_remove(value.is_none())
}

/// Alters the quotas; (error code, message) per response entry.
fn alter(
    c: &mut Client,
    entries: Vec<(Vec<EntityData>, Vec<OpData>)>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let req = AlterClientQuotasRequest::default()
        .with_validate_only(validate_only)
        .with_entries(
            entries
                .into_iter()
                .map(|(e, ops)| EntryData::default().with_entity(e).with_ops(ops))
                .collect(),
        );
    let r: AlterClientQuotasResponse = c.request(1, &req);
    r.entries
        .iter()
        .map(|e| {
            (
                e.error_code,
                e.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

type Described = Vec<(Vec<(String, Option<String>)>, Vec<(String, f64)>)>;

fn describe(
    c: &mut Client,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Result<Described, (i16, String)> {
    let req = DescribeClientQuotasRequest::default()
        .with_strict(strict)
        .with_components(
            components
                .iter()
                .map(|(t, m, v)| {
                    ComponentData::default()
                        .with_entity_type(s(t))
                        .with_match_type(*m)
                        .with_match(v.map(s))
                })
                .collect(),
        );
    let r: DescribeClientQuotasResponse = c.request(1, &req);
    if r.error_code != 0 {
        assert!(r.entries.is_none());
        return Err((
            r.error_code,
            r.error_message.map(|m| m.to_string()).unwrap_or_default(),
        ));
    }
    Ok(r.entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e.entity
                    .iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect(),
                e.values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect(),
            )
        })
        .collect())
}

#[test]
fn client_quotas_are_checked_described_and_kept() {
    let mut broker = Broker::start("quotas-admin", &[]);
    let mut c = broker.client();
    let results = alter(
        &mut c,
        vec![
            (
                entity(&[("client-id", Some("app"))]),
                vec![op("producer_byte_rate", Some(1024.0))],
            ),
            (
                entity(&[("user", None)]),
                vec![
                    op("consumer_byte_rate", Some(2048.0)),
                    op("request_percentage", Some(12.5)),
                ],
            ),
            (
                entity(&[("user", Some("alice")), ("client-id", None)]),
                vec![op("producer_byte_rate", Some(1.5))],
            ),
            (
                entity(&[("group", Some("g"))]),
                vec![op("producer_byte_rate", Some(1.0))],
            ),
            (
                entity(&[("client-id", Some("app"))]),
                vec![op("consumer_byte_rate", Some(1.0))],
            ),
        ],
        false,
    );
    assert_eq!(results.len(), 4, "one entry per entity: {results:?}");
    assert_eq!(results[0].0, 42, "the entity named twice: {results:?}");
    assert!(results[0]
        .1
        .as_deref()
        .expect("accepted")
        .starts_with("Ignoring duplicate entity"));
    assert_eq!(results[1], (0, None));
    assert_eq!(
        results[2],
        (
            42,
            Some("producer_byte_rate cannot be a fractional value.".into())
        )
    );
    assert_eq!(
        results[3],
        (42, Some("Unhandled client quota entity type: group".into()))
    );

    // validate_only checks and writes nothing.
    let checked = alter(
        &mut c,
        vec![(
            entity(&[("client-id", Some("other"))]),
            vec![op("producer_byte_rate", Some(10.0))],
        )],
        true,
    );
    assert_eq!(checked, vec![(0, None)]);

    let all = describe(&mut c, &[], false).expect("accepted");
    let app = (
        vec![("client-id".to_string(), Some("app".to_string()))],
        vec![("producer_byte_rate".to_string(), 1024.0)],
    );
    let default_user = (
        vec![("user".to_string(), None)],
        vec![
            ("consumer_byte_rate".to_string(), 2048.0),
            ("request_percentage".to_string(), 12.5),
        ],
    );
    assert_eq!(all, vec![app.clone(), default_user.clone()]);
    assert_eq!(
        describe(&mut c, &[("user", 1, None)], true).expect("accepted"),
        vec![default_user.clone()]
    );
    assert_eq!(
        describe(&mut c, &[("client-id", 0, Some("app"))], false).expect("accepted"),
        vec![app.clone()]
    );
    assert_eq!(
        describe(&mut c, &[("client-id", 2, None)], true).expect("accepted"),
        vec![app.clone()]
    );
    assert_eq!(
        describe(&mut c, &[("client-id", 0, Some("nope"))], false).expect("accepted"),
        vec![]
    );
    assert_eq!(
        describe(&mut c, &[("user", 0, None)], false).expect_err("refused"),
        (
            42,
            "Request specified MATCH_TYPE_EXACT, but set match string to null.".into()
        )
    );
    assert_eq!(
        describe(&mut c, &[("topic", 2, None)], false).expect_err("refused"),
        (35, "Unsupported entity type topic".into())
    );

    // Removing the last key drops the entity; the rest survives a restart.
    assert_eq!(
        alter(
            &mut c,
            vec![(
                entity(&[("client-id", Some("app"))]),
                vec![op("producer_byte_rate", None)]
            )],
            false
        ),
        vec![(0, None)]
    );
    broker.stop();
    broker.spawn();
    let mut c = broker.client();
    assert_eq!(
        describe(&mut c, &[], false).expect("accepted"),
        vec![default_user]
    );
}

fn create(c: &mut Client, topic: &str) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let r: CreateTopicsResponse = c.request(7, &req);
    assert_eq!(r.topics[0].error_code, 0);
}

fn produce(c: &mut Client, version: i16, topic: &str, value: &[u8]) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[value], None, Compression::None)))])]);
    let r: ProduceResponse = c.request(version, &req);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    r
}

fn fetch(c: &mut Client, topic: &str, offset: i64) -> FetchResponse {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    c.request(12, &req)
}

/// Time until the connection answers again (it is muted while throttled).
fn time_to_answer(c: &mut Client) -> Duration {
    let started = Instant::now();
    let _: ApiVersionsResponse = c.request(3, &ApiVersionsRequest::default());
    started.elapsed()
}

/// Two samples of one second: a rate is measured over at least one second, so the
/// throttle times below follow from the bytes sent.
const WINDOW: [&str; 2] = ["quota.window.num=2", "quota.window.size.seconds=1"];

#[test]
fn a_producer_over_its_byte_rate_is_throttled_and_muted() {
    let broker = Broker::start("quotas-produce", &WINDOW);
    let mut c = broker.client();
    create(&mut c, "slow");
    assert_eq!(
        alter(
            &mut c,
            vec![(
                entity(&[("client-id", Some(CLIENT))]),
                vec![op("producer_byte_rate", Some(1000.0))]
            )],
            false
        ),
        vec![(0, None)]
    );
    // About 3 KB in one second against 1000 B/s: about two seconds over.
    let value = vec![b'x'; 3000];
    let r = produce(&mut c, 9, "slow", &value);
    let ms = r.throttle_time_ms;
    assert!((1500..=2500).contains(&ms), "throttle_time_ms {ms}");
    // The data was appended anyway, and the connection stays muted for that long.
    let waited = time_to_answer(&mut c);
    assert!(
        waited >= Duration::from_millis(ms as u64 * 8 / 10),
        "answered after {waited:?}"
    );
    // Fetching has no quota here.
    let other = fetch(&mut c, "slow", 0);
    assert_eq!(other.throttle_time_ms, 0);
    assert!(!other.responses[0].partitions[0]
        .records
        .as_ref()
        .expect("accepted")
        .is_empty());

    // Produce v5 predates client-side throttling: the response itself waits.
    std::thread::sleep(Duration::from_millis(2500));
    let started = Instant::now();
    let r = produce(&mut c, 5, "slow", &value);
    assert!(r.throttle_time_ms > 0);
    assert!(started.elapsed() >= Duration::from_millis(r.throttle_time_ms as u64 * 8 / 10));
}

#[test]
fn a_consumer_over_its_byte_rate_gets_empty_throttled_fetches() {
    let broker = Broker::start("quotas-fetch", &WINDOW);
    let mut c = broker.client();
    create(&mut c, "drip");
    for _ in 0..6 {
        produce(&mut c, 9, "drip", &[b'y'; 500]);
    }
    assert_eq!(
        alter(
            &mut c,
            vec![(
                entity(&[("user", Some("ANONYMOUS"))]),
                vec![op("consumer_byte_rate", Some(1000.0))]
            )],
            false
        ),
        vec![(0, None)]
    );
    // The fetch size is capped at what the quota lets through in the window (one batch
    // of about 570 bytes fits in 1000; two do not).
    let first = fetch(&mut c, "drip", 0);
    assert_eq!(first.throttle_time_ms, 0);
    let records = first.responses[0].partitions[0]
        .records
        .clone()
        .expect("accepted");
    assert!(records.len() < 1000, "{} bytes", records.len());
    // The next batch would take the rate over 1000 B/s: an empty answer with the
    // throttle time, and nothing charged for it.
    let second = fetch(&mut c, "drip", 1);
    assert!(second.throttle_time_ms > 0, "{second:?}");
    assert!(second.responses.is_empty());
    // Waiting it out, every record is read.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut offset = 1;
    while offset < 6 && Instant::now() < deadline {
        let r = fetch(&mut c, "drip", offset);
        if let Some(p) = r.responses.first().map(|t| &t.partitions[0]) {
            assert_eq!(p.error_code, 0);
            if !p.records.as_ref().expect("accepted").is_empty() {
                offset += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(r.throttle_time_ms.max(0) as u64));
    }
    assert_eq!(offset, 6, "every record read within the quota");
}

#[test]
fn request_time_over_its_percentage_is_throttled() {
    let broker = Broker::start("quotas-request", &WINDOW);
    let mut c = broker.client();
    // 0.001% of a second: ten microseconds of handling per second.
    assert_eq!(
        alter(
            &mut c,
            vec![(
                entity(&[("client-id", None)]),
                vec![op("request_percentage", Some(0.001))]
            )],
            false
        ),
        vec![(0, None)]
    );
    let mut throttled = None;
    for _ in 0..200 {
        let r: MetadataResponse = c.request(12, &MetadataRequest::default().with_topics(None));
        if r.throttle_time_ms > 0 {
            throttled = Some(r.throttle_time_ms);
            break;
        }
    }
    let ms = throttled.expect("some Metadata request throttled");
    // Capped at one sample's span, as Kafka caps request-time throttles.
    assert!(ms <= 1000, "{ms}");
    let waited = time_to_answer(&mut c);
    assert!(
        waited >= Duration::from_millis(ms as u64 * 8 / 10),
        "answered after {waited:?}"
    );
}
