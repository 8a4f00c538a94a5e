//! Idempotent-producer state of one partition: for each producer id, its epoch and
//! the last five batches' sequence ranges with the offsets they were written at.
//! Pure; owned by the partition's shard.
//!
//! The rules are Kafka's (ProducerStateManager / ProducerAppendInfo):
//! - a batch whose epoch is older than the producer's current epoch is fenced
//!   (INVALID_PRODUCER_EPOCH);
//! - a batch equal to one of the last five (same epoch, same first and last sequence)
//!   is a duplicate: it is acknowledged with its original offsets, not written again;
//! - a new epoch must start at sequence 0, unless the producer is unknown here;
//! - otherwise the first sequence must follow the last one (wrapping at i32::MAX),
//!   else OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - an unknown producer may start at any sequence (its earlier batches may have been
//!   removed by retention).

use std::collections::{HashMap, VecDeque};

/// Kafka keeps the metadata of this many recent batches per producer.
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;

/// One appended batch of an idempotent producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    /// The batch's max timestamp (its append time under LogAppendTime).
    pub max_timestamp: i64,
}

/// One producer as DescribeProducers reports it: its epoch and its last batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// The verdict on a batch before it is appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Append,
    Duplicate(BatchMeta),
    InvalidEpoch,
    OutOfOrder,
}

/// Producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn in_sequence(last_seq: i32, next_first: i32) -> bool {
    next_first == last_seq.wrapping_add(1) || (last_seq == i32::MAX && next_first == 0)
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Judges a batch of producer `pid` at `epoch` covering `[first_seq, last_seq]`.
    pub fn check(&self, pid: i64, epoch: i16, first_seq: i32, last_seq: i32) -> Verdict {
        let Some(entry) = self.producers.get(&pid) else {
            return Verdict::Append;
        };
        if epoch < entry.epoch {
            return Verdict::InvalidEpoch;
        }
        if epoch != entry.epoch {
            return if first_seq == 0 {
                Verdict::Append
            } else {
                Verdict::OutOfOrder
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Verdict::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, first_seq) => Verdict::OutOfOrder,
            _ => Verdict::Append,
        }
    }

    /// Every known producer with its last batch, ordered by producer id.
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .filter_map(|(pid, e)| {
                let last = e.batches.back()?;
                Some(ProducerSummary {
                    producer_id: *pid,
                    epoch: e.epoch,
                    last_sequence: last.last_seq,
                    last_timestamp: last.max_timestamp,
                })
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Forgets every batch at or after `offset` (the log was truncated there); a
    /// producer with no batch left is forgotten. A producer's batches all share its
    /// current epoch (a new epoch clears them), so what is left keeps its epoch.
    pub fn truncate(&mut self, offset: i64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset < offset);
            !e.batches.is_empty()
        });
    }

    /// Records an appended batch (also used when replaying the log on start-up).
    /// Batches come in log order, from appends that [`ProducerStateTable::check`]
    /// let through (or their replay), so a producer's epoch never goes back.
    pub fn record(&mut self, pid: i64, epoch: i16, meta: BatchMeta) {
        debug_assert!(
            meta.base_offset <= meta.last_offset,
            "batch offsets: {meta:?}"
        );
        let entry = self.producers.entry(pid).or_default();
        debug_assert!(
            entry.batches.is_empty() || epoch >= entry.epoch,
            "producer {pid}: epoch {epoch} after {}",
            entry.epoch
        );
        debug_assert!(
            entry
                .batches
                .back()
                .is_none_or(|b| b.last_offset < meta.base_offset),
            "producer {pid}: batches recorded in offset order"
        );
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
        debug_assert!(entry.batches.len() <= BATCHES_PER_PRODUCER_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first: i32, last: i32, off: i64) -> BatchMeta {
        BatchMeta {
            first_seq: first,
            last_seq: last,
            base_offset: off,
            last_offset: off + (last - first) as i64,
            log_append_time_ms: -1,
            max_timestamp: 1000 + off,
        }
    }

    #[test]
    fn sequences_duplicates_and_fencing() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(7, 0, 0, 4), Verdict::Append);
        t.record(7, 0, meta(0, 4, 0));
        assert_eq!(t.check(7, 0, 0, 4), Verdict::Duplicate(meta(0, 4, 0)));
        assert_eq!(t.check(7, 0, 6, 9), Verdict::OutOfOrder);
        assert_eq!(t.check(7, 0, 5, 9), Verdict::Append);
        t.record(7, 0, meta(5, 9, 5));
        // A new epoch restarts at 0; older epochs are fenced afterwards.
        assert_eq!(t.check(7, 1, 3, 3), Verdict::OutOfOrder);
        assert_eq!(t.check(7, 1, 0, 0), Verdict::Append);
        t.record(7, 1, meta(0, 0, 10));
        assert_eq!(t.check(7, 0, 10, 10), Verdict::InvalidEpoch);
        // Unknown producers may start anywhere.
        assert_eq!(t.check(8, 0, 42, 43), Verdict::Append);
    }

    #[test]
    fn only_last_five_batches_are_remembered_and_sequence_wraps() {
        let mut t = ProducerStateTable::default();
        for i in 0..6 {
            t.record(1, 0, meta(i, i, i as i64));
        }
        assert_eq!(t.check(1, 0, 0, 0), Verdict::OutOfOrder);
        assert_eq!(t.check(1, 0, 1, 1), Verdict::Duplicate(meta(1, 1, 1)));
        let mut t = ProducerStateTable::default();
        t.record(2, 0, meta(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(t.check(2, 0, 0, 3), Verdict::Append);
    }

    #[test]
    fn a_new_epoch_forgets_the_old_epochs_batches() {
        let mut t = ProducerStateTable::default();
        for i in 0..5 {
            t.record(4, 0, meta(i, i, i as i64));
        }
        t.record(4, 1, meta(0, 2, 5));
        // Sequence 0..=2 at epoch 1 is a duplicate; 3..=3 from epoch 0 is not.
        assert_eq!(t.check(4, 1, 0, 2), Verdict::Duplicate(meta(0, 2, 5)));
        assert_eq!(t.check(4, 1, 3, 3), Verdict::Append);
        assert_eq!(t.check(4, 1, 1, 1), Verdict::OutOfOrder);
        assert_eq!(t.summaries()[0].epoch, 1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "epoch")]
    fn recording_an_older_epoch_is_a_bug() {
        let mut t = ProducerStateTable::default();
        t.record(4, 2, meta(0, 0, 0));
        t.record(4, 1, meta(0, 0, 1));
    }

    #[test]
    fn summaries_report_the_last_batch() {
        let mut t = ProducerStateTable::default();
        t.record(9, 2, meta(0, 4, 0));
        t.record(9, 2, meta(5, 7, 5));
        t.record(3, 0, meta(0, 0, 8));
        let s = t.summaries();
        assert_eq!(
            s,
            vec![
                ProducerSummary {
                    producer_id: 3,
                    epoch: 0,
                    last_sequence: 0,
                    last_timestamp: 1008
                },
                ProducerSummary {
                    producer_id: 9,
                    epoch: 2,
                    last_sequence: 7,
                    last_timestamp: 1005
                },
            ]
        );
    }
}
