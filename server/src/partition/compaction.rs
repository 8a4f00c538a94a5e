//! Log compaction glue: a cleaning round for one partition, with the record codec the
//! storage cleaner needs (keys out of a batch, batches rewritten with some records
//! removed). The round's heavy part runs on the runtime's blocking pool; planning
//! and installing run on the partition's owning shard, so appends and fetches are
//! never blocked by a rewrite.

use std::rc::Rc;
use std::sync::Arc;

use fjord_storage::{CompactionConfig, RecordCodec};

use super::{now_ms, Partition};

/// The compaction settings of a topic, from its effective configs.
pub fn compaction_config(s: &crate::configs::settings::TopicSettings) -> CompactionConfig {
    CompactionConfig {
        delete_retention_ms: s.delete_retention_ms,
        min_compaction_lag_ms: s.min_compaction_lag_ms,
        max_compaction_lag_ms: s.max_compaction_lag_ms,
        min_cleanable_dirty_ratio: s.min_cleanable_dirty_ratio,
        ..CompactionConfig::default()
    }
}

impl Partition {
    /// Runs one cleaning round if one is due. Returns records removed.
    pub async fn clean(
        self: &Rc<Self>,
        config: &CompactionConfig,
        codec: Arc<dyn RecordCodec>,
    ) -> Result<u64, String> {
        let Some(plan) = self.log.borrow().plan_cleaning(config, now_ms()) else {
            return Ok(0);
        };
        let outcome = tokio::task::spawn_blocking(move || plan.run(codec.as_ref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let (before, after, removed) = (
            outcome.bytes_before,
            outcome.bytes_after,
            outcome.records_removed,
        );
        let installed = self
            .log
            .borrow_mut()
            .install_cleaned(outcome)
            .map_err(|e| e.to_string())?;
        if installed > 0 {
            tracing::info!(
                topic = %self.topic, partition = self.index, segments = installed,
                bytes_before = before, bytes_after = after, records_removed = removed,
                "compacted"
            );
        }
        Ok(removed)
    }
}
