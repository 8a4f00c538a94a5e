//! State-machine tests: no sockets, time passed explicitly.

use bytes::Bytes;

use super::*;

const DELAY: i64 = 3_000;

fn limits() -> Limits {
    Limits {
        initial_rebalance_delay_ms: DELAY,
        ..Limits::default()
    }
}

fn req(member_id: &str, fresh: &str, protocols: &[(&str, &[u8])]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 10_000,
        session_timeout_ms: 6_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m)))
            .collect(),
        require_known_member_id: false,
        fresh_member_id: fresh.into(),
    }
}

fn range() -> Vec<(&'static str, &'static [u8])> {
    vec![("range", b"r")]
}

fn joins(effects: &[Effect]) -> Vec<(Waiter, JoinResponse)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Join(w, r) => Some((*w, r.clone())),
            _ => None,
        })
        .collect()
}

fn syncs(effects: &[Effect]) -> Vec<(Waiter, SyncResponse)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Sync(w, r) => Some((*w, r.clone())),
            _ => None,
        })
        .collect()
}

/// Two dynamic members through join (initial delay) and sync; returns the group in
/// Stable at generation 1 with members "a" (leader) and "b".
fn stable_pair() -> ClassicGroup {
    let mut g = ClassicGroup::new("g", limits());
    g.join(req("", "a", &range()), 1, 0);
    g.join(req("", "b", &range()), 2, 10);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(
        g.take_effects().is_empty(),
        "the initial delay holds the joins"
    );
    g.tick(DELAY); // a member arrived during the delay: extended once
    assert!(g.take_effects().is_empty());
    g.tick(2 * DELAY);
    let answered = joins(&g.take_effects());
    assert_eq!(answered.len(), 2);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.generation(), 1);
    let leader = answered
        .iter()
        .find(|(w, _)| *w == 1)
        .map(|(_, r)| r.clone());
    let leader = leader.expect("leader answered");
    assert_eq!(leader.leader, "a");
    assert_eq!(leader.members.len(), 2);
    assert_eq!(leader.protocol_name.as_deref(), Some("range"));
    let follower = answered
        .iter()
        .find(|(w, _)| *w == 2)
        .map(|(_, r)| r.clone());
    assert!(follower.expect("follower").members.is_empty());

    g.sync("b", None, 1, None, None, vec![], 3, 6_100);
    assert!(g.take_effects().is_empty(), "followers wait for the leader");
    let assignment = vec![
        ("a".to_string(), Bytes::from_static(b"A")),
        ("b".to_string(), Bytes::from_static(b"B")),
    ];
    g.sync(
        "a",
        None,
        1,
        Some("consumer"),
        Some("range"),
        assignment,
        4,
        6_200,
    );
    let effects = g.take_effects();
    let Some(Effect::WriteAssignment { generation, value }) = effects.first().cloned() else {
        panic!("leader sync writes the assignment: {effects:?}");
    };
    assert_eq!(generation, 1);
    g.assignment_written(generation, &value, true, 6_300);
    let synced = syncs(&g.take_effects());
    assert_eq!(synced.len(), 2);
    for (w, r) in synced {
        assert_eq!(r.error, None);
        let expected: &[u8] = if w == 3 { b"B" } else { b"A" };
        assert_eq!(&r.assignment[..], expected);
    }
    assert_eq!(g.state(), GroupState::Stable);
    g
}

#[test]
fn join_sync_reaches_stable() {
    let g = stable_pair();
    assert_eq!(g.leader(), Some("a"));
}

#[test]
fn member_id_required_from_v4() {
    let mut g = ClassicGroup::new("g", limits());
    let mut r = req("", "m-1", &range());
    r.require_known_member_id = true;
    g.join(r, 1, 0);
    let answered = joins(&g.take_effects());
    assert_eq!(answered[0].1.error, Some(GroupError::MemberIdRequired));
    assert_eq!(answered[0].1.member_id, "m-1");
    assert_eq!(g.state(), GroupState::Empty);
    // Rejoining with the given id joins; an expired pending id is forgotten.
    g.join(req("m-1", "unused", &range()), 2, 10);
    assert!(g.has_member("m-1"));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn heartbeat_errors() {
    let mut g = stable_pair();
    assert_eq!(g.heartbeat("a", None, 1, 7_000), Ok(()));
    assert_eq!(
        g.heartbeat("zz", None, 1, 7_000),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.heartbeat("a", None, 0, 7_000),
        Err(GroupError::IllegalGeneration)
    );
    // b's session (6 s from its sync at 6.1 s) expires; a keeps heartbeating.
    assert_eq!(g.heartbeat("a", None, 1, 12_000), Ok(()));
    g.tick(12_200);
    assert!(!g.has_member("b"));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat("a", None, 1, 12_300),
        Err(GroupError::RebalanceInProgress)
    );
    // a rejoins: the rebalance completes at once (not an initial rebalance).
    g.join(req("a", "x", &range()), 9, 12_400);
    let answered = joins(&g.take_effects());
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].1.generation_id, 2);
    assert_eq!(answered[0].1.members.len(), 1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut g = stable_pair();
    // a forces a rebalance by rejoining (the leader always does).
    g.join(req("a", "x", &range()), 5, 7_000);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(g.take_effects().is_empty());
    let _ = g.heartbeat("b", None, 1, 8_000);
    g.tick(7_000 + 10_000);
    let answered = joins(&g.take_effects());
    assert_eq!(answered.len(), 1);
    assert!(!g.has_member("b"));
    assert_eq!(g.generation(), 2);
}

