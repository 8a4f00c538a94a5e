//! Offsets retention (`offsets.retention.minutes`): committed offsets that nobody uses
//! any more are tombstoned, and an empty group left without offsets is deleted.
//!
//! Kafka's rules (its group coordinator's `OffsetExpirationCondition`), per group:
//! - an offset committed with an explicit retention (OffsetCommit v2–v4
//!   `retention_time_ms`) expires at its `expire_timestamp_ms`;
//! - otherwise it expires `retention` after a base time:
//!   - classic group with a protocol type, Empty: when the group became Empty (its
//!     state timestamp; the commit time if the group record has none);
//!   - classic group of the `consumer` protocol, Stable, subscriptions known: the
//!     commit time, for topics no member subscribes to;
//!   - group without a protocol type (offsets committed by standalone consumers):
//!     the commit time;
//!   - KIP-848 consumer group: the commit time, for topics no member subscribes to;
//!   - any other classic state (a rebalance in flight, unknown subscriptions): never.
//! - When every offset of the group expired (or it has none) and the group is empty,
//!   the group is deleted too.
//!
//! Runs on each shard every `offsets.retention.check.interval.ms`, over the groups of
//! the offsets partitions this shard owns (loading them first, as Kafka loads every
//! offsets partition it leads).

use std::rc::Rc;

use super::{Coordinator, GroupEntry, Loc};
use crate::group::classic::GroupState;
use crate::group::records::{OffsetCommitValue, RecordKey};
use crate::group::{store, OFFSETS_TOPIC};
use crate::partition::now_ms;

/// What expiry does to one group: the partitions whose offsets expire, and whether
/// the group itself goes.
#[derive(Debug, PartialEq, Eq)]
pub struct ExpiryPlan {
    pub offsets: Vec<(String, i32)>,
    pub delete_group: bool,
}

/// How an entry's offsets age: the base time of an offset, or None when the group's
/// state keeps every offset.
enum Condition {
    /// Since the commit.
    CommitTime,
    /// Since this time (the group became Empty); the commit time when unknown (-1).
    Since(i64),
}

fn is_expired(c: &Condition, v: &OffsetCommitValue, now_ms: i64, retention_ms: i64) -> bool {
    if v.expire_timestamp_ms >= 0 {
        return now_ms >= v.expire_timestamp_ms;
    }
    let base = match c {
        Condition::Since(t) if *t >= 0 => *t,
        _ => v.commit_timestamp_ms,
    };
    now_ms.saturating_sub(base) >= retention_ms
}

/// The expiry of one group at `now_ms`; pure.
pub fn plan(entry: &GroupEntry, now_ms: i64, retention_ms: i64) -> ExpiryPlan {
    let consumer = entry.consumer.as_ref();
    let group = &entry.group;
    let (condition, subscribed, empty) = match consumer {
        Some(g) => (
            Some(Condition::CommitTime),
            g.subscribed_topics(),
            g.is_empty() && group.is_empty(),
        ),
        None => {
            let empty = group.state() == GroupState::Empty && group.is_empty();
            let condition = match (group.protocol_type(), group.state()) {
                (None, _) => Some(Condition::CommitTime),
                (Some(_), GroupState::Empty) => Some(Condition::Since(group.state_timestamp_ms())),
                (Some("consumer"), GroupState::Stable) if group.subscribed_topics().is_some() => {
                    Some(Condition::CommitTime)
                }
                _ => None,
            };
            let subscribed = if empty {
                Default::default()
            } else {
                group.subscribed_topics().unwrap_or_default()
            };
            (condition, subscribed, empty)
        }
    };
    let Some(condition) = condition else {
        return ExpiryPlan {
            offsets: Vec::new(),
            delete_group: false,
        };
    };
    let mut offsets = Vec::new();
    let mut all_expired = true;
    for ((topic, partition), committed) in &entry.offsets {
        if !subscribed.contains(topic)
            && is_expired(&condition, &committed.value, now_ms, retention_ms)
        {
            offsets.push((topic.clone(), *partition));
        } else {
            all_expired = false;
        }
    }
    ExpiryPlan {
        offsets,
        delete_group: all_expired && empty && group.state() != GroupState::Dead,
    }
}

impl Coordinator {
    /// Starts the shard's offsets-retention loop: a round every `period_ms`.
    pub fn spawn_expiry(self: &Rc<Self>, period_ms: i64, retention_ms: i64) {
        let c = self.clone();
        tokio::task::spawn_local(async move {
            let period = std::time::Duration::from_millis(period_ms.max(1) as u64);
            loop {
                tokio::time::sleep(period).await;
                c.expire_offsets(retention_ms).await;
            }
        });
    }

