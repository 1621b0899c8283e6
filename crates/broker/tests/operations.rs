//! Every broker operation against a real store in a temporary directory.

mod common;

use std::time::Duration;

use busdrain_broker::{
    BrokerError, EntityPath, MessageState, NewMessage, PropertyMap, PropertyValue, ReceiveMode,
    Timestamp, DEAD_LETTER_REASON, REASON_MAX_DELIVERY_COUNT_EXCEEDED, REASON_TTL_EXPIRED,
};
use common::{body, entity, message, open, receive, send, token};

fn props(name: &str, value: &str) -> PropertyMap {
    let mut map = PropertyMap::new();
    map.insert(name.to_owned(), PropertyValue::from(value));
    map
}

#[tokio::test]
async fn send_receive_complete_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    assert_eq!(send(&queue, &["a", "b", "c"]).await, vec![1, 2, 3]);
    assert_eq!(send(&queue, &["d"]).await, vec![4]);

    let got = receive(&queue, 10, ReceiveMode::PeekLock).await;
    assert_eq!(
        got.iter().map(body).collect::<Vec<_>>(),
        ["a", "b", "c", "d"]
    );
    assert!(got.iter().all(|d| d.message.delivery_count == 0));
    assert!(got.iter().all(|d| d.message.state == MessageState::Active));
    let lock = got[0].lock.unwrap();
    assert!(lock.locked_until > Timestamp::now());
    assert_eq!(queue.counts().locked, 4);

    // Everything is locked: nothing more to receive.
    assert!(receive(&queue, 10, ReceiveMode::PeekLock).await.is_empty());
    for delivery in &got {
        queue.complete(token(delivery)).await.unwrap();
    }
    assert_eq!(queue.counts().active, 0);
    // A completed lock cannot be used again.
    assert!(matches!(
        queue.complete(token(&got[0])).await,
        Err(BrokerError::LockLost { .. })
    ));
    assert!(queue.peek(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn receive_respects_max() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    send(&queue, &["1", "2", "3"]).await;
    assert_eq!(receive(&queue, 2, ReceiveMode::PeekLock).await.len(), 2);
    assert_eq!(receive(&queue, 0, ReceiveMode::PeekLock).await.len(), 0);
    assert_eq!(receive(&queue, 2, ReceiveMode::PeekLock).await.len(), 1);
}

#[tokio::test]
async fn receive_and_delete_removes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    send(&queue, &["x", "y"]).await;
    let got = receive(&queue, 10, ReceiveMode::ReceiveAndDelete).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|d| d.lock.is_none()));
    assert!(receive(&queue, 10, ReceiveMode::PeekLock).await.is_empty());
    assert_eq!(queue.counts().active, 0);
}

#[tokio::test]
async fn abandon_redelivers_with_count_and_modified_properties() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    send(&queue, &["m"]).await;
    let first = receive(&queue, 1, ReceiveMode::PeekLock).await;
    queue
        .abandon(token(&first[0]), props("attempt", "one"))
        .await
        .unwrap();
    let second = receive(&queue, 1, ReceiveMode::PeekLock).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message.delivery_count, 1);
    assert_eq!(
        second[0].message.modified_properties.get("attempt"),
        Some(&PropertyValue::from("one"))
    );
    assert_ne!(token(&first[0]), token(&second[0]));
    // The old token is dead.
    assert!(matches!(
        queue.abandon(token(&first[0]), PropertyMap::new()).await,
        Err(BrokerError::LockLost { .. })
    ));
}

