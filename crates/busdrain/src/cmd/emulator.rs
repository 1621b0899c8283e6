//! `busdrain emulator`: a durable Service Bus-compatible AMQP 1.0 broker for development and CI.
//! Flags are parsed and checked here; the broker and the wire dialect live in
//! `busdrain-emulator`. See `docs/emulator.md`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use busdrain_emulator::{
    CancellationToken, Emulator, EmulatorOptions, NamespaceConfig, SasPolicies, SasPolicy,
};

/// Arguments of `busdrain emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Entities in the format of Microsoft's emulator `Config.json`. Without it, a default
    /// namespace is served (see docs/emulator.md).
    #[arg(long, value_name = "FILE", env = "BUSDRAIN_EMULATOR_CONFIG")]
    config: Option<PathBuf>,

    /// Address for plain AMQP (what the SDKs use with `UseDevelopmentEmulator=true`).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:5672",
        env = "BUSDRAIN_EMULATOR_LISTEN"
    )]
    listen: SocketAddr,

    /// Address of the HTTP health endpoint (`GET /health`). `off` disables it.
    #[arg(
        long,
        value_name = "ADDR|off",
        default_value = "127.0.0.1:5300",
        env = "BUSDRAIN_EMULATOR_HTTP"
    )]
    http: String,

    /// Where messages are stored. Default: `$XDG_DATA_HOME/busdrain/emulator` when
    /// XDG_DATA_HOME is set, else `./.busdrain/emulator`.
    #[arg(long, value_name = "DIR", env = "BUSDRAIN_EMULATOR_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// Largest message accepted, in bytes (advertised as the links' max-message-size).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_message_size: u64,

    /// Connections served at once; more are closed at accept.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,

    /// An extra shared access policy `NAME:KEY:RIGHTS` (rights: Send, Listen, Manage joined
    /// by `,`). Repeatable. `RootManageSharedAccessKey` / `SAS_KEY_VALUE` (all rights) is
    /// always present unless a policy of that name is given.
    #[arg(long = "sas-policy", value_name = "NAME:KEY:RIGHTS")]
    sas_policies: Vec<String>,
}

fn default_data_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(base) if !base.is_empty() => PathBuf::from(base).join("busdrain").join("emulator"),
        _ => PathBuf::from(".busdrain").join("emulator"),
    }
}

fn policies(specs: &[String]) -> anyhow::Result<SasPolicies> {
    let mut policies = Vec::new();
    for spec in specs {
        let policy =
            SasPolicy::parse_spec(spec).with_context(|| format!("--sas-policy {spec:?}"))?;
        policies.retain(|p: &SasPolicy| p.name != policy.name);
        policies.push(policy);
    }
    let default = SasPolicy::emulator_default();
    if !policies.iter().any(|p| p.name == default.name) {
        policies.insert(0, default);
    }
    Ok(SasPolicies::new(policies))
}

/// Raises the open-file limit to the hard limit: every connection is a descriptor, and the
/// default soft limit (often 1024) is below the 1,000+ connections we promise.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit; see `ulimit -n`"),
    }
}

pub async fn execute(args: EmulatorArgs) -> anyhow::Result<()> {
    let namespace = match &args.config {
        Some(path) => NamespaceConfig::from_file(path)
            .with_context(|| format!("invalid emulator config {}", path.display()))?,
        None => NamespaceConfig::default_namespace(),
    };
    let http =
        match args.http.as_str() {
            "off" | "" => None,
            addr => Some(addr.parse::<SocketAddr>().with_context(|| {
                format!("--http {addr:?} is not an address like 127.0.0.1:5300")
            })?),
        };
    if args.max_message_size == 0 {
        anyhow::bail!("--max-message-size must be at least 1 byte");
    }
    if args.max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    let policies = policies(&args.sas_policies)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    raise_fd_limit();
    // Handlers are installed before the store opens, so a signal during start-up also stops
    // the emulator cleanly.
    let shutdown = CancellationToken::new();
    listen_for_signals(shutdown.clone())?;

    let options = EmulatorOptions {
        namespace,
        policies: policies.clone(),
        listen: args.listen,
        http,
        data_dir: data_dir.clone(),
        max_message_size: args.max_message_size,
        max_connections: args.max_connections,
    };
    let emulator = Emulator::bind(options).await?;
    let amqp = emulator.amqp_addr().unwrap_or(args.listen);
    let entities = emulator.broker().entity_paths().len();
    let endpoint = if amqp.port() == 5672 {
        "sb://localhost".to_string()
    } else {
        format!("sb://localhost:{}", amqp.port())
    };
    let root = &policies.policies()[0];
    tracing::info!(
        amqp = %amqp,
        http = ?emulator.http_addr(),
        namespace = %emulator.broker().namespace(),
        entities,
        data_dir = %data_dir.display(),
        policies = ?policies.policies().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        "busdrain emulator serving"
    );
    // Only the well-known development key is printed; custom keys stay out of the logs.
    let key = if root.key == busdrain_emulator::sas::DEFAULT_POLICY_KEY {
        root.key.as_str()
    } else {
        "<its key>"
    };
    tracing::info!(
        "connection string: Endpoint={endpoint};SharedAccessKeyName={};SharedAccessKey={key};UseDevelopmentEmulator=true;",
        root.name
    );
    for path in emulator.broker().entity_paths() {
        tracing::debug!(entity = %path, "serving entity");
    }

    emulator.run(shutdown).await;
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
fn listen_for_signals(shutdown: CancellationToken) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut interrupt =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::info!("shutdown requested; closing connections and flushing the store");
            shutdown.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested; closing connections and flushing the store");
        shutdown.cancel();
    });
    Ok(())
}
