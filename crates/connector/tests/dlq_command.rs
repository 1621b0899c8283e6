//! `busdrain dlq` against a real emulator (child processes): listing peeks, so inspecting a
//! dead-letter queue any number of times leaves it exactly as it was (same messages, same
//! delivery counts); `--remove` takes the listed messages out.

mod support;

use std::process::Command;
use std::time::Duration;

use busdrain_connector::source::{
    DeadLetter, MessageSource as _, OutgoingMessage, ReceiverSettings, SourceEntity,
};
use support::process::{queue_json, EmulatorChild};
use support::servicebus::receive_n;

/// Runs `busdrain dlq` and returns its standard output.
fn dlq(emulator: &EmulatorChild, extra: &[&str]) -> String {
    let output = Command::new(support::busdrain_binary())
        .args(["dlq", "--entity", "orders"])
        .args(extra)
        .env(
            "BUSDRAIN_SERVICE_BUS_CONNECTION_STRING",
            emulator.connection_string(),
        )
        .output()
        .expect("run busdrain dlq");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "busdrain dlq failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `(message id, delivery count)` of every listed message, in listing order.
fn listed(stdout: &str) -> Vec<(String, u32)> {
    stdout
        .lines()
        .filter_map(|line| {
            let id = line.split(" id=").nth(1)?.split(' ').next()?;
            let count = line.split(" deliveries=").nth(1)?.split(' ').next()?;
            Some((id.to_owned(), count.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspecting_the_dlq_twice_changes_nothing_and_remove_empties_it() {
    let emulator = EmulatorChild::start(vec![queue_json("orders", "PT30S", false)], vec![]);
    let connector = emulator.connect().await;
    let mut sender = connector.open_sender("orders").await.expect("a sender");
    let messages = (0..3)
        .map(|n| OutgoingMessage {
            message_id: Some(format!("poison-{n}")),
            ..OutgoingMessage::json(format!("not json {n}"))
        })
        .collect();
    sender.send(messages).await.expect("send");
    sender.close().await.expect("close the sender");

    let entity = SourceEntity::Queue("orders".into());
    let mut source = connector
        .open_receiver(&entity, &ReceiverSettings::default())
        .await
        .expect("a receiver");
    for message in receive_n(&mut source, 3, Duration::from_secs(20)).await {
        source
            .dead_letter(
                message.lock_token,
                DeadLetter {
                    reason: "InvalidJson".into(),
                    description: "not JSON".into(),
                },
            )
            .await
            .expect("dead-letter");
    }
    source.close().await.expect("close the receiver");

    let first = dlq(&emulator, &[]);
    let second = dlq(&emulator, &[]);
    assert!(first.contains("reason=InvalidJson"), "{first}");
    let mut ids: Vec<String> = listed(&first).into_iter().map(|(id, _)| id).collect();
    ids.sort();
    assert_eq!(ids, ["poison-0", "poison-1", "poison-2"], "{first}");
    assert_eq!(
        listed(&first),
        listed(&second),
        "a second listing sees the same messages with the same delivery counts:\n{second}"
    );

    // The broker agrees: a receive now sees the delivery counts the listings showed (each
    // peek-lock inspection would have added one).
    let settings = ReceiverSettings {
        dead_letter_queue: true,
        ..ReceiverSettings::default()
    };
    let mut dead = connector
        .open_receiver(&entity, &settings)
        .await
        .expect("a DLQ receiver");
    let received = receive_n(&mut dead, 3, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 3);
    let listed_counts = listed(&second);
    for message in &received {
        let id = message.message_id.clone().unwrap_or_default();
        let shown = listed_counts.iter().find(|(listed_id, _)| *listed_id == id);
        assert_eq!(
            shown.map(|(_, count)| *count),
            Some(message.delivery_count),
            "{id}: delivery count on receive vs. as listed"
        );
        dead.abandon(message.lock_token).await.expect("abandon");
    }
    dead.close().await.expect("close the DLQ receiver");

    let removing = dlq(&emulator, &["--remove"]);
    assert!(removing.contains("removed 3 message(s)"), "{removing}");
    let after = dlq(&emulator, &[]);
    assert!(
        after.starts_with("0 message(s)"),
        "the DLQ is empty after --remove:\n{after}"
    );
    connector.close().await;
}
