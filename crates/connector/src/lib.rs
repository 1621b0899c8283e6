//! busdrain-connector: drains Service Bus entities into Cassandra tables.

pub mod config;
pub mod mapping;
pub mod schema;
pub mod source;