#[tokio::test]
async fn max_delivery_count_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain"); // MaxDeliveryCount 2
    let dlq = entity(&broker, "plain/$DeadLetterQueue");
    send(&queue, &["poison"]).await;
    for _ in 0..2 {
        let got = receive(&queue, 1, ReceiveMode::PeekLock).await;
        assert_eq!(got.len(), 1);
        queue
            .abandon(token(&got[0]), PropertyMap::new())
            .await
            .unwrap();
    }
    assert!(receive(&queue, 1, ReceiveMode::PeekLock).await.is_empty());
    let dead = receive(&dlq, 10, ReceiveMode::PeekLock).await;
    assert_eq!(dead.len(), 1);
    let info = dead[0].message.dead_letter.clone().unwrap();
    assert_eq!(
        info.reason.as_deref(),
        Some(REASON_MAX_DELIVERY_COUNT_EXCEEDED)
    );
    assert_eq!(info.source, "plain");
    assert_eq!(
        dead[0].message.sequence_number, 1,
        "keeps its sequence number"
    );
    assert_eq!(dead[0].message.delivery_count, 2);
    assert_eq!(
        dead[0].message.modified_properties.get(DEAD_LETTER_REASON),
        Some(&PropertyValue::from(REASON_MAX_DELIVERY_COUNT_EXCEEDED))
    );
    dlq.complete(token(&dead[0])).await.unwrap();
    assert!(dlq.peek(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn dead_letter_with_reason_and_settle_from_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    let dlq = entity(&broker, "/plain/$deadletterqueue");
    send(&queue, &["bad"]).await;
    let got = receive(&queue, 1, ReceiveMode::PeekLock).await;
    queue
        .dead_letter(
            token(&got[0]),
            Some("BadJson".to_owned()),
            Some("column x".to_owned()),
            props("route", "r1"),
        )
        .await
        .unwrap();
    assert!(queue.peek(0, 10).await.unwrap().is_empty());
    let dead = receive(&dlq, 10, ReceiveMode::PeekLock).await;
    assert_eq!(dead.len(), 1);
    let message = &dead[0].message;
    let info = message.dead_letter.clone().unwrap();
    assert_eq!(info.reason.as_deref(), Some("BadJson"));
    assert_eq!(info.description.as_deref(), Some("column x"));
    assert_eq!(
        message
            .modified_properties
            .get("DeadLetterErrorDescription"),
        Some(&PropertyValue::from("column x"))
    );
    assert_eq!(
        message.modified_properties.get("route"),
        Some(&PropertyValue::from("r1"))
    );
    // A DLQ message cannot be dead-lettered again; it can be abandoned and received again.
    assert!(matches!(
        dlq.dead_letter(token(&dead[0]), None, None, PropertyMap::new())
            .await,
        Err(BrokerError::InvalidOperation { .. })
    ));
    dlq.abandon(token(&dead[0]), PropertyMap::new())
        .await
        .unwrap();
    let again = receive(&dlq, 10, ReceiveMode::ReceiveAndDelete).await;
    assert_eq!(again.len(), 1);
    assert!(dlq.peek(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn defer_then_receive_deferred_by_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "deferrals");
    let seqs = send(&queue, &["later", "now"]).await;
    let got = receive(&queue, 1, ReceiveMode::PeekLock).await;
    assert_eq!(body(&got[0]), "later");
    queue
        .defer(token(&got[0]), props("deferred", "yes"))
        .await
        .unwrap();

    // A deferred message is not received normally, but is peekable.
    let next = receive(&queue, 10, ReceiveMode::PeekLock).await;
    assert_eq!(next.iter().map(body).collect::<Vec<_>>(), ["now"]);
    let peeked = queue.peek(seqs[0], 1).await.unwrap();
    assert_eq!(peeked[0].state, MessageState::Deferred);
    assert_eq!(queue.counts().deferred, 1);

    // Receiving an active message by sequence number is refused.
    assert!(matches!(
        queue.receive_deferred(&[seqs[1]], ReceiveMode::PeekLock).await,
        Err(BrokerError::MessageNotFound { sequence_number, .. }) if sequence_number == seqs[1]
    ));
    let deferred = queue
        .receive_deferred(&[seqs[0]], ReceiveMode::PeekLock)
        .await
        .unwrap();
    assert_eq!(deferred.len(), 1);
    assert_eq!(deferred[0].message.state, MessageState::Deferred);
    // The delivery that ended in the deferral counts.
    assert_eq!(deferred[0].message.delivery_count, 1);
    assert_eq!(
        deferred[0].message.modified_properties.get("deferred"),
        Some(&PropertyValue::from("yes"))
    );
    // Abandoning keeps it deferred; then it can be locked again and completed.
    queue
        .abandon(token(&deferred[0]), PropertyMap::new())
        .await
        .unwrap();
    assert!(receive(&queue, 10, ReceiveMode::PeekLock).await.is_empty());
    let deferred = queue
        .receive_deferred(&[seqs[0]], ReceiveMode::PeekLock)
        .await
        .unwrap();
    assert_eq!(deferred[0].message.delivery_count, 2);
    queue.complete(token(&deferred[0])).await.unwrap();
    assert!(matches!(
        queue
            .receive_deferred(&[seqs[0]], ReceiveMode::PeekLock)
            .await,
        Err(BrokerError::MessageNotFound { .. })
    ));
}

#[tokio::test]
async fn receive_deferred_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "long-ttl");
    let seqs = send(&queue, &["d"]).await;
    let got = receive(&queue, 1, ReceiveMode::PeekLock).await;
    queue
        .defer(token(&got[0]), PropertyMap::new())
        .await
        .unwrap();
    let taken = queue
        .receive_deferred(&seqs, ReceiveMode::ReceiveAndDelete)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(taken[0].lock.is_none());
    assert!(queue.peek(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn lock_expiry_redelivers_with_delivery_count() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain"); // LockDuration 1 s, MaxDeliveryCount 2
    send(&queue, &["slow"]).await;
    let first = receive(&queue, 1, ReceiveMode::PeekLock).await;
    let mut watch = queue.watch();
    assert!(receive(&queue, 1, ReceiveMode::PeekLock).await.is_empty());
    // The watch fires when the lapsed lock makes the message available again.
    tokio::time::timeout(Duration::from_secs(3), watch.changed())
        .await
        .expect("watch fired")
        .unwrap();
    let second = receive(&queue, 1, ReceiveMode::PeekLock).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message.delivery_count, 1);
    assert!(matches!(
        queue.complete(token(&first[0])).await,
        Err(BrokerError::LockLost { .. })
    ));
    // Second expiry reaches MaxDeliveryCount 2: dead-lettered.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(receive(&queue, 1, ReceiveMode::PeekLock).await.is_empty());
    let dlq = entity(&broker, "plain/$DeadLetterQueue");
    let dead = dlq.peek(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0]
            .dead_letter
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        Some(REASON_MAX_DELIVERY_COUNT_EXCEEDED)
    );
}

