//! busdrain-broker: see README.md in this crate.
