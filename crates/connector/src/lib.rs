//! busdrain-connector: drains Service Bus entities into Cassandra tables.

pub mod admin;
pub mod config;
pub mod mapping;
pub mod metrics;
pub mod pipeline;
pub mod route;
pub mod schema;
pub mod service;
pub mod sink;
pub mod source;

/// The shutdown signal type the binary hands to [`service::run`].
pub use tokio_util::sync::CancellationToken;
