//! The Service Bus implementation of [`MessageSource`], on the `azservicebus` AMQP client.
//!
//! [`ServiceBusConnector`] owns the namespace connection and opens receivers (peek-lock, one per
//! queue, subscription, or session) and senders. Each [`ServiceBusSource`] is owned by one task,
//! as azservicebus's receive and settle methods take `&mut self`.
//!
//! Facts about azservicebus 0.25.1 (fe2o3-amqp 0.14) this module is built around:
//! - Settling on the receive link (complete / abandon / dead-letter) is fire-and-forget: fe2o3
//!   sends the disposition and does not wait for the broker's answer, so a settlement refused
//!   for an expired lock cannot be observed. We report [`SourceError::LockLost`] when the lock
//!   had expired by our clock at settle time; the broker then redelivers the message and the
//!   idempotent write makes the repeat harmless.
//! - Lock renewal goes through `$management` (`com.microsoft:renew-lock`) and does report a lost
//!   lock (status 410).
//! - Creating a link holds the connection scope's lock for the whole attach, and the broker
//!   holds an "accept next session" attach until a session frees up. So each session receiver
//!   gets its own AMQP connection, or one waiting accept would stall every other attach.
//! - Recovery: azservicebus retries an operation and re-attaches its link on link-level failures
//!   (up to `max_retries`). What it still returns as [`SourceError::Transient`] means the
//!   source is no longer usable: drop it and open a new one from the connector, which reopens
//!   the namespace connection if it has closed.

use std::collections::HashMap;
use std::time::Duration;

use azservicebus::authorization::{
    AzureNamedKeyCredential, AzureSasCredential, ServiceBusTokenCredential, SharedAccessCredential,
};
use azservicebus::core::BasicRetryPolicy;
use azservicebus::receiver::DeadLetterOptions;
use azservicebus::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusReceiveMode, ServiceBusReceivedMessage,
    ServiceBusReceiver, ServiceBusReceiverOptions, ServiceBusRetryOptions,
    ServiceBusSessionReceiver, ServiceBusSessionReceiverOptions, SubQueue,
};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::connection_string::{
    parse_endpoint, ConnectionStringError, ServiceBusConnectionString, AMQPS_PORT, AMQP_PORT,
};
use super::credential::Credential;
use super::error_classification::{classify, classify_accept_session};
use super::message_mapping::map_received_message;
use super::panic_guard::contain;
use super::sender::MessageSender;
use super::{DeadLetter, LockToken, MessageSource, ReceivedMessage, SourceError};

type Client = ServiceBusClient<BasicRetryPolicy>;

/// A queue or a topic subscription to receive from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceEntity {
    Queue(String),
    Subscription { topic: String, subscription: String },
}

impl SourceEntity {
    /// The top-level entity (queue or topic) a connection string's `EntityPath` may scope to.
    fn top_level_name(&self) -> &str {
        match self {
            SourceEntity::Queue(queue) => queue,
            SourceEntity::Subscription { topic, .. } => topic,
        }
    }
}

impl std::fmt::Display for SourceEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceEntity::Queue(queue) => f.write_str(queue),
            SourceEntity::Subscription {
                topic,
                subscription,
            } => write!(f, "{topic}/Subscriptions/{subscription}"),
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Namespace host, e.g. `contoso.servicebus.windows.net` or `127.0.0.1`.
    pub host: String,
    /// AMQP port; `None` means the default for the transport (5671 TLS, 5672 plain).
    pub port: Option<u16>,
    /// TLS for Azure; plain AMQP for the emulator.
    pub use_tls: bool,
    pub credential: Credential,
    /// Set when the credential is scoped to one queue or topic (`EntityPath`).
    pub entity_scope: Option<String>,
    /// How long opening the AMQP connection (TCP, TLS, SASL, open, begin, `$cbs`) may take.
    pub connect_timeout: Duration,
    /// Per-attempt timeout of azservicebus operations (its `try_timeout`).
    pub operation_timeout: Duration,
    /// Retries azservicebus makes (re-attaching the link) before returning an error.
    pub max_retries: u32,
}

