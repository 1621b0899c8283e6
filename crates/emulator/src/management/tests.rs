//! `$management` operations against a real broker in a temporary directory.

use busdrain_broker::{
    Broker, BrokerLimits, Entity, EntityPath, NamespaceConfig, NewMessage, ReceiveMode,
};
use serde_amqp::primitives::{Array, OrderedMap, Uuid as AmqpUuid};
use serde_amqp::Value;

use super::{handle, ManagementContext};
use crate::auth::ConnectionAuth;
use crate::message::{decode_message, encode_delivery, DeliveryStamp};
use crate::request::{Request, Response};
use crate::sas::Rights;

struct Fixture {
    broker: Broker,
    entity: Entity,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.broker.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("busdrain-emulator-mgmt-{}", uuid::Uuid::new_v4()));
    let broker = Broker::open(
        &dir,
        NamespaceConfig::default_namespace(),
        BrokerLimits::default(),
    )
    .expect("broker opens in a fresh temp dir");
    let entity = broker
        .entity(&EntityPath::parse("queue.1").expect("valid path"))
        .expect("queue.1 exists in the default namespace");
    Fixture {
        broker,
        entity,
        dir,
    }
}

/// A bare message as the broker stores it: one amqp-value body.
fn message(text: &str) -> NewMessage {
    let mut payload = vec![0x00, 0x53, 0x77];
    payload.extend_from_slice(&serde_amqp::to_vec(&Value::String(text.into())).expect("encodes"));
    NewMessage {
        payload: payload.into(),
        ..Default::default()
    }
}

fn request(operation: &str, body: Vec<(&str, Value)>) -> Request {
    let mut map = OrderedMap::new();
    for (k, v) in body {
        map.insert(Value::String(k.into()), v);
    }
    Request {
        properties: vec![("operation".into(), Value::String(operation.into()))],
        body: Some(Value::Map(map)),
        ..Default::default()
    }
}

fn granted(rights: Rights) -> ConnectionAuth {
    let auth = ConnectionAuth::default();
    auth.grant("sb://localhost/", rights, i64::MAX);
    auth
}

async fn run(fixture: &Fixture, auth: &ConnectionAuth, request: &Request) -> Response {
    let ctx = ManagementContext {
        entity: &fixture.entity,
        auth,
        resource: "queue.1",
    };
    handle(request, &ctx).await
}

fn body_entry<'a>(response: &'a Response, key: &str) -> &'a Value {
    match &response.body {
        Some(Value::Map(map)) => map
            .get(&Value::String(key.into()))
            .unwrap_or_else(|| panic!("no {key} in {:?}", response.body)),
        other => panic!("no map body: {other:?}"),
    }
}

#[tokio::test]
async fn peek_returns_encoded_messages_then_204() {
    let f = fixture();
    let auth = granted(Rights::ALL);
    f.entity
        .send(vec![message("a"), message("b")])
        .await
        .expect("send");
    let peek = request(
        "com.microsoft:peek-message",
        vec![
            ("from-sequence-number", Value::Long(1)),
            ("message-count", Value::Int(10)),
        ],
    );
    let response = run(&f, &auth, &peek).await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let Value::List(messages) = body_entry(&response, "messages") else {
        panic!("messages is not a list");
    };
    assert_eq!(messages.len(), 2);
    let Value::Map(first) = &messages[0] else {
        panic!("entry is not a map")
    };
    let Some(Value::Binary(bytes)) = first.get(&Value::String("message".into())) else {
        panic!("no message binary");
    };
    // The peeked message decodes and keeps its body.
    assert!(decode_message(bytes).is_ok());

    let empty = request(
        "com.microsoft:peek-message",
        vec![
            ("from-sequence-number", Value::Long(3)),
            ("message-count", Value::Int(10)),
        ],
    );
    assert_eq!(run(&f, &auth, &empty).await.status_code, 204);
}

#[tokio::test]
async fn renew_lock_answers_expirations_and_lock_lost() {
    let f = fixture();
    let auth = granted(Rights::ALL);
    f.entity.send(vec![message("a")]).await.expect("send");
    let [delivery] = <[_; 1]>::try_from(
        f.entity
            .receive(1, ReceiveMode::PeekLock)
            .await
            .expect("receive"),
    )
    .expect("one delivery");
    let token = delivery.lock.expect("peek-lock delivery has a lock").token;
    let renew = |t: uuid::Uuid| {
        request(
            "com.microsoft:renew-lock",
            vec![(
                "lock-tokens",
                Value::Array(Array(vec![Value::Uuid(AmqpUuid::from(*t.as_bytes()))])),
            )],
        )
    };
    let response = run(&f, &auth, &renew(token)).await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let Value::Array(expirations) = body_entry(&response, "expirations") else {
        panic!("expirations is not an array");
    };
    assert_eq!(expirations.len(), 1);
    let lost = run(&f, &auth, &renew(uuid::Uuid::new_v4())).await;
    assert_eq!(lost.status_code, 410);
    assert_eq!(
        lost.error_condition.as_deref(),
        Some("com.microsoft:message-lock-lost")
    );
}