    /// One expiry round on this shard; returns how many offsets expired.
    pub async fn expire_offsets(self: &Rc<Self>, retention_ms: i64) -> usize {
        let image = self.partitions.view().image();
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            return 0;
        };
        let c = self;
        for p in 0..topic.partitions.len() as i32 {
            let loc = Loc {
                topic_id: topic.id,
                partition: p,
            };
            if c.serves(loc) && c.ensure_loaded(loc).await.is_err() {
                return 0;
            }
        }
        let now = now_ms();
        let plans: Vec<(String, Loc, ExpiryPlan)> = c
            .groups
            .borrow()
            .iter()
            .map(|(id, e)| (id.clone(), e.loc, plan(e, now, retention_ms)))
            .filter(|(_, _, p)| !p.offsets.is_empty() || p.delete_group)
            .collect();
        let mut expired = 0;
        for (group_id, loc, plan) in plans {
            expired += plan.offsets.len();
            c.apply_expiry(loc, &group_id, plan).await;
        }
        expired
    }

    /// Writes the plan's tombstones, then forgets what they delete unless it changed
    /// meanwhile (a newer commit, a member joining).
    async fn apply_expiry(self: &Rc<Self>, loc: Loc, group_id: &str, plan: ExpiryPlan) {
        let mut records: Vec<store::KeyValue> = plan
            .offsets
            .iter()
            .map(|(topic, partition)| {
                let key = RecordKey::OffsetCommit {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (key.encode(), None)
            })
            .collect();
        if plan.delete_group {
            let key = RecordKey::GroupMetadata {
                group: group_id.to_string(),
            };
            records.push((key.encode(), None));
        }
        let base =
            match store::append(&self.partitions, &loc.topic_id, loc.partition, records).await {
                Ok(base) => base,
                Err(e) => {
                    tracing::error!(group = group_id, error = %e, "cannot write expired offsets");
                    return;
                }
            };
        tracing::info!(
            group = group_id,
            offsets = plan.offsets.len(),
            group_deleted = plan.delete_group,
            "expired committed offsets"
        );
        let remove = self.with_group(group_id, |e| {
            for key in plan.offsets {
                if e.offsets.get(&key).is_some_and(|o| o.log_offset < base) {
                    e.offsets.remove(&key);
                }
            }
            let still_empty = e.group.state() == GroupState::Empty
                && e.group.is_empty()
                && e.consumer.as_ref().is_none_or(|g| g.is_empty());
            plan.delete_group && still_empty && e.offsets.is_empty()
        });
        if remove == Some(true) {
            self.remove_group(group_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::group::classic::{ClassicGroup, Limits};
    use crate::group::coordinator::Committed;
    use crate::group::records::GroupMetadataValue;

    const MIN: i64 = 60_000;

    fn committed(at: i64, expire: i64) -> Committed {
        Committed {
            value: OffsetCommitValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: at,
                expire_timestamp_ms: expire,
            },
            log_offset: 0,
        }
    }

    fn entry(group: ClassicGroup, offsets: &[(&str, i64, i64)]) -> GroupEntry {
        GroupEntry {
            group,
            consumer: None,
            offsets: offsets
                .iter()
                .enumerate()
                .map(|(i, (t, at, exp))| ((t.to_string(), i as i32), committed(*at, *exp)))
                .collect::<BTreeMap<_, _>>(),
            loc: Loc {
                topic_id: Uuid::nil(),
                partition: 0,
            },
        }
    }

    fn empty_consumer_group(became_empty_at: i64) -> ClassicGroup {
        let v = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: None,
            current_state_timestamp_ms: became_empty_at,
            members: vec![],
        };
        ClassicGroup::from_record("g", &v, Limits::default(), 0)
    }

    #[test]
    fn standalone_offsets_expire_after_their_commit() {
        // No protocol type: offsets committed outside any group membership.
        let e = entry(
            ClassicGroup::new("g", Limits::default()),
            &[("a", 0, -1), ("b", 5 * MIN, -1)],
        );
        let p = plan(&e, 6 * MIN, 6 * MIN);
        assert_eq!(p.offsets, vec![("a".to_string(), 0)]);
        assert!(!p.delete_group);
        let p = plan(&e, 11 * MIN, 6 * MIN);
        assert_eq!(p.offsets.len(), 2);
        assert!(
            p.delete_group,
            "empty and without offsets: the group goes too"
        );
    }

    #[test]
    fn empty_group_counts_from_when_it_became_empty() {
        // Committed at 0 and at 9 min; empty since 10 min; retention 5 min.
        let e = entry(
            empty_consumer_group(10 * MIN),
            &[("a", 0, -1), ("b", 9 * MIN, -1)],
        );
        assert!(plan(&e, 14 * MIN, 5 * MIN).offsets.is_empty());
        let p = plan(&e, 15 * MIN, 5 * MIN);
        assert_eq!(p.offsets.len(), 2);
        assert!(p.delete_group);
        // Without a state timestamp (an old record) the commit time counts.
        let e = entry(
            empty_consumer_group(-1),
            &[("a", 0, -1), ("b", 9 * MIN, -1)],
        );
        let p = plan(&e, 6 * MIN, 5 * MIN);
        assert_eq!(p.offsets, vec![("a".to_string(), 0)]);
        assert!(!p.delete_group);
    }

    #[test]
    fn explicit_expire_timestamp_wins() {
        let e = entry(empty_consumer_group(0), &[("a", 0, 2 * MIN)]);
        assert!(plan(&e, 2 * MIN - 1, 1000 * MIN).offsets.is_empty());
        assert_eq!(plan(&e, 2 * MIN, 1000 * MIN).offsets.len(), 1);
    }

    #[test]
    fn an_empty_group_without_offsets_is_deleted_and_a_dead_one_left_alone() {
        let e = entry(empty_consumer_group(0), &[]);
        assert!(plan(&e, 0, MIN).delete_group);
        let mut e = entry(empty_consumer_group(0), &[]);
        e.group.mark_dead();
        assert!(!plan(&e, 10 * MIN, MIN).delete_group);
    }
}
