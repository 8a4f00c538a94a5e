//! Partition → shard: which core of a node owns a partition. Pure, std only.
//!
//! Invariant: the same (topic id, partition, shard count) always give the same shard,
//! on every thread, so every shard routes a partition to the same owner.

/// Jump consistent hash (Lamping & Veach): maps `key` to one of `buckets` so that
/// growing the number of buckets moves only 1/n of the keys.
pub fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// The shard that owns partition `partition` of the topic whose id is `topic_id`
/// (the id's 128 bits), among `shards`.
pub fn shard_for(topic_id: u128, partition: i32, shards: usize) -> usize {
    let (hi, lo) = ((topic_id >> 64) as u64, topic_id as u64);
    let key = hi ^ lo.rotate_left(17) ^ (partition as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    jump_hash(key, shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_moves_little() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let mut moved = 0;
        for &k in &keys {
            let a = jump_hash(k, 4);
            let b = jump_hash(k, 5);
            assert!(a < 4 && b < 5);
            assert_eq!(a, jump_hash(k, 4));
            if a != b {
                moved += 1;
                assert_eq!(b, 4, "keys only move to the new bucket");
            }
        }
        assert!(moved > 1500 && moved < 2500, "about 1/5 moves: {moved}");
        assert_eq!(jump_hash(42, 1), 0);
    }

    #[test]
    fn shard_for_uses_both_halves_of_the_id() {
        let a = (0..64)
            .map(|i| shard_for(1u128 << i, 0, 64))
            .collect::<Vec<_>>();
        let b = (64..128)
            .map(|i| shard_for(1u128 << i, 0, 64))
            .collect::<Vec<_>>();
        assert!(a.iter().any(|&s| s != a[0]) && b.iter().any(|&s| s != b[0]));
        assert_eq!(shard_for(7, 3, 1), 0);
    }
}
