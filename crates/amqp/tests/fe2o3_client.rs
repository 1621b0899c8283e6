//! The engine driven by the fe2o3-amqp 0.14 client (what `azservicebus`, and so the
//! connector, runs on) through the in-test echo broker. `azservicebus` itself always dials
//! port 5672 (it keeps only the endpoint's host), so these tests use its AMQP client
//! directly on a free port.

mod support;

use std::time::Duration;

use azservicebus_amqp::connection::Connection;
use azservicebus_amqp::link::{Receiver, Sender};
use azservicebus_amqp::session::Session;
use azservicebus_amqp::types::messaging::Outcome;
use azservicebus_amqp::types::primitives::Value;
use azservicebus_amqp::Delivery;
use busdrain_amqp::ConnectionConfig;

/// See `EchoBroker::start_with_settle_delay`: works around a race in the fe2o3 0.14 client.
const SETTLE_DELAY: Duration = Duration::from_millis(2);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fe2o3_client_sends_and_receives_through_the_engine() {
    let broker =
        support::EchoBroker::start_with_settle_delay(ConnectionConfig::default(), SETTLE_DELAY)
            .await;
    let url = format!("amqp://user:password@127.0.0.1:{}", broker.port);
    let run = async {
        // A small client max-frame-size forces multi-frame transfers in both directions.
        let mut connection = Connection::builder()
            .container_id("fe2o3-test")
            .max_frame_size(1024)
            .open(url.as_str())
            .await?;
        let mut session = Session::begin(&mut connection).await?;
        let mut sender = Sender::attach(&mut session, "sender-1", "queue1").await?;
        let big = "y".repeat(20_000);
        for body in ["one", "two", big.as_str()] {
            let outcome = sender.send(body.to_string()).await?;
            assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
        }
        sender.close().await?;

        let mut receiver = Receiver::attach(&mut session, "receiver-1", "queue1").await?;
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let delivery: Delivery<Value> =
                tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await??;
            match delivery.body() {
                Value::String(s) => bodies.push(s.clone()),
                other => panic!("unexpected body {other:?}"),
            }
            receiver.accept(&delivery).await?;
        }
        assert_eq!(bodies, ["one", "two", big.as_str()]);

        // Drain with nothing queued: the engine must answer with credit 0.
        receiver.set_credit(5).await?;
        tokio::time::timeout(Duration::from_secs(5), receiver.drain()).await??;
        receiver.close().await?;
        session.end().await?;
        connection.close().await?;
        Ok::<(), BoxError>(())
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("fe2o3 run timed out")
        .expect("fe2o3 run failed");
    assert_eq!(
        broker.queues.len("queue1"),
        0,
        "accepted messages must be gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_attach_reaches_the_fe2o3_client_as_an_error() {
    let broker =
        support::EchoBroker::start_with_settle_delay(ConnectionConfig::default(), SETTLE_DELAY)
            .await;
    let url = format!("amqp://127.0.0.1:{}", broker.port);
    let run = async {
        let mut connection = Connection::open("refuse-test", url.as_str()).await?;
        let mut session = Session::begin(&mut connection).await?;
        let refused = Sender::attach(&mut session, "refused", "refuse-me").await;
        let message = format!("{refused:?}");
        assert!(
            message.contains("no such node"),
            "attach must fail with our error: {message}"
        );
        // The session survives a refused link.
        let mut sender = Sender::attach(&mut session, "after-refusal", "queue9").await?;
        sender.send("still works".to_string()).await?;
        sender.close().await?;
        session.end().await?;
        connection.close().await?;
        Ok::<(), BoxError>(())
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("fe2o3 run timed out")
        .expect("fe2o3 run failed");
    assert_eq!(broker.queues.len("queue9"), 1);
}
