//! Partition reassignment (Kafka's AlterPartitionReassignments), as pure functions of
//! one partition's image. `ClusterImage::apply` runs them, so every node computes the
//! same changes from the same log.
//!
//! A reassignment from the original replicas O to the target T keeps
//! `replicas = T ++ (O − T)`, `adding = T − O` and `removing = O − T` until every
//! target is in the ISR; then the partition has exactly T (the ISR keeps its members
//! in T) and a leader from T. The replicas being added catch up by fetching like any
//! follower and join the ISR through AlterPartition; nothing here waits.
//!
//! Invariants, on top of those of `partition_change`: `adding ⊆ replicas`,
//! `removing ⊆ replicas`, `adding ∩ removing = ∅`; both are empty when no
//! reassignment is in progress.

use super::partition_change::{bumped, elect, PartitionImage, NO_LEADER};

/// Why a reassignment request for one partition is refused (Kafka's error codes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReassignError {
    /// INVALID_REPLICA_ASSIGNMENT.
    InvalidAssignment(String),
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancellation of a partition that is not moving.
    NoReassignmentInProgress,
    UnknownPartition,
}

impl PartitionImage {
    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas before the reassignment in progress (all of them if none is).
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }

    /// The replicas the partition will have when the reassignment completes.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }
}

