//! Pure view of an Apache Kafka record batch (magic v2) and in-place byte patching.
//!
//! Layout (all big-endian), from Kafka's `DefaultRecordBatch`:
//! ```text
//! 0  base_offset i64        8  batch_length i32     12 partition_leader_epoch i32
//! 16 magic i8              17  crc u32 (CRC-32C over bytes 21..end)
//! 21 attributes i16        23  last_offset_delta i32
//! 27 base_timestamp i64    35  max_timestamp i64    43 producer_id i64
//! 51 producer_epoch i16    53  base_sequence i32    57 records_count i32
//! 61 records...
//! ```
//! `batch_length` counts the bytes after the length field, so a batch occupies
//! `12 + batch_length` bytes. Only base offset and leader epoch lie outside the CRC.

use std::fmt;
use std::ops::Range;

/// Bytes before `batch_length` counts (base offset + length field).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header.
pub const HEADER_SIZE: usize = 61;
/// Smallest legal `batch_length` (a header with no records).
pub const BATCH_LENGTH_MIN: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// Largest `batch_length` we accept; anything larger is treated as corruption.
pub const BATCH_LENGTH_MAX: i32 = i32::MAX - LOG_OVERHEAD as i32;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORDS_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why bytes are not a well-formed v2 batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length needs.
    Truncated { needed: usize, available: usize },
    /// Magic byte is not 2.
    BadMagic(i8),
    /// `batch_length` below the header size or absurdly large.
    BadLength(i32),
    /// `last_offset_delta` negative.
    BadOffsetDelta(i32),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { needed, available } => {
                write!(f, "truncated batch: need {needed} bytes, have {available}")
            }
            BatchError::BadMagic(m) => write!(f, "unsupported record batch magic {m}"),
            BatchError::BadLength(l) => write!(f, "invalid batch length {l}"),
            BatchError::BadOffsetDelta(d) => write!(f, "invalid last offset delta {d}"),
        }
    }
}

impl std::error::Error for BatchError {}

/// Decoded fixed header of a v2 batch. A copy: patching the bytes does not update it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the fixed header. Requires `buf.len() >= 61`; does not require the whole
    /// batch to be present (see [`split_batches`]) and does not check the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        let magic = buf[OFF_MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::BadMagic(magic));
        }
        let batch_length = be_i32(buf, OFF_LENGTH);
        if !(BATCH_LENGTH_MIN..=BATCH_LENGTH_MAX).contains(&batch_length) {
            return Err(BatchError::BadLength(batch_length));
        }
        let last_offset_delta = be_i32(buf, OFF_LAST_OFFSET_DELTA);
        if last_offset_delta < 0 {
            return Err(BatchError::BadOffsetDelta(last_offset_delta));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, OFF_BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, OFF_LEADER_EPOCH),
            magic,
            crc: be_i32(buf, OFF_CRC) as u32,
            attributes: be_i16(buf, OFF_ATTRIBUTES),
            last_offset_delta,
            base_timestamp: be_i64(buf, OFF_BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, OFF_MAX_TIMESTAMP),
            producer_id: be_i64(buf, OFF_PRODUCER_ID),
            producer_epoch: be_i16(buf, OFF_PRODUCER_EPOCH),
            base_sequence: be_i32(buf, OFF_BASE_SEQUENCE),
            records_count: be_i32(buf, OFF_RECORDS_COUNT),
        })
    }

    /// Offset of the last record the batch covers.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset following this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Bytes the batch occupies in a log: `12 + batch_length`.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    /// True when the batch's timestamps are broker LogAppendTime.
    pub fn timestamp_type_log_append(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
}

/// CRC-32C over `batch[21..]`, compared with the stored CRC. The slice must be exactly
/// one batch; false if it is too short to hold a header.
pub fn crc_is_valid(batch: &[u8]) -> bool {
    if batch.len() < HEADER_SIZE {
        return false;
    }
    let stored = be_i32(batch, OFF_CRC) as u32;
    crc32c::crc32c(&batch[OFF_ATTRIBUTES..]) == stored
}

/// Visits every batch of a record-set blob whose bytes must all belong to whole
/// batches, in order: its byte range and its header. A trailing partial batch is an
/// error, unlike a fetch response's tail.
fn each_batch(buf: &[u8], mut f: impl FnMut(Range<usize>, BatchHeader)) -> Result<(), BatchError> {
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let h = BatchHeader::parse(rest)?;
        let size = h.total_size();
        if size > rest.len() {
            return Err(BatchError::Truncated {
                needed: size,
                available: rest.len(),
            });
        }
        f(pos..pos + size, h);
        pos += size;
    }
    Ok(())
}

/// Splits a record-set blob into whole batches (see [`each_batch`]).
pub fn split_batches(buf: &[u8]) -> Result<Vec<Range<usize>>, BatchError> {
    let mut out = Vec::new();
    each_batch(buf, |r, _| out.push(r))?;
    Ok(out)
}

