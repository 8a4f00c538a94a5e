//! Shard isolation, against the real `fjord` binary over TCP: with every partition on
//! one shard (`fjord.cores=1`), neither the recovery of a large log nor a cold read of
//! one partition may hold up requests for another; and a partition whose directory
//! belongs to another topic id stays offline with its files untouched.
//!
//! The tests in this file run one at a time (`serial`): they measure latencies, and
//! each keeps a few hundred MiB on disk. Every test has a hard deadline.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch, Broker, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// Records per large batch, and each record's value size: one batch is just under
/// 1 MiB, below the default `message.max.bytes` (1 MiB + 12 bytes).
const BIG_BATCH_RECORDS: usize = 16;
const BIG_RECORD_VALUE_BYTES: usize = 65_000;

/// Longest a test may run.
const TEST_DURATION_MAX: Duration = Duration::from_secs(150);

/// Serializes the tests of this file.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Panics once the test's deadline has passed.
struct Deadline(Instant);

impl Deadline {
    fn start() -> Deadline {
        Deadline(Instant::now() + TEST_DURATION_MAX)
    }

    fn check(&self, what: &str) {
        assert!(Instant::now() < self.0, "deadline passed while {what}");
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create(c: &mut Client, topic: &str) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let r = c.request(7, &req);
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}

/// Produces `records` to partition 0 of `topic` with acks=1: (error, base offset).
fn produce(c: &mut Client, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let r = c.request(9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Fetches partition 0 of `topic` from `offset`, with `max_bytes` as both the request's
/// and the partition's limit and no wait.
fn fetch(
    c: &mut Client,
    topic: &str,
    offset: i64,
    max_bytes: i32,
) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    let mut r = c.request(12, &req);
    r.responses.remove(0).partitions.remove(0)
}

/// The offset after the last complete batch in `records` (None if there is none),
/// read from the v2 batch headers: base offset at 0, length at 8, last offset delta
/// at 23.
fn next_offset(records: &[u8]) -> Option<i64> {
    let mut rest = records;
    let mut next = None;
    while rest.len() >= 27 {
        let base = i64::from_be_bytes(rest[0..8].try_into().ok()?);
        let length = i32::from_be_bytes(rest[8..12].try_into().ok()?);
        let total = 12 + length.max(0) as usize;
        if rest.len() < total {
            break;
        }
        let last_delta = i32::from_be_bytes(rest[23..27].try_into().ok()?);
        next = Some(base + last_delta as i64 + 1);
        rest = &rest[total..];
    }
    next
}

/// Appends `batches` large batches to `topic`; returns the acknowledged log end.
fn fill(c: &mut Client, topic: &str, batches: usize) -> i64 {
    let values: Vec<Vec<u8>> = (0..BIG_BATCH_RECORDS)
        .map(|i| vec![b'a' + (i % 26) as u8; BIG_RECORD_VALUE_BYTES])
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let records = batch(&refs, None, Compression::None);
    let mut end = 0;
    for i in 0..batches {
        let (err, base) = produce(c, topic, records.clone());
        assert_eq!(err, 0, "large batch {i} to {topic}");
        assert_eq!(base, end, "large batch {i} to {topic}");
        end = base + BIG_BATCH_RECORDS as i64;
    }
    end
}

/// Reads `topic` from offset 0 in fetches of `max_bytes`; asserts it holds exactly
/// `end` records, contiguous from 0.
fn read_all(c: &mut Client, topic: &str, end: i64, max_bytes: i32, deadline: &Deadline) {
    let mut offset = 0;
    while offset < end {
        deadline.check("reading the whole log back");
        let p = fetch(c, topic, offset, max_bytes);
        assert_eq!(p.error_code, 0, "fetch {topic} at {offset}");
        assert_eq!(p.high_watermark, end, "{topic}'s high watermark");
        let records = p.records.unwrap_or_default();
        let next = next_offset(&records).expect("a complete batch");
        assert!(next > offset, "{topic} makes progress at {offset}");
        offset = next;
    }
    assert_eq!(offset, end);
}

/// Waits until partition 0 of `topic` answers a fetch at `offset` without error
/// (it answers NOT_LEADER_OR_FOLLOWER while its log is opened).
fn wait_ready(c: &mut Client, topic: &str, offset: i64, deadline: &Deadline) {
    loop {
        deadline.check(&format!("waiting for {topic} to be served"));
        match fetch(c, topic, offset, 1024).error_code {
            0 => return,
            NOT_LEADER_OR_FOLLOWER => std::thread::sleep(Duration::from_millis(10)),
            e => panic!("fetch {topic} while waiting for it: error {e}"),
        }
    }
}

/// The `.log` segment files of a partition directory.
fn segment_files(partition_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .expect("partition dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Writes the partition's segments to disk and drops them from the page cache, so
/// the next read of them goes to the device. Returns their total size.
fn drop_from_page_cache(partition_dir: &Path) -> u64 {
    use std::os::fd::AsRawFd;
    let mut total = 0;
    for path in segment_files(partition_dir) {
        let file = std::fs::File::open(&path).expect("open segment");
        file.sync_all().expect("sync segment");
        // SAFETY: an advisory call on a descriptor we own; no memory is shared.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise on {}", path.display());
        total += file.metadata().expect("segment metadata").len();
    }
    total
}

/// The `p`-th percentile (0..=100) of `samples`; zero if there are none.
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One small record for `small`, distinct per round trip.
fn small_batch(round: usize) -> (Vec<u8>, Bytes) {
    let value = format!("small-{round}").into_bytes();
    let records = batch(&[value.as_slice()], None, Compression::None);
    (value, records)
}

fn values(records: &Option<Bytes>) -> Vec<Vec<u8>> {
    let mut buf = records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
        out.extend(
            set.records
                .into_iter()
                .map(|r| r.value.map(|v| v.to_vec()).unwrap_or_default()),
        );
    }
    out
}

#[test]
fn recovery_of_a_large_log_does_not_stall_other_partitions() {
    let _serial = serial();
    let deadline = Deadline::start();
    // One 1 GiB segment (the default) holds all of `big`: after a kill, recovery
    // validates every batch of it.
    let mut broker = Broker::start("shard-recovery", &["fjord.cores=1"]);
    let mut c = broker.client();
    create(&mut c, "big");
    create(&mut c, "small");
    assert_eq!(produce(&mut c, "small", small_batch(0).1), (0, 0));
    let big_end = fill(&mut c, "big", 300);
    drop(c);
    broker.kill9();
    let big_bytes = drop_from_page_cache(&broker.dir.join("big-0"));

    let restarted = Instant::now();
    broker.spawn();
    let listening = restarted.elapsed();

    // `big` is polled on a connection of its own: each poll may wait ~1 s for it.
    let big_ready = Arc::new(AtomicBool::new(false));
    let poller = {
        let (ready, port) = (big_ready.clone(), broker.port);
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let deadline = Deadline::start();
            wait_ready(&mut c, "big", big_end, &deadline);
            ready.store(true, Ordering::SeqCst);
            restarted.elapsed()
        })
    };

    let mut c = broker.client();
    let mut latencies = Vec::new();
    let mut opening_answers = 0;
    let mut round = 1;
    while !big_ready.load(Ordering::SeqCst) {
        deadline.check("round-tripping `small` during recovery");
        if poller.is_finished() {
            break;
        }
        let (value, records) = small_batch(round);
        let started = Instant::now();
        let (err, base) = produce(&mut c, "small", records);
        if err == NOT_LEADER_OR_FOLLOWER && latencies.is_empty() {
            // `small` itself may still be opening right after the restart.
            opening_answers += 1;
            continue;
        }
        assert_eq!(err, 0, "produce to `small` (round {round})");
        assert_eq!(base, round as i64, "produce to `small` (round {round})");
        let p = fetch(&mut c, "small", base, 1 << 20);
        assert_eq!(p.error_code, 0, "fetch `small` at {base}");
        assert_eq!(values(&p.records), vec![value], "fetch `small` at {base}");
        latencies.push(started.elapsed());
        round += 1;
    }
    let big_back = poller.join().expect("poller");

    eprintln!(
        "recovery of {} MiB: listening after {:.0} ms, `big` served after {:.0} ms; \
         {} `small` round trips meanwhile ({} answered {NOT_LEADER_OR_FOLLOWER} first)",
        big_bytes >> 20,
        ms(listening),
        ms(big_back),
        latencies.len(),
        opening_answers
    );
    assert!(
        latencies.len() >= 10,
        "only {} `small` round trips completed while `big` was recovered",
        latencies.len()
    );
    let (p50, p99) = (percentile(&latencies, 50), percentile(&latencies, 99));
    let max = percentile(&latencies, 100);
    eprintln!(
        "`small` round trips during recovery: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(p50),
        ms(p99),
        ms(max)
    );
    assert!(
        p99 < Duration::from_millis(50),
        "p99 of `small` round trips during recovery is {:.2} ms",
        ms(p99)
    );

    let mut c = broker.client();
    read_all(&mut c, "big", big_end, 32 << 20, &deadline);
}

#[test]
fn a_cold_fetch_does_not_delay_produce() {
    let _serial = serial();
    let deadline = Deadline::start();
    let mut broker = Broker::start("shard-cold-fetch", &["fjord.cores=1"]);
    let mut c = broker.client();
    create(&mut c, "big");
    create(&mut c, "small");
    let big_end = fill(&mut c, "big", 256);
    drop(c);
    broker.stop();
    broker.spawn();
    let mut c = broker.client();
    wait_ready(&mut c, "big", big_end, &deadline);
    wait_ready(&mut c, "small", 0, &deadline);
    let big_bytes = drop_from_page_cache(&broker.dir.join("big-0"));

    let fetching = Arc::new(AtomicBool::new(false));
    let reader = {
        let (fetching, port) = (fetching.clone(), broker.port);
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let (mut offset, mut fetches, mut bytes) = (0, 0, 0);
            fetching.store(true, Ordering::SeqCst);
            let started = Instant::now();
            while offset < big_end {
                let p = fetch(&mut c, "big", offset, 32 << 20);
                assert_eq!(p.error_code, 0, "fetch `big` at {offset}");
                let records = p.records.unwrap_or_default();
                let next = next_offset(&records).expect("a complete batch");
                assert!(next > offset, "`big` makes progress at {offset}");
                offset = next;
                fetches += 1;
                bytes += records.len();
            }
            let ended = Instant::now();
            fetching.store(false, Ordering::SeqCst);
            (started, ended, fetches, bytes)
        })
    };

    // Produces start only once the reader is about to fetch, and run until it is done.
    while !fetching.load(Ordering::SeqCst) && !reader.is_finished() {
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut produces: Vec<(Instant, Instant)> = Vec::new();
    let mut round = 0;
    loop {
        deadline.check("producing to `small` during the cold fetch");
        let done = reader.is_finished();
        let started = Instant::now();
        let (err, base) = produce(&mut c, "small", small_batch(round).1);
        assert_eq!((err, base), (0, round as i64), "produce to `small`");
        produces.push((started, Instant::now()));
        round += 1;
        if done {
            break;
        }
    }
    let (fetch_started, fetch_ended, fetches, fetched_bytes) = reader.join().expect("reader");
    let fetch_loop = fetch_ended - fetch_started;

    let during: Vec<Duration> = produces
        .iter()
        .filter(|(started, acked)| *started < fetch_ended && *acked > fetch_started)
        .map(|(started, acked)| *acked - *started)
        .collect();
    let acked_during = produces
        .iter()
        .filter(|(_, acked)| *acked >= fetch_started && *acked <= fetch_ended)
        .count();
    let max = during.iter().max().copied().unwrap_or_default();
    let slow = during
        .iter()
        .filter(|d| **d > Duration::from_millis(10))
        .count();
    eprintln!(
        "cold fetch of {} MiB ({} MiB on disk) in {fetches} fetches took {:.0} ms; \
         {acked_during} produces acknowledged meanwhile, p50 {:.2} ms, p99 {:.2} ms, \
         max {:.2} ms, {slow} over 10 ms",
        fetched_bytes >> 20,
        big_bytes >> 20,
        ms(fetch_loop),
        ms(percentile(&during, 50)),
        ms(percentile(&during, 99)),
        ms(max)
    );
    assert!(
        acked_during >= 20,
        "only {acked_during} produces were acknowledged during the fetch loop"
    );
    if fetch_loop > Duration::from_millis(40) {
        assert!(
            max < fetch_loop / 2,
            "a produce took {:.2} ms during a fetch loop of {:.0} ms",
            ms(max),
            ms(fetch_loop)
        );
    } else {
        eprintln!(
            "the fetch loop took {:.0} ms: `big` was read warm",
            ms(fetch_loop)
        );
    }
}

