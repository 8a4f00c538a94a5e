//! A partition's replication state on one replica: its role and epochs as the image
//! gives them, and — on the leader — what each follower has fetched, from which the
//! high watermark and ISR changes follow (Kafka's `Partition` / `Replica`). Pure: the
//! caller passes the clock and the offsets.
//!
//! Owned by the partition, on the partition's shard.
//!
//! Invariants:
//! - a follower's `log_end` is the offset it last fetched from, and counts only once
//!   the fetch showed its log agrees with the leader's (no diverging epoch): the
//!   follower fetches from an offset only after that prefix is written — and, with
//!   durable high watermarks, fdatasync'd — on its side;
//! - the high watermark bound is the minimum over the leader and every ISR member,
//!   and there is none while the ISR is smaller than `min.insync.replicas`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::metadata::PartitionImage;

/// The leader's view of one follower.
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// The offset the follower last fetched from; -1 until it fetches in this epoch.
    log_end: i64,
    /// Last time the follower had fetched up to the leader's log end (Kafka's
    /// `lastCaughtUpTimeMs`).
    last_caught_up: Instant,
    last_fetch: Option<Instant>,
    /// The leader's log end at the follower's previous fetch.
    leader_end_at_last_fetch: i64,
    /// The broker epoch its last fetch carried (-1: none; Kafka's
    /// `ReplicaState.brokerEpoch`).
    broker_epoch: i64,
}

impl Progress {
    fn new(now: Instant) -> Progress {
        Progress {
            log_end: -1,
            last_caught_up: now,
            last_fetch: None,
            leader_end_at_last_fetch: -1,
            broker_epoch: -1,
        }
    }
}

#[derive(Debug)]
pub struct Replication {
    /// This broker.
    pub me: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_insync: usize,
    followers: HashMap<i32, Progress>,
    /// An ISR change proposed by this leader and not yet answered.
    pub alter_in_flight: bool,
}

/// How the role changed when a new image was installed.
#[derive(Debug, PartialEq, Eq)]
pub enum RoleChange {
    None,
    /// This replica leads now, in a new leader epoch.
    BecameLeader,
    /// This replica follows now (a new leader, or a new epoch of another leader).
    BecameFollower,
    /// Same leader and epoch; the ISR or partition epoch moved.
    Updated,
}

impl Replication {
    pub fn new(me: i32, image: &PartitionImage, min_insync: usize, now: Instant) -> Replication {
        let mut r = Replication {
            me,
            leader: image.leader,
            leader_epoch: image.leader_epoch,
            partition_epoch: image.partition_epoch,
            replicas: image.replicas.clone(),
            isr: image.isr.clone(),
            min_insync: min_insync.min(image.replicas.len().max(1)),
            followers: HashMap::new(),
            alter_in_flight: false,
        };
        r.reset_followers(now);
        r
    }

    pub fn is_leader(&self) -> bool {
        self.leader == self.me
    }

    /// More than one replica: the high watermark waits for followers.
    pub fn is_replicated(&self) -> bool {
        self.replicas.len() > 1
    }

    fn reset_followers(&mut self, now: Instant) {
        self.followers = self
            .replicas
            .iter()
            .filter(|&&r| r != self.me)
            .map(|&r| (r, Progress::new(now)))
            .collect();
    }

    /// Installs the partition's state from a newer image.
    pub fn update(&mut self, image: &PartitionImage, now: Instant) -> RoleChange {
        if image.partition_epoch < self.partition_epoch && image.leader_epoch <= self.leader_epoch {
            return RoleChange::None;
        }
        let new_epoch = image.leader_epoch != self.leader_epoch || image.leader != self.leader;
        let moved = new_epoch
            || image.partition_epoch != self.partition_epoch
            || image.isr != self.isr
            || image.replicas != self.replicas;
        self.leader = image.leader;
        self.leader_epoch = image.leader_epoch;
        self.partition_epoch = image.partition_epoch;
        self.replicas = image.replicas.clone();
        let joined: Vec<i32> = image
            .isr
            .iter()
            .copied()
            .filter(|r| !self.isr.contains(r))
            .collect();
        self.isr = image.isr.clone();
        if new_epoch {
            self.alter_in_flight = false;
            self.reset_followers(now);
            return if self.is_leader() {
                RoleChange::BecameLeader
            } else {
                RoleChange::BecameFollower
            };
        }
        for r in joined {
            if let Some(p) = self.followers.get_mut(&r) {
                p.last_caught_up = now;
            }
        }
        // A reassignment adds and removes replicas within a leader epoch.
        let replicas = &self.replicas;
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in &self.replicas {
            if r != self.me {
                self.followers
                    .entry(r)
                    .or_insert_with(|| Progress::new(now));
            }
        }
        if moved {
            RoleChange::Updated
        } else {
            RoleChange::None
        }
    }