/// Parses every batch header of a record-set blob whose bytes must all belong to whole
/// batches (as [`split_batches`] requires), in order.
pub fn parse_headers(buf: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut out = Vec::new();
    each_batch(buf, |_, h| out.push(h))?;
    Ok(out)
}

/// Writes the fields a broker owns into a stored batch, once: base offset, leader
/// epoch and, with `log_append_time`, LogAppendTime with its CRC. `header` is the
/// batch's parsed header and is updated to match the bytes (no re-parse).
pub fn assign(
    batch: &mut [u8],
    header: &mut BatchHeader,
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) {
    set_base_offset(batch, base_offset);
    set_partition_leader_epoch(batch, leader_epoch);
    header.base_offset = base_offset;
    header.partition_leader_epoch = leader_epoch;
    if let Some(now) = log_append_time {
        header.crc = set_log_append_time(batch, now);
        header.attributes |= ATTR_TIMESTAMP_TYPE;
        header.max_timestamp = now;
    }
}

/// Writes `base_offset` (outside the CRC). Panics if `batch` is shorter than a header.
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
}

/// Writes `partition_leader_epoch` (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with `max_timestamp = now_ms` and recomputes the CRC,
/// like Kafka's `DefaultRecordBatch.setMaxTimestamp`. Records keep their deltas; readers
/// use the batch's max timestamp for every record of a LogAppendTime batch. Returns the
/// new CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) -> u32 {
    let attrs = be_i16(batch, OFF_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::build_batch;

    #[test]
    fn parses_a_built_batch() {
        let b = build_batch(1_000, &[b"a", b"bc", b"def"]);
        let h = BatchHeader::parse(&b).expect("valid batch");
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.magic, 2);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!((h.last_offset(), h.next_offset()), (2, 3));
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_000, 1_002));
        assert_eq!(h.producer_id, -1);
        assert!(!h.is_transactional() && !h.is_control() && !h.timestamp_type_log_append());
        assert_eq!(h.compression(), 0);
        assert!(crc_is_valid(&b));
    }

    #[test]
    fn rejects_bad_input() {
        let b = build_batch(0, &[b"x"]);
        assert!(matches!(
            BatchHeader::parse(&b[..60]),
            Err(BatchError::Truncated { .. })
        ));
        let mut bad = b.clone();
        bad[16] = 1;
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::BadMagic(1)));
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::BadLength(48)));
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::BadLength(-5)));
        let mut flipped = b.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(!crc_is_valid(&flipped));
        assert!(!crc_is_valid(&b[..40]));
    }

    #[test]
    fn splits_record_sets() {
        let mut set = build_batch(0, &[b"a"]);
        let second = build_batch(5, &[b"b", b"c"]);
        let first_len = set.len();
        set.extend_from_slice(&second);
        let ranges = split_batches(&set).expect("two whole batches");
        assert_eq!(ranges, vec![0..first_len, first_len..set.len()]);
        assert_eq!(split_batches(&[]), Ok(vec![]));
        assert!(matches!(
            split_batches(&set[..set.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            split_batches(&set[..first_len + 10]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn patches_outside_and_inside_the_crc() {
        let mut b = build_batch(100, &[b"a", b"b"]);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        assert!(
            crc_is_valid(&b),
            "base offset and epoch lie outside the CRC"
        );
        let h = BatchHeader::parse(&b).expect("valid");
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.last_offset()),
            (42, 7, 43)
        );

        set_log_append_time(&mut b, 9_999);
        assert!(crc_is_valid(&b), "CRC recomputed");
        let h = BatchHeader::parse(&b).expect("valid");
        assert!(h.timestamp_type_log_append());
        assert_eq!(h.max_timestamp, 9_999);
        assert_eq!(h.base_timestamp, 100, "records keep their own timestamps");
        assert_eq!(h.compression(), 0);
    }

    #[test]
    fn assign_keeps_the_header_copy_equal_to_the_bytes() {
        for lat in [None, Some(12_345)] {
            let mut b = build_batch(100, &[b"a", b"b", b"c"]);
            let mut headers = parse_headers(&b).expect("one batch");
            assert_eq!(headers.len(), 1);
            assign(&mut b, &mut headers[0], 77, 9, lat);
            assert_eq!(BatchHeader::parse(&b).expect("valid"), headers[0]);
            assert!(crc_is_valid(&b));
            assert_eq!(headers[0].last_offset(), 79);
        }
        let mut set = build_batch(0, &[b"a"]);
        set.extend_from_slice(&build_batch(5, &[b"b", b"c"]));
        let hs = parse_headers(&set).expect("two");
        assert_eq!(
            hs.iter().map(BatchHeader::total_size).sum::<usize>(),
            set.len()
        );
        assert!(parse_headers(&set[..set.len() - 1]).is_err());
    }
}
