//! The Raft state machine: the [`ClusterImage`] applied entry by entry with the pure
//! `ClusterImage::apply`, published to the shards after every batch, and snapshotted
//! to `<dir>/snapshot` as a serialized image.
//!
//! Snapshot file: `[crc32c(payload): u32 BE][payload: bincode (SnapshotMeta, image)]`
//! (the image in `image_format`'s versioned layout),
//! written to a temporary file, fsync'd and renamed, so a crash leaves the old or the
//! new snapshot. The image itself is not persisted between snapshots: on restart
//! openraft re-applies the committed entries after the snapshot from the log store.
//!
//! Invariant: `image.applied_index` is the index of the last applied entry (blank and
//! membership entries included), so shards can order images by it.
//!
//! Threads: owned by openraft's state-machine task on the control-plane thread.

use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StoredMembership,
};
use tokio::sync::watch;

use super::log_store::sync_dir;
use super::{Entry, Node, NodeId, Response, TypeConfig};
use crate::metadata::{image_format, Applied, ClusterImage};

const FILE_NAME: &str = "snapshot";

type Meta = SnapshotMeta<NodeId, Node>;

/// The last snapshot, as stored.
#[derive(Clone)]
struct Stored {
    meta: Meta,
    data: Vec<u8>,
}

/// The state machine. Cloning shares the snapshot slot (for the builder).
pub struct StateMachine {
    image: Arc<ClusterImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshot: Arc<Mutex<Option<Stored>>>,
    dir: PathBuf,
    publish: watch::Sender<Arc<ClusterImage>>,
}

fn snap_err(e: impl std::error::Error + 'static, verb: ErrorVerb) -> StorageError<NodeId> {
    StorageError::from_io_error(
        ErrorSubject::Snapshot(None),
        verb,
        io::Error::other(e.to_string()),
    )
}

fn read_snapshot(dir: &Path) -> io::Result<Option<Stored>> {
    let bytes = match std::fs::read(dir.join(FILE_NAME)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {why}"));
    let (crc, payload) = bytes.split_at_checked(4).ok_or_else(|| bad("too short"))?;
    if crc32c::crc32c(payload).to_be_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    let (meta, data): (Meta, Vec<u8>) =
        bincode::deserialize(payload).map_err(|e| bad(&e.to_string()))?;
    Ok(Some(Stored { meta, data }))
}

fn write_snapshot(dir: &Path, s: &Stored) -> io::Result<()> {
    let payload = bincode::serialize(&(&s.meta, &s.data)).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&crc32c::crc32c(&payload).to_be_bytes())?;
    f.write_all(&payload)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE_NAME))?;
    sync_dir(dir)
}

/// The image of the last snapshot in `dir` and the log id it includes (an empty
/// image if there is no snapshot).
pub(super) fn snapshot_image(dir: &Path) -> io::Result<(ClusterImage, Option<LogId<NodeId>>)> {
    match read_snapshot(dir)? {
        Some(s) => {
            let image = image_format::decode(&s.data)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Ok((image, s.meta.last_log_id))
        }
        None => Ok((ClusterImage::default(), None)),
    }
}

impl StateMachine {
    /// Loads the last snapshot in `dir` (if any); publishes every applied image to
    /// `publish`.
    pub fn open(dir: &Path, publish: watch::Sender<Arc<ClusterImage>>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut sm = StateMachine {
            image: Arc::new(ClusterImage::default()),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: Arc::new(Mutex::new(None)),
            dir: dir.to_path_buf(),
            publish,
        };
        if let Some(stored) = read_snapshot(dir)? {
            let image = image_format::decode(&stored.data)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            sm.image = Arc::new(image);
            sm.last_applied = stored.meta.last_log_id;
            sm.membership = stored.meta.last_membership.clone();
            *sm.slot() = Some(stored);
            sm.publish.send_replace(sm.image.clone());
        }
        Ok(sm)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Stored>> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds a snapshot of the image as of one applied index.
pub struct Builder {
    image: Arc<ClusterImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshot: Arc<Mutex<Option<Stored>>>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let data = image_format::encode(&self.image)
            .map_err(|e| snap_err(io::Error::other(e), ErrorVerb::Write))?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.image.applied_index),
            None => "empty".to_string(),
        };
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = Stored { meta, data };
        write_snapshot(&self.dir, &stored).map_err(|e| snap_err(e, ErrorVerb::Write))?;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let image = Arc::make_mut(&mut self.image);
        for e in entries {
            let index = e.log_id.index;
            let r = match e.payload {
                EntryPayload::Blank => Ok(Applied::Done),
                EntryPayload::Normal(cmd) => image.apply(index, &cmd),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    Ok(Applied::Done)
                }
            };
            image.applied_index = index;
            self.last_applied = Some(e.log_id);
            out.push(r);
        }
        self.publish.send_replace(self.image.clone());
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshot: self.snapshot.clone(),
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let image = image_format::decode(&data)
            .map_err(|e| snap_err(io::Error::other(e), ErrorVerb::Read))?;
        let stored = Stored {
            meta: meta.clone(),
            data,
        };
        write_snapshot(&self.dir, &stored).map_err(|e| snap_err(e, ErrorVerb::Write))?;
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *self.slot() = Some(stored);
        self.publish.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.slot().clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
