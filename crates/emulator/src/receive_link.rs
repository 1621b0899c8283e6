//! A link on which a client receives from a queue, a subscription or a dead-letter queue.
//!
//! Credit is never exceeded: we take at most `credit` messages from the broker and send each
//! at once. A drain is answered after sending what is available. Peek-lock deliveries carry
//! the lock token as their delivery tag (.NET `Guid` byte order); receive-and-delete
//! deliveries (the client attached with snd-settle-mode `settled`) go out pre-settled, already
//! removed from the broker.
//!
//! A session receiver (see [`crate::session_link`]) takes messages only from the session it
//! holds, in sequence order; when its session lock lapses the link is detached with
//! `com.microsoft:session-lock-lost` (settlements arriving by then are refused with it), and
//! when the link goes away the session is released for the next receiver.

use std::collections::HashSet;
use std::sync::Arc;

use busdrain_amqp::types::messaging::{Accepted, DeliveryState, Rejected};
use busdrain_amqp::{
    DispositionEvent, OutgoingDelivery, OutgoingLink, OutgoingLinkEvent, MESSAGE_FORMAT_AMQP,
};
use busdrain_broker::{
    BrokerError, Delivery, Entity, PropertyMap, ReceiveMode, SessionLock, Timestamp,
};
use bytes::Bytes;
use uuid::Uuid;

use crate::auth::{unix_now, ConnectionAuth};
use crate::bridge::{broker_error, stamp};
use crate::message::encode_delivery;
use crate::sas::Right;
use crate::settlement::{from_outcome, Settlement};

pub async fn serve(
    mut link: OutgoingLink,
    entity: Entity,
    mode: ReceiveMode,
    auth: Arc<ConnectionAuth>,
    resource: String,
    session: Option<SessionLock>,
) {
    let mut watch = entity.watch();
    // Lock tokens delivered on this link and not settled yet.
    let mut outstanding: HashSet<Uuid> = HashSet::new();
    loop {
        let credit = link.credit();
        if credit > 0 {
            if let Err(error) = auth.check(&resource, Right::Listen, unix_now()) {
                tracing::info!(entity = %resource, %error, "receive refused");
                link.detach(Some(error.to_amqp()));
                break;
            }
            let received = match &session {
                Some(session) => {
                    entity
                        .receive_from_session(session, credit as usize, mode)
                        .await
                }
                None => entity.receive(credit as usize, mode).await,
            };
            match received {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        send_one(&mut link, &entity, delivery, &mut outstanding).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(entity = %resource, %error, "receive failed");
                    link.detach(Some(broker_error(&error)));
                    break;
                }
            }
        }
        if link.drain_requested() {
            // The receive above took min(credit, available) messages: either the credit is
            // used up or nothing receivable is left, so the drain is answered now. (Asking
            // the entity again would count messages that cannot be delivered — deferred,
            // mid-settlement, in another session — and leave the drain unanswered.)
            link.drained();
        }
        let session_expiry = session_expiry(&entity, session.as_ref());
        let event = tokio::select! {
            event = link.next_event() => event,
            changed = watch.changed() => {
                if changed.is_err() {
                    link.detach(Some(broker_error(&BrokerError::ShuttingDown)));
                    break;
                }
                continue;
            }
            _ = sleep_until(session_expiry) => {
                if session.as_ref().is_some_and(|s| entity.session_locked_until(s).is_none()) {
                    tracing::debug!(entity = %resource, "session lock lost; detaching");
                    link.detach(Some(broker_error(&session_lock_lost(&resource, session.as_ref()))));
                    break;
                }
                continue;
            }
        };
        match event {
            None | Some(OutgoingLinkEvent::Detached { .. }) => break,
            Some(OutgoingLinkEvent::Flow { .. }) => {}
            Some(OutgoingLinkEvent::Disposition(first)) => {
                // Settle everything that arrived together in one go (one group commit).
                let mut dispositions = vec![first];
                let mut detached = false;
                while let Some(next) = link.try_next_event() {
                    match next {
                        OutgoingLinkEvent::Disposition(disposition) => {
                            dispositions.push(disposition)
                        }
                        OutgoingLinkEvent::Flow { .. } => {}
                        OutgoingLinkEvent::Detached { .. } => {
                            detached = true;
                            break;
                        }
                    }
                }
                let lost = session
                    .as_ref()
                    .filter(|s| entity.session_locked_until(s).is_none())
                    .map(|_| session_lock_lost(&resource, session.as_ref()));
                settle_all(&link, &entity, dispositions, &mut outstanding, lost).await;
                if detached {
                    break;
                }
            }
        }
    }
    abandon_all(&entity, outstanding).await;
    if let Some(session) = session {
        entity.release_session(&session.session_id, session.token);
    }
}

/// When the held session's lock lapses (`None`: no session, never).
fn session_expiry(entity: &Entity, session: Option<&SessionLock>) -> Option<Timestamp> {
    let session = session?;
    // Already lapsed: look again at once.
    Some(
        entity
            .session_locked_until(session)
            .unwrap_or(Timestamp::from_unix_millis(0)),
    )
}

