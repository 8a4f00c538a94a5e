//! `__consumer_offsets` records in Kafka's schemas, encoded by hand. Pure.
//!
//! A record key starts with an int16 record type followed by the key's fields:
//! type 0 or 1 = `OffsetCommitKey` (group, topic, partition), type 2 = `GroupMetadataKey`
//! (group). Values start with an int16 schema version. A deleted offset or group is a
//! record with the key and a null value (tombstone).
//!
//! Written versions are Kafka 4.1's: `OffsetCommitValue` v3 (v1 when an expire
//! timestamp is set, OffsetCommit v2–4 `retention_time_ms`) and `GroupMetadataValue`
//! v3. Decoding accepts every version Kafka defines (v4 is flexible), so a log written
//! by Kafka reads back. Other record types (KIP-848 groups, share groups) are
//! [`RecordKey::Other`] and are skipped.

use bytes::{Buf, BufMut, Bytes, BytesMut};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
    /// A record type this broker does not use.
    Other(i16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1: none.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// -1: none (then v3 is written).
    pub expire_timestamp_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A record that does not follow the schema (truncated, bad length, bad version).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

const OFFSET_COMMIT_KEY: i16 = 1;
const GROUP_METADATA_KEY: i16 = 2;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

impl RecordKey {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                b.put_i16(OFFSET_COMMIT_KEY);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            RecordKey::GroupMetadata { group } => {
                b.put_i16(GROUP_METADATA_KEY);
                put_str(&mut b, group);
            }
            RecordKey::Other(t) => b.put_i16(*t),
        }
        b.freeze()
    }

    pub fn decode(mut buf: &[u8]) -> Result<RecordKey, Malformed> {
        let r = &mut buf;
        match get_i16(r)? {
            0 | 1 => Ok(RecordKey::OffsetCommit {
                group: get_str(r, false)?,
                topic: get_str(r, false)?,
                partition: get_i32(r)?,
            }),
            2 => Ok(RecordKey::GroupMetadata {
                group: get_str(r, false)?,
            }),
            t if t >= 0 => Ok(RecordKey::Other(t)),
            _ => Err(Malformed("negative record type")),
        }
    }
}

