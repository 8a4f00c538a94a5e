//! Start-up probe: waits for a broker that is still starting, creates a one-partition
//! topic and produces one batch until the broker acknowledges it, then prints the
//! wall-clock time of that first acknowledgement (the script subtracts the time it
//! started the broker process).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;

use crate::client::EncodedBody;
use crate::cluster::{self, topic_name, NewTopic, Versions};
use crate::produce::{encode_batch, wait_until_writable};

/// Pause between connection attempts while the broker is not listening yet.
const RETRY: Duration = Duration::from_millis(5);

/// Runs the probe, giving up after `timeout`.
pub async fn run(bootstrap: &str, topic: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let versions: Versions = loop {
        match cluster::negotiate(bootstrap).await {
            Ok(v) => break v,
            Err(e) if Instant::now() > deadline => bail!("broker never answered: {e:#}"),
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    };
    let listening_ms = unix_ms()?;
    // A broker still starting may refuse to create topics for a moment.
    while let Err(e) = cluster::create_topic(
        bootstrap,
        &versions,
        topic,
        1,
        &NewTopic::default(),
        timeout,
    )
    .await
    {
        if Instant::now() > deadline {
            bail!("could not create {topic}: {e:#}");
        }
        tokio::time::sleep(RETRY).await;
    }
    let layout = cluster::wait_for_topic(
        bootstrap,
        &versions,
        topic,
        1,
        versions.create_topics.is_none(),
        timeout,
    )
    .await?;
    let (leader, partitions) = layout.single_leader()?;
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partitions.first().copied().unwrap_or(0))
                .with_records(Some(encode_batch(1024, 1)?))])]);
    let body = EncodedBody::new(&request, versions.produce)?;
    wait_until_writable(leader, &body, versions.produce).await?;
    let acked_ms = unix_ms()?;
    println!("probe: first ApiVersions answer at {listening_ms} ms, first produce acknowledged at {acked_ms} ms (Unix time)");
    println!("RESULT probe listening_unix_ms={listening_ms} acked_unix_ms={acked_ms}");
    Ok(())
}

fn unix_ms() -> Result<u128> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())
}