/// Name and size of every file in `dir`, by name.
fn file_sizes(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("partition dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let len = e.metadata().expect("file metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    files.sort();
    files
}

/// `text` with the first character of its `topic_id: ` value replaced by another
/// character of the same (base64url) alphabet.
fn edit_topic_id(text: &str) -> String {
    const KEY: &str = "topic_id: ";
    let at = text.find(KEY).expect("a topic_id line") + KEY.len();
    let old = text[at..].chars().next().expect("a topic id");
    let new = if old == 'A' { 'B' } else { 'A' };
    format!("{}{new}{}", &text[..at], &text[at + old.len_utf8()..])
}

/// Sends requests for partition 0 of `topic` until one answers something other than
/// NOT_LEADER_OR_FOLLOWER; returns that error code.
fn settled(deadline: &Deadline, mut request: impl FnMut() -> i16) -> i16 {
    loop {
        deadline.check("waiting for a settled answer");
        match request() {
            NOT_LEADER_OR_FOLLOWER => std::thread::sleep(Duration::from_millis(50)),
            e => return e,
        }
    }
}

#[test]
fn an_edited_partition_metadata_keeps_the_data_offline() {
    let _serial = serial();
    let deadline = Deadline::start();
    let mut broker = Broker::start("shard-offline", &["fjord.cores=1"]);
    let mut c = broker.client();
    create(&mut c, "t");
    let expected: Vec<Vec<u8>> = (0..10).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = expected.iter().map(|v| v.as_slice()).collect();
    assert_eq!(
        produce(&mut c, "t", batch(&refs, None, Compression::None)),
        (0, 0)
    );
    drop(c);
    broker.stop();

    let partition_dir = broker.dir.join("t-0");
    let meta_path = partition_dir.join("partition.metadata");
    let original = std::fs::read_to_string(&meta_path).expect("partition.metadata");
    let edited = edit_topic_id(&original);
    assert_ne!(edited, original);
    std::fs::write(&meta_path, &edited).expect("edit partition.metadata");
    let files_before = file_sizes(&partition_dir);
    let bytes_before: u64 = files_before.iter().map(|(_, len)| len).sum();

    let log_path = broker.dir.join("broker.stderr");
    broker.spawn_logging_to(&log_path);
    let mut c = broker.client();
    let fetched = settled(&deadline, || fetch(&mut c, "t", 0, 1 << 20).error_code);
    assert_eq!(
        fetched, KAFKA_STORAGE_ERROR,
        "fetch from the offline partition"
    );
    let produced = settled(&deadline, || {
        produce(&mut c, "t", batch(&[b"more"], None, Compression::None)).0
    });
    assert_eq!(
        produced, KAFKA_STORAGE_ERROR,
        "produce to the offline partition"
    );

    let log = std::fs::read_to_string(&log_path).expect("broker log");
    let offline_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("partition offline"))
        .collect();
    assert!(
        offline_lines
            .iter()
            .any(|l| l.contains("inconsistent topic id") && l.contains("t-0")),
        "the broker's log names the directory and the inconsistent topic id:\n{log}"
    );
    drop(c);
    broker.stop();

    let files_after = file_sizes(&partition_dir);
    let bytes_after: u64 = files_after.iter().map(|(_, len)| len).sum();
    eprintln!(
        "offline t-0 kept {} files, {bytes_after} bytes (before: {} files, {bytes_before} bytes)",
        files_after.len(),
        files_before.len()
    );
    assert_eq!(files_after, files_before, "files of the offline partition");
    assert_eq!(
        std::fs::read_to_string(&meta_path).expect("partition.metadata"),
        edited,
        "the edited partition.metadata is left as it is"
    );

    std::fs::write(&meta_path, &original).expect("restore partition.metadata");
    broker.spawn();
    let mut c = broker.client();
    wait_ready(&mut c, "t", 0, &deadline);
    let p = fetch(&mut c, "t", 0, 1 << 20);
    assert_eq!((p.error_code, p.high_watermark), (0, 10));
    assert_eq!(values(&p.records), expected);
}
