use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::*;

const TOPIC: Uuid = Uuid::from_u128(7);

fn topics(name: &str) -> Option<(Uuid, i32)> {
    (name == "t").then_some((TOPIC, 6))
}

fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    }
}

fn beat(id: &str, epoch: i32, owned: Option<&Assignment>) -> Heartbeat {
    Heartbeat {
        member_id: id.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: owned.cloned(),
        ..Heartbeat::default()
    }
}

fn parts(a: &Assignment) -> BTreeSet<i32> {
    a.get(&TOPIC).cloned().unwrap_or_default()
}

/// A client that does what the Java consumer does: keeps the last assignment it got
/// and reports what it owns.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn join(g: &mut ConsumerGroup, id: &str, now: i64) -> Client {
        let r = g.heartbeat(join(id), &topics, now).expect("join");
        Client {
            id: id.to_string(),
            epoch: r.member_epoch,
            owned: r.assignment.unwrap_or_default(),
        }
    }

    fn beat(&mut self, g: &mut ConsumerGroup, now: i64) -> Result<(), HeartbeatError> {
        let r = g.heartbeat(beat(&self.id, self.epoch, Some(&self.owned)), &topics, now)?;
        self.epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            self.owned = a;
        }
        Ok(())
    }
}

fn no_overlap(clients: &[&Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for p in parts(&c.owned) {
            assert!(seen.insert(p), "partition {p} owned twice");
        }
    }
}

fn settle(g: &mut ConsumerGroup, clients: &mut [&mut Client], now: i64) {
    for _ in 0..6 {
        for i in 0..clients.len() {
            clients[i].beat(g, now).expect("heartbeat");
            let view: Vec<&Client> = clients.iter().map(|c| &**c).collect();
            no_overlap(&view);
        }
    }
}

#[test]
fn three_members_split_six_partitions_revoking_before_assigning() {
    let mut g = ConsumerGroup::new("g", ConsumerLimits::default());
    let mut a = Client::join(&mut g, "a", 0);
    assert_eq!(parts(&a.owned), (0..6).collect());
    assert_eq!(a.epoch, 1);
    let mut b = Client::join(&mut g, "b", 0);
    // b gets nothing until a revokes.
    assert!(parts(&b.owned).is_empty());
    assert_eq!(g.state(), "Reconciling");
    settle(&mut g, &mut [&mut a, &mut b], 0);
    assert_eq!((parts(&a.owned).len(), parts(&b.owned).len()), (3, 3));
    let mut c = Client::join(&mut g, "c", 0);
    settle(&mut g, &mut [&mut a, &mut b, &mut c], 0);
    for x in [&a, &b, &c] {
        assert_eq!(parts(&x.owned).len(), 2, "{:?}", x.owned);
    }
    assert_eq!(g.state(), "Stable");
    assert_eq!(a.epoch, g.group_epoch());
}

#[test]
fn a_revoked_partition_goes_to_nobody_until_acknowledged() {
    let mut g = ConsumerGroup::new("g", ConsumerLimits::default());
    let a = Client::join(&mut g, "a", 0);
    let mut b = Client::join(&mut g, "b", 0);
    // a heartbeats without reporting owned partitions: still owns all six.
    let r = g
        .heartbeat(beat("a", a.epoch, None), &topics, 0)
        .expect("hb");
    assert_eq!(
        r.member_epoch, a.epoch,
        "epoch stays until revocation is acknowledged"
    );
    assert_eq!(
        parts(r.assignment.as_ref().expect("new assignment")).len(),
        3
    );
    b.beat(&mut g, 0).expect("hb");
    assert!(parts(&b.owned).is_empty());
    // Still owning them: no hand-over.
    g.heartbeat(beat("a", a.epoch, Some(&a.owned)), &topics, 0)
        .expect("hb");
    b.beat(&mut g, 0).expect("hb");
    assert!(parts(&b.owned).is_empty());
    // a reports owning only its three: b gets the other three.
    let kept: Assignment = BTreeMap::from([(TOPIC, parts(r.assignment.as_ref().expect("a")))]);
    let r = g
        .heartbeat(beat("a", a.epoch, Some(&kept)), &topics, 0)
        .expect("hb");
    assert_eq!(r.member_epoch, g.group_epoch());
    b.beat(&mut g, 0).expect("hb");
    assert_eq!(parts(&b.owned).len(), 3);
    assert!(parts(&b.owned).is_disjoint(&parts(&kept)));
}

