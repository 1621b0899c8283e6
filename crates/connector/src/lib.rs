//! busdrain-connector: see README.md in this crate.
