//! busdrain-emulator: the Service Bus dialect of the `busdrain emulator` broker.
//!
//! Layers, outermost first: the AMQP engine (`busdrain-amqp`) turns bytes into links and
//! deliveries; this crate gives them Service Bus meaning (addresses, `$cbs` auth, the
//! `$management` node, broker annotations, settlement outcomes); the broker
//! (`busdrain-broker`) owns entities, locks and the durable store.

pub mod address;
pub mod auth;
pub mod bridge;
pub mod cbs;
pub mod codec;
pub mod connection;
pub mod health;
pub mod management;
pub mod message;
pub mod node;
pub mod property;
pub mod receive_link;
pub mod request;
pub mod sas;
pub mod send_link;
pub mod server;
pub mod session_link;
pub mod settlement;

pub use busdrain_broker::NamespaceConfig;
pub use sas::{SasPolicies, SasPolicy};
pub use server::{Emulator, EmulatorOptions, ServerError};
pub use tokio_util::sync::CancellationToken;

#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod test_broker;
