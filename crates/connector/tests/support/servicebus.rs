//! Service Bus client helpers of the integration tests: connecting to an emulator child,
//! sending, receiving a count of messages, and draining a dead-letter queue.

use std::time::{Duration, Instant};

use busdrain_connector::source::{
    ConnectorSettings, MessageSource as _, OutgoingMessage, PropertyValue, ReceivedMessage,
    ReceiverSettings, ServiceBusConnectionString, ServiceBusConnector, ServiceBusSource,
    SourceEntity, SourceError,
};

use super::process::{EmulatorChild, EMULATOR_KEY};

impl EmulatorChild {
    /// A connector with the default settings, as `busdrain send` and the tests' producers use.
    pub async fn connect(&self) -> ServiceBusConnector {
        let parsed = ServiceBusConnectionString::parse(&self.connection_string())
            .expect("a valid connection string");
        ServiceBusConnector::connect(ConnectorSettings::from_connection_string(&parsed))
            .await
            .unwrap_or_else(|e| panic!("connect to the emulator: {e}\n{}", self.log()))
    }

    /// A connector with short timeouts (10 s, one retry), so a failing operation fails fast.
    pub async fn try_connect(&self, key: &str) -> Result<ServiceBusConnector, SourceError> {
        self.try_connect_with(key, Duration::from_secs(10), 1).await
    }

    pub async fn try_connect_with(
        &self,
        key: &str,
        operation_timeout: Duration,
        max_retries: u32,
    ) -> Result<ServiceBusConnector, SourceError> {
        let parsed = ServiceBusConnectionString::parse(&self.connection_string_with_key(key))
            .expect("a valid connection string");
        let mut settings = ConnectorSettings::from_connection_string(&parsed);
        settings.operation_timeout = operation_timeout;
        settings.max_retries = max_retries;
        settings.connect_timeout = operation_timeout;
        ServiceBusConnector::connect(settings).await
    }

    /// [`Self::try_connect`] with the right key.
    pub async fn connect_fast(&self) -> ServiceBusConnector {
        self.try_connect(EMULATOR_KEY)
            .await
            .unwrap_or_else(|e| panic!("connect to the emulator: {e}\n{}", self.log()))
    }
}

/// Sends `messages` on one sender link, 500 per transfer.
pub async fn send_in_chunks(
    connector: &ServiceBusConnector,
    entity: &str,
    messages: Vec<OutgoingMessage>,
) {
    let mut sender = connector.open_sender(entity).await.expect("open a sender");
    for chunk in messages.chunks(500) {
        sender.send(chunk.to_vec()).await.expect("send");
    }
    sender.close().await.expect("close the sender");
}

/// Receives until `count` messages arrived or `within` passed (settling nothing).
pub async fn receive_n(
    source: &mut ServiceBusSource,
    count: usize,
    within: Duration,
) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + within;
    let mut all = Vec::new();
    while all.len() < count && Instant::now() < deadline {
        let batch = source
            .receive(count - all.len(), Duration::from_secs(2))
            .await
            .expect("receive");
        all.extend(batch);
    }
    all
}

/// Receives everything in `entity`'s dead-letter queue (completing it): `(message id,
/// DeadLetterReason)`, sorted.
pub async fn drain_dlq(
    connector: &ServiceBusConnector,
    entity: &SourceEntity,
) -> Vec<(String, String)> {
    let settings = ReceiverSettings {
        dead_letter_queue: true,
        ..ReceiverSettings::default()
    };
    let mut dlq = connector
        .open_receiver(entity, &settings)
        .await
        .expect("dlq receiver");
    let mut found = Vec::new();
    loop {
        let batch = dlq
            .receive(200, Duration::from_secs(2))
            .await
            .expect("receive dlq");
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let reason = match m.application_properties.get("DeadLetterReason") {
                Some(PropertyValue::String(r)) => r.clone(),
                other => panic!("no DeadLetterReason: {other:?}"),
            };
            found.push((m.message_id.clone().unwrap_or_default(), reason));
            dlq.complete(m.lock_token)
                .await
                .expect("complete dlq message");
        }
    }
    dlq.close().await.expect("close dlq");
    found.sort();
    found
}