#[tokio::test]
async fn renew_lock_keeps_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    send(&queue, &["held"]).await;
    let got = receive(&queue, 1, ReceiveMode::PeekLock).await;
    let original = got[0].lock.unwrap().locked_until;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let renewed = queue.renew_lock(&[token(&got[0])]).unwrap();
        assert_eq!(renewed.len(), 1);
        assert!(renewed[0] > original);
    }
    // 1.8 s after receipt with a 1 s lock: still ours thanks to the renewals.
    assert!(receive(&queue, 1, ReceiveMode::PeekLock).await.is_empty());
    queue.complete(token(&got[0])).await.unwrap();
    assert!(matches!(
        queue.renew_lock(&[uuid::Uuid::new_v4()]),
        Err(BrokerError::LockLost { .. })
    ));
}

#[tokio::test]
async fn ttl_expiry_dead_letters_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "expiring-dlq"); // TTL 1 s, dead-letter on expiration
    send(&queue, &["old"]).await;
    let peeked = queue.peek(0, 1).await.unwrap();
    assert!(peeked[0].expires_at.is_some());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(receive(&queue, 10, ReceiveMode::PeekLock).await.is_empty());
    let dlq = entity(&broker, "expiring-dlq/$DeadLetterQueue");
    let dead = receive(&dlq, 10, ReceiveMode::PeekLock).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0]
            .message
            .dead_letter
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        Some(REASON_TTL_EXPIRED)
    );
    assert_eq!(
        dead[0].message.expires_at, None,
        "DLQ messages do not expire"
    );
}

