//! Builders of valid magic-v2 record batches, for tests in this crate and its users.
//! Not used by the storage code itself.

use bytes::{BufMut, BytesMut};

fn put_varint(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

/// A batch with base offset 0, one uncompressed record per value (null keys, no
/// headers), record `i` stamped `base_timestamp + i`, no producer id, valid CRC-32C.
pub fn build_batch(base_timestamp: i64, values: &[&[u8]]) -> BytesMut {
    let n = values.len().max(1);
    build_batch_with(base_timestamp, base_timestamp + n as i64 - 1, values)
}

/// Like [`build_batch`] with an explicit batch `max_timestamp`.
pub fn build_batch_with(base_timestamp: i64, max_timestamp: i64, values: &[&[u8]]) -> BytesMut {
    let mut records = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut body = Vec::new();
        body.push(0u8); // attributes
        put_varint(&mut body, i as i64); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, v.len() as i64);
        body.extend_from_slice(v);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = BytesMut::with_capacity(61 + records.len());
    b.put_i64(0); // base offset
    b.put_i32((49 + records.len()) as i32);
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2);
    b.put_u32(0); // crc, patched below
    b.put_i16(0); // attributes
    b.put_i32(values.len().saturating_sub(1) as i32);
    b.put_i64(base_timestamp);
    b.put_i64(max_timestamp);
    b.put_i64(-1); // producer id
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(values.len() as i32);
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