#[tokio::test]
async fn deferred_message_is_received_by_sequence_number_and_completed() {
    let f = fixture();
    let auth = granted(Rights::ALL);
    let sequence = f.entity.send(vec![message("later")]).await.expect("send")[0];
    let delivery = f
        .entity
        .receive(1, ReceiveMode::PeekLock)
        .await
        .expect("receive")
        .remove(0);
    f.entity
        .defer(delivery.lock.expect("locked").token, Default::default())
        .await
        .expect("defer");

    let receive = request(
        "com.microsoft:receive-by-sequence-number",
        vec![
            (
                "sequence-numbers",
                Value::Array(Array(vec![Value::Long(sequence)])),
            ),
            ("receiver-settle-mode", Value::Uint(1)),
        ],
    );
    let response = run(&f, &auth, &receive).await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let Value::List(messages) = body_entry(&response, "messages") else {
        panic!("no list")
    };
    let Value::Map(entry) = &messages[0] else {
        panic!("entry is not a map")
    };
    let Some(Value::Uuid(token)) = entry.get(&Value::String("lock-token".into())) else {
        panic!("no lock-token");
    };

    let complete = request(
        "com.microsoft:update-disposition",
        vec![
            ("disposition-status", Value::String("completed".into())),
            (
                "lock-tokens",
                Value::Array(Array(vec![Value::Uuid(token.clone())])),
            ),
        ],
    );
    assert_eq!(run(&f, &auth, &complete).await.status_code, 200);
    assert_eq!(run(&f, &auth, &receive).await.status_code, 404);
}

#[tokio::test]
async fn refuses_without_rights_bad_arguments_and_unknown_operations() {
    let f = fixture();
    let peek = request(
        "com.microsoft:peek-message",
        vec![("from-sequence-number", Value::Long(1))],
    );
    let nobody = ConnectionAuth::default();
    assert_eq!(run(&f, &nobody, &peek).await.status_code, 401);
    let send_only = granted(Rights {
        send: true,
        ..Default::default()
    });
    assert_eq!(run(&f, &send_only, &peek).await.status_code, 401);

    let auth = granted(Rights::ALL);
    let bad = request(
        "com.microsoft:peek-message",
        vec![("from-sequence-number", Value::String("one".into()))],
    );
    let response = run(&f, &auth, &bad).await;
    assert_eq!(response.status_code, 400);
    assert_eq!(
        response.error_condition.as_deref(),
        Some("com.microsoft:argument-error")
    );
    let missing = request("com.microsoft:renew-lock", vec![]);
    assert_eq!(run(&f, &auth, &missing).await.status_code, 400);
    let sessions = request(
        "com.microsoft:get-session-state",
        vec![("session-id", Value::String("s".into()))],
    );
    // This queue does not require sessions.
    let response = run(&f, &auth, &sessions).await;
    assert_eq!(response.status_code, 400);
    assert_eq!(
        response.error_condition.as_deref(),
        Some("amqp:not-allowed")
    );
    let unknown = request("com.microsoft:no-such-operation", vec![]);
    let response = run(&f, &auth, &unknown).await;
    assert_eq!(response.status_code, 501);
    assert_eq!(
        response.error_condition.as_deref(),
        Some("amqp:not-implemented")
    );
    let no_operation = Request::default();
    assert_eq!(run(&f, &auth, &no_operation).await.status_code, 400);
}

#[tokio::test]
async fn scheduled_message_is_invisible_until_cancelled() {
    let f = fixture();
    let auth = granted(Rights::ALL);
    // A producer message whose scheduled time is an hour away.
    let mut annotations = OrderedMap::new();
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
        + 3_600_000;
    annotations.insert(
        Value::Symbol("x-opt-scheduled-enqueue-time".into()),
        Value::Timestamp(serde_amqp::primitives::Timestamp::from_milliseconds(
            in_an_hour,
        )),
    );
    let mut encoded = vec![0x00, 0x53, 0x72];
    encoded.extend_from_slice(&serde_amqp::to_vec(&Value::Map(annotations)).expect("encodes"));
    encoded.extend_from_slice(&[0x00, 0x53, 0x77, 0xa1, 0x01, b'x']);
    let mut entry = OrderedMap::new();
    entry.insert(
        Value::String("message-id".into()),
        Value::String("m".into()),
    );
    entry.insert(
        Value::String("message".into()),
        Value::Binary(serde_bytes::ByteBuf::from(encoded)),
    );
    let schedule = request(
        "com.microsoft:schedule-message",
        vec![("messages", Value::List(vec![Value::Map(entry)]))],
    );
    let response = run(&f, &auth, &schedule).await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let Value::Array(numbers) = body_entry(&response, "sequence-numbers") else {
        panic!("no array")
    };
    assert_eq!(numbers.len(), 1);
    assert!(f
        .entity
        .receive(1, ReceiveMode::PeekLock)
        .await
        .expect("receive")
        .is_empty());

    let cancel = request(
        "com.microsoft:cancel-scheduled-message",
        vec![("sequence-numbers", Value::Array(Array(numbers.0.clone())))],
    );
    assert_eq!(run(&f, &auth, &cancel).await.status_code, 200);
    let peek = request(
        "com.microsoft:peek-message",
        vec![("from-sequence-number", Value::Long(1))],
    );
    assert_eq!(run(&f, &auth, &peek).await.status_code, 204);
    // The encoder is used for peeks; a stamp over the stored payload must not fail.
    assert!(encode_delivery(&[], &DeliveryStamp::default()).is_ok());
}