impl ConnectorSettings {
    /// Settings from a connection string: `UseDevelopmentEmulator=true` selects plain AMQP on
    /// the endpoint's port (default 5672), as the official SDKs do; otherwise TLS (5671).
    pub fn from_connection_string(parsed: &ServiceBusConnectionString) -> Self {
        Self {
            host: parsed.host.clone(),
            port: parsed.port,
            use_tls: !parsed.use_development_emulator,
            credential: parsed.credential.clone(),
            entity_scope: parsed.entity_path.clone(),
            connect_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(60),
            max_retries: 3,
        }
    }

    /// Settings for a namespace reached with Microsoft Entra ID (or any credential), over TLS.
    /// `namespace` is `name.servicebus.windows.net`, optionally as `sb://…` and with a port.
    pub fn for_namespace(
        namespace: &str,
        credential: Credential,
    ) -> Result<Self, ConnectionStringError> {
        let (host, port) = parse_endpoint(namespace)?;
        Ok(Self {
            host,
            port,
            use_tls: true,
            credential,
            entity_scope: None,
            connect_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(60),
            max_retries: 3,
        })
    }

    /// `host` or `host:port`. The port is written only when it is not the transport default:
    /// azservicebus builds token audiences from this string, and Azure expects them port-less.
    fn namespace_address(&self) -> String {
        let default_port = if self.use_tls { AMQPS_PORT } else { AMQP_PORT };
        match self.port {
            Some(port) if port != default_port => format!("{}:{port}", self.host),
            _ => self.host.clone(),
        }
    }

