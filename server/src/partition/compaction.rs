//! Log compaction glue: the record codec the storage cleaner needs (keys out of a
//! batch, batches rewritten with some records removed) and a cleaning round for one
//! partition. The round's heavy part runs on the runtime's blocking pool; planning
//! and installing run on the partition's owning shard, so appends and fetches are
//! never blocked by a rewrite.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use fjord_storage::{CompactionConfig, RecordCodec, RecordInfo};
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

use super::{now_ms, Partition};

/// Reads v2 batches with kafka-protocol: every codec, Kafka's record layout.
pub struct KafkaRecordCodec;

impl RecordCodec for KafkaRecordCodec {
    fn records(&self, batch: &[u8]) -> Result<Vec<RecordInfo>, String> {
        let mut buf = Bytes::copy_from_slice(batch);
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| e.to_string())?;
        Ok(set
            .records
            .into_iter()
            .map(|r| RecordInfo {
                offset: r.offset,
                tombstone: r.value.is_none(),
                key: r.key,
            })
            .collect())
    }

    fn retain(&self, batch: &[u8], keep: &dyn Fn(i64) -> bool) -> Result<Option<Vec<u8>>, String> {
        let mut buf = Bytes::copy_from_slice(batch);
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| e.to_string())?;
        let kept: Vec<_> = set.records.into_iter().filter(|r| keep(r.offset)).collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let options = RecordEncodeOptions {
            version: 2,
            compression: set.compression,
        };
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(&mut out, &kept, &options).map_err(|e| e.to_string())?;
        Ok(Some(out.to_vec()))
    }
}

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

/// Whether every record of a batch has a key (compacted topics refuse keyless ones).
pub fn all_records_keyed(batch: &Bytes) -> Result<bool, String> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| e.to_string())?;
    Ok(set.records.iter().all(|r| r.key.is_some()))
}

impl Partition {
    /// Runs one cleaning round if one is due. Returns records removed.
    pub async fn clean(self: &Rc<Self>, config: &CompactionConfig) -> Result<u64, String> {
        let Some(plan) = self.log.borrow().plan_cleaning(config, now_ms()) else {
            return Ok(0);
        };
        let outcome = tokio::task::spawn_blocking(move || plan.run(&KafkaRecordCodec))
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
