//! One client connection: routes every attach to the node it names and runs a task per link.

use std::sync::Arc;

use busdrain_amqp::types::definitions::SenderSettleMode;
use busdrain_amqp::{AttachReply, ConnectionEvent, IncomingAttach, Link, LinkDirection};
use busdrain_broker::{BrokerError, EntityPath as BrokerPath, ReceiveMode};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::address::{EntityPath, NodeAddress};
use crate::auth::{unix_now, ConnectionAuth};
use crate::bridge::{amqp_error, broker_error, NOT_ALLOWED, NOT_FOUND};
use crate::management::{self, ManagementContext};
use crate::node::{self, Responders};
use crate::request::{CBS_STATUS_KEYS, MANAGEMENT_STATUS_KEYS};
use crate::sas::Right;
use crate::server::Shared;
use crate::{cbs, receive_link, send_link, session_link};

/// Serves one accepted TCP connection until it closes or `shutdown` fires.
pub async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: String, shutdown: CancellationToken) {
    let _ = tcp.set_nodelay(true);
    let (mut connection, driver) = busdrain_amqp::accept(tcp, shared.connection_config.clone());
    let driver = tokio::spawn(driver.run());
    let state = ConnectionState {
        shared,
        auth: Arc::new(ConnectionAuth::default()),
        responders: Arc::new(Responders::default()),
        links: TaskTracker::new(),
        closed: CancellationToken::new(),
    };
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => {
                connection.close(Some(amqp_error("amqp:connection:forced", "the emulator is shutting down")));
                break;
            }
            event = connection.next_event() => event,
        };
        match event {
            None | Some(ConnectionEvent::Closed { .. }) => break,
            Some(ConnectionEvent::Opened(info)) => {
                tracing::debug!(%peer, container = %info.container_id, hostname = ?info.hostname, "connection opened");
            }
            Some(ConnectionEvent::Attach(attach)) => state.route(attach),
            Some(ConnectionEvent::SessionEnded { .. }) => {}
        }
    }
    match driver.await {
        Ok(Ok(())) => tracing::debug!(%peer, "connection closed"),
        Ok(Err(error)) => tracing::debug!(%peer, %error, "connection ended"),
        Err(error) => tracing::warn!(%peer, %error, "connection task failed"),
    }
    // Link tasks still waiting for a session to lock give up now.
    state.closed.cancel();
    state.links.close();
    state.links.wait().await;
}

struct ConnectionState {
    shared: Arc<Shared>,
    auth: Arc<ConnectionAuth>,
    responders: Arc<Responders>,
    links: TaskTracker,
    /// Cancelled once the connection is gone (client close or emulator shutdown).
    closed: CancellationToken,
}

impl ConnectionState {
    fn route(&self, attach: IncomingAttach) {
        let address = attach.address().unwrap_or_default().to_string();
        tracing::debug!(
            address,
            link = %attach.info().name,
            session = attach.info().session.0,
            direction = ?attach.direction(),
            "attach"
        );
        let node = match NodeAddress::parse(&address) {
            Ok(node) => node,
            Err(error) => {
                attach.refuse(amqp_error(NOT_FOUND, error.to_string()));
                return;
            }
        };
        match node {
            NodeAddress::Cbs => self.attach_cbs(attach),
            NodeAddress::Management(entity) => self.attach_management(attach, entity),
            NodeAddress::Entity(entity) => self.attach_entity(attach, entity),
        }
    }

    fn reply(&self, attach: &IncomingAttach) -> AttachReply {
        let mut reply = AttachReply::echo(attach.attach());
        reply.max_message_size = Some(match attach.direction() {
            // The engine detaches a link whose transfer exceeds this, which the SDKs report
            // as a connection error. Service Bus instead refuses the one message with
            // `amqp:link:message-size-exceeded` (MessageSizeExceededError in the SDKs), so the
            // link admits more and the broker refuses each message over the limit.
            LinkDirection::Incoming => self.shared.transfer_limit(),
            LinkDirection::Outgoing => self.shared.max_message_size,
        });
        if attach.direction() == LinkDirection::Incoming {
            // pyamqp sizes its batches from this vendor property when present.
            let mut properties = busdrain_amqp::types::definitions::Fields::new();
            properties.insert(
                busdrain_amqp::types::primitives::Symbol::from(
                    "com.microsoft:max-message-batch-size",
                ),
                serde_amqp::Value::Ulong(self.shared.max_message_size),
            );
            reply.properties = Some(properties);
        }
        reply
    }

    fn attach_cbs(&self, attach: IncomingAttach) {
        let reply = self.reply(&attach);
        let node = "$cbs".to_string();
        match attach.accept(reply) {
            Link::Outgoing(link) => {
                self.links
                    .spawn(node::serve_responses(link, self.responders.clone(), node));
            }
            Link::Incoming(link) => {
                let shared = self.shared.clone();
                let auth = self.auth.clone();
                self.links.spawn(node::serve_requests(
                    link,
                    self.responders.clone(),
                    node,
                    CBS_STATUS_KEYS,
                    move |request| {
                        let response = cbs::handle(&request, &shared.policies, &auth, unix_now());
                        std::future::ready((request, response))
                    },
                ));
            }
        }
    }

