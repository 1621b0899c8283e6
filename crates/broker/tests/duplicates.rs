//! Duplicate detection on queues and topics.

mod common;

use std::time::Duration;

use busdrain_broker::{Broker, BrokerLimits, NamespaceConfig, ReceiveMode};
use common::{body, entity, message, receive};

const CONFIG: &str = r#"{"UserConfig":{"Namespaces":[{"Name":"dd",
  "Queues":[{"Name":"dedup","Properties":{"RequiresDuplicateDetection":true,"DuplicateDetectionHistoryTimeWindow":"PT1S"}},
            {"Name":"plain"}],
  "Topics":[{"Name":"t","Properties":{"RequiresDuplicateDetection":true,"DuplicateDetectionHistoryTimeWindow":"PT1M"},
             "Subscriptions":[{"Name":"s"}]}]}]}}"#;

fn open(dir: &std::path::Path) -> Broker {
    let config = NamespaceConfig::from_json_str(CONFIG).unwrap();
    Broker::open(dir, config, BrokerLimits::default()).unwrap()
}

#[tokio::test]
async fn same_message_id_within_the_window_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let queue = entity(&broker, "dedup");
    let first = queue.send(vec![message("a"), message("b")]).await.unwrap();
    // Resent "a" (same MessageId) in a batch with a new one, and a duplicate inside the batch.
    let second = queue
        .send(vec![message("a"), message("c"), message("c")])
        .await
        .unwrap();
    assert_eq!(first, vec![1, 2]);
    assert_eq!(
        second,
        vec![1, 3, 3],
        "duplicates report the original's number"
    );
    let got = receive(&queue, 10, ReceiveMode::ReceiveAndDelete).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["a", "b", "c"]);

    // After the window the same id is a new message.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(queue.send(vec![message("a")]).await.unwrap(), vec![4]);

    // Without detection, duplicates are stored.
    let plain = entity(&broker, "plain");
    plain.send(vec![message("a"), message("a")]).await.unwrap();
    assert_eq!(
        receive(&plain, 10, ReceiveMode::ReceiveAndDelete)
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn topic_detection_survives_restart_for_stored_messages() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let topic = entity(&broker, "t");
        assert_eq!(topic.send(vec![message("x")]).await.unwrap(), vec![1]);
        broker.close();
    }
    let broker = open(dir.path());
    let topic = entity(&broker, "t");
    assert_eq!(
        topic.send(vec![message("x"), message("y")]).await.unwrap(),
        vec![1, 2]
    );
    let sub = entity(&broker, "t/Subscriptions/s");
    let got = receive(&sub, 10, ReceiveMode::ReceiveAndDelete).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["x", "y"]);
}
