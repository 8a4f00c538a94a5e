//! How a partition's leadership and ISR change: Kafka's rules for elections and ISR
//! updates, with KIP-966's eligible leader replicas (on, as in a new Kafka 4.1
//! cluster), as pure functions of one partition's image. `ClusterImage::apply` runs
//! them for fencing, registration and AlterPartition, so every node computes the same
//! changes from the same log.
//!
//! Invariants kept by every function here:
//! - the ISR is a subset of the replicas; it is empty only when its last member was
//!   fenced, and then that member is in the ELR;
//! - the ELR (eligible leader replicas) is a subset of the replicas disjoint from the
//!   ISR, and empty while the ISR has at least the effective `min.insync.replicas`
//!   (`Rules::min_isr`, capped at the replication factor). A replica enters it by
//!   leaving the ISR while the ISR is under that minimum: the high watermark cannot
//!   have moved since (it does not advance under the minimum), so it holds every
//!   committed record and may lead cleanly once the ISR is empty;
//! - a leader is always a member of the ISR, or -1; elections take the ISR first, then
//!   (only when the ISR is empty) the ELR, then with `unclean.leader.election.enable`
//!   any live replica;
//! - `last_known_elr` names the last leader while the partition is leaderless with an
//!   empty ISR (Kafka's LastKnownElr), and is empty otherwise;
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
    /// Eligible leader replicas (KIP-966), in replica order.
    pub elr: Vec<i32>,
    /// The last leader, while leaderless with an empty ISR (Kafka's LastKnownElr).
    pub last_known_elr: Vec<i32>,
}

/// No leader (Kafka's `NO_LEADER`).
pub const NO_LEADER: i32 = -1;

/// The topic settings the rules depend on, as the image resolves them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// `min.insync.replicas` (topic, else cluster default), before the cap at the
    /// replication factor.
    pub min_isr: usize,
    /// `unclean.leader.election.enable` (topic, else cluster default).
    pub unclean: bool,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            min_isr: 1,
            unclean: false,
        }
    }
}

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
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }
    }

    /// The effective `min.insync.replicas`: at most the replication factor.
    fn min_isr(&self, rules: &Rules) -> usize {
        rules.min_isr.clamp(1, self.replicas.len().max(1))
    }

    fn in_replica_order(&self, set: impl Fn(i32) -> bool) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| set(*r)).collect()
    }
}

/// Kafka's `maybePopulateTargetElr`, after `next`'s ISR was set from `prev`'s: under
/// the minimum, the replicas that were in sync (or eligible) and are no longer in the
/// ISR are eligible; at or above it nobody is.
pub(super) fn settle_elr(prev: &PartitionImage, next: &mut PartitionImage, rules: &Rules) {
    if next.isr.len() >= next.min_isr(rules) {
        next.elr.clear();
        next.last_known_elr.clear();
        return;
    }
    next.elr = next.in_replica_order(|r| {
        (prev.elr.contains(&r) || prev.isr.contains(&r)) && !next.isr.contains(&r)
    });
}

/// Kafka's `electAnyLeader` for a partition without a valid leader: the first live
/// ISR member in replica order; with an empty ISR the first live ELR member (the
/// ISR becomes it alone); else, with `rules.unclean`, the first live replica (an
/// unclean election: the ISR becomes it alone, nobody else is eligible). Leaves
/// `next.leader` at -1 when nobody may lead.
pub(super) fn elect_any(next: &mut PartitionImage, live: &dyn Fn(i32) -> bool, rules: &Rules) {
    next.leader = elect(next, live);
    if next.leader != NO_LEADER {
        return;
    }
    if next.isr.is_empty() {
        let eligible = next.in_replica_order(|r| next.elr.contains(&r) && live(r));
        if let Some(&r) = eligible.first() {
            next.leader = r;
            next.isr = vec![r];
            next.elr.retain(|&e| e != r);
            return;
        }
    }
    if rules.unclean {
        if let Some(r) = next.replicas.iter().copied().find(|r| live(*r)) {
            next.leader = r;
            next.isr = vec![r];
            next.elr.clear();
        }
    }
}

