//! UnregisterBroker (key 64), version 0: removes a broker's registration for good
//! (`kafka-cluster unregister --id N`), as Kafka's controller does: it leaves every
//! ISR, a partition it led gets a new leader, and it is no longer placed on. A broker
//! that is not registered gets BROKER_ID_NOT_REGISTERED. A broker still running
//! registers again at its next heartbeat, so stop it first. With
//! `fjord.auto.rebalance.enable` the ring rebalance then moves its replicas to the
//! remaining brokers.

use std::rc::Rc;

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::{Command, CommandError};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let id = req.broker_id.0;
    let result = if shard.cluster.image().brokers.contains_key(&id) {
        match shard
            .metadata
            .propose(Command::UnregisterBroker { id })
            .await
        {
            Ok((_, image)) => {
                shard.cluster.update_image(image);
                tracing::info!(broker = id, "broker unregistered");
                Ok(())
            }
            Err(CommandError::Invalid(m)) => Err((ResponseError::BrokerIdNotRegistered, m)),
            Err(e) => Err((ResponseError::NotController, e.to_string())),
        }
    } else {
        Err((
            ResponseError::BrokerIdNotRegistered,
            format!("Broker ID {id} is not currently registered"),
        ))
    };
    let mut resp = UnregisterBrokerResponse::default();
    if let Err((code, message)) = result {
        resp.error_code = code.code();
        resp.error_message = Some(StrBytes::from_string(message));
        super::count_error("UnregisterBroker", resp.error_code);
    }
    resp
}
