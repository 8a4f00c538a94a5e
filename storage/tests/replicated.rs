//! A follower's side of `Log` over both I/O engines: replicated appends (offsets and
//! epochs kept) and the synced end.

mod common;

use std::path::Path;

use bytes::{Bytes, BytesMut};
use common::{batch, engines, run, small_config, MakeEngine, TempDir};
use fjord_storage::batch::{
    parse_headers, set_base_offset, set_partition_leader_epoch, split_batches, BatchHeader,
};
use fjord_storage::{Log, LogConfig, StorageError};

/// Test batch `i` as a leader stored it: base offset `base`, leader epoch `epoch`.
fn leader_batch(i: usize, base: i64, epoch: i32) -> Bytes {
    let mut b = batch(i);
    set_base_offset(&mut b, base);
    set_partition_leader_epoch(&mut b, epoch);
    b.freeze()
}

/// `n` leader batches from offset `from`, epoch 1 + i / 20, and with `gaps` a hole of
/// five offsets (compacted away) before every seventh batch.
fn stream(n: usize, from: i64, gaps: bool) -> Vec<Bytes> {
    let mut next = from;
    (0..n)
        .map(|i| {
            if gaps && i % 7 == 6 {
                next += 5;
            }
            let b = leader_batch(i, next, 1 + (i / 20) as i32);
            next = header(&b).next_offset();
            b
        })
        .collect()
}

fn header(b: &[u8]) -> BatchHeader {
    BatchHeader::parse(b).expect("header")
}

fn concat(parts: &[Bytes]) -> Vec<u8> {
    parts.iter().flat_map(|b| b.iter().copied()).collect()
}

/// Appends `batches` with `append_replicated` in groups of 1, 2, 3, 1, ... batches,
/// awaiting every append.
async fn replicate(log: &mut Log, batches: &[Bytes], sync: bool) {
    let mut at = 0;
    let mut group = 1;
    while at < batches.len() {
        let end = (at + group).min(batches.len());
        let records = BytesMut::from(&concat(&batches[at..end])[..]);
        let headers = parse_headers(&records).expect("headers");
        let (info, fut) = log
            .append_replicated(records, &headers, sync)
            .expect("append");
        assert_eq!(info.base_offset, headers[0].base_offset);
        assert_eq!(info.last_offset, headers[headers.len() - 1].last_offset());
        assert_eq!(info.log_append_time_ms, -1);
        fut.await.expect("write");
        at = end;
        group = group % 3 + 1;
    }
}

/// Everything from `from` by repeated fetches of `max_bytes`.
async fn read_all(log: &Log, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let r = log
            .read(offset, i64::MAX, max_bytes, true)
            .await
            .expect("read");
        assert!(!r.records.is_empty(), "progress at {offset}");
        for range in split_batches(&r.records).expect("whole batches") {
            offset = header(&r.records[range]).next_offset();
        }
        out.extend_from_slice(&r.records);
    }
    out
}

/// Checks the log holds exactly `expected` (from the log start), ends where they end
/// (or at `end` when given) and answers a one-batch read at every offset around `cut`
/// with the batch holding it (or the next one, in a gap).
async fn check(log: &Log, expected: &[Bytes], end: i64, cut: i64, what: &str) {
    assert_eq!(log.log_end_offset(), end, "{what}: log end");
    assert_eq!(log.written_end_offset(), end, "{what}: written end");
    assert!(log.synced_end_offset() <= end, "{what}: synced end");
    let start = log.log_start_offset();
    for max_bytes in [1, 700, 1 << 20] {
        assert_eq!(
            read_all(log, start, max_bytes).await,
            concat(expected),
            "{what}: contents (max_bytes {max_bytes})"
        );
    }
    for offset in (cut - 8).max(start)..end {
        let r = log.read(offset, i64::MAX, 1, true).await.expect("read");
        let want = expected
            .iter()
            .find(|b| header(b).last_offset() >= offset)
            .expect("a batch holds or follows every offset below the end");
        assert_eq!(&r.records, want, "{what}: read at {offset}");
    }
    let at_end = log.read(end, i64::MAX, 1, true).await.expect("read at end");
    assert!(at_end.records.is_empty(), "{what}: nothing at the end");
    assert!(
        matches!(
            log.read(end + 1, i64::MAX, 1, true).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ),
        "{what}: nothing past the end"
    );
    // The largest timestamp follows the cut.
    let max = expected.iter().map(|b| header(b).max_timestamp).max();
    let first_max = max.and_then(|m| expected.iter().find(|b| header(b).max_timestamp == m));
    assert_eq!(
        log.batch_with_max_timestamp().await.expect("lookup"),
        first_max.cloned(),
        "{what}: batch with the max timestamp"
    );
}

/// Base offsets of the `.log` files in `dir`, sorted; fails on staged leftovers.
fn segment_files(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .inspect(|name| assert!(!name.ends_with(".new"), "staged file {name} left"))
        .filter_map(|name| name.strip_suffix(".log").map(|s| s.parse().expect("base")))
        .collect();
    bases.sort_unstable();
    bases
}

fn reopen(dir: &Path, config: LogConfig, engine: MakeEngine) -> Log {
    let recovered = Log::recover(dir.to_path_buf(), config).expect("recover");
    Log::from_recovered(recovered, engine())
}

/// Awaits everything of `log`, drops it, recovers the directory and checks the
/// recovered log against `expected`.
async fn check_recovered(
    mut log: Log,
    dir: &Path,
    config: &LogConfig,
    engine: MakeEngine,
    expected: &[Bytes],
    what: &str,
) -> Log {
    log.settled().await;
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    drop(log);
    let log = reopen(dir, config.clone(), engine);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (start, end),
        "{what}: recovered start and end"
    );
    assert_eq!(
        read_all(&log, start, 1 << 20).await,
        concat(expected),
        "{what}: recovered contents"
    );
    log
}

