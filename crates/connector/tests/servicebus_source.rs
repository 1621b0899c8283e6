//! The Service Bus source against a real `busdrain emulator` process: send with our sender,
//! receive with `ServiceBusSource`, and check every settlement the pipeline relies on.
//!
//! Needs the binary: `cargo build -p busdrain` (or set `BUSDRAIN_BIN`). Each test starts its
//! own emulator on free ports with a fresh data directory and kills it when done.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use busdrain_connector::source::{
    DeadLetter, MessageSource, OutgoingMessage, PropertyValue, ReceivedMessage, ReceiverSettings,
    SendError, SourceEntity, SourceError,
};
use time::OffsetDateTime;

use support::busdrain_binary;
use support::process::{queue_json, topic_json, EmulatorChild as Emulator, EMULATOR_KEY};
use support::servicebus::{receive_n, send_in_chunks as send};

fn telemetry(seq: u32) -> OutgoingMessage {
    let mut message = OutgoingMessage::json(format!(
        r#"{{"device_id":"dev-{seq}","temperature":21.5,"seq":{seq}}}"#
    ));
    message.message_id = Some(format!("m-{seq}"));
    message.subject = Some("telemetry".into());
    message.correlation_id = Some(format!("corr-{seq}"));
    message.application_properties = BTreeMap::from([
        ("tenant".to_string(), PropertyValue::String("acme".into())),
        ("attempt".to_string(), PropertyValue::Long(i64::from(seq))),
        (
            "urgent".to_string(),
            PropertyValue::Bool(seq.is_multiple_of(2)),
        ),
    ]);
    message
}