#[tokio::test]
async fn ttl_expiry_drops_when_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "expiring-drop");
    send(&queue, &["gone"]).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(receive(&queue, 10, ReceiveMode::PeekLock).await.is_empty());
    assert!(queue.peek(0, 10).await.unwrap().is_empty());
    let dlq = entity(&broker, "expiring-drop/$DeadLetterQueue");
    assert!(dlq.peek(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn message_ttl_shorter_than_entity_default_wins() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "long-ttl"); // default 1 day, dead-letter on expiration
    let mut short = message("short");
    short.time_to_live = Some(Duration::from_millis(500));
    queue.send(vec![short, message("long")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let got = receive(&queue, 10, ReceiveMode::PeekLock).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["long"]);
    let dlq = entity(&broker, "long-ttl/$DeadLetterQueue");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dead = dlq.peek(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].content.payload.as_ref(), b"short");
}

#[tokio::test]
async fn peek_sees_every_state_without_locking() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "long-ttl");
    send(&queue, &["1", "2", "3", "4", "5"]).await;
    let got = receive(&queue, 2, ReceiveMode::PeekLock).await;
    queue
        .defer(token(&got[1]), PropertyMap::new())
        .await
        .unwrap();
    let all = queue.peek(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.sequence_number).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(all[1].state, MessageState::Deferred);
    let window = queue.peek(3, 2).await.unwrap();
    assert_eq!(
        window.iter().map(|m| m.sequence_number).collect::<Vec<_>>(),
        [3, 4]
    );
    // Peeking locked nothing: messages 3..5 are still receivable.
    assert_eq!(receive(&queue, 10, ReceiveMode::PeekLock).await.len(), 3);
}

#[tokio::test]
async fn oversized_message_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    let big = NewMessage {
        payload: vec![0u8; 64 * 1024 + 1].into(),
        ..NewMessage::default()
    };
    assert!(matches!(
        queue.send(vec![message("ok"), big]).await,
        Err(BrokerError::MessageSizeExceeded {
            size: 65537,
            max: 65536,
            ..
        })
    ));
    assert!(
        queue.peek(0, 10).await.unwrap().is_empty(),
        "nothing of the batch stored"
    );
    let fits = NewMessage {
        payload: vec![0u8; 64 * 1024].into(),
        ..NewMessage::default()
    };
    assert_eq!(queue.send(vec![fits]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn topic_fans_out_to_matching_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let topic = entity(&broker, "events");
    let all = entity(&broker, "events/Subscriptions/all");
    let eu = entity(&broker, "EVENTS/subscriptions/EU-ONLY");
    let mut from_eu = message("eu");
    from_eu
        .application_properties
        .insert("region".to_owned(), PropertyValue::from("eu"));
    let seqs = topic.send(vec![message("us"), from_eu]).await.unwrap();
    assert_eq!(seqs, vec![1, 2]);
    let got_all = receive(&all, 10, ReceiveMode::ReceiveAndDelete).await;
    assert_eq!(got_all.iter().map(body).collect::<Vec<_>>(), ["us", "eu"]);
    let got_eu = receive(&eu, 10, ReceiveMode::PeekLock).await;
    assert_eq!(got_eu.iter().map(body).collect::<Vec<_>>(), ["eu"]);
    assert_eq!(
        got_eu[0].message.sequence_number, 2,
        "topic's sequence number"
    );

    assert!(matches!(
        topic.receive(1, ReceiveMode::PeekLock).await,
        Err(BrokerError::InvalidOperation { .. })
    ));
    assert!(matches!(
        all.send(vec![message("x")]).await,
        Err(BrokerError::InvalidOperation { .. })
    ));
    // Subscription DLQs work like queue DLQs.
    eu.dead_letter(
        token(&got_eu[0]),
        Some("r".to_owned()),
        None,
        PropertyMap::new(),
    )
    .await
    .unwrap();
    let dlq = entity(&broker, "events/Subscriptions/eu-only/$DeadLetterQueue");
    let dead = dlq.peek(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].dead_letter.as_ref().map(|d| d.source.as_str()),
        Some("events/Subscriptions/eu-only")
    );
}

