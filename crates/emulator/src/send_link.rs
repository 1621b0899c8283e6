//! A link on which a client sends messages to a queue or topic.
//!
//! Deliveries that arrive together are stored with one broker call (one group commit), in
//! arrival order, and each is accepted only once the broker reports it durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use busdrain_amqp::types::messaging::{Accepted, DeliveryState, Rejected};
use busdrain_amqp::{IncomingDelivery, IncomingLink, IncomingLinkEvent};
use busdrain_broker::{Entity, NewMessage};

use crate::auth::{unix_now, ConnectionAuth};
use crate::bridge::{amqp_error, broker_error, new_message, DECODE_ERROR};
use crate::message::decode_transfer;
use crate::sas::Right;

/// Most deliveries folded into one broker send.
const MAX_GROUP: usize = 256;
/// A broker send (one group commit) normally takes milliseconds; one still waiting after this
/// long is logged at `warn`, so a stall on our side is visible. (A client that waits for an
/// outcome we sent long ago, with nothing logged here, lost it on its side.)
const SLOW_SEND: Duration = Duration::from_secs(5);

pub async fn serve(
    mut link: IncomingLink,
    entity: Entity,
    auth: Arc<ConnectionAuth>,
    resource: String,
) {
    let mut detached = false;
    while !detached {
        let Some(event) = link.next_event().await else {
            break;
        };
        let first = match event {
            IncomingLinkEvent::Delivery(delivery) => delivery,
            IncomingLinkEvent::Detached { .. } => break,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match link.try_next_event() {
                Some(IncomingLinkEvent::Delivery(delivery)) => group.push(delivery),
                Some(IncomingLinkEvent::Detached { .. }) => {
                    detached = true;
                    break;
                }
                None => break,
            }
        }
        if let Err(error) = auth.check(&resource, Right::Send, unix_now()) {
            tracing::info!(entity = %resource, %error, "send refused");
            link.detach(Some(error.to_amqp()));
            return;
        }
        store_group(&link, &entity, &resource, group).await;
    }
}

/// Decodes and stores a group of deliveries, settling each.
async fn store_group(
    link: &IncomingLink,
    entity: &Entity,
    resource: &str,
    group: Vec<IncomingDelivery>,
) {
    let mut decoded: Vec<(u32, Vec<NewMessage>)> = Vec::with_capacity(group.len());
    for delivery in group {
        match decode_transfer(delivery.message_format, &delivery.payload) {
            Ok(messages) => decoded.push((
                delivery.delivery_id,
                messages.into_iter().map(new_message).collect(),
            )),
            Err(error) => {
                tracing::info!(%error, "undecodable message refused");
                link.settle(
                    delivery.delivery_id,
                    DeliveryState::Rejected(Rejected {
                        error: Some(amqp_error(DECODE_ERROR, error.to_string())),
                    }),
                );
            }
        }
    }
    if decoded.is_empty() {
        return;
    }
    if decoded.len() > 1 {
        let all: Vec<NewMessage> = decoded
            .iter()
            .flat_map(|(_, m)| m.iter().cloned())
            .collect();
        if send_watched(entity, resource, all).await.is_ok() {
            for (delivery_id, _) in &decoded {
                link.settle(*delivery_id, DeliveryState::Accepted(Accepted {}));
            }
            return;
        }
        // One message spoiled the group (e.g. too large): store them one by one so only
        // the culprit is refused.
    }
    for (delivery_id, messages) in decoded {
        let state = match send_watched(entity, resource, messages).await {
            Ok(_) => DeliveryState::Accepted(Accepted {}),
            Err(error) => {
                tracing::info!(%error, "send refused by the broker");
                DeliveryState::Rejected(Rejected {
                    error: Some(broker_error(&error)),
                })
            }
        };
        link.settle(delivery_id, state);
    }
}

/// `entity.send`, logged at `warn` when the broker takes longer than [`SLOW_SEND`].
async fn send_watched(
    entity: &Entity,
    resource: &str,
    messages: Vec<NewMessage>,
) -> Result<Vec<i64>, busdrain_broker::BrokerError> {
    let count = messages.len();
    let started = Instant::now();
    let send = entity.send(messages);
    tokio::pin!(send);
    if let Ok(result) = tokio::time::timeout(SLOW_SEND, &mut send).await {
        return result;
    }
    tracing::warn!(entity = %resource, messages = count, waited_ms = started.elapsed().as_millis() as u64, "send still waiting for the broker's commit");
    let result = send.await;
    tracing::warn!(entity = %resource, messages = count, waited_ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "slow send finished");
    result
}