    fn attach_management(&self, attach: IncomingAttach, path: EntityPath) {
        // JS puts its token for `<entity>/$management` itself; an entity-level (or
        // namespace-level) token covers that path too.
        let resource = format!("{}/$management", path.resource());
        let entity = match self.lookup(&path) {
            Ok(entity) => entity,
            Err(error) => return attach.refuse(error),
        };
        if let Err(error) = self.auth.check_any(&resource, unix_now()) {
            return attach.refuse(error.to_amqp());
        }
        let reply = self.reply(&attach);
        let node = resource.to_ascii_lowercase();
        match attach.accept(reply) {
            Link::Outgoing(link) => {
                self.links
                    .spawn(node::serve_responses(link, self.responders.clone(), node));
            }
            Link::Incoming(link) => {
                let auth = self.auth.clone();
                self.links.spawn(node::serve_requests(
                    link,
                    self.responders.clone(),
                    node,
                    MANAGEMENT_STATUS_KEYS,
                    move |request| {
                        let entity = entity.clone();
                        let auth = auth.clone();
                        let resource = resource.clone();
                        async move {
                            let ctx = ManagementContext {
                                entity: &entity,
                                auth: &auth,
                                resource: &resource,
                            };
                            let response = management::handle(&request, &ctx).await;
                            (request, response)
                        }
                    },
                ));
            }
        }
    }

    fn attach_entity(&self, attach: IncomingAttach, path: EntityPath) {
        let resource = path.resource();
        let entity = match self.lookup(&path) {
            Ok(entity) => entity,
            Err(error) => return attach.refuse(error),
        };
        let right = match attach.direction() {
            LinkDirection::Incoming => Right::Send,
            LinkDirection::Outgoing => Right::Listen,
        };
        if let Err(error) = self.auth.check(&resource, right, unix_now()) {
            tracing::info!(entity = %resource, %error, "attach refused");
            return attach.refuse(error.to_amqp());
        }
        let mode = match attach.attach().snd_settle_mode {
            SenderSettleMode::Settled => ReceiveMode::ReceiveAndDelete,
            _ => ReceiveMode::PeekLock,
        };
        let session_request = session_link::session_request(attach.attach());
        if attach.direction() == LinkDirection::Outgoing {
            let requires_session =
                entity.properties().requires_session && !entity.is_dead_letter_queue();
            match (requires_session, session_request) {
                (true, Some(request)) => {
                    return self.attach_session_receiver(attach, entity, mode, resource, request)
                }
                (true, None) => {
                    return attach.refuse(broker_error(&BrokerError::SessionRequired {
                        entity: resource,
                    }))
                }
                (false, Some(_)) => {
                    return attach.refuse(amqp_error(
                        NOT_ALLOWED,
                        format!(
                            "{resource} does not require sessions; a session receiver \
                             cannot be created on it"
                        ),
                    ))
                }
                (false, None) => {}
            }
        }
        let reply = self.reply(&attach);
        match attach.accept(reply) {
            Link::Outgoing(link) => {
                self.links.spawn(receive_link::serve(
                    link,
                    entity,
                    mode,
                    self.auth.clone(),
                    resource,
                    None,
                ));
            }
            Link::Incoming(link) => {
                self.links
                    .spawn(send_link::serve(link, entity, self.auth.clone(), resource));
            }
        }
    }

    /// Locks the requested session (a next-available request may wait for one), then
    /// answers the attach with the session id and lock expiry and serves the link.
    fn attach_session_receiver(
        &self,
        attach: IncomingAttach,
        entity: busdrain_broker::Entity,
        mode: ReceiveMode,
        resource: String,
        request: session_link::SessionRequest,
    ) {
        let mut reply = self.reply(&attach);
        let auth = self.auth.clone();
        let closed = self.closed.clone();
        self.links.spawn(async move {
            let timeout = session_link::accept_timeout(attach.attach());
            let locking = session_link::lock_session(&entity, &request, timeout);
            let locked = tokio::select! {
                locked = locking => locked,
                // The client left while we waited: nobody to answer.
                _ = closed.cancelled() => return,
            };
            let lock = match locked {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::debug!(entity = %resource, ?request, ?error, "session receiver refused");
                    return attach.refuse(error);
                }
            };
            reply.source = session_link::reply_source(attach.attach().source.as_deref(), &lock);
            session_link::add_locked_until(&mut reply.properties, &lock);
            tracing::debug!(entity = %resource, session_id = %lock.session_id, "session locked");
            match attach.accept(reply) {
                Link::Outgoing(link) => {
                    receive_link::serve(link, entity, mode, auth, resource, Some(lock)).await
                }
                Link::Incoming(_) => entity.release_session(&lock.session_id, lock.token),
            }
        });
    }

    fn lookup(
        &self,
        path: &EntityPath,
    ) -> Result<busdrain_broker::Entity, busdrain_amqp::types::definitions::Error> {
        let broker_path = BrokerPath::parse(&path.resource())
            .map_err(|e| amqp_error(NOT_FOUND, e.to_string()))?;
        self.shared
            .broker
            .entity(&broker_path)
            .map_err(|e| broker_error(&e))
    }
}
