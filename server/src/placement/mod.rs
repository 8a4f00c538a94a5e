//! Placement: a consistent-hash ring that maps partitions to brokers. Pure, std only.
//!
//! Every broker owns [`VNODES_PER_BROKER`] points ("virtual nodes") on a 64-bit ring.
//! The replicas of partition `p` of topic `t` are the first `rf` distinct brokers met
//! clockwise from the key `partition_key(t, p)`, skipping a broker that already holds
//! its cap of the topic's replicas: `ceil(LOAD_FACTOR · replicas / N)` ("consistent
//! hashing with bounded loads", Mirrokni, Thorup and Zadimoghaddam). Without the cap a
//! topic's partitions would land on brokers as independent random draws (a 12-partition
//! topic misses one of 3 brokers 2.3% of the time); with it no broker takes more than
//! its bounded share of any topic, and partitions are placed in index order so the
//! result is a function of (brokers, topic id, partition count) alone.
//!
//! Invariants (property-tested below):
//! - the same brokers and the same key give the same replicas, on every node;
//! - a broker's share of partitions is within ±15% of `1/N` for 3–20 brokers;
//! - adding or removing one broker changes at most 1.25× the ideal `1/N` share of
//!   replica assignments: only keys whose arc the broker takes or leaves move.
//!
//! Placement runs only when a command is proposed: commands carry the resulting
//! assignment, so replaying the metadata log never re-runs it.

pub mod plan;
pub mod shards;

/// Points per broker. The relative spread of a broker's arc share is about
/// `1/sqrt(V)`: 1024 keeps it near 3%.
pub const VNODES_PER_BROKER: usize = 1024;

/// A broker takes at most this factor of its even share of one topic's replicas.
pub const LOAD_FACTOR: f64 = 1.15;

/// 2⁶⁴/φ: the Weyl step that spreads consecutive partitions of a topic.
const GOLDEN_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finaliser: a fixed, well-mixing 64-bit hash (identical on every
/// node and every build, unlike `std`'s randomly keyed hasher).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The ring position of partition `partition` of the topic with id `topic_id`.
pub fn partition_key(topic_id: u128, partition: u32) -> u64 {
    let (hi, lo) = ((topic_id >> 64) as u64, topic_id as u64);
    let base = mix(hi ^ mix(lo));
    base.wrapping_add((partition as u64).wrapping_mul(GOLDEN_STEP))
}

/// A broker's `v`-th point on the ring.
fn vnode_position(broker: i32, v: usize) -> u64 {
    mix(mix(broker as u32 as u64 ^ 0x5EED_0000_0000_0000) ^ (v as u64).wrapping_mul(GOLDEN_STEP))
}

/// The ring of a set of brokers. Immutable; build a new one when brokers change.
#[derive(Clone, Debug)]
pub struct Ring {
    /// (position, broker), sorted; ties are broken by broker id so every node agrees.
    points: Vec<(u64, i32)>,
    brokers: Vec<i32>,
}

impl Ring {
    /// A ring over `brokers` (duplicates are ignored) with `vnodes` points each.
    pub fn new(brokers: &[i32], vnodes: usize) -> Ring {
        let mut ids = brokers.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut points: Vec<(u64, i32)> = ids
            .iter()
            .flat_map(|&b| (0..vnodes).map(move |v| (vnode_position(b, v), b)))
            .collect();
        points.sort_unstable();
        Ring {
            points,
            brokers: ids,
        }
    }

    /// A ring with [`VNODES_PER_BROKER`] points per broker.
    pub fn with_brokers(brokers: &[i32]) -> Ring {
        Ring::new(brokers, VNODES_PER_BROKER)
    }

    /// The brokers on the ring, ascending.
    pub fn brokers(&self) -> &[i32] {
        &self.brokers
    }

    /// The first `rf` distinct brokers clockwise from `key` (fewer if the ring has
    /// fewer brokers). The first one is the preferred leader.
    pub fn replicas_at(&self, key: u64, rf: usize) -> Vec<i32> {
        let want = rf.min(self.brokers.len());
        let mut out = Vec::with_capacity(want);
        if want == 0 {
            return out;
        }
        let start = self.points.partition_point(|&(pos, _)| pos < key);
        for i in 0..self.points.len() {
            let (_, b) = self.points[(start + i) % self.points.len()];
            if !out.contains(&b) {
                out.push(b);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// The replicas of one partition, ignoring load caps.
    pub fn replicas(&self, topic_id: u128, partition: u32, rf: usize) -> Vec<i32> {
        self.replicas_at(partition_key(topic_id, partition), rf)
    }

    /// The per-broker cap for a topic of `replicas` replicas in total.
    fn cap(&self, replicas: usize) -> usize {
        let n = self.brokers.len().max(1);
        let even = replicas.div_ceil(n);
        ((LOAD_FACTOR * replicas as f64 / n as f64).floor() as usize).max(even)
    }

    /// Replica lists of partitions `existing.len()..existing.len() + count` of a topic
    /// whose partitions so far have the replica lists `existing`: each is the first
    /// `rf` distinct brokers clockwise from its key that are under the cap, counting
    /// the existing replicas. Placing a whole topic is `assign(id, &[], count, rf)`.
    pub fn assign(
        &self,
        topic_id: u128,
        existing: &[Vec<i32>],
        count: u32,
        rf: usize,
    ) -> Vec<Vec<i32>> {
        let rf = rf.min(self.brokers.len());
        if rf == 0 || self.points.is_empty() {
            return vec![Vec::new(); count as usize];
        }
        let total = existing.iter().map(Vec::len).sum::<usize>() + count as usize * rf;
        let cap = self.cap(total);
        let mut load: Vec<usize> = vec![0; self.brokers.len()];
        let slot = |b: i32| self.brokers.binary_search(&b).ok();
        for b in existing.iter().flatten() {
            if let Some(i) = slot(*b) {
                load[i] += 1;
            }
        }
        let first = existing.len() as u32;
        let mut out = Vec::with_capacity(count as usize);
        for p in first..first.saturating_add(count) {
            let key = partition_key(topic_id, p);
            let start = self.points.partition_point(|&(pos, _)| pos < key);
            let mut replicas = Vec::with_capacity(rf);
            // cap · N >= total leaves room for every replica, but not always on `rf`
            // distinct brokers: when fewer than `rf` are under the cap, the second
            // turn takes the next distinct brokers clockwise past it, so a partition
            // never gets fewer replicas than asked for.
            for capped in [true, false] {
                for i in 0..self.points.len() {
                    if replicas.len() == rf {
                        break;
                    }
                    let (_, b) = self.points[(start + i) % self.points.len()];
                    let Some(s) = slot(b) else { continue };
                    if (!capped || load[s] < cap) && !replicas.contains(&b) {
                        load[s] += 1;
                        replicas.push(b);
                    }
                }
            }
            out.push(replicas);
        }
        out
    }
}

#[cfg(test)]
mod tests;
