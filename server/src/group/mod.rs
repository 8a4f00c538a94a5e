//! Consumer groups: the classic group protocol and committed offsets.
//!
//! Layout:
//! - `error`       — [`GroupError`], why a group request is refused; the api layer
//!   turns it into Kafka's error code.
//! - `consumer`    — the pure KIP-848 consumer-group state machine and its assignors.
//! - `classic`     — the pure classic-group state machine (members, generations,
//!   rebalances, timeouts); no sockets, no clock: time comes in as `now_ms`.
//! - `records`     — `__consumer_offsets` keys and values in Kafka's schemas, by hand.
//! - `store`       — appending records to and replaying an offsets partition.
//! - `coordinator` — the per-shard glue: loads groups and offsets from the offsets
//!   partitions this shard owns, persists records, parks JoinGroup/SyncGroup waits as
//!   oneshot futures and runs the state machine's deadlines on tokio timers.
//!
//! Placement (Kafka's rule): group `g` lives in partition
//! `abs(javaStringHashCode(g)) % partitions` of `__consumer_offsets`; the shard that owns
//! that partition (`Shard::owner`) owns the group's state, and every group request is
//! routed there with `invoke_on`.

pub mod classic;
pub mod consumer;
pub mod coordinator;
pub mod error;
pub mod records;
pub mod store;

pub use error::GroupError;

/// READ, DELETE and DESCRIBE (ACL operation codes 3, 6, 8): what a group allows when
/// there is no authorizer (DescribeGroups, ConsumerGroupDescribe).
pub const GROUP_OPERATIONS_ALL: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code units,
/// wrapping in 32 bits.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group (Kafka's `Utils.abs(hash) % n`, where
/// `abs(Integer.MIN_VALUE)` is 0).
pub fn partition_for(group_id: &str, partitions: usize) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    (abs as i64 % partitions.max(1) as i64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_java() {
        // Values computed with Java's "…".hashCode().
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("test_group"), 2_059_298_962);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Non-BMP characters hash as two UTF-16 surrogates.
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn partition_is_abs_mod() {
        assert_eq!(partition_for("test_group", 50), 12);
        assert_eq!(partition_for("hello", 50), 22);
        assert_eq!(partition_for("anything", 1), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
