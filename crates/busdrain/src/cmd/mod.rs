//! One module per subcommand. Each exposes an `Args` struct (clap) and `execute`.

pub mod bench;
pub mod dlq;
pub mod emulator;
pub mod run;
pub mod send;
pub mod validate;
