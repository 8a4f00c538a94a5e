//! How a partition's leadership and ISR change: Kafka's rules for elections and ISR
//! updates, as pure functions of one partition's image. `ClusterImage::apply` runs
//! them for fencing, registration and AlterPartition, so every node computes the same
//! changes from the same log.
//!
//! Invariants kept by every function here:
//! - the ISR is a non-empty subset of the replicas (a partition whose last in-sync
//!   replica is fenced keeps that replica as its ISR, leaderless, so it can lead again
//!   when it returns: no unclean election);
//! - a leader is always a member of the ISR, or -1;
//! - any change bumps the partition epoch; a leader change bumps the leader epoch.

/// Why an ISR change is refused (mapped to the command's error by the image).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsrChangeError {
    NotLeader,
    FencedLeaderEpoch,
    InvalidUpdateVersion,
    IneligibleReplica(i32),
    InvalidRequest(String),
}

/// One partition's replica set and leadership.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by every change of this partition's replicas, ISR or leader (Kafka's
    /// partition epoch): AlterPartition compares it.
    pub partition_epoch: i32,
    /// During a reassignment: the target replicas that are not original replicas
    /// (they catch up, then join the ISR). Empty otherwise.
    pub adding: Vec<i32>,
    /// During a reassignment: the original replicas that are not targets (they leave
    /// once every target is in sync). Empty otherwise.
    pub removing: Vec<i32>,
}

/// No leader (Kafka's `NO_LEADER`).
pub const NO_LEADER: i32 = -1;

impl PartitionImage {
    /// A new partition: every replica in sync, the first one leading.
    pub fn new(replicas: Vec<i32>) -> PartitionImage {
        PartitionImage {
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }
}

/// `next` with the epochs bumped as a change from `prev` requires.
pub(super) fn bumped(prev: &PartitionImage, mut next: PartitionImage) -> PartitionImage {
    if next.leader != prev.leader {
        next.leader_epoch = prev.leader_epoch + 1;
    }
    next.partition_epoch = prev.partition_epoch + 1;
    next
}

/// The first replica (in replica order: the preferred leader first) that is in the
/// ISR and live.
pub(super) fn elect(p: &PartitionImage, live: &dyn Fn(i32) -> bool) -> i32 {
    p.replicas
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && live(*r))
        .unwrap_or(NO_LEADER)
}

/// Broker `broker` was fenced (its session expired, or it is restarting or shutting
/// down): it leaves the ISR, and a partition it led gets a new leader from the rest
/// of the ISR. `live` says which other brokers may lead. None: nothing changes.
pub fn on_fenced(
    p: &PartitionImage,
    broker: i32,
    live: &dyn Fn(i32) -> bool,
) -> Option<PartitionImage> {
    if !p.isr.contains(&broker) && p.leader != broker {
        return None;
    }
    let mut next = p.clone();
    if next.isr.len() > 1 {
        next.isr.retain(|&r| r != broker);
    }
    let alive = |r: i32| r != broker && live(r);
    if next.leader == broker || (next.leader != NO_LEADER && !next.isr.contains(&next.leader)) {
        next.leader = elect(&next, &alive);
    }
    (next != *p).then(|| bumped(p, next))
}

/// Broker `broker` registered (is live again): a leaderless partition whose ISR holds
/// it gets it as leader.
pub fn on_unfenced(p: &PartitionImage, broker: i32) -> Option<PartitionImage> {
    if p.leader != NO_LEADER || !p.isr.contains(&broker) {
        return None;
    }
    let mut next = p.clone();
    next.leader = broker;
    Some(bumped(p, next))
}

/// Why an election changed nothing (ElectLeaders).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionOutcome {
    Elected,
    /// The preferred replica leads already (preferred), or a live leader exists
    /// (unclean).
    NotNeeded,
    /// The preferred replica is not live or not in sync (preferred), or no replica is
    /// live (unclean).
    NotAvailable,
    UnknownPartition,
}

