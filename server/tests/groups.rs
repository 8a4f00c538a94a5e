//! Group coordinator tests against the real `fjord` binary over TCP: join, sync,
//! heartbeat, rebalances, committed offsets, admin APIs, and persistence across a
//! restart.

mod common;

use std::thread;

use common::{Broker, Client};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const NO_DELAY: &str = "group.initial.rebalance.delay.ms=0";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn create(c: &mut Client, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    assert_eq!(c.request(7, &req).topics[0].error_code, 0);
}

fn join_req(group: &str, member: &str, protocols: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|p| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(p))
                        .with_metadata(bytes::Bytes::from_static(b"meta"))
                })
                .collect(),
        )
}

/// JoinGroup v9 the way clients do it: MEMBER_ID_REQUIRED, then join with that id.
fn join(c: &mut Client, group: &str, member: &str) -> JoinGroupResponse {
    let r = c.request(9, &join_req(group, member, &["range"]));
    if r.error_code == ResponseError::MemberIdRequired.code() {
        assert!(!r.member_id.is_empty());
        return c.request(9, &join_req(group, &r.member_id, &["range"]));
    }
    r
}

fn sync(
    c: &mut Client,
    group: &str,
    gen: i32,
    member: &str,
    plan: &[(&str, &[u8])],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(gen)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            plan.iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(bytes::Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    c.request(5, &req)
}

fn heartbeat(c: &mut Client, group: &str, gen: i32, member: &str) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(gen)
        .with_member_id(s(member));
    c.request(4, &req).error_code
}

fn commit(
    c: &mut Client,
    version: i16,
    group: &str,
    gen: i32,
    member: &str,
    topic: &str,
    offsets: &[(i32, i64, &str)],
) -> Vec<i16> {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(gen)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o, m)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(s(m)))
                    })
                    .collect(),
            )]);
    c.request(version, &req).topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// OffsetFetch v7 of `partitions`: (offset, metadata) per partition.
fn fetch_offsets(
    c: &mut Client,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i64, String)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(partitions.to_vec())]));
    let r = c.request(7, &req);
    assert_eq!(r.error_code, 0);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.committed_offset,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn describe(c: &mut Client, group: &str) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
    c.request(5, &req).groups.remove(0)
}

#[test]
fn find_coordinator_all_versions() {
    let broker = Broker::start("findcoord", &[]);
    let mut c = broker.client();
    for v in 0..=3 {
        let r = c.request(v, &FindCoordinatorRequest::default().with_key(s("g1")));
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(r.port, broker.port as i32);
    }
    let r = c.request(
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")]),
    );
    assert_eq!(r.coordinators.len(), 2);
    assert!(r
        .coordinators
        .iter()
        .all(|k| k.error_code == 0 && k.port == broker.port as i32));
    let txn = c.request(
        6,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s("t")]),
    );
    assert_eq!(
        txn.coordinators[0].error_code,
        ResponseError::UnsupportedVersion.code(),
        "no transaction coordinator: a final error, not a retriable one"
    );
    // __consumer_offsets exists now, internal, with Kafka's default 50 partitions.
    let md = c.request(12, &MetadataRequest::default().with_topics(None));
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("__consumer_offsets"))
        .expect("offsets topic");
    assert!(t.is_internal);
    assert_eq!(t.partitions.len(), 50);
}

