//! Request/response nodes (`$cbs`, `<entity>/$management`) on top of plain AMQP links.
//!
//! A client attaches two links to the node in one session: it sends requests on one and
//! receives responses on the other. We pair them by (session, node): the response link
//! registers a [`Responder`], the request link looks it up for every answer.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use busdrain_amqp::types::messaging::{Accepted, DeliveryState, Rejected};
use busdrain_amqp::{
    IncomingLink, IncomingLinkEvent, OutgoingDelivery, OutgoingLink, OutgoingLinkEvent, SessionId,
    MESSAGE_FORMAT_AMQP,
};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::bridge::{amqp_error, DECODE_ERROR};
use crate::request::{parse_request, Request, Response, StatusKeys};

/// Where responses for one (session, node) go.
type Responder = mpsc::UnboundedSender<Bytes>;

/// The response links of one connection, by session and node key.
#[derive(Debug, Default)]
pub struct Responders {
    links: Mutex<HashMap<(SessionId, String), Responder>>,
}

impl Responders {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(SessionId, String), Responder>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, session: SessionId, node: &str) -> Option<Responder> {
        self.lock()
            .get(&(session, node.to_string()))
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    /// Finds the responder, waiting briefly: a client may send its first request before
    /// its response link's attach has been processed.
    async fn wait_for(&self, session: SessionId, node: &str) -> Option<Responder> {
        for _ in 0..100 {
            if let Some(responder) = self.get(session, node) {
                return Some(responder);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Serves a response link: sends queued responses as credit allows, until it detaches.
pub async fn serve_responses(mut link: OutgoingLink, responders: Arc<Responders>, node: String) {
    let session = link.info().session;
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    responders.lock().insert((session, node.clone()), tx);
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    loop {
        while link.credit() > 0 {
            let Some(payload) = queue.pop_front() else {
                break;
            };
            let delivery = OutgoingDelivery {
                tag: *uuid::Uuid::new_v4().as_bytes(),
                message_format: MESSAGE_FORMAT_AMQP,
                settled: true,
                payload,
            };
            if let Err(error) = link.try_send(delivery) {
                tracing::debug!(%error, node, "response not sent");
                break;
            }
        }
        if link.drain_requested() && queue.is_empty() {
            link.drained();
        }
        tokio::select! {
            response = rx.recv() => match response {
                Some(payload) => queue.push_back(payload),
                None => break,
            },
            event = link.next_event() => match event {
                None | Some(OutgoingLinkEvent::Detached { .. }) => break,
                Some(_) => {}
            },
        }
    }
    // Closing our receiver marks our sender closed; a newer response link for the same node
    // has an open one and stays registered.
    drop(rx);
    let mut links = responders.lock();
    if links
        .get(&(session, node.clone()))
        .is_some_and(|tx| tx.is_closed())
    {
        links.remove(&(session, node));
    }
}

/// Serves a request link: decodes each request, lets `handle` answer it, sends the answer
/// to the paired response link and accepts the request.
pub async fn serve_requests<F, Fut>(
    mut link: IncomingLink,
    responders: Arc<Responders>,
    node: String,
    keys: StatusKeys,
    handle: F,
) where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = (Request, Response)>,
{
    let session = link.info().session;
    while let Some(event) = link.next_event().await {
        let delivery = match event {
            IncomingLinkEvent::Delivery(delivery) => delivery,
            IncomingLinkEvent::Detached { .. } => break,
        };
        let request = match parse_request(&delivery.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::info!(node, %error, "malformed request refused");
                link.settle(
                    delivery.delivery_id,
                    DeliveryState::Rejected(Rejected {
                        error: Some(amqp_error(DECODE_ERROR, error.to_string())),
                    }),
                );
                continue;
            }
        };
        tracing::debug!(node, operation = ?request.operation(), "request");
        let (request, response) = handle(request).await;
        tracing::debug!(node, status = response.status_code, "response");
        link.settle(delivery.delivery_id, DeliveryState::Accepted(Accepted {}));
        let encoded = match response.encode(&request, keys) {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::error!(node, %error, "response cannot be encoded");
                continue;
            }
        };
        match responders.wait_for(session, &node).await {
            Some(responder) => {
                let _ = responder.send(Bytes::from(encoded));
            }
            None => tracing::info!(node, "no response link attached; response dropped"),
        }
    }
}
