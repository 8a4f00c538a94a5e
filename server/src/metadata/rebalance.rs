//! Ring rebalancing (`fjord.auto.rebalance.enable`): the reassignments that bring every
//! partition to the replicas the placement ring over the registered brokers gives it.
//! Pure; the controller's leader proposes the result as `Command::AlterReassignments`.
//!
//! The ring is built over every *registered* broker, fenced ones included, so a crash
//! moves nothing (the broker is expected back, as Kafka expects it); a broker that
//! registers for the first time joins the ring and takes about `1/N` of the replicas
//! (the ring moves at most 1.25× that ideal share; `placement` property-tests it).
//!
//! Invariants: nothing is planned while a broker is fenced (a move to or from it could
//! not finish) or while any partition is still moving (one plan at a time, each
//! computed from settled replicas); a move keeps the partition's replication factor;
//! at most `max` partitions are planned at once, the rest in later rounds.

use uuid::Uuid;

use super::image::ClusterImage;
use crate::placement::{plan, Ring};

/// One planned reassignment: topic id, partition, target replicas (preferred first).
pub type RingMove = (Uuid, i32, Vec<i32>);

/// The moves that bring every partition of `image` to the ring over `brokers`
/// (`fjord plan` shows them for any broker set), in topic-name and partition order.
pub fn plan_for(image: &ClusterImage, brokers: &[i32]) -> Vec<plan::Move> {
    let replicas: Vec<Vec<Vec<i32>>> = image
        .topics
        .values()
        .map(|t| t.partitions.iter().map(|p| p.replicas.clone()).collect())
        .collect();
    plan::plan(
        &Ring::with_brokers(brokers),
        image
            .topics
            .values()
            .zip(&replicas)
            .map(|(t, r)| plan::TopicReplicas {
                name: &t.name,
                id: t.id.as_u128(),
                replicas: r,
            }),
    )
}

/// The moves to propose now, at most `max`, in topic-name and partition order.
pub fn ring_moves(image: &ClusterImage, max: usize) -> Vec<RingMove> {
    if !image.fenced.is_empty() || image.brokers.is_empty() {
        return Vec::new();
    }
    let moving = image
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .any(|p| p.is_reassigning());
    if moving {
        return Vec::new();
    }
    let brokers: Vec<i32> = image.brokers.keys().copied().collect();
    plan_for(image, &brokers)
        .into_iter()
        .filter_map(|m| Some((image.topic(&m.topic)?.id, m.partition as i32, m.to)))
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::metadata::{BrokerInfo, Command};

    fn broker(id: i32) -> Command {
        Command::RegisterBroker(BrokerInfo {
            id,
            host: format!("127.0.0.{id}"),
            port: 9092,
            rack: None,
        })
    }

    /// Brokers 1–3 registered, one topic of `n` partitions at RF 3 placed by the ring.
    fn cluster(n: u32) -> (ClusterImage, Uuid) {
        let mut image = ClusterImage::default();
        let mut index = 0;
        let mut apply = |image: &mut ClusterImage, cmd: Command| {
            index += 1;
            image.apply(index, &cmd).expect("applies");
        };
        for b in 1..=3 {
            apply(&mut image, broker(b));
        }
        let id = Uuid::from_u128(0x1234_5678_9abc_def0_0fed_cba9_8765_4321);
        let partitions = Ring::with_brokers(&[1, 2, 3]).assign(id.as_u128(), &[], n, 3);
        apply(
            &mut image,
            Command::CreateTopic {
                name: "t".into(),
                id,
                partitions,
                configs: Default::default(),
            },
        );
        (image, id)
    }

    #[test]
    fn a_settled_cluster_plans_nothing_and_a_new_broker_takes_about_a_quarter() {
        let (mut image, id) = cluster(64);
        assert!(ring_moves(&image, 1000).is_empty());
        image.apply(100, &broker(4)).expect("registers");
        let moves = ring_moves(&image, 1000);
        let before = &image.topic("t").expect("topic").partitions;
        let added: usize = moves
            .iter()
            .map(|(t, p, to)| {
                assert_eq!(*t, id);
                assert_eq!(to.len(), 3, "the replication factor is kept");
                let from: BTreeSet<_> = before[*p as usize].replicas.iter().collect();
                to.iter().filter(|b| !from.contains(b)).count()
            })
            .sum();
        let ideal = 64.0 * 3.0 / 4.0;
        assert!(
            added > 0 && added as f64 <= 1.25 * ideal,
            "{added} replicas move"
        );
        assert!(moves.iter().all(|(_, _, to)| to.contains(&4)));
        // At most `max` at once.
        assert_eq!(ring_moves(&image, 3).len(), 3);
    }

    #[test]
    fn nothing_moves_while_a_broker_is_fenced_or_a_partition_is_moving() {
        let (mut image, id) = cluster(16);
        image.apply(100, &broker(4)).expect("registers");
        let moves = ring_moves(&image, 1000);
        assert!(!moves.is_empty());
        image
            .apply(101, &Command::FenceBroker { id: 2 })
            .expect("fences");
        assert!(ring_moves(&image, 1000).is_empty(), "a fenced broker");
        image.apply(102, &broker(2)).expect("back");
        let (_, p, to) = moves[0].clone();
        image
            .apply(
                103,
                &Command::AlterReassignments {
                    partitions: vec![(id, p, Some(to))],
                },
            )
            .expect("reassigns");
        assert!(ring_moves(&image, 1000).is_empty(), "a partition is moving");
    }
}
