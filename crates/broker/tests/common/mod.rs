//! Helpers shared by the broker's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use busdrain_broker::{
    Broker, BrokerLimits, Delivery, Entity, EntityPath, NamespaceConfig, NewMessage, ReceiveMode,
};

/// A namespace with queues tuned for fast tests (1 s locks, small delivery counts, short TTLs).
pub const TEST_CONFIG: &str = r#"{
  "UserConfig": {
    "Namespaces": [{
      "Name": "test",
      "Queues": [
        { "Name": "plain", "Properties": { "LockDuration": "PT1S", "MaxDeliveryCount": 2 } },
        { "Name": "deferrals", "Properties": { "MaxDeliveryCount": 5 } },
        { "Name": "expiring-dlq", "Properties": { "DefaultMessageTimeToLive": "PT1S", "DeadLetteringOnMessageExpiration": true } },
        { "Name": "expiring-drop", "Properties": { "DefaultMessageTimeToLive": "PT1S" } },
        { "Name": "long-ttl", "Properties": { "DefaultMessageTimeToLive": "P1D", "DeadLetteringOnMessageExpiration": true } },
        { "Name": "sessions", "Properties": { "RequiresSession": true } }
      ],
      "Topics": [{
        "Name": "events",
        "Subscriptions": [
          { "Name": "all" },
          { "Name": "eu-only", "Rules": [{ "Name": "eu", "Properties": { "FilterType": "Correlation", "CorrelationFilter": { "Properties": { "region": "eu" } } } }] }
        ]
      }]
    }]
  }
}"#;

pub fn test_config() -> NamespaceConfig {
    match NamespaceConfig::from_json_str(TEST_CONFIG) {
        Ok(config) => config,
        Err(error) => panic!("test config: {error}"),
    }
}

pub fn limits() -> BrokerLimits {
    BrokerLimits {
        max_message_size: 64 * 1024,
        sweep_interval: Duration::from_millis(20),
    }
}

pub fn open(dir: &Path) -> Broker {
    match Broker::open(dir, test_config(), limits()) {
        Ok(broker) => broker,
        Err(error) => panic!("open broker: {error}"),
    }
}

pub fn entity(broker: &Broker, address: &str) -> Entity {
    let path = match EntityPath::parse(address) {
        Ok(path) => path,
        Err(error) => panic!("{error}"),
    };
    match broker.entity(&path) {
        Ok(entity) => entity,
        Err(error) => panic!("{error}"),
    }
}

pub fn message(body: &str) -> NewMessage {
    NewMessage {
        payload: body.to_owned().into(),
        message_id: Some(body.to_owned()),
        ..NewMessage::default()
    }
}

pub fn body(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.message.content.payload).into_owned()
}

pub async fn send(entity: &Entity, bodies: &[&str]) -> Vec<i64> {
    match entity
        .send(bodies.iter().map(|b| message(b)).collect())
        .await
    {
        Ok(sequence_numbers) => sequence_numbers,
        Err(error) => panic!("send: {error}"),
    }
}

pub async fn receive(entity: &Entity, max: usize, mode: ReceiveMode) -> Vec<Delivery> {
    match entity.receive(max, mode).await {
        Ok(deliveries) => deliveries,
        Err(error) => panic!("receive: {error}"),
    }
}

pub fn token(delivery: &Delivery) -> uuid::Uuid {
    match delivery.lock {
        Some(lock) => lock.token,
        None => panic!("delivery without lock"),
    }
}
