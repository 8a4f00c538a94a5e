//! A replicated partition's high watermark as last known here, kept in the
//! partition directory (`high-watermark-checkpoint`: a version line, then the
//! offset), replaced atomically. Kafka keeps the same figure per log directory in
//! `replication-offset-checkpoint` for the same reason: a replica that opens its log
//! starts from it, so a replica that becomes leader while the ISR is under
//! `min.insync.replicas` (an eligible leader replica, KIP-966), where the high
//! watermark cannot advance, still serves what was committed.
//!
//! The checkpoint is a lower bound: it is written after the high watermark was
//! reached (periodically and at clean shutdown), and read as at most the log end.
//! Owned by the partition's shard; the writes run on the blocking pool.

use std::path::Path;

const FILE_NAME: &str = "high-watermark-checkpoint";
const VERSION: u32 = 0;

/// The checkpointed high watermark in `dir`, if a readable one is there.
pub fn read(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(FILE_NAME)).ok()?;
    parse(&text).or_else(|| {
        tracing::warn!(dir = %dir.display(), "ignoring an unreadable high-watermark-checkpoint");
        None
    })
}

/// Replaces the checkpoint in `dir` with `hw` (durably: written, synced, renamed).
pub fn write(dir: &Path, hw: i64) -> std::io::Result<()> {
    fjord_storage::replace_file(dir, FILE_NAME, format!("{VERSION}\n{hw}\n").as_bytes())
}

fn parse(text: &str) -> Option<i64> {
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<u32>().ok()? != VERSION {
        return None;
    }
    lines
        .next()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|hw| *hw >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unreadable_files() {
        let dir = std::env::temp_dir().join(format!("fjord-hwcp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(read(&dir), None);
        write(&dir, 42).expect("write");
        assert_eq!(read(&dir), Some(42));
        std::fs::write(dir.join(FILE_NAME), "7\n1\n").expect("write");
        assert_eq!(read(&dir), None, "unknown version");
        std::fs::write(dir.join(FILE_NAME), "0\n-3\n").expect("write");
        assert_eq!(read(&dir), None, "negative");
        std::fs::remove_dir_all(&dir).expect("remove");
    }
}
