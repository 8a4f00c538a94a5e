//! `ProducerIds`: the producer-id allocator of one shard. Ids come from the metadata
//! log in blocks of [`PRODUCER_ID_BLOCK`], so every id is handed out once cluster-wide
//! and a restart never reuses one.
//!
//! Exists once per shard and lives on that shard's thread only.
//!
//! Invariant: `[next, end)` is the unused rest of a block this shard was granted by a
//! committed `AllocateProducerIds` command; `next <= end`.

use std::cell::Cell;
use std::rc::Rc;

use super::view::ClusterView;
use super::{Applied, Command};

/// Producer ids are taken from the metadata log in blocks of this size.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct ProducerIds {
    view: Rc<ClusterView>,
    /// Producer ids `[next, end)` still free in this shard's block.
    free: Cell<(i64, i64)>,
}

impl ProducerIds {
    pub fn new(view: Rc<ClusterView>) -> ProducerIds {
        ProducerIds {
            view,
            free: Cell::new((0, 0)),
        }
    }

    /// Takes one producer id, fetching a new block from the metadata log when needed.
    pub async fn next(&self) -> Result<i64, String> {
        let (next, end) = self.free.get();
        debug_assert!(next <= end);
        if next < end {
            self.free.set((next + 1, end));
            return Ok(next);
        }
        let (applied, image) = self
            .view
            .metadata()
            .propose(Command::AllocateProducerIds {
                count: PRODUCER_ID_BLOCK,
            })
            .await
            .map_err(|e| e.to_string())?;
        self.view.update_image(image);
        match applied {
            Applied::ProducerIds { start, count } => {
                // A block fetched concurrently by another caller is replaced: its
                // rest is wasted, never handed out twice.
                self.free.set((start + 1, start + count));
                Ok(start)
            }
            other => Err(format!("unexpected reply {other:?}")),
        }
    }
}
