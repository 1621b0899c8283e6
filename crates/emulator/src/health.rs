//! `GET /health`, in the shape of Microsoft's emulator (`HealthCheckApiSchema.md`):
//! 200 `{"status":"healthy","message":"Service is healthy."}`, or 503 `unhealthy` while
//! shutting down.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub fn router(shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(shutdown)
}

async fn health(State(shutdown): State<CancellationToken>) -> (StatusCode, Json<Value>) {
    if shutdown.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unhealthy",
                "message": "Service not available. Please try after some time."
            })),
        )
    } else {
        (
            StatusCode::OK,
            Json(json!({"status": "healthy", "message": "Service is healthy."})),
        )
    }
}
