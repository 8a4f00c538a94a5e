//! The local metadata log: commands appended to `<log.dirs>/__cluster_metadata/`
//! and replayed at start-up. This is the seam the Raft issue replaces with openraft's
//! log store; the record layout is private to this file.
//!
//! Record: `[len: u32 BE][crc32c(payload): u32 BE][payload: JSON Command]`.
//! Invariant: a record is acknowledged only after it is written and fdatasync'd; a torn
//! or corrupt tail (crash mid-write) is truncated on open.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::command::Command;

const FILE_NAME: &str = "fjord-metadata.log";
/// Upper bound on one record, far above any real command.
const RECORD_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Owned by the control-plane thread.
pub struct MetadataLog {
    file: File,
    path: PathBuf,
}

impl MetadataLog {
    /// Opens the log in `dir`, returning it and every intact command in order.
    pub fn open(dir: &Path) -> io::Result<(MetadataLog, Vec<Command>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (commands, good) = decode_all(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - good,
                "metadata log: truncating a torn or corrupt tail"
            );
            file.set_len(good as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok((MetadataLog { file, path }, commands))
    }

    /// Appends one command durably.
    pub fn append(&mut self, cmd: &Command) -> io::Result<()> {
        let payload = serde_json::to_vec(cmd).map_err(io::Error::other)?;
        let mut rec = Vec::with_capacity(payload.len() + 8);
        rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        rec.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        rec.extend_from_slice(&payload);
        self.file.write_all(&rec)?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Decodes records until the first torn or corrupt one; returns the commands and
/// the length of the intact prefix.
fn decode_all(bytes: &[u8]) -> (Vec<Command>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        let crc = u32::from_be_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        if len > RECORD_BYTES_MAX || bytes.len() - pos - 8 < len as usize {
            break;
        }
        let payload = &bytes[pos + 8..pos + 8 + len as usize];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(cmd) => out.push(cmd),
            Err(_) => break,
        }
        pos += 8 + len as usize;
    }
    (out, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fjord-mdlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn replays_and_truncates_torn_tail() {
        let dir = tmp("torn");
        let (mut log, cmds) = MetadataLog::open(&dir).expect("open");
        assert!(cmds.is_empty());
        log.append(&Command::AllocateProducerIds { count: 5 })
            .expect("append");
        log.append(&Command::AllocateProducerIds { count: 6 })
            .expect("append");
        let path = log.path().to_path_buf();
        drop(log);
        // Tear the last record.
        let len = std::fs::metadata(&path).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(len - 3).expect("truncate");
        let (mut log, cmds) = MetadataLog::open(&dir).expect("reopen");
        assert_eq!(cmds, vec![Command::AllocateProducerIds { count: 5 }]);
        log.append(&Command::AllocateProducerIds { count: 7 })
            .expect("append");
        drop(log);
        let (_, cmds) = MetadataLog::open(&dir).expect("reopen");
        assert_eq!(cmds.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