/// Starts moving `p` to `target` (replacing any reassignment in progress: its
/// original replicas stay the starting point). `registered` says which broker ids
/// exist. Completes at once if every target is already in sync.
pub fn reassign(
    p: &PartitionImage,
    target: &[i32],
    registered: &dyn Fn(i32) -> bool,
    live: &dyn Fn(i32) -> bool,
) -> Result<PartitionImage, ReassignError> {
    if target.is_empty() {
        return Err(ReassignError::InvalidAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    if let Some((_, b)) = target
        .iter()
        .enumerate()
        .find(|(i, b)| target[..*i].contains(b))
    {
        return Err(ReassignError::InvalidAssignment(format!(
            "The manual partition assignment includes the broker {b} more than once."
        )));
    }
    if let Some(b) = target.iter().find(|b| !registered(**b)) {
        return Err(ReassignError::InvalidAssignment(format!(
            "The manual partition assignment includes broker {b}, but no such broker is registered."
        )));
    }
    let original = p.original_replicas();
    let mut next = p.clone();
    next.replicas = target.to_vec();
    next.replicas
        .extend(original.iter().copied().filter(|r| !target.contains(r)));
    next.adding = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    next.removing = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    // Replicas a replaced reassignment was adding and this one is not leave at once:
    // they were never in sync for long enough to matter, and may not stay in the ISR.
    next.isr.retain(|r| next.replicas.contains(r));
    if next.isr.is_empty() {
        next.isr = vec![p.leader];
    }
    let next = complete(&next, live).unwrap_or(next);
    if next == *p {
        return Ok(next);
    }
    Ok(bumped(p, next))
}

/// Cancels the reassignment in progress: back to the original replicas (the ISR
/// keeps only originals; if none of them is in sync the last leader stays, as the
/// only in-sync replica, like an unclean election would leave it).
pub fn cancel(
    p: &PartitionImage,
    live: &dyn Fn(i32) -> bool,
) -> Result<PartitionImage, ReassignError> {
    if !p.is_reassigning() {
        return Err(ReassignError::NoReassignmentInProgress);
    }
    let mut next = p.clone();
    next.replicas = p.original_replicas();
    next.adding.clear();
    next.removing.clear();
    next.isr.retain(|r| next.replicas.contains(r));
    if next.isr.is_empty() {
        next.isr = next
            .replicas
            .iter()
            .copied()
            .filter(|r| live(*r))
            .take(1)
            .collect();
        if next.isr.is_empty() {
            next.isr = vec![next.replicas[0]];
        }
    }
    if !next.isr.contains(&next.leader) {
        next.leader = elect(&next, live);
    }
    Ok(bumped(p, next))
}

/// Finishes the reassignment in progress if every target replica is in the ISR:
/// the partition keeps only its targets, and a leader among them. None: nothing to
/// finish yet (or nothing in progress). The epochs are not bumped here.
pub fn complete(p: &PartitionImage, live: &dyn Fn(i32) -> bool) -> Option<PartitionImage> {
    if !p.is_reassigning() {
        return None;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let mut next = p.clone();
    next.replicas = target;
    next.adding.clear();
    next.removing.clear();
    next.isr = next
        .replicas
        .iter()
        .copied()
        .filter(|r| p.isr.contains(r))
        .collect();
    let replicas = next.replicas.clone();
    next.elr.retain(|r| replicas.contains(r));
    next.last_known_elr.retain(|r| replicas.contains(r));
    if !next.replicas.contains(&next.leader) || next.leader == NO_LEADER {
        next.leader = elect(&next, live);
    }
    Some(next)
}

/// After an ISR change: the partition with its reassignment finished if it can be.
pub fn after_isr_change(next: PartitionImage, live: &dyn Fn(i32) -> bool) -> PartitionImage {
    match complete(&next, live) {
        Some(done) if done.leader != next.leader => PartitionImage {
            leader_epoch: next.leader_epoch + 1,
            ..done
        },
        Some(done) => done,
        None => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::partition_change::part;

    const ALL: &dyn Fn(i32) -> bool = &|_| true;

    #[test]
    fn a_move_adds_targets_first_and_finishes_when_they_are_in_sync() {
        let p = part(&[1, 2], &[1, 2], 1);
        let n = reassign(&p, &[3, 2], ALL, ALL).expect("started");
        assert_eq!(n.replicas, vec![3, 2, 1]);
        assert_eq!((n.adding.clone(), n.removing.clone()), (vec![3], vec![1]));
        assert_eq!(
            (n.leader, n.isr.clone(), n.partition_epoch),
            (1, vec![1, 2], 11)
        );
        assert_eq!(n.original_replicas(), vec![2, 1]);
        assert_eq!(n.target_replicas(), vec![3, 2]);
        assert_eq!(complete(&n, ALL), None, "3 is not in sync yet");

        // 3 joins the ISR: only the targets remain, and the leader moves into them.
        let joined = PartitionImage {
            isr: vec![3, 2, 1],
            partition_epoch: 12,
            ..n
        };
        let done = after_isr_change(joined, ALL);
        assert_eq!(done.replicas, vec![3, 2]);
        assert_eq!(done.isr, vec![3, 2]);
        assert_eq!((done.leader, done.leader_epoch), (3, 5));
        assert!(!done.is_reassigning());
    }

    #[test]
    fn growing_and_reordering_within_the_isr() {
        let p = part(&[1, 2], &[1, 2], 1);
        // Same replicas in another order: done at once, leadership unchanged.
        let n = reassign(&p, &[2, 1], ALL, ALL).expect("reorder");
        assert_eq!((n.replicas.clone(), n.leader), (vec![2, 1], 1));
        assert!(!n.is_reassigning());
        // Growing to three replicas keeps all originals.
        let n = reassign(&p, &[1, 2, 3], ALL, ALL).expect("grow");
        assert_eq!((n.adding.clone(), n.removing.clone()), (vec![3], vec![]));
        assert_eq!(n.replicas, vec![1, 2, 3]);
    }

    #[test]
    fn bad_targets_are_refused() {
        let p = part(&[1, 2], &[1, 2], 1);
        let known = |b: i32| b <= 3;
        assert!(matches!(
            reassign(&p, &[], &known, ALL),
            Err(ReassignError::InvalidAssignment(_))
        ));
        assert!(matches!(
            reassign(&p, &[1, 1], &known, ALL),
            Err(ReassignError::InvalidAssignment(_))
        ));
        assert!(matches!(
            reassign(&p, &[1, 7], &known, ALL),
            Err(ReassignError::InvalidAssignment(m)) if m.contains("broker 7")
        ));
    }

    #[test]
    fn cancelling_goes_back_to_the_original_replicas() {
        let p = part(&[1, 2], &[1, 2], 1);
        assert_eq!(
            cancel(&p, ALL),
            Err(ReassignError::NoReassignmentInProgress)
        );
        let moving = reassign(&p, &[3, 4], ALL, ALL).expect("started");
        assert_eq!(moving.replicas, vec![3, 4, 1, 2]);
        let back = cancel(&moving, ALL).expect("cancelled");
        assert_eq!(
            (back.replicas.clone(), back.isr.clone()),
            (vec![1, 2], vec![1, 2])
        );
        assert!(!back.is_reassigning());
        assert_eq!(back.partition_epoch, moving.partition_epoch + 1);

        // A new target replaces the one in progress, from the same originals.
        let again = reassign(&moving, &[2, 3], ALL, ALL).expect("replaced");
        assert_eq!(again.replicas, vec![2, 3, 1]);
        assert_eq!(
            (again.adding.clone(), again.removing.clone()),
            (vec![3], vec![1])
        );
    }
}
