//! busdrain-emulator: see README.md in this crate.
