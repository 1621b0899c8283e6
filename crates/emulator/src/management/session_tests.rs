//! Session operations on `$management` against a real broker (the default namespace's
//! `session-queue.1`).

use busdrain_broker::{Entity, NewMessage, ReceiveMode};
use serde_amqp::primitives::{OrderedMap, Timestamp as AmqpTimestamp};
use serde_amqp::Value;

use crate::auth::ConnectionAuth;
use crate::management::{handle, ManagementContext};
use crate::request::{Request, Response};
use crate::sas::Rights;
use crate::test_broker::TestBroker;

struct Fixture {
    entity: Entity,
    // Declared last: dropped after the entity handle.
    _broker: TestBroker,
}

fn fixture() -> Fixture {
    let broker = TestBroker::open();
    Fixture {
        entity: broker.entity("session-queue.1"),
        _broker: broker,
    }
}

fn message(session: &str, text: &str) -> NewMessage {
    let mut payload = vec![0x00, 0x53, 0x77];
    payload.extend_from_slice(&serde_amqp::to_vec(&Value::String(text.into())).expect("encodes"));
    NewMessage {
        payload: payload.into(),
        session_id: Some(session.into()),
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

async fn run(f: &Fixture, request: &Request) -> Response {
    let auth = ConnectionAuth::default();
    auth.grant("sb://localhost/", Rights::ALL, i64::MAX);
    let ctx = ManagementContext {
        entity: &f.entity,
        auth: &auth,
        resource: "session-queue.1",
    };
    handle(request, &ctx).await
}

fn entry<'a>(response: &'a Response, key: &str) -> &'a Value {
    match &response.body {
        Some(Value::Map(map)) => map
            .get(&Value::String(key.into()))
            .unwrap_or_else(|| panic!("no {key} in {:?}", response.body)),
        other => panic!("no map body: {other:?}"),
    }
}

fn condition(response: &Response) -> Option<&str> {
    response.error_condition.as_deref()
}

#[tokio::test]
async fn renew_answers_a_later_expiration_and_lock_lost_for_an_unheld_session() {
    let f = fixture();
    let lock = f
        .entity
        .accept_session(Some("s1"))
        .expect("accept")
        .expect("named session is locked");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let renew = request(
        "com.microsoft:renew-session-lock",
        vec![("session-id", Value::String("s1".into()))],
    );
    let response = run(&f, &renew).await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let Value::Timestamp(expiration) = entry(&response, "expiration") else {
        panic!("expiration is not a timestamp");
    };
    assert!(expiration.milliseconds() > lock.locked_until.as_unix_millis());

    let other = request(
        "com.microsoft:renew-session-lock",
        vec![("session-id", Value::String("nobody".into()))],
    );
    let response = run(&f, &other).await;
    assert_eq!(response.status_code, 410);
    assert_eq!(
        condition(&response),
        Some("com.microsoft:session-lock-lost")
    );
}

#[tokio::test]
async fn session_state_is_set_read_and_cleared() {
    let f = fixture();
    f.entity.accept_session(Some("s1")).expect("accept");
    let set = |state: Value| {
        request(
            "com.microsoft:set-session-state",
            vec![
                ("session-id", Value::String("s1".into())),
                ("session-state", state),
            ],
        )
    };
    let get = request(
        "com.microsoft:get-session-state",
        vec![("session-id", Value::String("s1".into()))],
    );
    let state = Value::Binary(serde_bytes::ByteBuf::from(b"checkpoint".to_vec()));
    assert_eq!(run(&f, &set(state.clone())).await.status_code, 200);
    assert_eq!(entry(&run(&f, &get).await, "session-state"), &state);
    assert_eq!(run(&f, &set(Value::Null)).await.status_code, 200);
    assert_eq!(entry(&run(&f, &get).await, "session-state"), &Value::Null);

    let unheld = request(
        "com.microsoft:get-session-state",
        vec![("session-id", Value::String("s2".into()))],
    );
    assert_eq!(
        condition(&run(&f, &unheld).await),
        Some("com.microsoft:session-lock-lost")
    );
}

#[tokio::test]
async fn message_sessions_are_paged_with_skip_and_top() {
    let f = fixture();
    f.entity
        .send(vec![
            message("a", "1"),
            message("b", "2"),
            message("c", "3"),
        ])
        .await
        .expect("send");
    let list = |skip: i32, top: i32| {
        request(
            "com.microsoft:get-message-sessions",
            vec![
                ("skip", Value::Int(skip)),
                ("top", Value::Int(top)),
                (
                    "last-updated-time",
                    Value::Timestamp(AmqpTimestamp::from_milliseconds(0)),
                ),
            ],
        )
    };
    let first = run(&f, &list(0, 2)).await;
    assert_eq!(first.status_code, 200, "{first:?}");
    assert_eq!(entry(&first, "skip"), &Value::Int(2));
    let Value::Array(ids) = entry(&first, "sessions-ids") else {
        panic!("sessions-ids is not an array");
    };
    let mut seen: Vec<Value> = ids.0.clone();
    let second = run(&f, &list(2, 2)).await;
    let Value::Array(ids) = entry(&second, "sessions-ids") else {
        panic!("sessions-ids is not an array");
    };
    seen.extend(ids.0.clone());
    seen.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        seen,
        ["a", "b", "c"].map(|s| Value::String(s.into())).to_vec()
    );
    assert_eq!(run(&f, &list(3, 2)).await.status_code, 204);
}

#[tokio::test]
async fn peek_with_a_session_id_reads_only_that_session() {
    let f = fixture();
    f.entity
        .send(vec![
            message("a", "a0"),
            message("b", "b0"),
            message("a", "a1"),
        ])
        .await
        .expect("send");
    let peek = request(
        "com.microsoft:peek-message",
        vec![
            ("from-sequence-number", Value::Long(1)),
            ("message-count", Value::Int(10)),
            ("session-id", Value::String("a".into())),
        ],
    );
    let response = run(&f, &peek).await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let Value::List(messages) = entry(&response, "messages") else {
        panic!("messages is not a list");
    };
    assert_eq!(messages.len(), 2);
}

#[tokio::test]
async fn settling_by_token_with_a_session_id_needs_the_session_held() {
    let f = fixture();
    f.entity.send(vec![message("a", "a0")]).await.expect("send");
    let lock = f
        .entity
        .accept_session(Some("a"))
        .expect("accept")
        .expect("locked");
    let [delivery] = f
        .entity
        .receive_from_session(&lock, 1, ReceiveMode::PeekLock)
        .await
        .expect("receive")
        .try_into()
        .expect("one delivery");
    let token = delivery.lock.expect("peek-lock").token;
    let complete = request(
        "com.microsoft:update-disposition",
        vec![
            ("disposition-status", Value::String("completed".into())),
            (
                "lock-tokens",
                Value::Array(serde_amqp::primitives::Array(vec![Value::Uuid(
                    serde_amqp::primitives::Uuid::from(*token.as_bytes()),
                )])),
            ),
            ("session-id", Value::String("a".into())),
        ],
    );
    f.entity.release_session("a", lock.token);
    let response = run(&f, &complete).await;
    assert_eq!(
        condition(&response),
        Some("com.microsoft:session-lock-lost"),
        "{response:?}"
    );
}