    /// On the leader: follower `replica`, in its registration `broker_epoch` (-1:
    /// not sent), fetched from `offset` while the leader's log ended at `leader_end`.
    /// Returns false for a broker that is not a follower.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        broker_epoch: i64,
        offset: i64,
        leader_end: i64,
        now: Instant,
    ) -> bool {
        let Some(p) = self.followers.get_mut(&replica) else {
            return false;
        };
        if offset >= leader_end {
            p.last_caught_up = now;
        } else if let Some(last) = p.last_fetch {
            if offset >= p.leader_end_at_last_fetch {
                p.last_caught_up = p.last_caught_up.max(last);
            }
        }
        p.log_end = offset;
        p.broker_epoch = broker_epoch;
        p.last_fetch = Some(now);
        p.leader_end_at_last_fetch = leader_end;
        true
    }

    /// The offset the high watermark may advance to, given the leader's own durable
    /// end: the minimum over the ISR, or None while the ISR is under
    /// `min.insync.replicas` or this replica does not lead.
    pub fn high_watermark_bound(&self, own_end: i64) -> Option<i64> {
        if !self.is_leader() || self.isr.len() < self.min_insync {
            return None;
        }
        let mut bound = own_end;
        for r in &self.isr {
            if *r == self.me {
                continue;
            }
            let end = self.followers.get(r).map_or(-1, |p| p.log_end);
            bound = bound.min(end);
        }
        (bound >= 0).then_some(bound)
    }

    /// The ISR this leader wants now, if it differs from the current one: followers
    /// that have not caught up for `lag_max` leave; a follower out of the ISR that
    /// `may_join(broker, epoch its fetches carried)` allows (live, in that epoch, as
    /// the image says), still fetching, whose log reaches the high watermark and the
    /// start of the current epoch joins.
    pub fn wanted_isr(
        &self,
        high_watermark: i64,
        epoch_start: i64,
        lag_max: Duration,
        now: Instant,
        may_join: &dyn Fn(i32, i64) -> bool,
    ) -> Option<Vec<i32>> {
        if !self.is_leader() || self.alter_in_flight {
            return None;
        }
        let mut isr: Vec<i32> =
            self.isr
                .iter()
                .copied()
                .filter(|r| {
                    *r == self.me
                        || self.followers.get(r).is_some_and(|p| {
                            now.saturating_duration_since(p.last_caught_up) <= lag_max
                        })
                })
                .collect();
        for (&r, p) in &self.followers {
            // Only a follower outside the ISR joins; one that is in it and lags leaves.
            // It must still be fetching (Kafka expands on a fetch): one that stopped
            // (paused, fenced, cut off) at the high watermark of an idle partition
            // would otherwise be proposed again and again.
            let fetching = p
                .last_fetch
                .is_some_and(|f| now.saturating_duration_since(f) <= lag_max);
            if !self.isr.contains(&r)
                && fetching
                && may_join(r, p.broker_epoch)
                && p.log_end >= high_watermark
                && p.log_end >= epoch_start
            {
                isr.push(r);
            }
        }
        let ordered: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| isr.contains(r))
            .collect();
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut wanted = ordered.clone();
        wanted.sort_unstable();
        (wanted != current).then_some(ordered)
    }

    /// The broker epoch follower `replica`'s last fetch carried (-1: none, or not a
    /// follower): what an ISR change names it with.
    pub fn fetched_broker_epoch(&self, replica: i32) -> i64 {
        self.followers.get(&replica).map_or(-1, |p| p.broker_epoch)
    }

    /// Followers' fetch positions, for DescribeLogDirs-style reporting and tests.
    pub fn follower_ends(&self) -> Vec<(i32, i64)> {
        let mut v: Vec<(i32, i64)> = self
            .followers
            .iter()
            .map(|(r, p)| (*r, p.log_end))
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &dyn Fn(i32, i64) -> bool = &|_, _| true;

    use std::cell::Cell;

    thread_local! {
        static PARTITION_EPOCH: Cell<i32> = const { Cell::new(0) };
    }

    /// Each image is a newer partition epoch than the one before.
    fn image(leader: i32, epoch: i32, isr: &[i32]) -> PartitionImage {
        let pe = PARTITION_EPOCH.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        PartitionImage {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            leader_epoch: epoch,
            partition_epoch: pe,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }
    }

    #[test]
    fn high_watermark_is_the_minimum_over_the_isr_and_waits_for_min_insync() {
        let now = Instant::now();
        let mut r = Replication::new(1, &image(1, 0, &[1, 2, 3]), 2, now);
        assert_eq!(r.high_watermark_bound(10), None, "followers not heard from");
        r.record_fetch(2, -1, 7, 10, now);
        assert_eq!(r.high_watermark_bound(10), None);
        r.record_fetch(3, -1, 9, 10, now);
        assert_eq!(r.high_watermark_bound(10), Some(7));
        assert_eq!(r.high_watermark_bound(5), Some(5));
        // Broker 3 leaves the ISR: 2 members still meet min.insync.replicas = 2.
        assert_eq!(r.update(&image(1, 0, &[1, 2]), now), RoleChange::Updated);
        assert_eq!(r.high_watermark_bound(10), Some(7));
        r.update(&image(1, 0, &[1]), now);
        assert_eq!(
            r.high_watermark_bound(10),
            None,
            "under min.insync.replicas"
        );
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_join() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(10);
        let mut r = Replication::new(1, &image(1, 0, &[1, 2, 3]), 1, t0);
        r.record_fetch(2, -1, 100, 100, t0);
        r.record_fetch(3, -1, 50, 100, t0);
        let t1 = t0 + Duration::from_secs(11);
        r.record_fetch(2, -1, 120, 120, t1);
        assert_eq!(r.wanted_isr(100, 0, lag, t1, ALL), Some(vec![1, 2]));
        r.update(&image(1, 0, &[1, 2]), t1);
        // 3 fetches up to the high watermark: it may join again.
        r.record_fetch(3, -1, 120, 130, t1);
        assert_eq!(r.wanted_isr(120, 0, lag, t1, ALL), Some(vec![1, 2, 3]));
        // ...unless it is not live (fenced or unregistered) as the image says.
        assert_eq!(r.wanted_isr(120, 0, lag, t1, &|b, _| b != 3), None);
        // ...or its fetches carried the epoch of an earlier registration (KIP-903).
        r.record_fetch(3, 6, 120, 130, t1);
        let registered = |b: i32, e: i64| b != 3 || e == 7;
        assert_eq!(r.wanted_isr(120, 0, lag, t1, &registered), None);
        r.record_fetch(3, 7, 120, 130, t1);
        assert_eq!(r.fetched_broker_epoch(3), 7);
        assert_eq!(
            r.wanted_isr(120, 0, lag, t1, &registered),
            Some(vec![1, 2, 3])
        );
        // ...but not before the start of the leader's epoch.
        assert_eq!(r.wanted_isr(120, 125, lag, t1, ALL), None);
        // ...and not once it stopped fetching, however far it had got.
        let t2 = t1 + Duration::from_secs(11);
        r.record_fetch(2, -1, 120, 120, t2);
        assert_eq!(r.wanted_isr(120, 0, lag, t2, ALL), None);
    }

    #[test]
    fn a_follower_that_kept_up_with_the_previous_end_counts_as_caught_up_then() {
        let t0 = Instant::now();
        let mut r = Replication::new(1, &image(1, 0, &[1, 2]), 1, t0);
        r.record_fetch(2, -1, 10, 20, t0);
        let t1 = t0 + Duration::from_secs(5);
        r.record_fetch(2, -1, 20, 30, t1);
        // By t1 it had what the leader had at t0: caught up as of t0 (Kafka's rule).
        let t2 = t0 + Duration::from_secs(9);
        assert_eq!(r.wanted_isr(0, 0, Duration::from_secs(10), t2, ALL), None);
        let t3 = t0 + Duration::from_secs(11);
        assert_eq!(
            r.wanted_isr(0, 0, Duration::from_secs(10), t3, ALL),
            Some(vec![1])
        );
    }

    #[test]
    fn role_changes_follow_the_image() {
        let now = Instant::now();
        let mut r = Replication::new(2, &image(1, 0, &[1, 2, 3]), 1, now);
        assert!(!r.is_leader());
        assert_eq!(
            r.update(&image(2, 1, &[2, 3]), now),
            RoleChange::BecameLeader
        );
        assert_eq!(
            r.high_watermark_bound(5),
            None,
            "new epoch: followers unknown"
        );
        let same = image(3, 2, &[3]);
        assert_eq!(r.update(&same, now), RoleChange::BecameFollower);
        assert_eq!(r.update(&same, now), RoleChange::None);
        let older = PartitionImage {
            partition_epoch: 0,
            ..image(1, 1, &[1])
        };
        assert_eq!(r.update(&older, now), RoleChange::None, "older image");
    }
}