impl OffsetCommitValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        if self.expire_timestamp_ms >= 0 {
            b.put_i16(1);
            b.put_i64(self.offset);
            put_str(&mut b, &self.metadata);
            b.put_i64(self.commit_timestamp_ms);
            b.put_i64(self.expire_timestamp_ms);
        } else {
            b.put_i16(3);
            b.put_i64(self.offset);
            b.put_i32(self.leader_epoch);
            put_str(&mut b, &self.metadata);
            b.put_i64(self.commit_timestamp_ms);
        }
        b.freeze()
    }

    pub fn decode(mut buf: &[u8]) -> Result<OffsetCommitValue, Malformed> {
        let r = &mut buf;
        let version = get_i16(r)?;
        if !(0..=4).contains(&version) {
            return Err(Malformed("unknown OffsetCommitValue version"));
        }
        let flexible = version >= 4;
        let offset = get_i64(r)?;
        let leader_epoch = if version >= 3 { get_i32(r)? } else { -1 };
        let metadata = get_str(r, flexible)?;
        let commit_timestamp_ms = get_i64(r)?;
        let expire_timestamp_ms = if version == 1 { get_i64(r)? } else { -1 };
        if flexible {
            skip_tagged(r)?;
        }
        Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

impl GroupMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_nullable_str(&mut b, self.protocol.as_deref());
        put_nullable_str(&mut b, self.leader.as_deref());
        b.put_i64(self.current_state_timestamp_ms);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_nullable_str(&mut b, m.group_instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            b.put_i32(m.subscription.len() as i32);
            b.put_slice(&m.subscription);
            b.put_i32(m.assignment.len() as i32);
            b.put_slice(&m.assignment);
        }
        b.freeze()
    }

    pub fn decode(mut buf: &[u8]) -> Result<GroupMetadataValue, Malformed> {
        let r = &mut buf;
        let version = get_i16(r)?;
        if !(0..=4).contains(&version) {
            return Err(Malformed("unknown GroupMetadataValue version"));
        }
        let flex = version >= 4;
        let protocol_type = get_str(r, flex)?;
        let generation = get_i32(r)?;
        let protocol = get_nullable_str(r, flex)?;
        let leader = get_nullable_str(r, flex)?;
        let current_state_timestamp_ms = if version >= 2 { get_i64(r)? } else { -1 };
        let n = get_len(r, flex)?.ok_or(Malformed("null members"))?;
        let mut members = Vec::with_capacity(n.min(r.len()));
        for _ in 0..n {
            let member_id = get_str(r, flex)?;
            let group_instance_id = if version >= 3 {
                get_nullable_str(r, flex)?
            } else {
                None
            };
            let client_id = get_str(r, flex)?;
            let client_host = get_str(r, flex)?;
            let rebalance_timeout_ms = if version >= 1 { get_i32(r)? } else { -1 };
            let session_timeout_ms = get_i32(r)?;
            let subscription = get_bytes(r, flex)?;
            let assignment = get_bytes(r, flex)?;
            if flex {
                skip_tagged(r)?;
            }
            members.push(MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                // v0 has no rebalance timeout: it was the session timeout.
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                    session_timeout_ms
                } else {
                    rebalance_timeout_ms
                },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        if flex {
            skip_tagged(r)?;
        }
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

/// The topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`, any
/// version: they all start with int16 version, then an array of topic names).
pub fn subscription_topics(mut buf: &[u8]) -> Result<Vec<String>, Malformed> {
    let r = &mut buf;
    let _version = get_i16(r)?;
    let n = get_len(r, false)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(n.min(r.len()));
    for _ in 0..n {
        topics.push(get_str(r, false)?);
    }
    Ok(topics)
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn need(r: &[u8], n: usize) -> Result<(), Malformed> {
    if r.len() < n {
        Err(Malformed("truncated record"))
    } else {
        Ok(())
    }
}

fn get_i16(r: &mut &[u8]) -> Result<i16, Malformed> {
    need(r, 2)?;
    Ok(r.get_i16())
}

fn get_i32(r: &mut &[u8]) -> Result<i32, Malformed> {
    need(r, 4)?;
    Ok(r.get_i32())
}

fn get_i64(r: &mut &[u8]) -> Result<i64, Malformed> {
    need(r, 8)?;
    Ok(r.get_i64())
}

fn get_uvarint(r: &mut &[u8]) -> Result<u64, Malformed> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        need(r, 1)?;
        let b = r.get_u8();
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Malformed("varint too long"))
}

/// A length: int16/int32 (non-flexible; `wide` for bytes and arrays) or a compact
/// uvarint (flexible). None = null.
fn get_len_sized(r: &mut &[u8], flexible: bool, wide: bool) -> Result<Option<usize>, Malformed> {
    let n: i64 = if flexible {
        get_uvarint(r)? as i64 - 1
    } else if wide {
        get_i32(r)? as i64
    } else {
        get_i16(r)? as i64
    };
    if n < -1 {
        return Err(Malformed("negative length"));
    }
    Ok((n >= 0).then_some(n as usize))
}

fn get_len(r: &mut &[u8], flexible: bool) -> Result<Option<usize>, Malformed> {
    get_len_sized(r, flexible, true)
}

fn take(r: &mut &[u8], n: usize) -> Result<Bytes, Malformed> {
    need(r, n)?;
    let out = Bytes::copy_from_slice(&r[..n]);
    r.advance(n);
    Ok(out)
}

fn get_nullable_str(r: &mut &[u8], flexible: bool) -> Result<Option<String>, Malformed> {
    match get_len_sized(r, flexible, false)? {
        None => Ok(None),
        Some(n) => {
            let b = take(r, n)?;
            String::from_utf8(b.to_vec())
                .map(Some)
                .map_err(|_| Malformed("string is not UTF-8"))
        }
    }
}

fn get_str(r: &mut &[u8], flexible: bool) -> Result<String, Malformed> {
    get_nullable_str(r, flexible)?.ok_or(Malformed("null string"))
}

fn get_bytes(r: &mut &[u8], flexible: bool) -> Result<Bytes, Malformed> {
    match get_len(r, flexible)? {
        None => Ok(Bytes::new()),
        Some(n) => take(r, n),
    }
}

fn skip_tagged(r: &mut &[u8]) -> Result<(), Malformed> {
    let n = get_uvarint(r)?;
    for _ in 0..n {
        let _tag = get_uvarint(r)?;
        let size = get_uvarint(r)? as usize;
        take(r, size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_commit_key_bytes() {
        let k = RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let b = k.encode();
        assert_eq!(&b[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(RecordKey::decode(&b), Ok(k));
        // Key type 0 is the legacy spelling of the same key.
        assert!(matches!(
            RecordKey::decode(&[0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]),
            Ok(RecordKey::OffsetCommit { .. })
        ));
    }

    #[test]
    fn group_metadata_key_bytes() {
        let k = RecordKey::GroupMetadata { group: "ab".into() };
        assert_eq!(&k.encode()[..], &[0, 2, 0, 2, b'a', b'b']);
        assert_eq!(RecordKey::decode(&k.encode()), Ok(k));
        assert_eq!(RecordKey::decode(&[0, 5, 1, 2]), Ok(RecordKey::Other(5)));
        assert!(RecordKey::decode(&[0, 2, 0, 9, b'a']).is_err());
        assert!(RecordKey::decode(&[0]).is_err());
    }

    #[test]
    fn offset_commit_value_v3_bytes() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: -1,
        };
        let b = v.encode();
        let mut expected = vec![0, 3];
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&7i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'm']);
        expected.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(&b[..], &expected[..]);
        assert_eq!(OffsetCommitValue::decode(&b), Ok(v));
    }

    #[test]
    fn offset_commit_value_v1_carries_expiry() {
        let v = OffsetCommitValue {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 5,
            expire_timestamp_ms: 9,
        };
        let b = v.encode();
        assert_eq!(&b[..2], &[0, 1]);
        assert_eq!(b.len(), 2 + 8 + 2 + 8 + 8);
        assert_eq!(OffsetCommitValue::decode(&b), Ok(v));
    }

    #[test]
    fn offset_commit_value_v4_is_flexible() {
        // v4: offset, leaderEpoch, compact string "xy", commitTimestamp, no tags.
        let mut b = vec![0, 4];
        b.extend_from_slice(&10i64.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&[3, b'x', b'y']);
        b.extend_from_slice(&77i64.to_be_bytes());
        b.push(0);
        let v = OffsetCommitValue::decode(&b).expect("v4");
        assert_eq!(
            (v.offset, v.metadata.as_str(), v.commit_timestamp_ms),
            (10, "xy", 77)
        );
        assert!(OffsetCommitValue::decode(&b[..b.len() - 2]).is_err());
        assert!(OffsetCommitValue::decode(&[0, 9]).is_err());
    }

    fn sample_group() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 123,
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(&[1, 2]),
                assignment: Bytes::from_static(&[3]),
            }],
        }
    }

    #[test]
    fn group_metadata_value_v3_bytes() {
        let v = sample_group();
        let b = v.encode();
        let mut e = vec![0, 3, 0, 8];
        e.extend_from_slice(b"consumer");
        e.extend_from_slice(&4i32.to_be_bytes());
        e.extend_from_slice(&[0, 5]);
        e.extend_from_slice(b"range");
        e.extend_from_slice(&[0, 2, b'm', b'1']);
        e.extend_from_slice(&123i64.to_be_bytes());
        e.extend_from_slice(&1i32.to_be_bytes());
        e.extend_from_slice(&[0, 2, b'm', b'1']);
        e.extend_from_slice(&[0xff, 0xff]); // null group.instance.id
        e.extend_from_slice(&[0, 1, b'c', 0, 10]);
        e.extend_from_slice(b"/127.0.0.1");
        e.extend_from_slice(&300_000i32.to_be_bytes());
        e.extend_from_slice(&45_000i32.to_be_bytes());
        e.extend_from_slice(&[0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 3]);
        assert_eq!(&b[..], &e[..]);
        assert_eq!(GroupMetadataValue::decode(&b), Ok(v));
    }

    #[test]
    fn empty_group_value_round_trips() {
        let v = GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: -1,
            members: vec![],
        };
        let b = v.encode();
        assert_eq!(GroupMetadataValue::decode(&b), Ok(v));
        for n in 0..b.len() {
            assert!(GroupMetadataValue::decode(&b[..n]).is_err());
        }
    }

    #[test]
    fn truncated_group_values_are_malformed_not_panics() {
        let b = sample_group().encode();
        for n in 0..b.len() {
            assert!(GroupMetadataValue::decode(&b[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn subscription_topics_are_read() {
        let mut b = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(subscription_topics(&b), Ok(vec!["a".into(), "bc".into()]));
        assert!(subscription_topics(&[0, 1, 0, 0, 0, 9]).is_err());
    }
}