#[test]
fn append_replicated_keeps_offsets_and_epochs() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("replicated");
            let config = small_config();
            let mut log = reopen(&dir.0, config.clone(), engine);
            let input = stream(80, 0, true);
            replicate(&mut log, &input, false).await;
            let end = header(&input[79]).next_offset();
            check(&log, &input, end, end, name).await;
            assert!(log.segment_count() > 3, "{name}: rolled");
            // Kafka rolls at the first base offset of the append that does not fit.
            let bases: Vec<i64> = input.iter().map(|b| header(b).base_offset).collect();
            for base in segment_files(&dir.0) {
                assert!(
                    bases.contains(&base),
                    "{name}: segment {base} starts a batch"
                );
            }

            // Overlapping the end, or going backwards inside an append: refused whole.
            let size = log.size_bytes();
            let overlap = leader_batch(80, end - 1, 9);
            let h = header(&overlap);
            match log.append_replicated(BytesMut::from(&overlap[..]), &[h], false) {
                Err(StorageError::NonMonotonicOffset {
                    expected_at_least,
                    found,
                }) => assert_eq!((expected_at_least, found), (end, end - 1), "{name}"),
                other => panic!("{name}: overlap accepted: {:?}", other.map(|r| r.0)),
            }
            let first = leader_batch(81, end + 10, 9);
            let backwards = leader_batch(82, header(&first).last_offset(), 9);
            let records = BytesMut::from(&concat(&[first.clone(), backwards])[..]);
            let headers = parse_headers(&records).expect("headers");
            match log.append_replicated(records, &headers, false) {
                Err(StorageError::NonMonotonicOffset {
                    expected_at_least,
                    found,
                }) => assert_eq!(
                    (expected_at_least, found),
                    (header(&first).next_offset(), header(&first).last_offset())
                ),
                other => panic!("{name}: backwards accepted: {:?}", other.map(|r| r.0)),
            }
            assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
            check(&log, &input, end, end, name).await;

            // A gap at the end is kept; the stored bytes are the leader's.
            let mut all = input.clone();
            all.push(first.clone());
            replicate(&mut log, std::slice::from_ref(&first), true).await;
            assert_eq!(log.log_end_offset(), header(&first).next_offset());
            assert_eq!(log.synced_end_offset(), log.log_end_offset(), "{name}");
            let r = log
                .read(end, i64::MAX, 1 << 20, true)
                .await
                .expect("read in the gap");
            assert_eq!(r.records, first, "{name}: the batch after the gap");
            check_recovered(log, &dir.0, &config, engine, &all, name).await;
        });
    }
}

#[test]
fn a_follower_copy_is_byte_identical_to_the_leader() {
    for (name, engine) in engines() {
        run(|| async move {
            let leader_dir = TempDir::new("leader");
            let follower_dir = TempDir::new("follower");
            let config = small_config();
            let mut leader = reopen(&leader_dir.0, config.clone(), engine);
            for i in 0..150 {
                let epoch = 1 + (i / 40) as i32;
                let (_, fut) = leader
                    .append_bytes(batch(i), epoch, None, false)
                    .expect("append");
                fut.await.expect("write");
            }
            assert!(leader.segment_count() > 3, "{name}");
            let mut follower = reopen(&follower_dir.0, config.clone(), engine);
            let mut offset = 0;
            while offset < leader.log_end_offset() {
                let one = leader
                    .read(offset, i64::MAX, 1, true)
                    .await
                    .expect("fetch")
                    .records;
                offset = header(&one).next_offset();
                replicate(&mut follower, &[one], false).await;
            }
            assert_eq!(follower.log_end_offset(), leader.log_end_offset());
            leader.flush().await.expect("flush");
            follower.flush().await.expect("flush");
            let bases = segment_files(&leader_dir.0);
            assert_eq!(
                segment_files(&follower_dir.0),
                bases,
                "{name}: same segments"
            );
            for base in bases {
                for ext in ["log", "index", "timeindex"] {
                    let file = format!("{base:020}.{ext}");
                    assert_eq!(
                        std::fs::read(follower_dir.0.join(&file)).expect("follower file"),
                        std::fs::read(leader_dir.0.join(&file)).expect("leader file"),
                        "{name}: {file}"
                    );
                }
            }
        });
    }
}

#[test]
fn synced_end_follows_syncs_and_rolls() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("synced");
            let config = LogConfig {
                segment_bytes: 1 << 20,
                ..small_config()
            };
            let mut log = reopen(&dir.0, config, engine);
            let input = stream(10, 0, false);
            replicate(&mut log, &input[..5], false).await;
            assert_eq!(log.written_end_offset(), log.log_end_offset());
            assert_eq!(log.synced_end_offset(), 0, "{name}: nothing synced yet");
            replicate(&mut log, &input[5..], true).await;
            assert_eq!(log.synced_end_offset(), log.log_end_offset(), "{name}");

            // Rolled segments count once their background task has synced them.
            log.set_config(small_config());
            let more = stream(60, log.log_end_offset(), false);
            replicate(&mut log, &more, false).await;
            assert!(log.segment_count() > 2);
            assert!(log.synced_end_offset() < log.written_end_offset());
            log.settled().await;
            let active = *segment_files(&dir.0).last().expect("a segment");
            assert_eq!(
                log.synced_end_offset(),
                active,
                "{name}: every rolled segment is synced"
            );
            log.flush().await.expect("flush");
            assert_eq!(log.synced_end_offset(), log.log_end_offset());
        });
    }
}
