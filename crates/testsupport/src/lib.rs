//! busdrain-testsupport: see README.md in this crate.