#[test]
fn fencing_unknown_members_and_stale_epochs() {
    let mut g = ConsumerGroup::new("g", ConsumerLimits::default());
    let a = Client::join(&mut g, "a", 0);
    let e = g
        .heartbeat(beat("x", 1, None), &topics, 0)
        .expect_err("unknown");
    assert_eq!(e.error, GroupError::UnknownMemberId);
    let e = g
        .heartbeat(beat("a", a.epoch + 5, None), &topics, 0)
        .expect_err("ahead");
    assert_eq!(e.error, GroupError::FencedMemberEpoch);
    assert!(g.validate_offset_commit("a", a.epoch).is_ok());
    assert_eq!(
        g.validate_offset_commit("a", a.epoch - 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_commit("zz", 1),
        Err(GroupError::UnknownMemberId)
    );
    assert!(g.validate_offset_commit("", -1).is_ok());
}

#[test]
fn session_expiry_removes_a_member_and_frees_its_partitions() {
    let limits = ConsumerLimits {
        session_timeout_ms: 1000,
        ..ConsumerLimits::default()
    };
    let mut g = ConsumerGroup::new("g", limits);
    let mut a = Client::join(&mut g, "a", 0);
    let mut b = Client::join(&mut g, "b", 0);
    settle(&mut g, &mut [&mut a, &mut b], 0);
    assert_eq!(g.next_deadline(), Some(1000));
    b.beat(&mut g, 900).expect("hb");
    g.tick(1000);
    assert!(g.member("a").is_none());
    let e = a.beat(&mut g, 1001).expect_err("fenced");
    assert_eq!(e.error, GroupError::UnknownMemberId);
    b.beat(&mut g, 1001).expect("hb");
    assert_eq!(parts(&b.owned), (0..6).collect());
}

#[test]
fn leaving_hands_partitions_to_the_others() {
    let mut g = ConsumerGroup::new("g", ConsumerLimits::default());
    let mut a = Client::join(&mut g, "a", 0);
    let mut b = Client::join(&mut g, "b", 0);
    let mut c = Client::join(&mut g, "c", 0);
    settle(&mut g, &mut [&mut a, &mut b, &mut c], 0);
    let r = g
        .heartbeat(beat("a", LEAVE_EPOCH, None), &topics, 0)
        .expect("leave");
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    settle(&mut g, &mut [&mut b, &mut c], 0);
    assert_eq!((parts(&b.owned).len(), parts(&c.owned).len()), (3, 3));
}

#[test]
fn a_static_member_comes_back_with_its_partitions() {
    let mut g = ConsumerGroup::new("g", ConsumerLimits::default());
    let mut req = join("a1");
    req.instance_id = Some("i".to_string());
    let r = g.heartbeat(req.clone(), &topics, 0).expect("join");
    let owned = r.assignment.expect("assignment");
    // Another incarnation while a1 is active is refused.
    let mut other = req.clone();
    other.member_id = "a2".to_string();
    let e = g
        .heartbeat(other.clone(), &topics, 0)
        .expect_err("unreleased");
    assert_eq!(e.error, GroupError::UnreleasedInstanceId);
    // a1 leaves temporarily, a2 takes its place with the same partitions.
    let mut leave = beat("a1", STATIC_LEAVE_EPOCH, None);
    leave.instance_id = Some("i".to_string());
    assert_eq!(
        g.heartbeat(leave, &topics, 0).expect("leave").member_epoch,
        STATIC_LEAVE_EPOCH
    );
    let epoch_before = g.group_epoch();
    let r = g.heartbeat(other, &topics, 0).expect("rejoin");
    assert_eq!(r.assignment.expect("assignment"), owned);
    assert_eq!(
        g.group_epoch(),
        epoch_before,
        "no rebalance for a returning static member"
    );
}

#[test]
fn invalid_requests() {
    let mut g = ConsumerGroup::new("g", ConsumerLimits::default());
    let mut req = join("a");
    req.server_assignor = Some("sticky".to_string());
    let e = g.heartbeat(req, &topics, 0).expect_err("assignor");
    assert_eq!(e.error, GroupError::UnsupportedAssignor);
    let e = g
        .heartbeat(beat("a", -3, None), &topics, 0)
        .expect_err("epoch");
    assert_eq!(e.error, GroupError::InvalidRequest);
}

#[test]
fn range_assignor_is_chosen_by_the_members() {
    let mut g = ConsumerGroup::new("g", ConsumerLimits::default());
    for id in ["b", "a"] {
        let mut req = join(id);
        req.server_assignor = Some("range".to_string());
        g.heartbeat(req, &topics, 0).expect("join");
    }
    assert_eq!(g.assignor(), "range");
    let d = g.describe();
    let targets: BTreeMap<String, BTreeSet<i32>> = d
        .members
        .iter()
        .map(|(m, t)| (m.member_id.clone(), parts(t)))
        .collect();
    assert_eq!(targets["a"], BTreeSet::from([0, 1, 2]));
    assert_eq!(targets["b"], BTreeSet::from([3, 4, 5]));
}