#[tokio::test]
async fn scheduled_messages_appear_at_their_time_and_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "long-ttl");
    let at = Timestamp::now().saturating_add(Duration::from_millis(800));
    let mut later = message("later");
    later.scheduled_enqueue_time = Some(at);
    let mut cancelled = message("cancelled");
    cancelled.scheduled_enqueue_time = Some(at);
    let seqs = queue.send(vec![later, cancelled]).await.unwrap();
    assert!(receive(&queue, 10, ReceiveMode::PeekLock).await.is_empty());
    let peeked = queue.peek(0, 10).await.unwrap();
    assert!(peeked.iter().all(|m| m.state == MessageState::Scheduled));
    assert_eq!(queue.counts().scheduled, 2);
    queue.cancel_scheduled(&[seqs[1]]).await.unwrap();
    let mut watch = queue.watch();
    tokio::time::timeout(Duration::from_secs(3), watch.changed())
        .await
        .expect("activation wakes the watch")
        .unwrap();
    let got = receive(&queue, 10, ReceiveMode::PeekLock).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["later"]);
    assert_eq!(got[0].message.state, MessageState::Active);
    assert!(Timestamp::now() >= at);
}

#[tokio::test]
async fn watch_wakes_a_waiting_receiver_on_send() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    let receiver = queue.clone();
    let task = tokio::spawn(async move {
        let mut watch = receiver.watch();
        loop {
            let got = receiver
                .receive(1, ReceiveMode::ReceiveAndDelete)
                .await
                .unwrap();
            if let Some(delivery) = got.into_iter().next() {
                return body(&delivery);
            }
            watch.changed().await.unwrap();
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&queue, &["wake"]).await;
    let got = tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "wake");
}

#[tokio::test]
async fn session_entities_refuse_sessionless_use() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "sessions");
    assert!(matches!(
        queue.send(vec![message("no session")]).await,
        Err(BrokerError::InvalidMessage { .. })
    ));
    let mut with_session = message("s");
    with_session.session_id = Some("s1".to_owned());
    assert_eq!(queue.send(vec![with_session]).await.unwrap(), vec![1]);
    assert!(matches!(
        queue.receive(1, ReceiveMode::PeekLock).await,
        Err(BrokerError::SessionRequired { .. })
    ));
}

#[tokio::test]
async fn unknown_entities_and_case_insensitive_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    assert!(matches!(
        broker.entity(&EntityPath::entity("nope")),
        Err(BrokerError::EntityNotFound { .. })
    ));
    let queue = entity(&broker, "sb://localhost/PLAIN");
    assert_eq!(queue.path().to_string(), "plain");
    assert_eq!(broker.entity_paths().len(), 6 * 2 + 1 + 2 * 2);
}

#[tokio::test]
async fn restart_keeps_messages_counts_and_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let queue = entity(&broker, "long-ttl");
        send(&queue, &["a", "b", "c", "d"]).await;
        let got = receive(&queue, 4, ReceiveMode::PeekLock).await;
        queue.complete(token(&got[0])).await.unwrap(); // a: gone for good
        queue
            .abandon(token(&got[1]), props("k", "v"))
            .await
            .unwrap(); // b: count 1
        queue
            .defer(token(&got[2]), PropertyMap::new())
            .await
            .unwrap(); // c: deferred
                       // d stays locked: the lock lapses with the restart.
        broker.close();
    }
    let broker = open(dir.path());
    let queue = entity(&broker, "long-ttl");
    let got = receive(&queue, 10, ReceiveMode::PeekLock).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["b", "d"]);
    assert_eq!(got[0].message.delivery_count, 1);
    assert_eq!(
        got[0].message.modified_properties.get("k"),
        Some(&PropertyValue::from("v"))
    );
    let deferred = queue
        .receive_deferred(&[3], ReceiveMode::PeekLock)
        .await
        .unwrap();
    assert_eq!(body(&deferred[0]), "c");
    assert_eq!(
        send(&queue, &["e"]).await,
        vec![5],
        "sequence numbers are never reused"
    );
}

