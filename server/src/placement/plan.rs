//! Membership-change plans: which replicas a ring change moves. Pure.
//!
//! A plan compares each partition's current replica set with the ring's answer for
//! the new broker set. `fjord plan` shows it; `metadata::rebalance` turns the plan for
//! the registered brokers into reassignments (`fjord.auto.rebalance.enable`).

use std::collections::BTreeSet;

use super::Ring;

/// One partition whose replica set changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: u32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

impl Move {
    /// Replicas added to the partition (each one is a copy of its data to make).
    pub fn added(&self) -> usize {
        let from: BTreeSet<_> = self.from.iter().collect();
        self.to.iter().filter(|b| !from.contains(b)).count()
    }
}

/// A topic as the planner sees it: name, id, current replica lists by partition.
pub struct TopicReplicas<'a> {
    pub name: &'a str,
    pub id: u128,
    pub replicas: &'a [Vec<i32>],
}

/// The moves that bring every partition to the placement `ring` gives its topic
/// (placed whole, at the topic's replication factor). Partitions already on their
/// target set (in any order) are not listed.
pub fn plan<'a>(ring: &Ring, topics: impl IntoIterator<Item = TopicReplicas<'a>>) -> Vec<Move> {
    let mut out = Vec::new();
    for t in topics {
        let rf = t.replicas.first().map_or(1, Vec::len);
        let targets = ring.assign(t.id, &[], t.replicas.len() as u32, rf);
        for (p, (current, target)) in t.replicas.iter().zip(targets).enumerate() {
            let a: BTreeSet<_> = current.iter().collect();
            let b: BTreeSet<_> = target.iter().collect();
            if a != b {
                out.push(Move {
                    topic: t.name.to_string(),
                    partition: p as u32,
                    from: current.clone(),
                    to: target,
                });
            }
        }
    }
    out
}

/// A plan as text, one line per move, then a summary line.
pub fn render(moves: &[Move], total_replicas: usize) -> String {
    let mut s = String::new();
    for m in moves {
        s.push_str(&format!(
            "{}-{}: {:?} -> {:?}\n",
            m.topic, m.partition, m.from, m.to
        ));
    }
    let added: usize = moves.iter().map(Move::added).sum();
    s.push_str(&format!(
        "{} partition(s) change, {added} of {total_replicas} replica(s) move\n",
        moves.len()
    ));
    s
}
