//! The admin endpoints over real HTTP: liveness, readiness (Cassandra health gate and attached
//! receivers) and the Prometheus metrics page.

mod support;

use std::path::Path;

use busdrain_connector::config::Config;
use busdrain_connector::sink::CassandraSink;
use busdrain_connector::{admin, service, CancellationToken};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{config_text, run_cql};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn healthz_readyz_and_metrics() {
    let handle = admin::install_metrics_recorder().expect("recorder");
    let session = busdrain_testsupport::cassandra().await;
    let ks = busdrain_testsupport::fresh_keyspace(&session, "admin").await;
    run_cql(
        &session,
        &format!("CREATE TABLE {ks}.t (id text PRIMARY KEY, v int)"),
    )
    .await;
    let text = config_text(&ks, "t", "id = \"message_id\"\nv = \"body.v\"", "");
    let loaded = Config::load_str(Path::new("t.toml"), &text, Vec::new()).expect("config");
    let (session, plans) = service::validate(&loaded).await.expect("valid");
    let sink = CassandraSink::new(session, 8);
    let routes = service::build_routes(&sink, plans).await.expect("routes");

    let listener = admin::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let app = admin::router(handle.clone(), sink.health.clone(), routes.clone());
    let server = tokio::spawn(admin::serve(listener, app, handle, stop.clone()));

    assert_eq!(get(addr, "/healthz").await.0, 200);
    // No receiver runs in this test: the route is not ready.
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("route r1: no receiver attached"), "{body}");
    sink.health.mark_unhealthy("test outage");
    let (_, body) = get(addr, "/readyz").await;
    assert!(body.contains("cassandra: not taking writes"), "{body}");

    routes[0].metrics.received.increment(3);
    let (status, page) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("busdrain_messages_received_total{route=\"r1\"} 3"),
        "{page}"
    );
    assert!(page.contains("busdrain_cassandra_healthy 0"), "{page}");
    assert!(
        page.contains(
            "busdrain_messages_dead_lettered_total{route=\"r1\",reason=\"TypeMismatch\"} 0"
        ),
        "{page}"
    );

    stop.cancel();
    server.await.expect("server stops");
    busdrain_testsupport::drop_keyspace(&sink.session, &ks).await;
}