#[test]
fn protocol_selection_follows_votes() {
    let mut g = ClassicGroup::new(
        "g",
        Limits {
            initial_rebalance_delay_ms: 0,
            ..limits()
        },
    );
    g.join(req("", "a", &[("roundrobin", b""), ("range", b"")]), 1, 0);
    g.join(req("", "b", &[("range", b""), ("roundrobin", b"")]), 2, 0);
    g.join(req("", "c", &[("range", b""), ("sticky", b"")]), 3, 0);
    g.tick(0);
    g.tick(1);
    assert_eq!(g.protocol_name(), Some("range"));
    // A member sharing no protocol with the group is refused.
    g.join(req("", "d", &[("sticky", b"")]), 4, 2);
    let answered = joins(&g.take_effects());
    let d = answered.iter().find(|(w, _)| *w == 4).map(|(_, r)| r.error);
    assert_eq!(d, Some(Some(GroupError::InconsistentGroupProtocol)));
}

#[test]
fn static_member_rejoin_fences_the_old_id() {
    let mut g = ClassicGroup::new(
        "g",
        Limits {
            initial_rebalance_delay_ms: 0,
            ..limits()
        },
    );
    let mut r = req("", "s-1", &range());
    r.group_instance_id = Some("i1".into());
    g.join(r.clone(), 1, 0);
    g.tick(0);
    g.tick(1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    g.take_effects();
    g.sync(
        "s-1",
        Some("i1"),
        1,
        None,
        None,
        vec![("s-1".into(), Bytes::from_static(b"X"))],
        2,
        2,
    );
    if let Some(Effect::WriteAssignment { generation, value }) = g.take_effects().first() {
        g.assignment_written(*generation, &value.clone(), true, 3);
    }
    assert_eq!(g.state(), GroupState::Stable);
    g.take_effects();
    // Restart with the same instance id: new member id, same generation, no rebalance.
    r.fresh_member_id = "s-2".into();
    g.join(r, 3, 100);
    let effects = g.take_effects();
    let answered = joins(&effects);
    assert_eq!(answered[0].1.member_id, "s-2");
    assert_eq!(answered[0].1.generation_id, 1);
    assert!(effects.iter().any(|e| matches!(e, Effect::WriteGroup(_))));
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(
        g.heartbeat("s-1", Some("i1"), 1, 200),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(g.heartbeat("s-2", Some("i1"), 1, 200), Ok(()));
    // Its assignment survived the new id.
    g.sync("s-2", Some("i1"), 1, None, None, vec![], 4, 300);
    assert_eq!(&syncs(&g.take_effects())[0].1.assignment[..], b"X");
}

#[test]
fn leaving_hands_over_and_last_leave_empties() {
    let mut g = stable_pair();
    assert_eq!(g.leave("a", None, 7_000), Ok(()));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.leader(), Some("b"));
    assert_eq!(g.leave("zz", None, 7_000), Err(GroupError::UnknownMemberId));
    assert_eq!(g.leave("b", None, 7_100), Ok(()));
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g
        .take_effects()
        .iter()
        .any(|e| matches!(e, Effect::WriteGroup(v) if v.members.is_empty())));
    assert_eq!(g.generation(), 2);
}

#[test]
fn members_that_never_sync_are_removed() {
    let mut g = ClassicGroup::new(
        "g",
        Limits {
            initial_rebalance_delay_ms: 0,
            ..limits()
        },
    );
    g.join(req("", "a", &range()), 1, 0);
    g.join(req("", "b", &range()), 2, 0);
    g.tick(0);
    g.tick(1);
    g.take_effects();
    g.sync("a", None, 1, None, None, vec![], 3, 100);
    let _ = g.heartbeat("b", None, 1, 5_000);
    let _ = g.heartbeat("a", None, 1, 5_000);
    g.tick(1 + 10_000);
    assert!(!g.has_member("b"), "b never sent SyncGroup");
    assert!(g.has_member("a"));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn sync_validation() {
    let mut g = stable_pair();
    g.sync("a", None, 7, None, None, vec![], 10, 7_000);
    g.sync("zz", None, 1, None, None, vec![], 11, 7_000);
    g.sync("a", None, 1, Some("connect"), None, vec![], 12, 7_000);
    let got: Vec<Option<GroupError>> = syncs(&g.take_effects())
        .iter()
        .map(|(_, r)| r.error)
        .collect();
    assert_eq!(
        got,
        vec![
            Some(GroupError::IllegalGeneration),
            Some(GroupError::UnknownMemberId),
            Some(GroupError::InconsistentGroupProtocol)
        ]
    );
}

#[test]
fn record_round_trip_restores_stable_group() {
    let g = stable_pair();
    let v = g.current_value();
    let back = ClassicGroup::from_record("g", &v, limits(), 50_000);
    assert_eq!(back.state(), GroupState::Stable);
    assert_eq!(back.generation(), 1);
    assert_eq!(back.leader(), Some("a"));
    assert_eq!(back.members().count(), 2);
    assert_eq!(back.next_deadline(), Some(56_000));
}

#[test]
fn deadlines_are_reported() {
    let mut g = ClassicGroup::new("g", limits());
    assert_eq!(g.next_deadline(), None);
    g.join(req("", "a", &range()), 1, 100);
    assert_eq!(g.next_deadline(), Some(100 + DELAY));
    g.mark_dead();
    assert_eq!(
        joins(&g.take_effects())[0].1.error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(g.next_deadline(), None);
}
