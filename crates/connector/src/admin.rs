//! The admin HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process is
//! alive and serving) and `/readyz` (Cassandra takes writes and every route is receiving).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::route::RouteRuntime;
use crate::sink::health::SinkHealth;

/// Installs the process-wide Prometheus recorder. Call once, before any route is built.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, String> {
    let latency_buckets = [
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
    ];
    let row_buckets = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
    let byte_buckets = [128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(crate::metrics::WRITE_LATENCY.into()),
            &latency_buckets,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(crate::metrics::BATCH_ROWS.into()),
                &row_buckets,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(crate::metrics::BATCH_BYTES.into()),
                &byte_buckets,
            )
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    crate::metrics::describe();
    metrics::gauge!(crate::metrics::SINK_HEALTHY).set(1.0);
    Ok(handle)
}

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    health: SinkHealth,
    routes: Arc<Vec<Arc<RouteRuntime>>>,
}

/// The admin router (separate from serving so tests can drive it).
pub fn router(
    metrics: PrometheusHandle,
    health: SinkHealth,
    routes: Vec<Arc<RouteRuntime>>,
) -> Router {
    let state = AdminState {
        metrics,
        health,
        routes: Arc::new(routes),
    };
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readiness))
        .with_state(state)
}

async fn render_metrics(State(state): State<AdminState>) -> String {
    state.metrics.render()
}

async fn readiness(State(state): State<AdminState>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if !state.health.is_healthy() {
        problems.push("cassandra: not taking writes (receiving paused)".to_owned());
    }
    for route in state.routes.iter() {
        if route.source_failing() {
            problems.push(format!(
                "route {}: cannot open its source (see the logs)",
                route.plan.name
            ));
        } else if !route.plan.sessions && route.receivers_up() == 0 {
            // A session route may legitimately hold no session while none has messages.
            problems.push(format!("route {}: no receiver attached", route.plan.name));
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n")
    }
}

/// Binds the admin listener (errors say which address) and returns the bound address.
pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("[admin] listen = \"{listen}\": cannot bind: {e}"))
}

/// Serves until `shutdown`; also runs the recorder's periodic upkeep.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
) {
    let upkeep = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => metrics.run_upkeep(),
                    () = shutdown.cancelled() => break,
                }
            }
        })
    };
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "admin server failed");
    }
    let _ = upkeep.await;
}
