//! The emulator process: the AMQP listener, the health endpoint and graceful shutdown.
//!
//! [`Emulator::bind`] opens the broker and binds both sockets (port 0 picks a free port, for
//! tests); [`Emulator::run`] serves until the cancellation token fires, then closes every
//! connection, waits for their tasks and flushes the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use busdrain_amqp::ConnectionConfig;
use busdrain_broker::{Broker, BrokerError, BrokerLimits, NamespaceConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sas::SasPolicies;

/// Everything `busdrain emulator` is configured with.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub namespace: NamespaceConfig,
    pub policies: SasPolicies,
    pub listen: SocketAddr,
    /// `None` disables the health endpoint.
    pub http: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Largest message accepted and advertised in attach replies, in bytes.
    pub max_message_size: u64,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the broker in {path}: {source}")]
    Broker {
        path: String,
        #[source]
        source: BrokerError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What every connection shares.
pub struct Shared {
    pub broker: Broker,
    pub policies: SasPolicies,
    pub connection_config: ConnectionConfig,
    pub max_message_size: u64,
}

impl Shared {
    /// Largest transfer a sending link admits: room for an oversized message to arrive
    /// whole, so it can be refused on its own (see `connection.rs`).
    pub fn transfer_limit(&self) -> u64 {
        self.max_message_size
            .saturating_mul(8)
            .max(self.max_message_size.saturating_add(8 * 1024 * 1024))
    }
}

/// A bound, not yet serving emulator.
pub struct Emulator {
    shared: Arc<Shared>,
    amqp: TcpListener,
    http: Option<TcpListener>,
    max_connections: usize,
}

impl Emulator {
    pub async fn bind(options: EmulatorOptions) -> Result<Emulator, ServerError> {
        let limits = BrokerLimits {
            max_message_size: usize::try_from(options.max_message_size).unwrap_or(usize::MAX),
            ..BrokerLimits::default()
        };
        let data_dir = options.data_dir.clone();
        let namespace = options.namespace.clone();
        // Opening replays the store: keep it off the async workers.
        let broker =
            tokio::task::spawn_blocking(move || Broker::open(&data_dir, namespace, limits))
                .await
                .map_err(|e| ServerError::Broker {
                    path: options.data_dir.display().to_string(),
                    source: BrokerError::Store {
                        context: "opening",
                        message: e.to_string(),
                    },
                })?
                .map_err(|source| ServerError::Broker {
                    path: options.data_dir.display().to_string(),
                    source,
                })?;
        let amqp = TcpListener::bind(options.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: options.listen,
                source,
            })?;
        let http = match options.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let mut shared = Shared {
            broker,
            policies: options.policies,
            connection_config: ConnectionConfig::default(),
            max_message_size: options.max_message_size,
        };
        shared.connection_config.max_message_size = shared.transfer_limit();
        Ok(Emulator {
            shared: Arc::new(shared),
            amqp,
            http,
            max_connections: options.max_connections,
        })
    }

    pub fn amqp_addr(&self) -> Option<SocketAddr> {
        self.amqp.local_addr().ok()
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn broker(&self) -> &Broker {
        &self.shared.broker
    }

    /// Serves until `shutdown` fires, then closes connections and flushes the store.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        if let Some(http) = self.http {
            let router = crate::health::router(shutdown.clone());
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let server = axum::serve(http, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await });
                if let Err(error) = server.await {
                    tracing::warn!(%error, "health endpoint stopped");
                }
            });
        }
        let permits = Arc::new(Semaphore::new(self.max_connections));
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.amqp.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%peer, max = self.max_connections, "connection refused: --max-connections reached");
                drop(tcp);
                continue;
            };
            let shared = self.shared.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                crate::connection::serve(shared, tcp, peer.to_string(), stop).await;
                drop(permit);
            });
        }
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections did not close within 10 s");
        }
        let broker = self.shared.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.close()).await;
        tracing::info!("emulator stopped; store flushed");
    }
}
