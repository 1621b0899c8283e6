//! Sessions: one receiver per session, in-order delivery, session locks, durable state.

mod common;

use std::time::Duration;

use busdrain_broker::{
    Broker, BrokerError, BrokerLimits, Entity, NamespaceConfig, NewMessage, PropertyMap,
    ReceiveMode,
};
use common::{body, entity, token};

const CONFIG: &str = r#"{"UserConfig":{"Namespaces":[{"Name":"s",
  "Queues":[{"Name":"sq","Properties":{"RequiresSession":true,"LockDuration":"PT1S","MaxDeliveryCount":5}},
            {"Name":"plain"}],
  "Topics":[{"Name":"t","Subscriptions":[{"Name":"ss","Properties":{"RequiresSession":true}}]}]}]}}"#;

fn open(dir: &std::path::Path) -> Broker {
    let config = NamespaceConfig::from_json_str(CONFIG).unwrap();
    let limits = BrokerLimits {
        sweep_interval: Duration::from_millis(20),
        ..BrokerLimits::default()
    };
    Broker::open(dir, config, limits).unwrap()
}

fn in_session(session: &str, text: &str) -> NewMessage {
    NewMessage {
        session_id: Some(session.to_owned()),
        ..common::message(text)
    }
}

async fn send_sessions(queue: &Entity, items: &[(&str, &str)]) {
    let batch = items.iter().map(|(s, b)| in_session(s, b)).collect();
    queue.send(batch).await.unwrap();
}

#[tokio::test]
async fn named_and_next_available_sessions_deliver_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "sq");
    send_sessions(
        &queue,
        &[
            ("b", "b1"),
            ("a", "a1"),
            ("b", "b2"),
            ("a", "a2"),
            ("b", "b3"),
        ],
    )
    .await;
    assert_eq!(queue.message_sessions(None).unwrap(), ["a", "b"]);

    // Next available: the session with the oldest message ("b", sequence 1).
    let first = queue.accept_session(None).unwrap().unwrap();
    assert_eq!(first.session_id, "b");
    // It is taken: a second receiver cannot have it, and "next available" gives "a".
    assert!(matches!(
        queue.accept_session(Some("b")),
        Err(BrokerError::SessionCannotBeLocked { .. })
    ));
    let second = queue.accept_session(None).unwrap().unwrap();
    assert_eq!(second.session_id, "a");
    assert!(
        queue.accept_session(None).unwrap().is_none(),
        "no other session has messages"
    );

    let got = queue
        .receive_from_session(&first, 10, ReceiveMode::PeekLock)
        .await
        .unwrap();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["b1", "b2", "b3"]);
    // Abandoned first message comes back first: order within the session holds.
    queue
        .abandon(token(&got[0]), PropertyMap::new())
        .await
        .unwrap();
    let again = queue
        .receive_from_session(&first, 10, ReceiveMode::PeekLock)
        .await
        .unwrap();
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), ["b1"]);
    assert_eq!(again[0].message.delivery_count, 1);
    for delivery in got.iter().skip(1).chain(&again) {
        queue.complete(token(delivery)).await.unwrap();
    }
    let a = queue
        .receive_from_session(&second, 10, ReceiveMode::ReceiveAndDelete)
        .await
        .unwrap();
    assert_eq!(a.iter().map(body).collect::<Vec<_>>(), ["a1", "a2"]);
    // Message locks follow the session lock.
    assert_eq!(got[1].lock.unwrap().locked_until, first.locked_until);

    // Releasing lets another receiver take the session; an empty named session is lockable.
    queue.release_session("b", first.token);
    let b = queue.accept_session(Some("b")).unwrap().unwrap();
    assert!(queue
        .receive_from_session(&b, 10, ReceiveMode::PeekLock)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        queue
            .receive_from_session(&first, 1, ReceiveMode::PeekLock)
            .await,
        Err(BrokerError::SessionLockLost { .. })
    ));
    assert!(queue.message_sessions(None).unwrap().is_empty());
}

