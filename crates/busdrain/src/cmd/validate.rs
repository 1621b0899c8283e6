//! `busdrain validate`: check a connector config — its syntax, and every route against the live
//! Cassandra schema — without receiving a single message. Exits non-zero listing every problem.

use std::path::PathBuf;

use anyhow::Context;
use busdrain_connector::config::Config;
use busdrain_connector::service;

/// Arguments of `busdrain validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The connector's TOML config.
    #[arg(long, short, env = "BUSDRAIN_CONFIG", default_value = "busdrain.toml")]
    pub config: PathBuf,
}

pub async fn execute(args: ValidateArgs) -> anyhow::Result<()> {
    let loaded = Config::load(&args.config)
        .with_context(|| format!("invalid config {}", args.config.display()))?;
    let (_session, plans) = service::validate(&loaded).await.with_context(|| {
        format!(
            "config {} failed the check against Cassandra",
            args.config.display()
        )
    })?;
    println!("{}: OK, {} route(s)", args.config.display(), plans.len());
    for plan in &plans {
        println!(
            "  route {}: {}{} → {}.{} ({} columns, consistency {})\n    {}",
            plan.name,
            plan.entity,
            if plan.sessions { " (sessions)" } else { "" },
            plan.keyspace,
            plan.table,
            plan.mapper.columns().len(),
            plan.consistency,
            plan.insert_cql()
        );
    }
    Ok(())
}