/// Kafka's `maybeUpdateLastKnownLeader`: a partition left leaderless with an empty
/// ISR remembers who led last; one with a leader remembers nobody.
fn track_last_known_leader(prev: &PartitionImage, next: &mut PartitionImage) {
    if next.leader != NO_LEADER {
        next.last_known_elr.clear();
    } else if next.isr.is_empty() && prev.leader != NO_LEADER {
        next.last_known_elr = vec![prev.leader];
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
/// down): it leaves the ISR (joining the ELR if the ISR is then under the minimum),
/// and a partition it led gets a new leader (`elect_any`). `live` says which other
/// brokers may lead. None: nothing changes.
pub fn on_fenced(
    p: &PartitionImage,
    broker: i32,
    live: &dyn Fn(i32) -> bool,
    rules: &Rules,
) -> Option<PartitionImage> {
    if !p.isr.contains(&broker) && p.leader != broker {
        return None;
    }
    let mut next = p.clone();
    next.isr.retain(|&r| r != broker);
    settle_elr(p, &mut next, rules);
    let alive = |r: i32| r != broker && live(r);
    if next.leader == broker || (next.leader != NO_LEADER && !next.isr.contains(&next.leader)) {
        elect_any(&mut next, &alive, rules);
    }
    track_last_known_leader(p, &mut next);
    (next != *p).then(|| bumped(p, next))
}

/// Broker `broker` shut down uncleanly with bytes it counted possibly lost (Kafka's
/// unclean shutdown; see `Command::UncleanShutdown`): fenced as by [`on_fenced`], and
/// no longer eligible to lead cleanly.
pub fn on_unclean_shutdown(
    p: &PartitionImage,
    broker: i32,
    live: &dyn Fn(i32) -> bool,
    rules: &Rules,
) -> Option<PartitionImage> {
    let mut next = on_fenced(p, broker, live, rules).unwrap_or_else(|| p.clone());
    next.elr.retain(|&r| r != broker);
    next.last_known_elr.retain(|&r| r != broker);
    // `bumped` sets the epochs from `p`'s, so bumping again after `on_fenced` is a no-op.
    (next != *p).then(|| bumped(p, next))
}

/// Broker `broker` registered (is live again): a leaderless partition gets a leader
/// if one may lead now (`elect_any`: it, if it is in the ISR, or in the ELR of an
/// empty ISR).
pub fn on_unfenced(
    p: &PartitionImage,
    live: &dyn Fn(i32) -> bool,
    rules: &Rules,
) -> Option<PartitionImage> {
    if p.leader != NO_LEADER {
        return None;
    }
    let mut next = p.clone();
    elect_any(&mut next, live, rules);
    if next.leader == NO_LEADER {
        return None;
    }
    track_last_known_leader(p, &mut next);
    Some(bumped(p, next))
}

/// The topic's `min.insync.replicas` changed: as Kafka, nobody stays eligible (the
/// ELR was judged against the old minimum).
pub fn on_min_isr_changed(p: &PartitionImage) -> Option<PartitionImage> {
    if p.elr.is_empty() && p.last_known_elr.is_empty() {
        return None;
    }
    let mut next = p.clone();
    next.elr.clear();
    next.last_known_elr.clear();
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

/// Kafka's unclean election (ElectLeaders), for a partition without a live leader:
/// the ISR's first live member, else the ELR's, else the first live replica, which
/// becomes the whole ISR — records only the lost in-sync replicas had are gone.
pub fn elect_unclean(
    p: &PartitionImage,
    live: &dyn Fn(i32) -> bool,
) -> Result<PartitionImage, ElectionOutcome> {
    if p.leader != NO_LEADER && live(p.leader) {
        return Err(ElectionOutcome::NotNeeded);
    }
    let mut next = p.clone();
    let unclean = Rules {
        unclean: true,
        ..Rules::default()
    };
    elect_any(&mut next, live, &unclean);
    if next.leader == NO_LEADER {
        return Err(ElectionOutcome::NotAvailable);
    }
    track_last_known_leader(p, &mut next);
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
    /// Each member's broker epoch, in `isr`'s order (-1: not known); empty when the
    /// command carried none.
    pub epochs: &'a [i64],
}

/// The partition after `change`, or why it is refused. `registration` gives a
/// registered broker's epoch (None: not registered).
pub fn alter_isr(
    p: &PartitionImage,
    change: &IsrChange<'_>,
    live: &dyn Fn(i32) -> bool,
    registration: &dyn Fn(i32) -> Option<i64>,
    rules: &Rules,
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
    // A member named with an epoch other than its registration's (Kafka checks
    // every member, -1 passing).
    if !change.epochs.is_empty() && change.epochs.len() != change.isr.len() {
        return Err(IsrChangeError::InvalidRequest(
            "one broker epoch per ISR member".into(),
        ));
    }
    if let Some((&r, _)) = change
        .isr
        .iter()
        .zip(change.epochs)
        .find(|(r, e)| **e != -1 && registration(**r) != Some(**e))
    {
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
    settle_elr(p, &mut next, rules);
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
    const NO_EPOCHS: &dyn Fn(i32) -> Option<i64> = &|_| None;
    /// min.insync.replicas=2, no unclean elections.
    const MIN2: &Rules = &Rules {
        min_isr: 2,
        unclean: false,
    };

    #[test]
    fn fencing_the_leader_elects_from_the_isr_in_replica_order() {
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let n = on_fenced(&p, 1, ALL, MIN2).expect("changed");
        assert_eq!((n.leader, n.isr.clone()), (2, vec![2, 3]));
        assert_eq!((n.leader_epoch, n.partition_epoch), (5, 11));
        // Broker 2 is not live either: 3 leads.
        let n = on_fenced(&p, 1, &|b| b != 2, MIN2).expect("changed");
        assert_eq!(n.leader, 3);
    }

    #[test]
    fn fencing_a_follower_only_shrinks_the_isr() {
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let n = on_fenced(&p, 3, ALL, MIN2).expect("changed");
        assert_eq!((n.leader, n.isr.clone()), (1, vec![1, 2]));
        assert_eq!((n.leader_epoch, n.partition_epoch), (4, 11));
        assert_eq!(on_fenced(&part(&[1, 2, 3], &[1, 2], 1), 3, ALL, MIN2), None);
    }

    #[test]
    fn replicas_leaving_an_isr_under_the_minimum_become_eligible_and_lead_cleanly() {
        // Kafka's worked example: RF 3, min ISR 2.
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let n = on_fenced(&p, 3, ALL, MIN2).expect("changed");
        assert_eq!((n.isr.clone(), n.elr.clone()), (vec![1, 2], vec![]));
        let only3 = |b| b != 3;
        let n = on_fenced(&n, 2, &only3, MIN2).expect("changed");
        assert_eq!(
            (n.leader, n.isr.clone(), n.elr.clone()),
            (1, vec![1], vec![2])
        );
        let none = |_| false;
        let n = on_fenced(&n, 1, &none, MIN2).expect("changed");
        assert_eq!(
            (
                n.leader,
                n.isr.clone(),
                n.elr.clone(),
                n.last_known_elr.clone()
            ),
            (NO_LEADER, vec![], vec![1, 2], vec![1])
        );
        // Broker 3 left while the ISR was still full: not eligible, no unclean election.
        assert_eq!(on_unfenced(&n, &|b| b == 3, MIN2), None);
        // Broker 2 is eligible: it leads alone, broker 1 stays eligible.
        let back = on_unfenced(&n, &|b| b == 2, MIN2).expect("leads again");
        assert_eq!(
            (back.leader, back.isr.clone(), back.elr.clone()),
            (2, vec![2], vec![1])
        );
        assert!(back.last_known_elr.is_empty() && back.leader_epoch == n.leader_epoch + 1);
        // Back at the minimum: nobody is eligible any more.
        let change = IsrChange {
            broker: 2,
            leader_epoch: back.leader_epoch,
            partition_epoch: back.partition_epoch,
            isr: &[2, 3],
            epochs: &[],
        };
        let full = alter_isr(&back, &change, ALL, NO_EPOCHS, MIN2).expect("expand");
        assert_eq!((full.isr.clone(), full.elr.clone()), (vec![2, 3], vec![]));
    }

    #[test]
    fn the_minimum_is_capped_at_the_replication_factor_and_unclean_elects_anyone_live() {
        let rf2 = part(&[1, 2], &[1, 2], 1);
        let min3 = Rules {
            min_isr: 3,
            unclean: false,
        };
        // Capped at 2: losing one leaves the ISR under it, so it becomes eligible.
        let n = on_fenced(&rf2, 2, &|b| b == 1, &min3).expect("changed");
        assert_eq!((n.isr.clone(), n.elr.clone()), (vec![1], vec![2]));
        let gone = on_fenced(&part(&[1, 2, 3], &[1], 1), 1, &|_| false, MIN2).expect("changed");
        assert_eq!((gone.isr.clone(), gone.elr.clone()), (vec![], vec![1]));
        let unclean = Rules {
            min_isr: 2,
            unclean: true,
        };
        let n = on_unfenced(&gone, &|b| b == 3, &unclean).expect("unclean");
        assert_eq!(
            (n.leader, n.isr.clone(), n.elr.clone()),
            (3, vec![3], vec![])
        );
        // An unclean shutdown takes a replica out of the ELR.
        let n = on_unclean_shutdown(&gone, 1, &|_| false, MIN2).expect("changed");
        assert_eq!(
            (n.isr.clone(), n.elr.clone(), n.last_known_elr.clone()),
            (vec![], vec![], vec![])
        );
        assert_eq!(n.partition_epoch, gone.partition_epoch + 1);
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
            epochs: &[],
        };
        let n = alter_isr(&p, &change(1, 4, 10, &[1, 3]), ALL, NO_EPOCHS, MIN2).expect("shrink");
        assert_eq!(
            (n.isr.clone(), n.partition_epoch, n.leader_epoch),
            (vec![1, 3], 11, 4)
        );
        assert_eq!(
            alter_isr(&n, &change(1, 4, 10, &[1]), ALL, NO_EPOCHS, MIN2),
            Err(IsrChangeError::InvalidUpdateVersion)
        );
        assert_eq!(
            alter_isr(&n, &change(1, 3, 11, &[1]), ALL, NO_EPOCHS, MIN2),
            Err(IsrChangeError::FencedLeaderEpoch)
        );
        assert_eq!(
            alter_isr(&n, &change(2, 4, 11, &[1]), ALL, NO_EPOCHS, MIN2),
            Err(IsrChangeError::NotLeader)
        );
        assert!(alter_isr(&n, &change(1, 4, 11, &[3]), ALL, NO_EPOCHS, MIN2).is_err());
        assert_eq!(
            alter_isr(&n, &change(1, 4, 11, &[1, 4]), ALL, NO_EPOCHS, MIN2),
            Err(IsrChangeError::IneligibleReplica(4))
        );
        // A fenced broker cannot join; expanding with a live one works, in replica order.
        assert_eq!(
            alter_isr(
                &n,
                &change(1, 4, 11, &[1, 3, 2]),
                &|b| b != 2,
                NO_EPOCHS,
                MIN2
            ),
            Err(IsrChangeError::IneligibleReplica(2))
        );
        let grown =
            alter_isr(&n, &change(1, 4, 11, &[3, 2, 1]), ALL, NO_EPOCHS, MIN2).expect("expand");
        assert_eq!(grown.isr, vec![1, 2, 3]);
    }

    /// KIP-903: a member named with the epoch of an earlier registration is refused;
    /// its current epoch, or -1 (none known), passes.
    #[test]
    fn alter_isr_checks_broker_epochs() {
        let p = part(&[1, 2, 3], &[1, 3], 1);
        let epochs = |b: i32| Some(100 + b as i64);
        let with = |e: &'static [i64]| IsrChange {
            broker: 1,
            leader_epoch: 4,
            partition_epoch: 10,
            isr: &[1, 2, 3],
            epochs: e,
        };
        assert_eq!(
            alter_isr(&p, &with(&[101, 7, 103]), ALL, &epochs, MIN2),
            Err(IsrChangeError::IneligibleReplica(2))
        );
        assert_eq!(
            alter_isr(&p, &with(&[101, 102, 99]), ALL, &epochs, MIN2),
            Err(IsrChangeError::IneligibleReplica(3))
        );
        assert!(matches!(
            alter_isr(&p, &with(&[101, 102]), ALL, &epochs, MIN2),
            Err(IsrChangeError::InvalidRequest(_))
        ));
        let n = alter_isr(&p, &with(&[101, 102, -1]), ALL, &epochs, MIN2).expect("expand");
        assert_eq!(n.isr, vec![1, 2, 3]);
        // Not registered at all: no epoch matches.
        assert_eq!(
            alter_isr(
                &p,
                &with(&[101, 102, 103]),
                ALL,
                &|b| (b != 2).then_some(100 + b as i64),
                MIN2
            ),
            Err(IsrChangeError::IneligibleReplica(2))
        );
    }
}
