//! Fetch sessions (KIP-227), the part of Fetch that lets a consumer of many partitions
//! send only what changed. Pure: no I/O; each shard owns one [`FetchSessions`] cache
//! (`Shard::fetch_sessions`) for the connections it serves, and `fetch.rs` calls it
//! before and after the reads of a consumer Fetch.
//!
//! The request's (session id, epoch) decides:
//! - (0, -1): no session; the request names every partition and the answer all of them.
//! - (0, 0), or (id, 0) which first closes `id`: a full fetch that opens a new session of
//!   its partitions when a slot is free (else the answer carries session id 0).
//! - (id, -1): closes `id`, then a full fetch without a session.
//! - (id, epoch > 0): an incremental fetch. The epoch must be the session's next one
//!   (else INVALID_FETCH_SESSION_EPOCH), the session must be here (else
//!   FETCH_SESSION_ID_NOT_FOUND: a connection that moved to another shard, or an
//!   evicted session, starts over with a full fetch). The request's partitions are
//!   added to or updated in the session, then its forgotten topics removed, and every
//!   session partition is read; the answer names only the partitions with records, an
//!   error, or a high watermark, last stable or log start offset that changed since the
//!   session last named them. Partitions that returned records move to the end of the
//!   session, so a small budget does not starve the later ones.
//!
//! Invariants: a session id is positive and `id % shards == shard`, so ids of different
//! shards never collide; a shard holds at most `ceil(slots / shards)` sessions, each of
//! at most `max_partitions` partitions (more are answered POLICY_VIOLATION, not kept);
//! a full cache evicts the least recently used session idle for [`EVICTION_AFTER`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// A full cache may evict a session idle this long (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default, an internal constant there).
pub const EVICTION_AFTER: Duration = Duration::from_secs(120);

/// What a consumer Fetch is, once its session fields are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// Answer every partition; session id 0.
    Sessionless,
    /// Answer every partition and open a session of them if a slot is free.
    New,
    /// The request now names every partition of session `id`; answer what changed.
    Incremental { id: i32 },
}

/// One partition of a session: what the client last asked and what it was last told.
#[derive(Clone, Debug)]
struct Cached {
    topic: TopicName,
    topic_id: Uuid,
    fetch: FetchPartition,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

#[derive(Debug)]
struct Session {
    /// Topics named by id (request v13+), not by name.
    by_id: bool,
    next_epoch: i32,
    partitions: Vec<Cached>,
    last_used: Instant,
}

/// A session partition's identity: its topic as the session names topics, and its index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Id(Uuid, i32),
    Name(TopicName, i32),
}

impl Session {
    fn key(&self, topic: &TopicName, topic_id: &Uuid, partition: i32) -> Key {
        if self.by_id {
            Key::Id(*topic_id, partition)
        } else {
            Key::Name(topic.clone(), partition)
        }
    }

    fn key_of(&self, c: &Cached) -> Key {
        self.key(&c.topic, &c.topic_id, c.fetch.partition)
    }

    /// Each partition's position, so a request costs one pass, not one per partition.
    fn positions(&self) -> HashMap<Key, usize> {
        self.partitions
            .iter()
            .enumerate()
            .map(|(i, c)| (self.key_of(c), i))
            .collect()
    }
}

/// One shard's fetch sessions. Lives on the shard's thread.
#[derive(Debug)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    slots: usize,
    shard: usize,
    shards: usize,
    max_partitions: usize,
}

/// Whether an incremental fetch answers partition `p`, last told `c`: it has records,
/// an error, or offsets the client has not been told.
fn changed(c: &Cached, p: &PartitionData) -> bool {
    p.records.as_ref().is_some_and(|r| !r.is_empty())
        || p.error_code != 0
        || p.high_watermark != c.high_watermark
        || p.last_stable_offset != c.last_stable_offset
        || p.log_start_offset != c.log_start_offset
}

