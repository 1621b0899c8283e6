//! busdrain-amqp: see README.md in this crate.
