//! openraft's storage conformance suite against our log store and state machine,
//! plus crash-recovery checks of the files themselves.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, StorageError, Vote};
use tokio::sync::watch;

use super::log_store::{compact_now, LogStore};
use super::state_machine::StateMachine;
use super::*;

/// A fresh directory per store, removed when the guard drops.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("fjord-raft-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    TempDir(d)
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = temp_dir("suite");
        let io = |e: std::io::Error| {
            StorageError::from_io_error(openraft::ErrorSubject::Store, openraft::ErrorVerb::Read, e)
        };
        let log = LogStore::open(&dir.0).map_err(io)?;
        let (tx, _rx) = watch::channel(Arc::new(crate::metadata::ClusterImage::default()));
        let sm = StateMachine::open(&dir.0, tx).map_err(io)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).expect("openraft's storage conformance suite");
}

fn entry(term: u64, index: u64, cmd: Option<Command>) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: cmd.map_or(EntryPayload::Blank, EntryPayload::Normal),
    }
}

async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    log.blocking_append(entries).await.expect("append");
}

#[test]
fn log_survives_reopen_torn_tail_and_compaction() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = temp_dir("reopen");
        let mut log = LogStore::open(&dir.0).expect("open");
        log.save_vote(&Vote::new(3, 1)).await.expect("vote");
        let cmd = Command::AllocateProducerIds { count: 7 };
        append(
            &mut log,
            (1..=5).map(|i| entry(3, i, Some(cmd.clone()))).collect(),
        )
        .await;
        log.truncate(LogId::new(CommittedLeaderId::new(3, 1), 5))
            .await
            .expect("truncate");
        log.purge(LogId::new(CommittedLeaderId::new(3, 1), 1))
            .await
            .expect("purge");
        drop(log);

        let path = dir.0.join("raft.log");
        let len = std::fs::metadata(&path).expect("meta").len();
        // A torn record at the end (a crash mid-write) is dropped on open.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
        std::fs::write(&path, &bytes).expect("write");

        let mut log = LogStore::open(&dir.0).expect("reopen");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), len);
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
        let got = log.try_get_log_entries(0..100).await.expect("read");
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));

        compact_now(&log).expect("compact");
        drop(log);
        let mut log = LogStore::open(&dir.0).expect("reopen after compaction");
        let got = log.try_get_log_entries(0..100).await.expect("read");
        assert_eq!(got.len(), 3);
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
    });
}