/// Kafka's preferred-leader election: the first replica leads if it is live and in
/// sync and does not lead already.
pub fn elect_preferred(
    p: &PartitionImage,
    live: &dyn Fn(i32) -> bool,
) -> Result<PartitionImage, ElectionOutcome> {
    let Some(&preferred) = p.replicas.first() else {
        return Err(ElectionOutcome::NotAvailable);
    };
    if p.leader == preferred {
        return Err(ElectionOutcome::NotNeeded);
    }
    if !p.isr.contains(&preferred) || !live(preferred) {
        return Err(ElectionOutcome::NotAvailable);
    }
    let mut next = p.clone();
    next.leader = preferred;
    Ok(bumped(p, next))
}

/// Kafka's unclean election, for a partition without a live leader: the ISR's first
/// live member if there is one, else the first live replica, which becomes the whole
/// ISR — records only the lost in-sync replicas had are gone.
pub fn elect_unclean(
    p: &PartitionImage,
    live: &dyn Fn(i32) -> bool,
) -> Result<PartitionImage, ElectionOutcome> {
    if p.leader != NO_LEADER && live(p.leader) {
        return Err(ElectionOutcome::NotNeeded);
    }
    let mut next = p.clone();
    match elect(p, live) {
        NO_LEADER => {
            let r = p
                .replicas
                .iter()
                .copied()
                .find(|r| live(*r))
                .ok_or(ElectionOutcome::NotAvailable)?;
            next.leader = r;
            next.isr = vec![r];
        }
        r => next.leader = r,
    }
    Ok(bumped(p, next))
}

/// A leader's request to change the ISR (Kafka's AlterPartition), checked against
/// the partition's current state: compare-and-swap on the leader epoch and the
/// partition epoch, so a request built on an older state changes nothing.
pub struct IsrChange<'a> {
    pub broker: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: &'a [i32],
}

/// The partition after `change`, or why it is refused.
pub fn alter_isr(
    p: &PartitionImage,
    change: &IsrChange<'_>,
    live: &dyn Fn(i32) -> bool,
) -> Result<PartitionImage, IsrChangeError> {
    if change.broker != p.leader {
        return Err(IsrChangeError::NotLeader);
    }
    if change.leader_epoch != p.leader_epoch {
        return Err(IsrChangeError::FencedLeaderEpoch);
    }
    if change.partition_epoch != p.partition_epoch {
        return Err(IsrChangeError::InvalidUpdateVersion);
    }
    let mut isr = change.isr.to_vec();
    isr.sort_unstable();
    isr.dedup();
    if isr.len() != change.isr.len() || !isr.contains(&p.leader) {
        return Err(IsrChangeError::InvalidRequest(
            "the ISR must list the leader, each replica once".into(),
        ));
    }
    if let Some(&r) = isr.iter().find(|r| !p.replicas.contains(r)) {
        return Err(IsrChangeError::IneligibleReplica(r));
    }
    if let Some(&r) = isr.iter().find(|r| !p.isr.contains(r) && !live(**r)) {
        return Err(IsrChangeError::IneligibleReplica(r));
    }
    // Keep replica order, as Kafka lists the ISR.
    let ordered: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| isr.contains(r))
        .collect();
    let mut next = p.clone();
    next.isr = ordered;
    Ok(bumped(p, next))
}