/// Kafka's next session epoch: wraps from `i32::MAX` to 1.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessions {
    /// `slots`: `max.incremental.fetch.session.cache.slots` for the whole node.
    pub fn new(slots: usize, shard: usize, shards: usize, max_partitions: usize) -> Self {
        let shards = shards.max(1);
        FetchSessions {
            sessions: HashMap::new(),
            slots: slots.div_ceil(shards),
            shard,
            shards,
            max_partitions,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Reads the request's session fields. For an incremental fetch, applies the
    /// request's changes to the session and rewrites `req.topics` to every session
    /// partition (then any the session had no room for). `Err` is the error code of
    /// the whole answer.
    pub fn prepare(
        &mut self,
        version: i16,
        req: &mut FetchRequest,
        now: Instant,
    ) -> Result<Context, i16> {
        let (id, epoch) = (req.session_id, req.session_epoch);
        if version < 7 {
            return Ok(Context::Sessionless);
        }
        match epoch {
            -1 => {
                self.sessions.remove(&id);
                return Ok(Context::Sessionless);
            }
            0 => {
                self.sessions.remove(&id);
                return Ok(Context::New);
            }
            e if e < -1 => return Err(ResponseError::InvalidFetchSessionEpoch.code()),
            _ => {}
        }
        let mine = id > 0 && id as usize % self.shards == self.shard;
        let Some(session) = self.sessions.get_mut(&id).filter(|_| mine) else {
            return Err(ResponseError::FetchSessionIdNotFound.code());
        };
        if epoch != session.next_epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        }
        if session.by_id != (version >= 13) {
            return Err(ResponseError::FetchSessionTopicIdError.code());
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used = now;
        let mut extra: Vec<FetchTopic> = Vec::new();
        let mut positions = session.positions();
        for t in &req.topics {
            for p in &t.partitions {
                let key = session.key(&t.topic, &t.topic_id, p.partition);
                match positions.get(&key) {
                    Some(&i) => session.partitions[i].fetch = p.clone(),
                    None if session.partitions.len() < self.max_partitions => {
                        positions.insert(key, session.partitions.len());
                        session.partitions.push(Cached {
                            topic: t.topic.clone(),
                            topic_id: t.topic_id,
                            fetch: p.clone(),
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                        })
                    }
                    None => extra.push(
                        FetchTopic::default()
                            .with_topic(t.topic.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(vec![p.clone()]),
                    ),
                }
            }
        }
        // As Kafka: the request's partitions first, then the forgotten ones (a partition
        // both sent and forgotten leaves the session).
        let forgotten: std::collections::HashSet<Key> = req
            .forgotten_topics_data
            .iter()
            .flat_map(|f| {
                f.partitions
                    .iter()
                    .map(|p| session.key(&f.topic, &f.topic_id, *p))
            })
            .collect();
        if !forgotten.is_empty() {
            let keys: Vec<Key> = session
                .partitions
                .iter()
                .map(|c| session.key_of(c))
                .collect();
            let mut keys = keys.into_iter();
            session
                .partitions
                .retain(|_| keys.next().is_none_or(|k| !forgotten.contains(&k)));
        }
        // Every session partition, grouped by topic in order of first appearance.
        let mut topics: Vec<FetchTopic> = Vec::new();
        for c in &session.partitions {
            let same = |t: &FetchTopic| {
                if session.by_id {
                    t.topic_id == c.topic_id
                } else {
                    t.topic == c.topic
                }
            };
            match topics.iter_mut().find(|t| same(t)) {
                Some(t) => t.partitions.push(c.fetch.clone()),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(c.topic.clone())
                        .with_topic_id(c.topic_id)
                        .with_partitions(vec![c.fetch.clone()]),
                ),
            }
        }
        topics.extend(extra);
        req.topics = topics;
        req.forgotten_topics_data.clear();
        Ok(Context::Incremental { id })
    }

    /// After the reads of `req` (as `prepare` left it), whose answers are `responses`
    /// (one per request topic, partitions in request order). Returns the session id to
    /// answer with.
    pub fn finish(
        &mut self,
        ctx: Context,
        version: i16,
        req: &FetchRequest,
        responses: &mut Vec<FetchableTopicResponse>,
        now: Instant,
    ) -> i32 {
        match ctx {
            Context::Sessionless => 0,
            Context::New => self.open(version, req, responses, now),
            Context::Incremental { id } => {
                let Some(session) = self.sessions.get_mut(&id) else {
                    return 0;
                };
                let mut moved = Vec::new();
                let positions = session.positions();
                for (t, resp) in req.topics.iter().zip(responses.iter_mut()) {
                    resp.partitions.retain(|p| {
                        let key = session.key(&t.topic, &t.topic_id, p.partition_index);
                        let Some(&i) = positions.get(&key) else {
                            return true; // not kept in the session: an error
                        };
                        let c = &mut session.partitions[i];
                        let has_records = p.records.as_ref().is_some_and(|r| !r.is_empty());
                        let changed = changed(c, p);
                        if changed {
                            c.high_watermark = p.high_watermark;
                            c.last_stable_offset = p.last_stable_offset;
                            c.log_start_offset = p.log_start_offset;
                        }
                        if has_records {
                            moved.push(i);
                        }
                        changed
                    });
                }
                moved.sort_unstable();
                let mut tail: Vec<Cached> = moved
                    .into_iter()
                    .rev()
                    .map(|i| session.partitions.remove(i))
                    .collect();
                tail.reverse();
                session.partitions.extend(tail);
                responses.retain(|t| !t.partitions.is_empty());
                id
            }
        }
    }

    /// What `finish` would answer to `responses`, leaving the session as it is: the
    /// response a client quota charges for before it is sent.
    pub fn preview(
        &self,
        ctx: Context,
        req: &FetchRequest,
        responses: &[FetchableTopicResponse],
    ) -> Vec<FetchableTopicResponse> {
        let mut out = responses.to_vec();
        let Context::Incremental { id } = ctx else {
            return out;
        };
        let Some(session) = self.sessions.get(&id) else {
            return out;
        };
        let positions = session.positions();
        for (t, resp) in req.topics.iter().zip(out.iter_mut()) {
            resp.partitions.retain(|p| {
                let key = session.key(&t.topic, &t.topic_id, p.partition_index);
                positions
                    .get(&key)
                    .is_none_or(|&i| changed(&session.partitions[i], p))
            });
        }
        out.retain(|t| !t.partitions.is_empty());
        out
    }

    fn open(
        &mut self,
        version: i16,
        req: &FetchRequest,
        responses: &[FetchableTopicResponse],
        now: Instant,
    ) -> i32 {
        if self.slots == 0 {
            return 0;
        }
        if self.sessions.len() >= self.slots {
            let idle = self
                .sessions
                .iter()
                .filter(|(_, s)| now.saturating_duration_since(s.last_used) >= EVICTION_AFTER)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            match idle {
                Some(id) => {
                    self.sessions.remove(&id);
                }
                None => return 0,
            }
        }
        let mut partitions = Vec::new();
        for (t, resp) in req.topics.iter().zip(responses) {
            for (p, r) in t.partitions.iter().zip(&resp.partitions) {
                if partitions.len() >= self.max_partitions {
                    break;
                }
                partitions.push(Cached {
                    topic: t.topic.clone(),
                    topic_id: t.topic_id,
                    fetch: p.clone(),
                    high_watermark: r.high_watermark,
                    last_stable_offset: r.last_stable_offset,
                    log_start_offset: r.log_start_offset,
                });
            }
        }
        let id = loop {
            let r =
                (Uuid::new_v4().as_u128() as u64 % (i32::MAX as u64 / self.shards as u64)) as usize;
            let id = (r * self.shards + self.shard) as i32;
            if id > 0 && !self.sessions.contains_key(&id) {
                break id;
            }
        };
        self.sessions.insert(
            id,
            Session {
                by_id: version >= 13,
                next_epoch: 1,
                partitions,
                last_used: now,
            },
        );
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_request::ForgottenTopic;
    use kafka_protocol::messages::fetch_response::PartitionData;
    use kafka_protocol::protocol::StrBytes;

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    fn request(id: i32, epoch: i32, parts: &[(&str, i32, i64)]) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (t, p, offset) in parts {
            let fp = FetchPartition::default()
                .with_partition(*p)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(1024);
            match topics.iter_mut().find(|x| x.topic == name(t)) {
                Some(x) => x.partitions.push(fp),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(name(t))
                        .with_partitions(vec![fp]),
                ),
            }
        }
        FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_topics(topics)
    }

    /// The answer the reads give: `hw` for every partition, records where named.
    fn answer(
        req: &FetchRequest,
        hw: i64,
        with_records: &[(&str, i32)],
    ) -> Vec<FetchableTopicResponse> {
        req.topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let data = with_records
                            .iter()
                            .any(|(n, i)| name(n) == t.topic && *i == p.partition);
                        PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_high_watermark(hw)
                            .with_last_stable_offset(hw)
                            .with_log_start_offset(0)
                            .with_records(Some(if data {
                                Bytes::from_static(b"batch")
                            } else {
                                Bytes::new()
                            }))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(parts)
            })
            .collect()
    }

    fn named(responses: &[FetchableTopicResponse]) -> Vec<(String, i32)> {
        responses
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), p.partition_index))
            })
            .collect()
    }

    fn open(cache: &mut FetchSessions, parts: &[(&str, i32, i64)], now: Instant) -> i32 {
        let mut req = request(0, 0, parts);
        let ctx = cache.prepare(12, &mut req, now).expect("new");
        assert_eq!(ctx, Context::New);
        let mut resp = answer(&req, 10, &[]);
        let id = cache.finish(ctx, 12, &req, &mut resp, now);
        assert_eq!(
            named(&resp).len(),
            parts.len(),
            "a full answer names every partition"
        );
        id
    }

    #[test]
    fn an_incremental_fetch_names_only_what_changed() {
        let now = Instant::now();
        let mut cache = FetchSessions::new(10, 1, 2, 100);
        let id = open(&mut cache, &[("a", 0, 0), ("a", 1, 0), ("b", 0, 0)], now);
        assert!(id > 0 && id % 2 == 1, "{id}");

        // Nothing changed: the request names nothing, the reads cover every partition.
        let mut req = request(id, 1, &[]);
        let ctx = cache.prepare(12, &mut req, now).expect("incremental");
        assert_eq!(named_req(&req), vec![("a", 0), ("a", 1), ("b", 0)]);
        let mut resp = answer(&req, 10, &[]);
        assert_eq!(cache.finish(ctx, 12, &req, &mut resp, now), id);
        assert!(resp.is_empty(), "{:?}", named(&resp));

        // a-1 has records and the high watermark moved everywhere.
        let mut req = request(id, 2, &[]);
        let ctx = cache.prepare(12, &mut req, now).expect("incremental");
        let mut resp = answer(&req, 11, &[("a", 1)]);
        cache.finish(ctx, 12, &req, &mut resp, now);
        assert_eq!(named(&resp).len(), 3);
        // a-1 returned records: it moves to the end.
        let mut req = request(id, 3, &[("b", 0, 5)]);
        let ctx = cache.prepare(12, &mut req, now).expect("incremental");
        assert_eq!(named_req(&req), vec![("a", 0), ("a", 1), ("b", 0)]);
        assert_eq!(
            req.topics
                .iter()
                .find(|t| t.topic == name("b"))
                .map(|t| t.partitions[0].fetch_offset),
            Some(5),
            "the request's new offset is kept"
        );
        let mut resp = answer(&req, 11, &[]);
        cache.finish(ctx, 12, &req, &mut resp, now);
        assert!(resp.is_empty());

        // A forgotten partition leaves the session; a new one joins.
        let mut req = request(id, 4, &[("c", 0, 0)]);
        req.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(name("a"))
            .with_partitions(vec![0])];
        cache.prepare(12, &mut req, now).expect("incremental");
        assert_eq!(named_req(&req), vec![("a", 1), ("b", 0), ("c", 0)]);
    }

    fn named_req(req: &FetchRequest) -> Vec<(&str, i32)> {
        let mut v: Vec<(&str, i32)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.as_str(), p.partition))
            })
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn records_move_a_partition_to_the_end() {
        let now = Instant::now();
        let mut cache = FetchSessions::new(10, 0, 1, 100);
        let id = open(&mut cache, &[("a", 0, 0), ("a", 1, 0), ("a", 2, 0)], now);
        let mut req = request(id, 1, &[]);
        let ctx = cache.prepare(12, &mut req, now).expect("incremental");
        let mut resp = answer(&req, 10, &[("a", 0), ("a", 1)]);
        cache.finish(ctx, 12, &req, &mut resp, now);
        let mut req = request(id, 2, &[]);
        cache.prepare(12, &mut req, now).expect("incremental");
        let order: Vec<i32> = req.topics[0]
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect();
        assert_eq!(order, vec![2, 0, 1]);
    }

    #[test]
    fn errors_epochs_ids_and_eviction() {
        let now = Instant::now();
        let mut cache = FetchSessions::new(2, 0, 1, 2);
        let id = open(&mut cache, &[("a", 0, 0)], now);
        let mut req = request(id, 5, &[]);
        assert_eq!(
            cache.prepare(12, &mut req, now),
            Err(ResponseError::InvalidFetchSessionEpoch.code())
        );
        let mut req = request(id + 1, 1, &[]);
        assert_eq!(
            cache.prepare(12, &mut req, now),
            Err(ResponseError::FetchSessionIdNotFound.code())
        );
        let mut req = request(id, 1, &[]);
        assert_eq!(
            cache.prepare(13, &mut req, now),
            Err(ResponseError::FetchSessionTopicIdError.code()),
            "a session by name cannot go on by id"
        );
        // More partitions than a session holds: the extra one is read (and refused by
        // the partition limit), not kept.
        let mut req = request(id, 1, &[("b", 0, 0), ("c", 0, 0)]);
        cache.prepare(12, &mut req, now).expect("incremental");
        assert_eq!(named_req(&req), vec![("a", 0), ("b", 0), ("c", 0)]);
        let mut req = request(id, 2, &[]);
        cache.prepare(12, &mut req, now).expect("incremental");
        assert_eq!(named_req(&req), vec![("a", 0), ("b", 0)]);

        // A full cache: no new session until one is idle long enough.
        open(&mut cache, &[("x", 0, 0)], now);
        assert_eq!(cache.len(), 2);
        assert_eq!(open(&mut cache, &[("y", 0, 0)], now), 0);
        let later = now + EVICTION_AFTER;
        assert!(open(&mut cache, &[("y", 0, 0)], later) > 0);
        assert_eq!(cache.len(), 2);

        // Epoch -1 closes a session.
        let mut req = request(id, -1, &[("a", 0, 0)]);
        assert_eq!(cache.prepare(12, &mut req, later), Ok(Context::Sessionless));
        let mut req = request(id, 3, &[]);
        assert_eq!(
            cache.prepare(12, &mut req, later),
            Err(ResponseError::FetchSessionIdNotFound.code())
        );
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}