fn by_id<'m>(messages: &'m [ReceivedMessage], id: &str) -> &'m ReceivedMessage {
    messages
        .iter()
        .find(|m| m.message_id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("message {id} not among {} received", messages.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_settle_dead_letter_abandon_and_renew() {
    let emulator = Emulator::start(vec![queue_json("orders", "PT30S", false)], Vec::new());
    let connector = emulator.connect_fast().await;
    let sent_at = OffsetDateTime::now_utc();
    send(&connector, "orders", (0..4).map(telemetry).collect()).await;

    let entity = SourceEntity::Queue("orders".into());
    let mut source = connector
        .open_receiver(&entity, &ReceiverSettings::default())
        .await
        .expect("open a receiver");
    assert_eq!(source.session_id(), None);
    let received = receive_n(&mut source, 4, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 4, "all four messages arrive");

    // Every property the mapping may use arrives as sent, plus the broker's annotations.
    let mut sequence_numbers: Vec<i64> = received.iter().map(|m| m.sequence_number).collect();
    sequence_numbers.sort_unstable();
    sequence_numbers.dedup();
    assert_eq!(sequence_numbers.len(), 4, "distinct sequence numbers");
    for seq in 0..4u32 {
        let m = by_id(&received, &format!("m-{seq}"));
        let body: serde_json::Value = serde_json::from_slice(&m.body).expect("JSON body");
        assert_eq!(body["seq"], seq);
        assert_eq!(m.delivery_count, 1);
        assert_eq!(m.subject.as_deref(), Some("telemetry"));
        assert_eq!(
            m.correlation_id.as_deref(),
            Some(format!("corr-{seq}").as_str())
        );
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.session_id, None);
        assert_eq!(
            m.application_properties.get("tenant"),
            Some(&PropertyValue::String("acme".into()))
        );
        assert_eq!(
            m.application_properties.get("attempt"),
            Some(&PropertyValue::Long(i64::from(seq)))
        );
        assert_eq!(
            m.application_properties.get("urgent"),
            Some(&PropertyValue::Bool(seq.is_multiple_of(2)))
        );
        let skew = time::Duration::seconds(5);
        assert!(
            m.enqueued_time >= sent_at - skew
                && m.enqueued_time <= OffsetDateTime::now_utc() + skew,
            "enqueued time {} near the send at {sent_at}",
            m.enqueued_time
        );
        let locked_until = m
            .locked_until
            .expect("x-opt-locked-until is set in peek-lock");
        assert!(locked_until > OffsetDateTime::now_utc(), "lock still valid");
    }

    let token = |id: &str| by_id(&received, id).lock_token;

    // Complete, then a second settlement of the same token is refused locally.
    source.complete(token("m-0")).await.expect("complete");
    assert!(matches!(
        source.complete(token("m-0")).await,
        Err(SourceError::LockLost(_))
    ));

    // Dead-letter with a reason and a description.
    source
        .dead_letter(
            token("m-1"),
            DeadLetter {
                reason: "InvalidJson".into(),
                description: "route telemetry: body is not JSON (`{\"device_id\":`)".into(),
            },
        )
        .await
        .expect("dead-letter");

    // Renew extends the lock.
    let before = by_id(&received, "m-3").locked_until.expect("locked until");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let renewed = source.renew_lock(token("m-3")).await.expect("renew-lock");
    assert!(renewed > before, "renewed lock {renewed} extends {before}");

    // Abandon: redelivered with delivery count 2.
    source.abandon(token("m-2")).await.expect("abandon");
    let again = receive_n(&mut source, 1, Duration::from_secs(20)).await;
    assert_eq!(again.len(), 1, "the abandoned message comes back");
    assert_eq!(again[0].message_id.as_deref(), Some("m-2"));
    assert_eq!(again[0].delivery_count, 2);
    source
        .complete(again[0].lock_token)
        .await
        .expect("complete m-2");
    source.complete(token("m-3")).await.expect("complete m-3");

    // Nothing left on the queue.
    let rest = source
        .receive(10, Duration::from_secs(2))
        .await
        .expect("receive");
    assert!(rest.is_empty(), "queue drained, got {}", rest.len());
    source.close().await.expect("close");

    // The dead-letter queue holds m-1 with its reason and description.
    let dlq_settings = ReceiverSettings {
        dead_letter_queue: true,
        ..Default::default()
    };
    let mut dlq = connector
        .open_receiver(&entity, &dlq_settings)
        .await
        .expect("open the DLQ receiver");
    let dead = receive_n(&mut dlq, 1, Duration::from_secs(20)).await;
    assert_eq!(dead.len(), 1, "one dead-lettered message");
    assert_eq!(dead[0].message_id.as_deref(), Some("m-1"));
    assert_eq!(
        dead[0].application_properties.get("DeadLetterReason"),
        Some(&PropertyValue::String("InvalidJson".into()))
    );
    assert_eq!(
        dead[0]
            .application_properties
            .get("DeadLetterErrorDescription"),
        Some(&PropertyValue::String(
            "route telemetry: body is not JSON (`{\"device_id\":`)".into()
        ))
    );
    assert_eq!(
        dead[0].application_properties.get("tenant"),
        Some(&PropertyValue::String("acme".into())),
        "the original properties survive dead-lettering"
    );
    dlq.complete(dead[0].lock_token)
        .await
        .expect("complete in the DLQ");
    dlq.close().await.expect("close the DLQ receiver");
    connector.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_is_reported_and_the_message_redelivered() {
    let emulator = Emulator::start(vec![queue_json("short", "PT5S", false)], Vec::new());
    let connector = emulator.connect_fast().await;
    send(&connector, "short", vec![telemetry(7)]).await;
    let entity = SourceEntity::Queue("short".into());
    let mut source = connector
        .open_receiver(&entity, &ReceiverSettings::default())
        .await
        .expect("open a receiver");
    let first = receive_n(&mut source, 1, Duration::from_secs(20)).await;
    assert_eq!(first.len(), 1);
    let locked_until = first[0].locked_until.expect("locked until");
    let wait = (locked_until - OffsetDateTime::now_utc()) + time::Duration::milliseconds(1500);
    tokio::time::sleep(wait.try_into().unwrap_or(Duration::from_secs(7))).await;

    let completed = source.complete(first[0].lock_token).await;
    assert!(
        matches!(completed, Err(SourceError::LockLost(_))),
        "completing after the lock expired: {completed:?}"
    );
    let again = receive_n(&mut source, 1, Duration::from_secs(20)).await;
    assert_eq!(again.len(), 1, "redelivered after the lock expired");
    assert_eq!(again[0].message_id.as_deref(), Some("m-7"));
    assert_eq!(again[0].delivery_count, 2);
    source
        .complete(again[0].lock_token)
        .await
        .expect("complete");
    source.close().await.expect("close");
    connector.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_and_missing_entities_are_fatal() {
    let emulator = Emulator::start(vec![queue_json("present", "PT30S", false)], Vec::new());

    let connector = emulator.connect_fast().await;
    let missing = connector
        .open_receiver(
            &SourceEntity::Queue("no-such-queue".into()),
            &ReceiverSettings::default(),
        )
        .await;
    assert!(
        matches!(missing, Err(SourceError::Fatal(_))),
        "a missing queue is fatal: {missing:?}"
    );
    connector.close().await;

    // The token is checked when the connection authenticates its first link (`$cbs`), so the
    // refusal may come from connecting or from opening the receiver.
    let refused = match emulator.try_connect("d3Jvbmcta2V5").await {
        Err(error) => Err(error),
        Ok(wrong) => {
            let opened = wrong
                .open_receiver(
                    &SourceEntity::Queue("present".into()),
                    &ReceiverSettings::default(),
                )
                .await;
            wrong.close().await;
            opened
        }
    };
    match refused {
        Err(SourceError::Fatal(text)) => {
            assert!(
                !text.contains("d3Jvbmcta2V5"),
                "the key never shows: {text}"
            )
        }
        other => panic!("a wrong key is fatal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_locked_one_at_a_time_and_keep_their_order() {
    let emulator = Emulator::start(vec![queue_json("by-device", "PT30S", true)], Vec::new());
    let connector = emulator.connect_fast().await;
    let messages = (0..6u32)
        .map(|seq| {
            let mut message = telemetry(seq);
            message.session_id = Some(format!("device-{}", seq % 2));
            message
        })
        .collect();
    send(&connector, "by-device", messages).await;

    let entity = SourceEntity::Queue("by-device".into());
    let settings = ReceiverSettings::default();
    let wait = Duration::from_secs(10);
    let mut first = connector
        .accept_next_session(&entity, &settings, wait)
        .await
        .expect("a session with messages is available");
    let mut second = connector
        .accept_next_session(&entity, &settings, wait)
        .await
        .expect("the other session is available");
    let mut seen_sessions = Vec::new();
    for source in [&mut first, &mut second] {
        let session = source.session_id().expect("bound to a session").to_string();
        let received = receive_n(source, 3, Duration::from_secs(20)).await;
        assert_eq!(received.len(), 3, "three messages in {session}");
        let ids: Vec<&str> = received
            .iter()
            .map(|m| m.message_id.as_deref().unwrap_or_default())
            .collect();
        let expected: Vec<String> = if session == "device-0" {
            vec!["m-0".into(), "m-2".into(), "m-4".into()]
        } else {
            vec!["m-1".into(), "m-3".into(), "m-5".into()]
        };
        assert_eq!(ids, expected, "session {session} delivers in send order");
        for message in &received {
            assert_eq!(message.session_id.as_deref(), Some(session.as_str()));
        }
        let renewed = source
            .renew_session_lock()
            .await
            .expect("renew the session lock")
            .expect("a session source reports its lock expiry");
        assert!(
            renewed > OffsetDateTime::now_utc(),
            "session lock {renewed} in the future"
        );
        for message in received {
            source.complete(message.lock_token).await.expect("complete");
        }
        seen_sessions.push(session);
    }
    seen_sessions.sort();
    assert_eq!(seen_sessions, vec!["device-0", "device-1"]);
    first.close().await.expect("close");
    second.close().await.expect("close");

    let none = connector
        .accept_next_session(&entity, &settings, Duration::from_secs(3))
        .await;
    assert!(
        matches!(none, Err(SourceError::NoSessionAvailable)),
        "no session has messages left: {none:?}"
    );
    connector.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_in_batches_with_and_without_prefetch() {
    let emulator = Emulator::start(
        vec![
            queue_json("backlog-credit", "PT30S", false),
            queue_json("backlog-prefetch", "PT30S", false),
        ],
        Vec::new(),
    );
    let connector = emulator.connect_fast().await;
    for (name, prefetch_count) in [("backlog-credit", 0), ("backlog-prefetch", 100)] {
        let total = 1_000u32;
        send(&connector, name, (0..total).map(telemetry).collect()).await;
        let settings = ReceiverSettings {
            prefetch_count,
            ..Default::default()
        };
        let mut source = connector
            .open_receiver(&SourceEntity::Queue(name.into()), &settings)
            .await
            .expect("open a receiver");
        let started = Instant::now();
        let mut sequence_numbers = std::collections::BTreeSet::new();
        let mut largest_batch = 0;
        while sequence_numbers.len() < total as usize && started.elapsed() < Duration::from_secs(60)
        {
            let batch = source
                .receive(100, Duration::from_secs(2))
                .await
                .expect("receive");
            largest_batch = largest_batch.max(batch.len());
            for message in batch {
                assert!(
                    sequence_numbers.insert(message.sequence_number),
                    "{name}: sequence number {} delivered twice",
                    message.sequence_number
                );
                source.complete(message.lock_token).await.expect("complete");
            }
        }
        assert_eq!(
            sequence_numbers.len(),
            total as usize,
            "{name}: every message received once"
        );
        assert!(
            largest_batch > 1,
            "{name}: a backlog comes back in batches, not one by one"
        );
        assert_eq!(source.unsettled_count(), 0);
        let rest = source
            .receive(10, Duration::from_millis(500))
            .await
            .expect("receive");
        assert!(rest.is_empty(), "{name}: drained");
        source.close().await.expect("close");
    }
    connector.close().await;
}

/// `busdrain send` end to end: the command's messages arrive as the template and flags say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busdrain_send_delivers_templated_messages_and_poison() {
    let emulator = Emulator::start(vec![queue_json("from-cli", "PT30S", false)], Vec::new());
    let output = Command::new(busdrain_binary())
        .args([
            "send",
            "--entity",
            "from-cli",
            "--count",
            "300",
            "--batch",
            "40",
            "--senders",
            "2",
            "--poison-every",
            "30",
            "--property",
            "tenant=acme-{{device 2}}",
            "--template",
            r#"{"n":{{seq}},"d":"{{device 3}}","id":"{{uuid}}"}"#,
        ])
        .env(
            "BUSDRAIN_SERVICE_BUS_CONNECTION_STRING",
            emulator.connection_string(),
        )
        .output()
        .expect("run busdrain send");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "busdrain send failed: {stderr}");
    assert!(
        stdout.contains("sent 300 messages to from-cli") && stdout.contains("poison: 10"),
        "summary: {stdout}"
    );

    let connector = emulator.connect_fast().await;
    let mut source = connector
        .open_receiver(
            &SourceEntity::Queue("from-cli".into()),
            &ReceiverSettings::default(),
        )
        .await
        .expect("open a receiver");
    let received = receive_n(&mut source, 300, Duration::from_secs(30)).await;
    assert_eq!(received.len(), 300);
    let mut numbers = std::collections::BTreeSet::new();
    let mut poison = BTreeMap::new();
    for message in &received {
        match message.application_properties.get("poison") {
            Some(PropertyValue::String(kind)) => *poison.entry(kind.clone()).or_insert(0) += 1,
            Some(other) => panic!("poison property of unexpected type {other:?}"),
            None => {
                let body: serde_json::Value =
                    serde_json::from_slice(&message.body).expect("a regular message is JSON");
                let n = body["n"].as_u64().expect("n is a number");
                assert_eq!(body["d"], format!("dev-{}", n % 3));
                assert_eq!(
                    message.application_properties.get("tenant"),
                    Some(&PropertyValue::String(format!("acme-dev-{}", n % 2)))
                );
                numbers.insert(n);
            }
        }
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert!(message.message_id.is_some());
        source.complete(message.lock_token).await.expect("complete");
    }
    let expected: std::collections::BTreeSet<u64> =
        (0..300).filter(|n| (n + 1) % 30 != 0).collect();
    assert_eq!(numbers, expected, "every regular message arrived once");
    assert_eq!(
        poison,
        BTreeMap::from([
            ("invalid_json".to_string(), 3),
            ("missing_field".to_string(), 2),
            ("not_json".to_string(), 2),
            ("wrong_type".to_string(), 3),
        ])
    );
    source.close().await.expect("close");
    connector.close().await;

    // Bad arguments: a clear error and a non-zero exit, before any connection is made.
    for (args, expected) in [
        (vec!["--count", "0"], "--count"),
        (vec!["--count", "5", "--template", "{{nope}}"], "nope"),
        (vec!["--count", "5", "--rate=-1"], "--rate"),
    ] {
        let output = Command::new(busdrain_binary())
            .args(["send", "--entity", "from-cli"])
            .args(&args)
            .env(
                "BUSDRAIN_SERVICE_BUS_CONNECTION_STRING",
                emulator.connection_string(),
            )
            .output()
            .expect("run busdrain send");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscription_of_a_topic_gets_its_copy() {
    let emulator = Emulator::start(
        Vec::new(),
        vec![topic_json("events", &["audit", "store"], "PT1M")],
    );
    let connector = emulator.connect_fast().await;
    send(&connector, "events", (0..5).map(telemetry).collect()).await;
    for subscription in ["audit", "store"] {
        let entity = SourceEntity::Subscription {
            topic: "events".into(),
            subscription: subscription.into(),
        };
        let mut source = connector
            .open_receiver(&entity, &ReceiverSettings::default())
            .await
            .expect("open a subscription receiver");
        assert_eq!(
            source.entity(),
            format!("events/Subscriptions/{subscription}")
        );
        let received = receive_n(&mut source, 5, Duration::from_secs(20)).await;
        let mut ids: Vec<String> = received
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect();
        ids.sort();
        assert_eq!(ids, ["m-0", "m-1", "m-2", "m-3", "m-4"], "{subscription}");
        // Dead-lettering works per subscription too.
        source
            .dead_letter(
                received[0].lock_token,
                DeadLetter {
                    reason: "TypeMismatch".into(),
                    description: format!("{subscription}: column temperature"),
                },
            )
            .await
            .expect("dead-letter");
        for message in &received[1..] {
            source.complete(message.lock_token).await.expect("complete");
        }
        source.close().await.expect("close");

        let dlq_settings = ReceiverSettings {
            dead_letter_queue: true,
            ..Default::default()
        };
        let mut dlq = connector
            .open_receiver(&entity, &dlq_settings)
            .await
            .expect("open the subscription's DLQ");
        let dead = receive_n(&mut dlq, 1, Duration::from_secs(20)).await;
        assert_eq!(dead.len(), 1, "{subscription}: one dead-lettered copy");
        assert_eq!(
            dead[0]
                .application_properties
                .get("DeadLetterErrorDescription"),
            Some(&PropertyValue::String(format!(
                "{subscription}: column temperature"
            )))
        );
        dlq.complete(dead[0].lock_token).await.expect("complete");
        dlq.close().await.expect("close");
    }
    connector.close().await;
}

/// The broker crashes and comes back: the source reports the outage as transient (no hang, no
/// panic), the connector reconnects, and the unsettled message is delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_recovers_after_the_broker_restarts() {
    let mut emulator = Emulator::start(vec![queue_json("durable", "PT30S", false)], Vec::new());
    let connector = emulator.connect_fast().await;
    send(&connector, "durable", (0..2).map(telemetry).collect()).await;
    let entity = SourceEntity::Queue("durable".into());
    let mut source = connector
        .open_receiver(&entity, &ReceiverSettings::default())
        .await
        .expect("open a receiver");
    let first = receive_n(&mut source, 2, Duration::from_secs(20)).await;
    assert_eq!(first.len(), 2);
    let completed = first[0].message_id.clone();
    source
        .complete(first[0].lock_token)
        .await
        .expect("complete");
    // A link settlement is fire-and-forget (see the source's notes): give the broker a moment
    // to apply it before the crash, or the completed message is legitimately redelivered.
    tokio::time::sleep(Duration::from_secs(1)).await;

    emulator.kill();
    let started = Instant::now();
    let during = source.receive(10, Duration::from_secs(1)).await;
    assert!(
        matches!(during, Err(SourceError::Transient(_))),
        "a broker outage is transient: {during:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the outage is reported within the retry budget, took {:?}",
        started.elapsed()
    );
    drop(source);

    emulator.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut source = loop {
        match connector
            .open_receiver(&entity, &ReceiverSettings::default())
            .await
        {
            Ok(source) => break source,
            Err(SourceError::Transient(error)) if Instant::now() < deadline => {
                eprintln!("reopening: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("cannot reopen after the restart: {error}"),
        }
    };
    let again = receive_n(&mut source, 1, Duration::from_secs(40)).await;
    assert_eq!(again.len(), 1, "the unsettled message survives the crash");
    assert_ne!(again[0].message_id, completed, "the completed one does not");
    assert_eq!(again[0].message_id, first[1].message_id);
    source
        .complete(again[0].lock_token)
        .await
        .expect("complete");
    source.close().await.expect("close");
    connector.close().await;
}

/// A receiver with a prefetch gets its credit back only by settling: messages it gives up
/// (lost locks) must still be released, or once a prefetch's worth of them is dropped the
/// broker can never send it another message and it waits forever while looking healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_messages_give_the_receiver_its_credit_back() {
    let emulator = Emulator::start(vec![queue_json("lapse", "PT5S", false)], Vec::new());
    let connector = emulator.connect_fast().await;
    send(&connector, "lapse", (0..8).map(telemetry).collect()).await;
    let entity = SourceEntity::Queue("lapse".into());
    let settings = ReceiverSettings {
        prefetch_count: 4,
        ..ReceiverSettings::default()
    };
    let mut source = connector
        .open_receiver(&entity, &settings)
        .await
        .expect("open a receiver");
    let first = receive_n(&mut source, 4, Duration::from_secs(20)).await;
    assert_eq!(first.len(), 4, "one prefetch's worth");
    // Wait the locks out, as a connector does when Cassandra stalls its writes.
    let locked_until = first[0].locked_until.expect("locked until");
    let wait = (locked_until - OffsetDateTime::now_utc()) + time::Duration::milliseconds(1500);
    tokio::time::sleep(wait.try_into().unwrap_or(Duration::from_secs(7))).await;
    for message in &first {
        source.release(message.lock_token).await;
    }

    // Settling as it goes, as the pipeline does (which refills the credit in turn).
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids.len() < 8 && Instant::now() < deadline {
        for message in source
            .receive(8, Duration::from_secs(2))
            .await
            .expect("receive")
        {
            source.complete(message.lock_token).await.expect("complete");
            ids.extend(message.message_id);
        }
    }
    ids.sort();
    let mut expected: Vec<String> = (0..8).map(|seq| format!("m-{seq}")).collect();
    expected.sort();
    assert_eq!(
        ids, expected,
        "the 4 released ones again and the 4 never delivered"
    );
    source.close().await.expect("close");
    connector.close().await;
}

/// A transfer whose outcome never comes (the broker froze, then restarted without it) makes
/// azservicebus recover the link and poll the transfer's finished delivery future again, which
/// panics inside the client (`called after complete`, fe2o3-amqp 0.14.1 link/delivery.rs:454).
/// The sender turns that into a transient error and refuses further use; the task that sent
/// survives, and a new sender works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_outcome_is_lost_fails_without_panicking() {
    let mut emulator = Emulator::start(vec![queue_json("orders", "PT30S", false)], Vec::new());
    let connector = emulator
        .try_connect_with(EMULATOR_KEY, Duration::from_secs(4), 3)
        .await
        .expect("connect");
    let mut sender = connector
        .open_sender("orders")
        .await
        .expect("open a sender");
    emulator.freeze();
    let sending = tokio::spawn(async move {
        let result = sender.send(vec![telemetry(1)]).await;
        (result, sender)
    });
    // Within the first try (4 s): the transfer is written and its outcome pending.
    tokio::time::sleep(Duration::from_secs(3)).await;
    emulator.restart();
    let (result, mut sender) = tokio::time::timeout(Duration::from_secs(90), sending)
        .await
        .expect("the send ends within its retry budget")
        .expect("the sending task does not panic");
    let Err(SendError::Broker(SourceError::Transient(error))) = &result else {
        panic!("a lost outcome is a transient error, got {result:?}");
    };
    eprintln!("send failed as expected: {error}");
    if error.contains("panicked") {
        // Poisoned: refused at once, without touching the client again.
        let again = sender.send(vec![telemetry(2)]).await;
        assert!(
            matches!(&again, Err(SendError::Broker(SourceError::Transient(e))) if e.contains("unusable")),
            "{again:?}"
        );
    }
    let _ = sender.close().await;

    // As `busdrain send` does: open a new sender, retrying once (the first open may time out
    // on the old connection, which is then replaced).
    let mut fresh = match connector.open_sender("orders").await {
        Ok(sender) => sender,
        Err(error) => {
            eprintln!("first open after the failure: {error}");
            connector
                .open_sender("orders")
                .await
                .expect("a new sender on a new connection")
        }
    };
    tokio::time::timeout(Duration::from_secs(60), fresh.send(vec![telemetry(3)]))
        .await
        .expect("the send ends")
        .expect("the new sender sends");
    let _ = fresh.close().await;
    connector.close().await;
}