/// A partition for tests of these rules: leader epoch 4, partition epoch 10.
#[cfg(test)]
pub(super) fn part(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionImage {
    PartitionImage {
        leader_epoch: 4,
        partition_epoch: 10,
        isr: isr.to_vec(),
        leader,
        ..PartitionImage::new(replicas.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &dyn Fn(i32) -> bool = &|_| true;

    #[test]
    fn fencing_the_leader_elects_from_the_isr_in_replica_order() {
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let n = on_fenced(&p, 1, ALL).expect("changed");
        assert_eq!((n.leader, n.isr.clone()), (2, vec![2, 3]));
        assert_eq!((n.leader_epoch, n.partition_epoch), (5, 11));
        // Broker 2 is not live either: 3 leads.
        let n = on_fenced(&p, 1, &|b| b != 2).expect("changed");
        assert_eq!(n.leader, 3);
    }

    #[test]
    fn fencing_a_follower_only_shrinks_the_isr() {
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let n = on_fenced(&p, 3, ALL).expect("changed");
        assert_eq!((n.leader, n.isr.clone()), (1, vec![1, 2]));
        assert_eq!((n.leader_epoch, n.partition_epoch), (4, 11));
        assert_eq!(on_fenced(&part(&[1, 2, 3], &[1, 2], 1), 3, ALL), None);
    }

    #[test]
    fn the_last_in_sync_replica_stays_in_the_isr_leaderless_and_leads_on_return() {
        let p = part(&[1, 2, 3], &[1], 1);
        let n = on_fenced(&p, 1, ALL).expect("changed");
        assert_eq!((n.leader, n.isr.clone()), (NO_LEADER, vec![1]));
        // No unclean election: brokers 2 and 3 are not in sync.
        assert_eq!(on_unfenced(&n, 2), None);
        let back = on_unfenced(&n, 1).expect("leads again");
        assert_eq!((back.leader, back.leader_epoch), (1, 6));
    }

    #[test]
    fn preferred_and_unclean_elections() {
        let p = part(&[1, 2, 3], &[2, 3], 2);
        assert_eq!(elect_preferred(&p, ALL), Err(ElectionOutcome::NotAvailable));
        let p = part(&[1, 2, 3], &[1, 2, 3], 2);
        let n = elect_preferred(&p, ALL).expect("elected");
        assert_eq!((n.leader, n.leader_epoch), (1, 5));
        assert_eq!(elect_preferred(&n, ALL), Err(ElectionOutcome::NotNeeded));
        assert_eq!(
            elect_preferred(&p, &|b| b != 1),
            Err(ElectionOutcome::NotAvailable)
        );

        assert_eq!(elect_unclean(&p, ALL), Err(ElectionOutcome::NotNeeded));
        let down = part(&[1, 2, 3], &[1], NO_LEADER);
        let n = elect_unclean(&down, &|b| b == 3).expect("elected");
        assert_eq!((n.leader, n.isr.clone()), (3, vec![3]));
        assert_eq!(
            elect_unclean(&down, &|_| false),
            Err(ElectionOutcome::NotAvailable)
        );
    }

    #[test]
    fn alter_isr_is_a_compare_and_swap() {
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let change = |broker, le, pe, isr: &'static [i32]| IsrChange {
            broker,
            leader_epoch: le,
            partition_epoch: pe,
            isr,
        };
        let n = alter_isr(&p, &change(1, 4, 10, &[1, 3]), ALL).expect("shrink");
        assert_eq!(
            (n.isr.clone(), n.partition_epoch, n.leader_epoch),
            (vec![1, 3], 11, 4)
        );
        assert_eq!(
            alter_isr(&n, &change(1, 4, 10, &[1]), ALL),
            Err(IsrChangeError::InvalidUpdateVersion)
        );
        assert_eq!(
            alter_isr(&n, &change(1, 3, 11, &[1]), ALL),
            Err(IsrChangeError::FencedLeaderEpoch)
        );
        assert_eq!(
            alter_isr(&n, &change(2, 4, 11, &[1]), ALL),
            Err(IsrChangeError::NotLeader)
        );
        assert!(alter_isr(&n, &change(1, 4, 11, &[3]), ALL).is_err());
        assert_eq!(
            alter_isr(&n, &change(1, 4, 11, &[1, 4]), ALL),
            Err(IsrChangeError::IneligibleReplica(4))
        );
        // A fenced broker cannot join; expanding with a live one works, in replica order.
        assert_eq!(
            alter_isr(&n, &change(1, 4, 11, &[1, 3, 2]), &|b| b != 2),
            Err(IsrChangeError::IneligibleReplica(2))
        );
        let grown = alter_isr(&n, &change(1, 4, 11, &[3, 2, 1]), ALL).expect("expand");
        assert_eq!(grown.isr, vec![1, 2, 3]);
    }
}
