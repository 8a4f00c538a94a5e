//! The leader-epoch cache of a partition: for each leader epoch, the first offset
//! written in it. Persisted in Kafka's own `leader-epoch-checkpoint` file format
//! (version line, count line, then `epoch start_offset` lines), replaced atomically.
//! Owned by the partition's shard. OffsetForLeaderEpoch reads it, and replication
//! will use it to truncate diverging followers.
//!
//! Invariant: epochs and start offsets both strictly increase along the entries.

use std::path::{Path, PathBuf};

const FILE_NAME: &str = "leader-epoch-checkpoint";
const VERSION: u32 = 0;

#[derive(Debug)]
pub struct LeaderEpochCache {
    /// The partition directory holding the checkpoint.
    dir: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`; an unreadable file is reported and ignored (the
    /// cache is rebuilt from the next epoch on).
    pub fn open(dir: &Path) -> LeaderEpochCache {
        let path = dir.join(FILE_NAME);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).unwrap_or_else(|why| {
                tracing::warn!(path = %path.display(), %why, "ignoring unreadable leader-epoch-checkpoint");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries,
        }
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> std::io::Result<()> {
        if self.latest_epoch().is_some_and(|e| e >= epoch) || epoch < 0 {
            return Ok(());
        }
        // A later epoch starting at the same offset replaces the earlier, empty one.
        self.entries.retain(|&(_, s)| s < start_offset);
        self.entries.push((epoch, start_offset));
        self.write()
    }

    /// The offset where `epoch` starts, if it is the latest epoch here.
    pub fn start_of_latest(&self, epoch: i32) -> Option<i64> {
        self.entries.last().filter(|e| e.0 == epoch).map(|e| e.1)
    }

    /// Drops the epochs that start at or after `end` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end: i64) -> std::io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|&(_, s)| s < end);
        if self.entries.len() == before {
            return Ok(());
        }
        self.write()
    }

    /// Drops every epoch (the log was emptied and starts afresh).
    pub fn clear(&mut self) -> std::io::Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.write()
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` and the offset where
    /// the next epoch starts (the log end for the latest epoch); (-1, -1) if unknown.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if requested < 0 || self.entries.is_empty() {
            return UNDEFINED;
        }
        if Some(requested) == self.latest_epoch() {
            return (requested, log_end_offset);
        }
        let Some(&(_, higher_start)) = self.entries.iter().find(|&&(e, _)| e > requested) else {
            return UNDEFINED;
        };
        match self.entries.iter().rev().find(|&&(e, _)| e <= requested) {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested, higher_start),
        }
    }

    fn write(&self) -> std::io::Result<()> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        fjord_storage::replace_file(&self.dir, FILE_NAME, text.as_bytes())
    }
}

fn parse(text: &str) -> Result<Vec<(i32, i64)>, String> {
    let mut lines = text.lines();
    let version: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no version line")?;
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no count line")?;
    let mut out: Vec<(i32, i64)> = Vec::with_capacity(count.min(1024));
    for line in lines.take(count) {
        let mut parts = line.split_whitespace();
        let epoch = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("bad epoch")?;
        let start = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("bad start offset")?;
        if out.last().is_some_and(|&(e, s)| e >= epoch || s > start) {
            return Err("entries out of order".into());
        }
        out.push((epoch, start));
    }
    if out.len() != count {
        return Err("fewer entries than counted".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafka_and_the_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("fjord-lec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut c = LeaderEpochCache::open(&dir);
        assert_eq!(c.end_offset_for(0, 10), (-1, -1));
        c.assign(0, 0).expect("assign");
        c.assign(2, 100).expect("assign");
        c.assign(1, 50).expect("older epochs are ignored");
        c.assign(5, 250).expect("assign");
        assert_eq!(c.end_offset_for(5, 300), (5, 300));
        assert_eq!(c.end_offset_for(0, 300), (0, 100));
        assert_eq!(
            c.end_offset_for(1, 300),
            (0, 100),
            "floor epoch, next epoch's start"
        );
        assert_eq!(c.end_offset_for(3, 300), (2, 250));
        assert_eq!(c.end_offset_for(6, 300), (-1, -1));
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).expect("file");
        assert_eq!(text, "0\n3\n0 0\n2 100\n5 250\n");
        let again = LeaderEpochCache::open(&dir);
        assert_eq!(again.entries, c.entries);
        std::fs::write(dir.join(FILE_NAME), "0\n2\n3 10\n1 5\n").expect("write");
        assert!(
            LeaderEpochCache::open(&dir).entries.is_empty(),
            "insane files are ignored"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
