//! Connection limits against the real `fjord` binary: `max.connections`,
//! `max.connections.per.ip` with its overrides, and `connections.max.idle.ms`. A
//! connection over a limit is closed at once, as Kafka closes it.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{Broker, Client};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;

/// True if the connection answers ApiVersions.
fn answers(c: &mut Client) -> bool {
    c.try_request(3, &ApiVersionsRequest::default())
        .is_some_and(|r| r.error_code == 0)
}

/// Until the broker has seen the start-up probe's connection close.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn max_connections_refuses_one_more_until_one_closes() {
    let broker = Broker::start("conn-max", &["max.connections=3"]);
    settle();
    let mut open: Vec<Client> = (0..3).map(|_| broker.client()).collect();
    assert!(open.iter_mut().all(answers));
    let mut extra = broker.client();
    assert!(extra.closed_by_server(), "a fourth connection is closed");
    drop(open.pop());
    settle();
    let mut again = broker.client();
    assert!(answers(&mut again), "room again once one closed");
}

#[test]
fn max_connections_per_ip_counts_each_address_with_its_override() {
    let broker = Broker::start(
        "conn-per-ip",
        &[
            "max.connections.per.ip=2",
            "max.connections.per.ip.overrides=127.0.0.2:3",
        ],
    );
    settle();
    let port = broker.port;
    let from = |ip: [u8; 4]| Client::connect_from(Ipv4Addr::from(ip), port);
    let mut one: Vec<Client> = (0..2).map(|_| from([127, 0, 0, 1])).collect();
    assert!(one.iter_mut().all(answers));
    assert!(
        from([127, 0, 0, 1]).closed_by_server(),
        "a third from 127.0.0.1"
    );
    // 127.0.0.2 has a limit of its own, and its own count.
    let mut two: Vec<Client> = (0..3).map(|_| from([127, 0, 0, 2])).collect();
    assert!(two.iter_mut().all(answers));
    assert!(
        from([127, 0, 0, 2]).closed_by_server(),
        "a fourth from 127.0.0.2"
    );
    // Another address still gets the default.
    let mut three = from([127, 0, 0, 3]);
    assert!(answers(&mut three));
    drop(one.pop());
    settle();
    assert!(
        answers(&mut from([127, 0, 0, 1])),
        "room again once one closed"
    );
}

#[test]
fn an_idle_connection_is_closed_but_not_one_waiting_on_a_request() {
    let broker = Broker::start("conn-idle", &["connections.max.idle.ms=500"]);
    let mut idle = broker.client();
    assert!(answers(&mut idle));
    let started = Instant::now();
    assert!(idle.closed_by_server(), "an idle connection is closed");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    // A long poll longer than the idle time keeps its connection.
    let mut c = broker.client();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("idle"),
            ))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let r: CreateTopicsResponse = c.request(7, &create);
    assert_eq!(r.topics[0].error_code, 0);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(1500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("idle"),
            ))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let started = Instant::now();
    let r: FetchResponse = c.request(12, &fetch);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "a full long poll"
    );
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert!(answers(&mut c), "still open after the long poll");
}
