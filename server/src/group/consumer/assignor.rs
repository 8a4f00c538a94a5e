//! Server-side assignors of KIP-848 consumer groups: `uniform` (Kafka's default) and
//! `range`. Pure functions from (members' subscriptions, topics, previous target) to a
//! new target assignment.
//!
//! Invariants of every result: each partition of a topic is given to at most one
//! member, and only to a member subscribed to the topic; every partition of a topic
//! with at least one subscriber is given to someone.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What an assignor sees of one member.
#[derive(Clone, Debug)]
pub struct MemberSpec<'a> {
    pub member_id: &'a str,
    /// Ids of the subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment (stickiness).
    pub previous: Option<&'a Assignment>,
}

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// Whether `name` is an assignor this broker runs.
pub fn is_supported(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// Runs the assignor `name` (an unknown name runs `uniform`). `partitions` gives each
/// topic's partition count. The result has an entry for every member.
pub fn assign(
    name: &str,
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    if name == RANGE {
        range(members, partitions)
    } else {
        uniform(members, partitions)
    }
}

/// Balanced and sticky: a partition stays with its previous owner when that owner is
/// still subscribed, then unowned partitions go to the least-loaded subscriber, then
/// partitions move from a member to a subscriber with at least two fewer until no such
/// move exists. With identical subscriptions member sizes differ by at most one.
pub fn uniform(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut load = vec![0usize; members.len()];
    // Every subscribed partition, in a stable order.
    let all: Vec<(Uuid, i32)> = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(t)))
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .collect();
    for (i, m) in members.iter().enumerate() {
        for (t, ps) in m.previous.into_iter().flatten() {
            if !m.topics.contains(t) {
                continue;
            }
            for p in ps {
                let key = (*t, *p);
                let exists = partitions.get(t).is_some_and(|n| p < n);
                if exists && !owner.contains_key(&key) {
                    owner.insert(key, i);
                    load[i] += 1;
                }
            }
        }
    }
    let least_loaded = |load: &[usize], t: &Uuid| {
        (0..members.len())
            .filter(|i| members[*i].topics.contains(t))
            .min_by_key(|i| (load[*i], members[*i].member_id))
    };
    for key in &all {
        if owner.contains_key(key) {
            continue;
        }
        if let Some(i) = least_loaded(&load, &key.0) {
            owner.insert(*key, i);
            load[i] += 1;
        }
    }
    // Each move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        for key in &all {
            let Some(&from) = owner.get(key) else {
                continue;
            };
            if let Some(to) = least_loaded(&load, &key.0) {
                if load[to] + 1 < load[from] {
                    owner.insert(*key, to);
                    load[from] -= 1;
                    load[to] += 1;
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    collect(members, owner)
}

/// Kafka's range rule per topic: the topic's subscribers sorted by member id, each gets
/// a contiguous range of `n / k` partitions and the first `n % k` one more. Members
/// subscribed to the same co-partitioned topics get the same partition numbers.
pub fn range(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for (t, n) in partitions {
        let mut subs: Vec<usize> = (0..members.len())
            .filter(|i| members[*i].topics.contains(t))
            .collect();
        if subs.is_empty() {
            continue;
        }
        subs.sort_by_key(|i| members[*i].member_id);
        let k = subs.len() as i32;
        let (base, extra) = (n / k, n % k);
        let mut next = 0;
        for (rank, i) in subs.into_iter().enumerate() {
            let size = base + i32::from((rank as i32) < extra);
            for p in next..next + size {
                owner.insert((*t, p), i);
            }
            next += size;
        }
    }
    collect(members, owner)
}

fn collect(
    members: &[MemberSpec<'_>],
    owner: BTreeMap<(Uuid, i32), usize>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_string(), Assignment::new()))
        .collect();
    for ((t, p), i) in owner {
        if let Some(a) = out.get_mut(members[i].member_id) {
            a.entry(t).or_default().insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(id: &'a str, topics: &[Uuid], previous: Option<&'a Assignment>) -> MemberSpec<'a> {
        MemberSpec {
            member_id: id,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn sizes(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
        out.values()
            .map(|a| a.values().map(|s| s.len()).sum())
            .collect()
    }

    fn assert_partition_of(out: &BTreeMap<String, Assignment>, topic: Uuid, n: i32) {
        let mut seen = BTreeSet::new();
        for a in out.values() {
            for p in a.get(&topic).into_iter().flatten() {
                assert!(seen.insert(*p), "partition {p} given twice: {out:?}");
            }
        }
        assert_eq!(seen, (0..n).collect::<BTreeSet<_>>());
    }

    #[test]
    fn uniform_splits_evenly_and_keeps_previous_owners() {
        let t = Uuid::from_u128(1);
        let parts = BTreeMap::from([(t, 6)]);
        let one = uniform(&[spec("a", &[t], None)], &parts);
        assert_eq!(sizes(&one), vec![6]);
        let a_prev = one["a"].clone();
        let two = uniform(
            &[spec("a", &[t], Some(&a_prev)), spec("b", &[t], None)],
            &parts,
        );
        assert_eq!(sizes(&two), vec![3, 3]);
        assert_partition_of(&two, t, 6);
        let (a2, b2) = (two["a"].clone(), two["b"].clone());
        let three = uniform(
            &[
                spec("a", &[t], Some(&a2)),
                spec("b", &[t], Some(&b2)),
                spec("c", &[t], None),
            ],
            &parts,
        );
        assert_eq!(sizes(&three), vec![2, 2, 2]);
        assert_partition_of(&three, t, 6);
        // Sticky: a and b keep two of their three each.
        assert!(three["a"][&t].is_subset(&a2[&t]));
        assert!(three["b"][&t].is_subset(&b2[&t]));
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let parts = BTreeMap::from([(t1, 4), (t2, 2)]);
        let out = uniform(
            &[spec("a", &[t1], None), spec("b", &[t1, t2], None)],
            &parts,
        );
        assert!(!out["a"].contains_key(&t2));
        assert_partition_of(&out, t1, 4);
        assert_partition_of(&out, t2, 2);
        assert_eq!(sizes(&out), vec![3, 3]);
    }

    #[test]
    fn range_gives_contiguous_ranges_by_member_id() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let parts = BTreeMap::from([(t1, 7), (t2, 7)]);
        let out = range(
            &[
                spec("c", &[t1, t2], None),
                spec("a", &[t1, t2], None),
                spec("b", &[t1, t2], None),
            ],
            &parts,
        );
        assert_eq!(out["a"][&t1], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&t1], BTreeSet::from([3, 4]));
        assert_eq!(out["c"][&t1], BTreeSet::from([5, 6]));
        // Co-partitioned: the same numbers on both topics.
        for m in ["a", "b", "c"] {
            assert_eq!(out[m][&t1], out[m][&t2]);
        }
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let t = Uuid::from_u128(1);
        let parts = BTreeMap::from([(t, 2)]);
        let members = [
            spec("a", &[t], None),
            spec("b", &[t], None),
            spec("c", &[t], None),
        ];
        for out in [uniform(&members, &parts), range(&members, &parts)] {
            assert_partition_of(&out, t, 2);
            assert_eq!(sizes(&out).iter().sum::<usize>(), 2);
        }
    }
}