#[tokio::test]
async fn session_lock_expiry_frees_the_session_and_renewal_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "sq"); // LockDuration 1 s
    send_sessions(&queue, &[("s", "1"), ("s", "2")]).await;
    let held = queue.accept_session(Some("s")).unwrap().unwrap();
    let got = queue
        .receive_from_session(&held, 1, ReceiveMode::PeekLock)
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        queue.renew_session_lock("s", held.token).unwrap();
    }
    // Still held after 1.8 s thanks to renewals, message lock included.
    assert!(matches!(
        queue.accept_session(Some("s")),
        Err(BrokerError::SessionCannotBeLocked { .. })
    ));
    queue.renew_lock(&[token(&got[0])]).unwrap();

    // Stop renewing: both the session and the message lock lapse.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(matches!(
        queue.renew_session_lock("s", held.token),
        Err(BrokerError::SessionLockLost { .. })
    ));
    let other = queue.accept_session(None).unwrap().unwrap();
    assert_eq!(other.session_id, "s");
    let redelivered = queue
        .receive_from_session(&other, 10, ReceiveMode::PeekLock)
        .await
        .unwrap();
    assert_eq!(redelivered.iter().map(body).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(redelivered[0].message.delivery_count, 1);
}

#[tokio::test]
async fn session_state_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let queue = entity(&broker, "sq");
        assert!(matches!(
            queue.set_session_state("s", Some("x".into())).await,
            Err(BrokerError::SessionLockLost { .. })
        ));
        let held = queue.accept_session(Some("s")).unwrap().unwrap();
        assert_eq!(queue.session_state("s").unwrap(), None);
        queue
            .set_session_state("s", Some("checkpoint-7".into()))
            .await
            .unwrap();
        assert_eq!(
            queue.session_state("s").unwrap().as_deref(),
            Some(&b"checkpoint-7"[..])
        );
        assert_eq!(
            queue.message_sessions(None).unwrap(),
            ["s"],
            "state alone lists the session"
        );
        queue.release_session("s", held.token);
        broker.close();
    }
    let broker = open(dir.path());
    let queue = entity(&broker, "sq");
    queue.accept_session(Some("s")).unwrap().unwrap();
    assert_eq!(
        queue.session_state("s").unwrap().as_deref(),
        Some(&b"checkpoint-7"[..])
    );
    queue.set_session_state("s", None).await.unwrap();
    assert_eq!(queue.session_state("s").unwrap(), None);
}

#[tokio::test]
async fn sessions_survive_restart_and_work_on_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let topic = entity(&broker, "t");
        topic
            .send(vec![in_session("x", "x1"), in_session("y", "y1")])
            .await
            .unwrap();
        broker.close();
    }
    let broker = open(dir.path());
    let sub = entity(&broker, "t/Subscriptions/ss");
    let x = sub.accept_session(Some("x")).unwrap().unwrap();
    let got = sub
        .receive_from_session(&x, 10, ReceiveMode::PeekLock)
        .await
        .unwrap();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["x1"]);
    let peeked = sub.peek_session("y", 0, 10).await.unwrap();
    assert_eq!(peeked.len(), 1);
    assert_eq!(peeked[0].content.payload.as_ref(), b"y1");
    // Dead-lettering from a session lands in a DLQ that is read without sessions.
    sub.dead_letter(token(&got[0]), Some("r".into()), None, PropertyMap::new())
        .await
        .unwrap();
    let dlq = entity(&broker, "t/Subscriptions/ss/$DeadLetterQueue");
    assert_eq!(
        dlq.receive(10, ReceiveMode::ReceiveAndDelete)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn session_operations_on_a_sessionless_entity_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let plain = entity(&broker, "plain");
    assert!(matches!(
        plain.accept_session(None),
        Err(BrokerError::InvalidOperation { .. })
    ));
}
