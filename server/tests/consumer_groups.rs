//! KIP-848 consumer groups against the real `fjord` binary over TCP:
//! ConsumerGroupHeartbeat (join, revoke before assign, fencing, leave),
//! ConsumerGroupDescribe, and the group id namespace shared with classic groups.

mod common;

use std::collections::BTreeSet;

use common::{Broker, Client};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create(c: &mut Client, topic: &str, partitions: i32) -> Uuid {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let r = c.request(7, &req);
    assert_eq!(r.topics[0].error_code, 0);
    r.topics[0].topic_id
}

/// One heartbeat; `owned` None leaves the field out (unchanged).
fn beat(
    c: &mut Client,
    group: &str,
    member: &str,
    epoch: i32,
    topic: Uuid,
    owned: Option<&BTreeSet<i32>>,
) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(owned.map(|ps| {
            if ps.is_empty() {
                vec![]
            } else {
                vec![TopicPartitions::default()
                    .with_topic_id(topic)
                    .with_partitions(ps.iter().copied().collect())]
            }
        }));
    if epoch == 0 {
        req = req
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]));
    }
    c.request(1, &req)
}

fn parts(r: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<i32>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect()
    })
}

#[test]
fn two_members_split_a_topic_revoking_before_assigning() {
    let broker = Broker::start("cgh", &[]);
    let mut c = broker.client();
    let topic = create(&mut c, "t", 4);

    let a = beat(&mut c, "g", "member-a", 0, topic, Some(&BTreeSet::new()));
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 5000);
    let all = parts(&a).expect("assignment");
    assert_eq!(all, (0..4).collect());

    let b = beat(&mut c, "g", "member-b", 0, topic, Some(&BTreeSet::new()));
    assert_eq!(b.error_code, 0);
    assert_eq!(parts(&b), Some(BTreeSet::new()), "nothing until a revokes");

    // a is told to keep two; its epoch moves only once it stops owning the others.
    let r = beat(&mut c, "g", "member-a", 1, topic, Some(&all));
    let keep = parts(&r).expect("new assignment");
    assert_eq!((keep.len(), r.member_epoch), (2, 1));
    let r = beat(&mut c, "g", "member-b", b.member_epoch, topic, None);
    assert_eq!(parts(&r).unwrap_or_default().len(), 0);
    let r = beat(&mut c, "g", "member-a", 1, topic, Some(&keep));
    assert_eq!(r.member_epoch, 2);
    let r = beat(&mut c, "g", "member-b", b.member_epoch, topic, None);
    let got = parts(&r).expect("b's partitions");
    assert_eq!(got.len(), 2);
    assert!(got.is_disjoint(&keep));

    let d: ConsumerGroupDescribeResponse = c.request(
        1,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g"))]),
    );
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    assert!(g
        .members
        .iter()
        .all(|m| m.target_assignment.topic_partitions[0]
            .topic_name
            .0
            .as_str()
            == "t"));

    // Fencing.
    let r = beat(&mut c, "g", "nobody", 3, topic, None);
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    let r = beat(&mut c, "g", "member-a", 9, topic, None);
    assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code());

    // A classic member cannot join a consumer group with members.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(b"m"))]);
    let r: JoinGroupResponse = c.request(9, &join);
    assert_eq!(
        r.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );

    // ListGroups v5 names the group's type, and filters by it.
    let list = |c: &mut Client, types: &[&str]| -> Vec<(String, String)> {
        let req =
            ListGroupsRequest::default().with_types_filter(types.iter().map(|t| s(t)).collect());
        let r: ListGroupsResponse = c.request(5, &req);
        r.groups
            .iter()
            .map(|g| (g.group_id.to_string(), g.group_type.to_string()))
            .collect()
    };
    let g = ("g".to_string(), "consumer".to_string());
    assert!(list(&mut c, &[]).contains(&g));
    assert!(list(&mut c, &["consumer"]).contains(&g));
    assert!(!list(&mut c, &["classic"]).contains(&g));

    // Leaving.
    let r = beat(&mut c, "g", "member-a", -1, topic, None);
    assert_eq!((r.error_code, r.member_epoch), (0, -1));

    // An unknown group.
    let d: ConsumerGroupDescribeResponse = c.request(
        1,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("nope"))]),
    );
    assert_eq!(
        d.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

#[test]
fn heartbeat_validation_follows_kafka() {
    let broker = Broker::start("cgh-invalid", &[]);
    let mut c = broker.client();
    let topic = create(&mut c, "t", 1);
    // v1 needs a client-generated member id.
    let r = beat(&mut c, "g", "", 0, topic, Some(&BTreeSet::new()));
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    // Joining must say it owns nothing.
    let r = beat(&mut c, "g", "m", 0, topic, None);
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    // An unknown group with epoch > 0.
    let r = beat(&mut c, "other", "m", 1, topic, None);
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
}
