//! The Raft log store: entries, the vote and the committed id, persisted in one
//! append-only file `<dir>/raft.log` and mirrored in memory.
//!
//! Record: `[len: u32 BE][crc32c(payload): u32 BE][payload: bincode LogRecord]`.
//! Replaying the records in order rebuilds the state; a torn or corrupt tail (a crash
//! mid-write) is truncated on open.
//!
//! Invariants:
//! - an entry, a vote, a truncation or a purge is acknowledged (the `LogFlushed`
//!   callback, or the return of `save_vote`) only after its record is fdatasync'd;
//! - the committed id is written without a sync: losing it only means re-learning
//!   it from the leader;
//! - after a purge the file is rewritten when most of its records are dead, through
//!   a temporary file, fsync and rename, so a crash leaves either file intact.
//!
//! Threads: owned by openraft's core task on the control-plane thread; the reader
//! handed to replication tasks shares the in-memory state through a mutex.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, StorageError, Vote};

use super::{Entry, NodeId, TypeConfig};

const FILE_NAME: &str = "raft.log";
/// Upper bound on one record; a larger length is a corrupt record.
const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Rewrite the file after a purge once it holds this many more records than live ones.
const DEAD_RECORDS_MAX: usize = 4096;

#[derive(serde::Serialize, serde::Deserialize)]
enum LogRecord {
    Entry(Entry),
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
    /// Every entry with index >= this was removed.
    TruncateFrom(u64),
    /// Every entry up to and including this was removed.
    PurgeUpTo(LogId<NodeId>),
}

#[derive(Default)]
struct State {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

impl State {
    fn replay(&mut self, rec: LogRecord) {
        match rec {
            LogRecord::Entry(e) => {
                self.entries.insert(e.log_id.index, e);
            }
            LogRecord::Vote(v) => self.vote = Some(v),
            LogRecord::Committed(c) => self.committed = c,
            LogRecord::TruncateFrom(i) => {
                self.entries.split_off(&i);
            }
            LogRecord::PurgeUpTo(id) => {
                self.entries = self.entries.split_off(&(id.index + 1));
                self.last_purged = Some(id);
            }
        }
    }
}

struct Inner {
    state: State,
    file: File,
    dir: PathBuf,
    /// Records in the file (live or dead).
    records: usize,
}

fn storage_err(verb: ErrorVerb, e: io::Error) -> StorageError<NodeId> {
    StorageError::from_io_error(ErrorSubject::Logs, verb, e)
}

fn encode(rec: &LogRecord) -> io::Result<Vec<u8>> {
    let payload = bincode::serialize(rec).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes records until the first torn or corrupt one; returns them and the length
/// of the intact prefix.
fn decode_all(bytes: &[u8]) -> (Vec<LogRecord>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len > RECORD_BYTES_MAX {
            break;
        }
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match bincode::deserialize(payload) {
            Ok(rec) => out.push(rec),
            Err(_) => break,
        }
        pos += 8 + len;
    }
    (out, pos)
}

/// fsyncs a directory so a rename or a new file in it survives a crash.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Inner {
    fn write(&mut self, recs: &[LogRecord], sync: bool) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in recs {
            buf.extend_from_slice(&encode(r)?);
        }
        self.file.write_all(&buf)?;
        self.records += recs.len();
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Rewrites the file with only the live state.
    fn compact(&mut self) -> io::Result<()> {
        let mut recs = Vec::new();
        if let Some(v) = self.state.vote {
            recs.push(LogRecord::Vote(v));
        }
        if let Some(p) = self.state.last_purged {
            recs.push(LogRecord::PurgeUpTo(p));
        }
        recs.extend(self.state.entries.values().cloned().map(LogRecord::Entry));
        recs.push(LogRecord::Committed(self.state.committed));
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let mut f = File::create(&tmp)?;
        for r in &recs {
            f.write_all(&encode(r)?)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(FILE_NAME))?;
        sync_dir(&self.dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(FILE_NAME))?;
        file.seek(SeekFrom::End(0))?;
        self.file = file;
        self.records = recs.len();
        Ok(())
    }
}

/// The log store. Cheap to clone: clones share one file and state.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir` and replays it.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (recs, good) = decode_all(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - good,
                "raft log: truncating a torn or corrupt tail"
            );
            file.set_len(good as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::End(0))?;
        let records = recs.len();
        let mut state = State::default();
        for r in recs {
            state.replay(r);
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                state,
                file,
                dir: dir.to_path_buf(),
                records,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the state as the records say.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies records to memory after they are written (durably when `sync`).
    fn persist(&self, recs: Vec<LogRecord>, sync: bool) -> io::Result<()> {
        let mut inner = self.lock();
        inner.write(&recs, sync)?;
        for r in recs {
            inner.state.replay(r);
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let inner = self.lock();
        Ok(inner
            .state
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last_purged = inner.state.last_purged;
        let last = inner
            .state
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.persist(vec![LogRecord::Vote(*vote)], true)
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.persist(vec![LogRecord::Committed(committed)], false)
            .map_err(|e| storage_err(ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let recs: Vec<LogRecord> = entries.into_iter().map(LogRecord::Entry).collect();
        match self.persist(recs, true) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(storage_err(ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.persist(vec![LogRecord::TruncateFrom(log_id.index)], true)
            .map_err(|e| storage_err(ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.persist(vec![LogRecord::PurgeUpTo(log_id)], true)
            .map_err(|e| storage_err(ErrorVerb::Delete, e))?;
        let mut inner = self.lock();
        if inner.records > inner.state.entries.len() + DEAD_RECORDS_MAX {
            inner
                .compact()
                .map_err(|e| storage_err(ErrorVerb::Write, e))?;
        }
        Ok(())
    }
}

/// Reads the log in `dir` without opening it for writing (a running node may own
/// it): the entries present and the committed id.
pub(super) fn read_committed_entries(
    dir: &Path,
) -> io::Result<(Vec<Entry>, Option<LogId<NodeId>>)> {
    let bytes = match std::fs::read(dir.join(FILE_NAME)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut state = State::default();
    for r in decode_all(&bytes).0 {
        state.replay(r);
    }
    Ok((state.entries.into_values().collect(), state.committed))
}

/// For tests: forces a rewrite of the file.
#[cfg(test)]
pub(super) fn compact_now(store: &LogStore) -> io::Result<()> {
    store.lock().compact()
}