/// Sleeps until just after `at` (a lock is valid through its `locked_until`), or forever.
async fn sleep_until(at: Option<Timestamp>) {
    match at {
        Some(at) => {
            let wait = Timestamp::now().until(at) + std::time::Duration::from_millis(5);
            tokio::time::sleep(wait).await
        }
        None => std::future::pending().await,
    }
}

fn session_lock_lost(resource: &str, session: Option<&SessionLock>) -> BrokerError {
    BrokerError::SessionLockLost {
        entity: resource.to_string(),
        session_id: session.map(|s| s.session_id.clone()).unwrap_or_default(),
    }
}

async fn send_one(
    link: &mut OutgoingLink,
    entity: &Entity,
    delivery: Delivery,
    outstanding: &mut HashSet<Uuid>,
) {
    let lock = delivery.lock;
    let payload = match encode_delivery(
        &delivery.message.content.payload,
        &stamp(&delivery.message, lock.as_ref()),
    ) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(%error, sequence_number = delivery.message.sequence_number, "stored message cannot be encoded");
            return;
        }
    };
    let (tag, settled) = match &lock {
        // The SDKs read the lock token from the tag as a .NET Guid (`Uuid::to_bytes_le`).
        Some(lock) => (lock.token.to_bytes_le(), false),
        None => (*Uuid::new_v4().as_bytes(), true),
    };
    let result = link.try_send(OutgoingDelivery {
        tag,
        message_format: MESSAGE_FORMAT_AMQP,
        settled,
        payload: Bytes::from(payload),
    });
    match (result, lock) {
        (Ok(()), Some(lock)) => {
            outstanding.insert(lock.token);
        }
        (Ok(()), None) => {}
        (Err(error), Some(lock)) => {
            // Credit shrank under us (the client lowered it) or the link went away: give
            // the message back at once instead of letting its lock run out.
            tracing::debug!(%error, "locked message not sent; abandoning");
            let _ = entity.abandon(lock.token, PropertyMap::new()).await;
        }
        (Err(error), None) => {
            tracing::warn!(%error, sequence_number = delivery.message.sequence_number,
                "receive-and-delete message removed but not delivered");
        }
    }
}

async fn settle_all(
    link: &OutgoingLink,
    entity: &Entity,
    dispositions: Vec<DispositionEvent>,
    outstanding: &mut HashSet<Uuid>,
    session_lost: Option<BrokerError>,
) {
    if let Some(lost) = session_lost {
        // The session moved on: its message locks are gone with it.
        for disposition in dispositions {
            outstanding.remove(&Uuid::from_bytes_le(disposition.delivery_tag));
            if !disposition.settled {
                link.settle(
                    disposition.delivery_id,
                    DeliveryState::Rejected(Rejected {
                        error: Some(broker_error(&lost)),
                    }),
                );
            }
        }
        return;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for disposition in dispositions {
        let token = Uuid::from_bytes_le(disposition.delivery_tag);
        outstanding.remove(&token);
        let entity = entity.clone();
        tasks.spawn(async move {
            let result = match from_outcome(disposition.state.as_ref()) {
                Settlement::Complete => entity.complete(token).await,
                Settlement::Abandon(properties) => entity.abandon(token, properties).await,
                Settlement::Defer(properties) => entity.defer(token, properties).await,
                Settlement::DeadLetter {
                    reason,
                    description,
                    properties,
                } => {
                    entity
                        .dead_letter(token, reason, description, properties)
                        .await
                }
            };
            (disposition, result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((disposition, result)) = joined else {
            continue;
        };
        tracing::debug!(
            delivery_id = disposition.delivery_id,
            settled = disposition.settled,
            state = ?disposition.state,
            ok = result.is_ok(),
            "disposition"
        );
        if disposition.settled {
            if let Err(error) = result {
                tracing::debug!(%error, "pre-settled disposition failed");
            }
            continue;
        }
        // A successful settlement echoes the outcome the client asked for (the SDKs compare
        // it with what they sent); a `rejected` echo carries no error, since an error there
        // is how a failed settlement is reported.
        let state = match result {
            Ok(()) => echo(disposition.state.as_ref()),
            Err(error) => DeliveryState::Rejected(Rejected {
                error: Some(broker_error(&error)),
            }),
        };
        link.settle(disposition.delivery_id, state);
    }
}

fn echo(requested: Option<&DeliveryState>) -> DeliveryState {
    match requested {
        Some(DeliveryState::Rejected(_)) => DeliveryState::Rejected(Rejected { error: None }),
        Some(state @ (DeliveryState::Modified(_) | DeliveryState::Released(_))) => state.clone(),
        _ => DeliveryState::Accepted(Accepted {}),
    }
}

/// A link that goes away gives its unsettled messages back (Service Bus ties locks to the
/// receiving link). Tokens already settled through `$management` answer LockLost, ignored.
async fn abandon_all(entity: &Entity, outstanding: HashSet<Uuid>) {
    for token in outstanding {
        let _ = entity.abandon(token, PropertyMap::new()).await;
    }
}
