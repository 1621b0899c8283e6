//! busdrain-connector: drains Service Bus entities into Cassandra tables.

pub mod config;
pub mod mapping;
pub mod metrics;
pub mod schema;
pub mod sink;
pub mod source;