#[test]
fn join_sync_heartbeat_commit_fetch_and_validation() {
    let broker = Broker::start("groupflow", &[NO_DELAY]);
    let mut c = broker.client();
    create(&mut c, "t", 2);
    // Bad input gets Kafka's codes.
    let mut bad = join_req("g", "", &["range"]);
    bad.session_timeout_ms = 10;
    assert_eq!(
        c.request(9, &bad).error_code,
        ResponseError::InvalidSessionTimeout.code()
    );
    assert_eq!(
        c.request(9, &join_req("", "", &["range"])).error_code,
        ResponseError::InvalidGroupId.code()
    );
    assert_eq!(
        c.request(9, &join_req("g", "ghost", &["range"])).error_code,
        ResponseError::UnknownMemberId.code()
    );

    let j = join(&mut c, "g", "");
    assert_eq!(j.error_code, 0);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, j.member_id);
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    let me = j.member_id.to_string();
    let sr = sync(&mut c, "g", 1, &me, &[(&me, b"plan")]);
    assert_eq!(sr.error_code, 0);
    assert_eq!(&sr.assignment[..], b"plan");
    assert_eq!(heartbeat(&mut c, "g", 1, &me), 0);
    assert_eq!(
        heartbeat(&mut c, "g", 7, &me),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut c, "g", 1, "x"),
        ResponseError::UnknownMemberId.code()
    );

    assert_eq!(
        commit(&mut c, 9, "g", 1, &me, "t", &[(0, 5, "m0"), (1, 7, "")]),
        vec![0, 0]
    );
    assert_eq!(
        commit(&mut c, 9, "g", 0, &me, "t", &[(0, 6, "")]),
        vec![ResponseError::IllegalGeneration.code()]
    );
    assert_eq!(
        commit(&mut c, 9, "g", 1, &me, "nope", &[(0, 1, "")]),
        vec![ResponseError::UnknownTopicOrPartition.code()]
    );
    let big = "x".repeat(5000);
    assert_eq!(
        commit(&mut c, 9, "g", 1, &me, "t", &[(0, 6, &big)]),
        vec![ResponseError::OffsetMetadataTooLarge.code()]
    );
    assert_eq!(
        fetch_offsets(&mut c, "g", "t", &[0, 1]),
        vec![(5, "m0".to_string()), (7, String::new())]
    );
    let d = describe(&mut c, "g");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(&d.members[0].member_assignment[..], b"plan");
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");

    // A non-empty group cannot be deleted; its subscribed offsets stay.
    let del = c.request(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]),
    );
    assert_eq!(
        del.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![MemberIdentity::default().with_member_id(s(&me))]);
    let lr = c.request(5, &leave);
    assert_eq!((lr.error_code, lr.members[0].error_code), (0, 0));
    assert_eq!(describe(&mut c, "g").group_state.as_str(), "Empty");
    let list = c.request(
        5,
        &ListGroupsRequest::default().with_states_filter(vec![s("empty")]),
    );
    assert!(list.groups.iter().any(|g| g.group_id.0.as_str() == "g"));
    let del = c.request(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]),
    );
    assert_eq!(del.results[0].error_code, 0);
    assert_eq!(
        fetch_offsets(&mut c, "g", "t", &[0]),
        vec![(-1, String::new())]
    );
    assert_eq!(describe(&mut c, "g").group_state.as_str(), "Dead");
}