    /// The URI a SAS token is signed for: the namespace, or the entity when the key is scoped to
    /// one. Same form as the .NET SDK and azservicebus build (transport scheme, lower case).
    fn signature_resource(&self) -> String {
        let scheme = if self.use_tls { "amqps" } else { "amqp" };
        match &self.entity_scope {
            Some(entity) => format!("{scheme}://{}/{entity}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
        .to_lowercase()
    }

    fn token_credential(&self) -> Result<ServiceBusTokenCredential, SourceError> {
        let entra = self.credential.entra_token_source().map_err(|e| {
            SourceError::Fatal(format!("invalid Microsoft Entra ID credential: {e}"))
        })?;
        if let Some(source) = entra {
            return Ok(ServiceBusTokenCredential::new(source));
        }
        let credential = match &self.credential {
            Credential::SharedAccessKey { name, key } => {
                SharedAccessCredential::try_from_named_key_credential(
                    AzureNamedKeyCredential::new(name, key.expose()),
                    self.signature_resource(),
                )
            }
            Credential::SharedAccessSignature(token) => {
                SharedAccessCredential::try_from_sas_credential(AzureSasCredential::new(
                    token.expose(),
                ))
            }
            Credential::ClientSecret { .. }
            | Credential::ManagedIdentity { .. }
            | Credential::WorkloadIdentity { .. } => {
                return Err(SourceError::Fatal(
                    "Microsoft Entra ID credential produced no token source".to_string(),
                ))
            }
        }
        // The signature errors describe the token's shape (missing `se`, bad encoding), never
        // its value.
        .map_err(|e| SourceError::Fatal(format!("invalid Service Bus credential: {e}")))?;
        Ok(credential.into())
    }

    fn client_options(&self) -> ServiceBusClientOptions {
        ServiceBusClientOptions {
            retry_options: ServiceBusRetryOptions {
                max_retries: self.max_retries,
                try_timeout: self.operation_timeout,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    async fn open_client(&self) -> Result<Client, SourceError> {
        let address = self.namespace_address();
        let credential = self.token_credential()?;
        let options = self.client_options();
        let opening = async {
            if self.use_tls {
                Box::pin(Client::new_from_credential(
                    address.clone(),
                    credential,
                    options,
                ))
                .await
            } else {
                Box::pin(Client::unsecured().new_from_credential(
                    address.clone(),
                    credential,
                    options,
                ))
                .await
            }
        };
        let scheme = if self.use_tls { "amqps" } else { "amqp" };
        match tokio::time::timeout(self.connect_timeout, opening).await {
            Ok(Ok(client)) => {
                tracing::debug!(address = %address, scheme, "connected to Service Bus");
                Ok(client)
            }
            Ok(Err(error)) => Err(classify(
                "connecting",
                &format!("{scheme}://{address}"),
                &error,
            )),
            Err(_) => Err(SourceError::Transient(format!(
                "connecting to {scheme}://{address} timed out after {:?}",
                self.connect_timeout
            ))),
        }
    }

    fn check_scope(&self, entity: &str) -> Result<(), SourceError> {
        match &self.entity_scope {
            Some(scope) if !scope.eq_ignore_ascii_case(entity) => Err(SourceError::Fatal(format!(
                "the connection string is scoped to EntityPath={scope}, which cannot reach \
                 `{entity}`; use a namespace-level key or a connection string for `{entity}`"
            ))),
            _ => Ok(()),
        }
    }
}

/// How a [`ServiceBusSource`] receives.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    /// Messages the broker may push ahead of `receive` calls (0 = credit only while receiving).
    /// Prefetched messages' locks run while they wait, so keep it near one batch.
    pub prefetch_count: u32,
    /// After the first message of a `receive` arrives, how long to wait for the rest of the
    /// batch (azservicebus otherwise waits the full `max_wait` unless the batch fills).
    pub batch_linger: Duration,
    /// Read the entity's dead-letter sub-queue instead of the entity.
    pub dead_letter_queue: bool,
}

impl Default for ReceiverSettings {
    fn default() -> Self {
        Self {
            prefetch_count: 0,
            batch_linger: Duration::from_millis(20),
            dead_letter_queue: false,
        }
    }
}

/// Opens receivers and senders on one Service Bus namespace. Share it (`Arc`) between tasks.
pub struct ServiceBusConnector {
    settings: ConnectorSettings,
    /// The namespace connection shared by non-session receivers and senders; `None` after it
    /// failed, so the next open reconnects.
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for ServiceBusConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusConnector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServiceBusConnector {
    /// Connects (and authenticates) eagerly, so a wrong host or key fails here.
    pub async fn connect(settings: ConnectorSettings) -> Result<Self, SourceError> {
        let client = settings.open_client().await?;
        Ok(Self {
            settings,
            client: Mutex::new(Some(client)),
        })
    }

    pub fn settings(&self) -> &ConnectorSettings {
        &self.settings
    }

    /// Opens a peek-lock receiver on a queue or subscription that does not require sessions.
    pub async fn open_receiver(
        &self,
        entity: &SourceEntity,
        settings: &ReceiverSettings,
    ) -> Result<ServiceBusSource, SourceError> {
        self.settings.check_scope(entity.top_level_name())?;
        let options = ServiceBusReceiverOptions {
            prefetch_count: settings.prefetch_count,
            receive_mode: ServiceBusReceiveMode::PeekLock,
            identifier: None,
            sub_queue: if settings.dead_letter_queue {
                SubQueue::DeadLetter
            } else {
                SubQueue::None
            },
        };
        let mut guard = self.client.lock().await;
        let client = match guard.as_mut() {
            Some(client) if !client.is_closed() => client,
            _ => guard.insert(self.settings.open_client().await?),
        };
        let opened = match entity {
            SourceEntity::Queue(queue) => {
                Box::pin(client.create_receiver_for_queue(queue, options)).await
            }
            SourceEntity::Subscription {
                topic,
                subscription,
            } => {
                Box::pin(client.create_receiver_for_subscription(topic, subscription, options))
                    .await
            }
        };
        let path = entity_label(entity, settings);
        match opened {
            Ok(receiver) => {
                tracing::debug!(entity = %path, "receiver attached");
                Ok(ServiceBusSource::new(
                    ReceiveLink::Plain(receiver),
                    None,
                    path,
                    settings,
                ))
            }
            Err(error) => {
                let classified = classify("opening a receiver", &path, &error);
                if matches!(classified, SourceError::Transient(_)) {
                    // The connection may be the problem: reconnect on the next open.
                    if let Some(broken) = guard.take() {
                        let _ = Box::pin(broken.dispose()).await;
                    }
                }
                Err(classified)
            }
        }
    }

    /// Locks the next session that has messages, waiting up to `wait` for one to free up.
    /// Returns [`SourceError::NoSessionAvailable`] when none did.
    pub async fn accept_next_session(
        &self,
        entity: &SourceEntity,
        settings: &ReceiverSettings,
        wait: Duration,
    ) -> Result<ServiceBusSource, SourceError> {
        self.accept_session_inner(entity, None, settings, wait)
            .await
    }

    /// Locks one named session, waiting up to `wait` if another receiver holds it.
    pub async fn accept_session(
        &self,
        entity: &SourceEntity,
        session_id: &str,
        settings: &ReceiverSettings,
        wait: Duration,
    ) -> Result<ServiceBusSource, SourceError> {
        self.accept_session_inner(entity, Some(session_id), settings, wait)
            .await
    }

    async fn accept_session_inner(
        &self,
        entity: &SourceEntity,
        session_id: Option<&str>,
        settings: &ReceiverSettings,
        wait: Duration,
    ) -> Result<ServiceBusSource, SourceError> {
        self.settings.check_scope(entity.top_level_name())?;
        if settings.dead_letter_queue {
            return Err(SourceError::Fatal(format!(
                "the dead-letter queue of `{entity}` has no sessions; open it with open_receiver"
            )));
        }
        let options = ServiceBusSessionReceiverOptions {
            prefetch_count: settings.prefetch_count,
            receive_mode: ServiceBusReceiveMode::PeekLock,
            identifier: None,
        };
        // A dedicated connection per session receiver: see the module notes.
        let mut client = self.settings.open_client().await?;
        let accepting = async {
            match (entity, session_id) {
                (SourceEntity::Queue(queue), None) => {
                    Box::pin(client.accept_next_session_for_queue(queue, options)).await
                }
                (SourceEntity::Queue(queue), Some(id)) => {
                    Box::pin(client.accept_session_for_queue(queue, id, options)).await
                }
                (
                    SourceEntity::Subscription {
                        topic,
                        subscription,
                    },
                    None,
                ) => {
                    Box::pin(client.accept_next_session_for_subscription(
                        topic,
                        subscription,
                        options,
                    ))
                    .await
                }
                (
                    SourceEntity::Subscription {
                        topic,
                        subscription,
                    },
                    Some(id),
                ) => {
                    Box::pin(client.accept_session_for_subscription(
                        topic,
                        subscription,
                        id,
                        options,
                    ))
                    .await
                }
            }
        };
        let outcome = tokio::time::timeout(wait, accepting).await;
        let path = entity.to_string();
        match outcome {
            Ok(Ok(receiver)) => {
                let session = receiver.session_id().to_string();
                tracing::debug!(entity = %path, session_id = %session, "session accepted");
                Ok(ServiceBusSource::new(
                    ReceiveLink::Session(receiver),
                    Some(client),
                    path,
                    settings,
                ))
            }
            Ok(Err(error)) => {
                let _ = Box::pin(client.dispose()).await;
                Err(classify_accept_session(&path, &error))
            }
            Err(_) => {
                // Closing the connection withdraws the pending attach, so no session gets
                // locked to a link nobody reads.
                let _ = Box::pin(client.dispose()).await;
                Err(SourceError::NoSessionAvailable)
            }
        }
    }

    /// Opens a sender on a queue or topic (used by `busdrain send`, tests and benchmarks).
    pub async fn open_sender(&self, queue_or_topic: &str) -> Result<MessageSender, SourceError> {
        self.settings.check_scope(queue_or_topic)?;
        let mut guard = self.client.lock().await;
        let client = match guard.as_mut() {
            Some(client) if !client.is_closed() => client,
            _ => guard.insert(self.settings.open_client().await?),
        };
        // Bounded: after the AMQP client panicked mid-send (see `panic_guard`) and the broker
        // restarted, attaching on the old connection was seen to wait forever. A connection
        // that cannot attach within one operation timeout is dropped; the next open reconnects.
        let attaching = Box::pin(client.create_sender(queue_or_topic, Default::default()));
        let Ok(attached) = tokio::time::timeout(self.settings.operation_timeout, attaching).await
        else {
            drop(guard.take());
            return Err(SourceError::Transient(format!(
                "opening a sender on `{queue_or_topic}`: no attach within {:?}; the connection \
                 is dropped and the next open reconnects",
                self.settings.operation_timeout
            )));
        };
        match attached {
            Ok(sender) => Ok(MessageSender::new(sender, queue_or_topic.to_string())),
            Err(error) => {
                let classified = classify("opening a sender", queue_or_topic, &error);
                if matches!(classified, SourceError::Transient(_)) {
                    if let Some(broken) = guard.take() {
                        let _ = Box::pin(broken.dispose()).await;
                    }
                }
                Err(classified)
            }
        }
    }

    /// Closes the shared namespace connection. Receivers and senders opened from it stop working.
    pub async fn close(&self) {
        if let Some(client) = self.client.lock().await.take() {
            if let Err(error) = Box::pin(client.dispose()).await {
                tracing::debug!(error = %error, "closing the Service Bus connection");
            }
        }
    }
}

fn entity_label(entity: &SourceEntity, settings: &ReceiverSettings) -> String {
    if settings.dead_letter_queue {
        format!("{entity}/$DeadLetterQueue")
    } else {
        entity.to_string()
    }
}

/// The azservicebus receiver behind a source.
enum ReceiveLink {
    Plain(ServiceBusReceiver),
    Session(ServiceBusSessionReceiver),
}

/// Runs the same expression on whichever receiver type the link holds; both types have the
/// same receive and settle methods but share no trait.
macro_rules! on_link {
    ($link:expr, $receiver:ident => $body:expr) => {
        match $link {
            ReceiveLink::Plain($receiver) => $body,
            ReceiveLink::Session($receiver) => $body,
        }
    };
}

/// A message received and not yet settled: azservicebus settles with the message itself.
struct Unsettled {
    message: ServiceBusReceivedMessage,
    locked_until: Option<OffsetDateTime>,
}

/// Receives and settles the messages of one queue, subscription, or session, in peek-lock mode.
pub struct ServiceBusSource {
    link: ReceiveLink,
    /// The dedicated connection of a session receiver (see the module notes).
    own_client: Option<Client>,
    entity: String,
    session_id: Option<String>,
    batch_linger: Duration,
    unsettled: HashMap<LockToken, Unsettled>,
    /// Set when azservicebus panicked inside a call on this link (see `panic_guard`): every
    /// later call fails with a transient error, so the pipeline reopens the source.
    poisoned: bool,
}

impl std::fmt::Debug for ServiceBusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusSource")
            .field("entity", &self.entity)
            .field("session_id", &self.session_id)
            .field("unsettled", &self.unsettled.len())
            .finish_non_exhaustive()
    }
}

impl ServiceBusSource {
    fn new(
        link: ReceiveLink,
        own_client: Option<Client>,
        entity: String,
        settings: &ReceiverSettings,
    ) -> Self {
        let session_id = match &link {
            ReceiveLink::Plain(_) => None,
            ReceiveLink::Session(receiver) => Some(receiver.session_id().to_string()),
        };
        Self {
            link,
            own_client,
            entity,
            session_id,
            batch_linger: settings.batch_linger,
            unsettled: HashMap::new(),
            poisoned: false,
        }
    }

    /// The entity path this source reads (`queue`, `topic/Subscriptions/sub`, `…/$DeadLetterQueue`).
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// Messages received and not yet settled.
    pub fn unsettled_count(&self) -> usize {
        self.unsettled.len()
    }

    /// Reads up to `max` messages with sequence numbers from `from_sequence` on, over the
    /// entity's `$management` link (`com.microsoft:peek-message`): nothing is locked, the
    /// delivery counts do not move, and the messages stay where they are. A peeked message has
    /// no lock (its `lock_token` is nil and `locked_until` is `None`); it cannot be settled.
    /// An empty result means no message at or after `from_sequence`.
    pub async fn peek(
        &mut self,
        from_sequence: i64,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, SourceError> {
        let (link, entity) = (&mut self.link, self.entity.as_str());
        let peeked = contain("peeking", entity, &mut self.poisoned, async {
            on_link!(link, r => Box::pin(r.peek_messages(max, Some(from_sequence))).await)
                .map_err(|e| classify("peeking", entity, &e))
        })
        .await?;
        let now = OffsetDateTime::now_utc();
        Ok(peeked
            .iter()
            .map(|m| {
                let mut message =
                    map_received_message(LockToken(uuid::Uuid::nil()), m.raw_amqp_message(), now);
                message.locked_until = None;
                message
            })
            .collect())
    }

    async fn receive_up_to(
        &mut self,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<ServiceBusReceivedMessage>, SourceError> {
        let (link, entity) = (&mut self.link, self.entity.as_str());
        contain("receiving", entity, &mut self.poisoned, async {
            on_link!(link, r => Box::pin(r.receive_messages_with_max_wait_time(max, wait)).await)
                .map_err(|e| classify("receiving", entity, &e))
        })
        .await
    }

    fn take_for_settlement(&mut self, token: LockToken) -> Result<Unsettled, SourceError> {
        self.unsettled.remove(&token).ok_or_else(|| {
            SourceError::LockLost(format!(
                "lock token {} is not held by this receiver of `{}` (already settled, or \
                 received elsewhere)",
                token.0, self.entity
            ))
        })
    }

    /// After a link settlement was sent: report a lock that had expired by our clock, since
    /// the broker will have ignored the settlement and will redeliver.
    fn expired_lock(
        &self,
        token: LockToken,
        entry: &Unsettled,
        action: &str,
    ) -> Result<(), SourceError> {
        match entry.locked_until {
            Some(until) if until < OffsetDateTime::now_utc() => {
                Err(SourceError::LockLost(format!(
                "{action} of message {} on `{}` came after its lock expired at {until}; it will \
                 be redelivered",
                token.0, self.entity
            )))
            }
            _ => Ok(()),
        }
    }

    /// Settles with `action`; on a transient failure the message stays unsettled so the caller
    /// may retry (or let the lock lapse).
    async fn settle(&mut self, token: LockToken, action: Settlement) -> Result<(), SourceError> {
        let entry = self.take_for_settlement(token)?;
        let name = action.name();
        let (link, entity) = (&mut self.link, self.entity.as_str());
        let message = &entry.message;
        let result = contain(name, entity, &mut self.poisoned, async {
            match action {
                Settlement::Complete => {
                    on_link!(link, r => Box::pin(r.complete_message(message)).await)
                }
                Settlement::Abandon => {
                    on_link!(link, r => Box::pin(r.abandon_message(message, None)).await)
                }
                Settlement::DeadLetter(why) => {
                    let options = DeadLetterOptions {
                        dead_letter_reason: Some(why.reason),
                        dead_letter_error_description: Some(why.description),
                        properties_to_modify: None,
                    };
                    on_link!(link, r => Box::pin(r.dead_letter_message(message, options)).await)
                }
            }
            .map_err(|e| classify(name, entity, &e))
        })
        .await;
        match result {
            Ok(()) => self.expired_lock(token, &entry, name),
            Err(error) => {
                if matches!(error, SourceError::Transient(_)) {
                    self.unsettled.insert(token, entry);
                }
                Err(error)
            }
        }
    }
}

enum Settlement {
    Complete,
    Abandon,
    DeadLetter(DeadLetter),
}

impl Settlement {
    fn name(&self) -> &'static str {
        match self {
            Settlement::Complete => "complete",
            Settlement::Abandon => "abandon",
            Settlement::DeadLetter(_) => "dead-letter",
        }
    }
}

fn lock_token_of(message: &ServiceBusReceivedMessage) -> LockToken {
    LockToken(uuid::Uuid::from_bytes(*message.lock_token().as_inner()))
}

impl MessageSource for ServiceBusSource {
    async fn receive(
        &mut self,
        max_messages: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, SourceError> {
        let max = u32::try_from(max_messages).unwrap_or(u32::MAX).max(1);
        // Wait for the first message, then linger briefly for the rest: a single call for `max`
        // would wait out all of `max_wait` whenever fewer than `max` messages are available.
        let mut batch = self.receive_up_to(1, max_wait).await?;
        if !batch.is_empty() && max > 1 {
            let rest = self.receive_up_to(max - 1, self.batch_linger).await;
            match rest {
                Ok(more) => batch.extend(more),
                // Keep what we already hold: those messages are locked to us.
                Err(error) if batch.is_empty() => return Err(error),
                Err(error) => {
                    tracing::debug!(entity = %self.entity, error = %error, "receiving the rest of a batch")
                }
            }
        }
        let received_at = OffsetDateTime::now_utc();
        let mut mapped = Vec::with_capacity(batch.len());
        for message in batch {
            let token = lock_token_of(&message);
            let received = map_received_message(token, message.raw_amqp_message(), received_at);
            self.unsettled.insert(
                token,
                Unsettled {
                    message,
                    locked_until: received.locked_until,
                },
            );
            mapped.push(received);
        }
        Ok(mapped)
    }

    async fn complete(&mut self, token: LockToken) -> Result<(), SourceError> {
        self.settle(token, Settlement::Complete).await
    }

    async fn abandon(&mut self, token: LockToken) -> Result<(), SourceError> {
        self.settle(token, Settlement::Abandon).await
    }

    async fn dead_letter(&mut self, token: LockToken, why: DeadLetter) -> Result<(), SourceError> {
        self.settle(token, Settlement::DeadLetter(why)).await
    }

    /// Abandons the message on the link. For a lock that still holds, the broker makes the
    /// message available at once (the delivery count rises, as it would when the lock
    /// lapsed); for a lost one it ignores the disposition. Either way fe2o3 counts the
    /// disposition towards refilling the link's credit (see [`MessageSource::release`]).
    async fn release(&mut self, token: LockToken) {
        if !self.unsettled.contains_key(&token) {
            return;
        }
        match self.settle(token, Settlement::Abandon).await {
            Ok(()) | Err(SourceError::LockLost(_)) => {}
            Err(error) => {
                // Still held: a later release, or closing the link, returns it.
                tracing::debug!(entity = %self.entity, %error, "releasing a message failed");
            }
        }
    }

    async fn renew_lock(&mut self, token: LockToken) -> Result<OffsetDateTime, SourceError> {
        let entity = self.entity.clone();
        let entry = self.unsettled.get_mut(&token).ok_or_else(|| {
            SourceError::LockLost(format!(
                "lock token {} is not held by this receiver of `{entity}`",
                token.0
            ))
        })?;
        let link = &mut self.link;
        let message = &mut entry.message;
        let renewed = contain("renew-lock", &entity, &mut self.poisoned, async {
            on_link!(link, r => Box::pin(r.renew_message_lock(message)).await)
                .map_err(|e| classify("renew-lock", &entity, &e))
        })
        .await;
        // On LockLost the message stays in `unsettled`: the caller releases it (see `release`).
        renewed?;
        let raw = entry.message.raw_amqp_message();
        let until = map_received_message(token, raw, OffsetDateTime::now_utc()).locked_until;
        match until {
            Some(until) => {
                entry.locked_until = Some(until);
                Ok(until)
            }
            None => Err(SourceError::Transient(format!(
                "renew-lock on `{entity}` answered without an expiry"
            ))),
        }
    }

    fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    async fn renew_session_lock(&mut self) -> Result<Option<OffsetDateTime>, SourceError> {
        let entity = self.entity.as_str();
        match &mut self.link {
            ReceiveLink::Plain(_) => Ok(None),
            ReceiveLink::Session(receiver) => {
                contain("renew-session-lock", entity, &mut self.poisoned, async {
                    match Box::pin(receiver.renew_session_lock()).await {
                        Ok(()) => Ok(Some(receiver.session_locked_until())),
                        Err(error) => Err(classify("renew-session-lock", entity, &error)),
                    }
                })
                .await
            }
        }
    }

    async fn close(self) -> Result<(), SourceError> {
        let Self {
            link,
            own_client,
            entity,
            mut poisoned,
            ..
        } = self;
        let closed = contain("closing the receiver", &entity, &mut poisoned, async {
            on_link!(link, r => Box::pin(r.dispose()).await)
                .map_err(|e| classify("closing the receiver", &entity, &e))
        })
        .await;
        if let Some(client) = own_client {
            let disposed = contain("closing a session connection", &entity, &mut false, async {
                Box::pin(client.dispose())
                    .await
                    .map_err(|e| classify("closing a session connection", &entity, &e))
            })
            .await;
            if let Err(error) = disposed {
                tracing::debug!(entity = %entity, error = %error, "closing a session connection");
            }
        }
        closed
    }
}