#[tokio::test]
async fn sequence_numbers_survive_an_emptied_queue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let queue = entity(&broker, "plain");
        send(&queue, &["a", "b"]).await;
        receive(&queue, 10, ReceiveMode::ReceiveAndDelete).await;
        broker.close();
    }
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    assert_eq!(send(&queue, &["c"]).await, vec![3]);
}

#[tokio::test]
async fn closed_broker_refuses_operations() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    broker.close();
    assert!(matches!(
        queue.send(vec![message("late")]).await,
        Err(BrokerError::ShuttingDown)
    ));
}

#[tokio::test]
async fn thousand_entities() {
    let queues: Vec<String> = (0..1000).map(|i| format!(r#"{{"Name":"q{i}"}}"#)).collect();
    let json = format!(
        r#"{{"UserConfig":{{"Namespaces":[{{"Name":"big","Queues":[{}]}}]}}}}"#,
        queues.join(",")
    );
    let config = busdrain_broker::NamespaceConfig::from_json_str(&json).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = busdrain_broker::Broker::open(dir.path(), config, common::limits()).unwrap();
    assert_eq!(broker.entity_paths().len(), 2000);
    let mut tasks = Vec::new();
    for i in (0..1000).step_by(50) {
        let queue = entity(&broker, &format!("q{i}"));
        tasks.push(tokio::spawn(async move {
            queue.send(vec![message("x")]).await.unwrap();
            queue
                .receive(1, ReceiveMode::ReceiveAndDelete)
                .await
                .unwrap()
                .len()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
    }
}

#[tokio::test]
async fn batch_delete_removes_old_unlocked_messages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "long-ttl");
    send(&queue, &["1", "2", "3", "4"]).await;
    let cutoff = Timestamp::now().saturating_add(Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(10)).await;
    send(&queue, &["new"]).await;
    let locked = receive(&queue, 1, ReceiveMode::PeekLock).await; // "1" is locked: kept
    assert_eq!(queue.delete_messages(2, cutoff, None).await.unwrap(), 2); // "2", "3"
    assert_eq!(queue.delete_messages(10, cutoff, None).await.unwrap(), 1); // "4"
    assert_eq!(queue.delete_messages(10, cutoff, None).await.unwrap(), 0);
    let left: Vec<i64> = queue
        .peek(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.sequence_number)
        .collect();
    assert_eq!(left, [1, 5]);
    queue.complete(token(&locked[0])).await.unwrap();
}

#[tokio::test]
async fn release_returns_a_message_without_counting_a_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "plain");
    send(&queue, &["prefetched"]).await;
    let got = receive(&queue, 1, ReceiveMode::PeekLock).await;
    queue.release(token(&got[0])).unwrap();
    assert!(matches!(
        queue.release(token(&got[0])),
        Err(BrokerError::LockLost { .. })
    ));
    let again = receive(&queue, 1, ReceiveMode::PeekLock).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.delivery_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn competing_receivers_get_each_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "long-ttl");
    let total = 2_000;
    let mut senders = Vec::new();
    for s in 0..4 {
        let queue = queue.clone();
        senders.push(tokio::spawn(async move {
            for chunk in (0..total / 4).collect::<Vec<_>>().chunks(50) {
                let batch = chunk.iter().map(|i| message(&format!("{s}-{i}"))).collect();
                queue.send(batch).await.unwrap();
            }
        }));
    }
    let mut receivers = Vec::new();
    for _ in 0..4 {
        let queue = queue.clone();
        receivers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut idle = 0;
            while idle < 50 {
                let got = queue.receive(17, ReceiveMode::PeekLock).await.unwrap();
                if got.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                idle = 0;
                for delivery in got {
                    queue.complete(token(&delivery)).await.unwrap();
                    seen.push(delivery.message.sequence_number);
                }
            }
            seen
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let mut all = Vec::new();
    for receiver in receivers {
        all.extend(receiver.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=total as i64).collect::<Vec<_>>(),
        "each message exactly once"
    );
    assert_eq!(queue.counts(), Default::default());
}
