//! busdrain-emulator: the Service Bus dialect of the `busdrain emulator` broker.
//!
//! Layers, outermost first: the AMQP engine (`busdrain-amqp`) turns bytes into links and
//! deliveries; this crate gives them Service Bus meaning (addresses, `$cbs` auth, the
//! `$management` node, broker annotations, settlement outcomes); the broker
//! (`busdrain-broker`) owns entities, locks and the durable store.

pub mod address;
pub mod auth;
pub mod cbs;
pub mod codec;
pub mod message;
pub mod request;
pub mod sas;