#[test]
fn second_member_triggers_rebalance_and_both_get_the_new_generation() {
    let broker = Broker::start("rebalance", &[NO_DELAY]);
    let mut a = broker.client();
    let j = join(&mut a, "rg", "");
    let leader = j.member_id.to_string();
    assert_eq!(
        sync(&mut a, "rg", 1, &leader, &[(&leader, b"A")]).error_code,
        0
    );

    // b's JoinGroup waits (parked on the coordinator) until a rejoins.
    let port = broker.port;
    let b_thread = thread::spawn(move || {
        let mut b = Client::connect(port);
        let j = join(&mut b, "rg", "");
        (b, j)
    });
    let mut code = 0;
    for _ in 0..100 {
        code = heartbeat(&mut a, "rg", 1, &leader);
        if code != 0 {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(code, ResponseError::RebalanceInProgress.code());
    let ja = a.request(9, &join_req("rg", &leader, &["range"]));
    assert_eq!(ja.error_code, 0);
    assert_eq!(ja.generation_id, 2);
    assert_eq!(ja.members.len(), 2, "the leader sees both members");
    let (mut b, jb) = b_thread.join().expect("b joined");
    assert_eq!((jb.error_code, jb.generation_id), (0, 2));
    assert!(jb.members.is_empty());
    let follower = jb.member_id.to_string();

    // The follower's SyncGroup waits for the leader's assignment.
    let f_thread = thread::spawn(move || {
        let r = sync(&mut b, "rg", 2, &follower, &[]);
        (b, r)
    });
    thread::sleep(std::time::Duration::from_millis(200));
    let lead = sync(
        &mut a,
        "rg",
        2,
        &leader,
        &[(&leader, b"A2"), (&jb.member_id, b"B2")],
    );
    assert_eq!(&lead.assignment[..], b"A2");
    let (_b, fr) = f_thread.join().expect("follower synced");
    assert_eq!((fr.error_code, &fr.assignment[..]), (0, &b"B2"[..]));
}

#[test]
fn session_expiry_removes_a_silent_member() {
    let broker = Broker::start("expiry", &[NO_DELAY]);
    let mut c = broker.client();
    let mut r = join_req("eg", "", &["range"]);
    r.session_timeout_ms = 6_000;
    let first = c.request(9, &r);
    r.member_id = first.member_id.clone();
    let j = c.request(9, &r);
    let me = j.member_id.to_string();
    assert_eq!(sync(&mut c, "eg", 1, &me, &[]).error_code, 0);
    thread::sleep(std::time::Duration::from_millis(7_000));
    assert_eq!(
        heartbeat(&mut c, "eg", 1, &me),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(describe(&mut c, "eg").group_state.as_str(), "Empty");
}

#[test]
fn old_versions_and_batched_offset_fetch() {
    let broker = Broker::start("oldversions", &[NO_DELAY]);
    let mut c = broker.client();
    create(&mut c, "ot", 1);
    // JoinGroup v0 (no MEMBER_ID_REQUIRED, no rebalance timeout), SyncGroup v0.
    let j = c.request(0, &join_req("old", "", &["range"]));
    assert_eq!((j.error_code, j.generation_id), (0, 1));
    assert_eq!(j.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    let me = j.member_id.to_string();
    let sr = c.request(
        0,
        &SyncGroupRequest::default()
            .with_group_id(gid("old"))
            .with_generation_id(1)
            .with_member_id(s(&me)),
    );
    assert_eq!(sr.error_code, 0);
    assert_eq!(
        commit(&mut c, 2, "old", 1, &me, "ot", &[(0, 3, "v2")]),
        vec![0]
    );
    // A simple (generation -1) commit into a group with members is refused.
    assert_eq!(
        commit(&mut c, 2, "old", -1, "", "ot", &[(0, 4, "")]),
        vec![ResponseError::UnknownMemberId.code()]
    );
    let v1 = c.request(
        1,
        &OffsetFetchRequest::default()
            .with_group_id(gid("old"))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("ot")))
                .with_partition_indexes(vec![0])])),
    );
    assert_eq!(v1.topics[0].partitions[0].committed_offset, 3);
    // v8: several groups at once, one of them unknown; null topics = all.
    assert_eq!(
        commit(&mut c, 9, "simple", -1, "", "ot", &[(0, 9, "s")]),
        vec![0]
    );
    let v8 = c.request(
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("old"))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("ot")))
                    .with_partition_indexes(vec![0])])),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("simple"))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("nobody"))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("ot")))
                    .with_partition_indexes(vec![0])])),
        ]),
    );
    let offs: Vec<i64> = v8
        .groups
        .iter()
        .map(|g| g.topics[0].partitions[0].committed_offset)
        .collect();
    assert_eq!(offs, vec![3, 9, -1]);
    // OffsetDelete: subscribed topics of an active group cannot go; an Empty group's can.
    let od = |c: &mut Client, g: &str| {
        c.request(
            0,
            &OffsetDeleteRequest::default()
                .with_group_id(gid(g))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("ot")))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        )
    };
    let r = od(&mut c, "simple");
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(
        fetch_offsets(&mut c, "simple", "ot", &[0]),
        vec![(-1, String::new())]
    );
    assert_eq!(
        od(&mut c, "ghost").error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

#[test]
fn offsets_and_groups_survive_a_restart() {
    let mut broker = Broker::start("grouprestart", &[NO_DELAY]);
    let me;
    {
        let mut c = broker.client();
        create(&mut c, "pt", 3);
        let j = join(&mut c, "pg", "");
        me = j.member_id.to_string();
        assert_eq!(sync(&mut c, "pg", 1, &me, &[(&me, b"asg")]).error_code, 0);
        assert_eq!(
            commit(
                &mut c,
                8,
                "pg",
                1,
                &me,
                "pt",
                &[(0, 11, "a"), (1, 12, "b"), (2, 13, "c")]
            ),
            vec![0, 0, 0]
        );
        assert_eq!(
            commit(&mut c, 8, "pg", 1, &me, "pt", &[(1, 20, "b2")]),
            vec![0]
        );
        assert_eq!(
            commit(&mut c, 8, "gone", -1, "", "pt", &[(0, 1, "")]),
            vec![0]
        );
        let del = c.request(
            1,
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("gone")]),
        );
        assert_eq!(del.results[0].error_code, 0);
    }
    broker.kill9();
    broker.spawn();
    let mut c = broker.client();
    assert_eq!(
        fetch_offsets(&mut c, "pg", "pt", &[0, 1, 2]),
        vec![(11, "a".into()), (20, "b2".into()), (13, "c".into())]
    );
    // The group came back Stable with its member, assignment and generation.
    let d = describe(&mut c, "pg");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members[0].member_id.as_str(), me);
    assert_eq!(&d.members[0].member_assignment[..], b"asg");
    assert_eq!(heartbeat(&mut c, "pg", 1, &me), 0);
    // The deleted group stayed deleted.
    assert_eq!(
        fetch_offsets(&mut c, "gone", "pt", &[0]),
        vec![(-1, String::new())]
    );
    let list = c.request(0, &ListGroupsRequest::default());
    let names: Vec<&str> = list.groups.iter().map(|g| g.group_id.0.as_str()).collect();
    assert_eq!(names, vec!["pg"]);
}
