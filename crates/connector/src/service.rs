//! Startup and run of the whole connector, so the binary only parses arguments and signals:
//! connect to Cassandra → check every route against the live schema → prepare the INSERTs →
//! connect to Service Bus → serve the admin endpoints → run the routes until shutdown.

use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;
use tokio_util::sync::CancellationToken;

use crate::config::{EntityPath, LoadedConfig};
use crate::metrics::RouteMetrics;
use crate::pipeline::{self, SourceOpener};
use crate::route::RouteRuntime;
use crate::schema::{plan_routes, Catalog, RoutePlan};
use crate::sink::{self, CassandraSink, RouteWriter, SinkError};

/// How long closing the Service Bus connection may take at shutdown.
const CONNECTION_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
use crate::source::{
    ConnectorSettings, Credential, ReceiverSettings, ServiceBusConnectionString,
    ServiceBusConnector, ServiceBusSource, SourceEntity, SourceError,
};

/// Why the connector could not start. Each variant lists everything the user must fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Cassandra(#[from] SinkError),
    #[error("the schema check refused the config:\n  - {}", .0.join("\n  - "))]
    Schema(Vec<String>),
    #[error("[service_bus]: {0}")]
    ServiceBus(String),
    #[error("{0}")]
    Admin(String),
}

/// Connects to Cassandra and checks every route against the live schema; consumes nothing.
pub async fn validate(
    loaded: &LoadedConfig,
) -> Result<(Arc<Session>, Vec<RoutePlan>), StartupError> {
    let session = Arc::new(sink::connect(&loaded.config.cassandra).await?);
    // The session fetched the schema when it connected; refresh in case it just changed.
    if let Err(error) = session.refresh_metadata().await {
        tracing::warn!(%error, "schema refresh failed; checking against the schema fetched at connect");
    }
    let catalog = Catalog::from_cluster_state(&session.get_cluster_state());
    let plans = plan_routes(loaded, &catalog).map_err(StartupError::Schema)?;
    Ok((session, plans))
}

/// Prepares each route's INSERT; fails if any route's statement is refused.
pub async fn build_routes(
    sink: &Arc<CassandraSink>,
    plans: Vec<RoutePlan>,
) -> Result<Vec<Arc<RouteRuntime>>, StartupError> {
    let mut routes = Vec::with_capacity(plans.len());
    for plan in plans {
        let metrics = RouteMetrics::new(&plan.name);
        let writer = RouteWriter::prepare(sink.clone(), &plan, metrics.clone()).await?;
        routes.push(Arc::new(RouteRuntime::new(plan, writer, metrics)));
    }
    Ok(routes)
}

/// Runs the connector until `shutdown` fires and in-flight messages are settled.
pub async fn run(loaded: &LoadedConfig, shutdown: CancellationToken) -> Result<(), StartupError> {
    let config = &loaded.config;
    let metrics_handle = crate::admin::install_metrics_recorder().map_err(StartupError::Admin)?;
    let (session, plans) = validate(loaded).await?;
    let sink = CassandraSink::new(session, config.cassandra.max_concurrency);
    let routes = build_routes(&sink, plans).await?;
    let opener = Arc::new(ServiceBusOpener::connect(loaded).await?);
    let listener = crate::admin::bind(config.admin.listen)
        .await
        .map_err(StartupError::Admin)?;
    tracing::info!(listen = %config.admin.listen, "admin endpoints: /metrics /healthz /readyz");
    let app = crate::admin::router(metrics_handle.clone(), sink.health.clone(), routes.clone());
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(crate::admin::serve(
        listener,
        app,
        metrics_handle,
        admin_stop.clone(),
    ));
    pipeline::run(
        opener.clone(),
        routes,
        sink.health.clone(),
        shutdown,
        config.shutdown.grace,
    )
    .await;
    // Bounded like every other close: a connection stuck in the client's recovery must not
    // keep the process from exiting after a signal.
    if tokio::time::timeout(CONNECTION_CLOSE_TIMEOUT, opener.connector.close())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_seconds = CONNECTION_CLOSE_TIMEOUT.as_secs(),
            "closing the Service Bus connection timed out; exiting anyway"
        );
    }
    admin_stop.cancel();
    let _ = admin.await;
    Ok(())
}

/// [`SourceOpener`] over the azservicebus-based client.
pub struct ServiceBusOpener {
    connector: ServiceBusConnector,
    receiver: ReceiverSettings,
}

impl ServiceBusOpener {
    pub async fn connect(loaded: &LoadedConfig) -> Result<Self, StartupError> {
        let sb = &loaded.config.service_bus;
        let settings = match (&sb.connection_string, &sb.credential, &sb.namespace) {
            (Some(connection_string), _, _) => {
                // The parser's error never contains the key (see ConnectionStringError).
                let parsed = ServiceBusConnectionString::parse(connection_string.expose())
                    .map_err(|e| StartupError::ServiceBus(format!("connection_string: {e}")))?;
                ConnectorSettings::from_connection_string(&parsed)
            }
            (None, Some(credential), Some(namespace)) => {
                ConnectorSettings::for_namespace(namespace, Credential::from_entra(credential))
                    .map_err(|e| StartupError::ServiceBus(format!("namespace: {e}")))?
            }
            // `Config::load` refuses these combinations; kept total for callers that build
            // a config by hand.
            _ => {
                return Err(StartupError::ServiceBus(
                    "set `connection_string`, or `namespace` with `[service_bus.credential]`"
                        .into(),
                ))
            }
        };
        let connector = ServiceBusConnector::connect(settings)
            .await
            .map_err(|e| StartupError::ServiceBus(format!("cannot connect: {e}")))?;
        let largest_batch = loaded
            .config
            .routes
            .iter()
            .map(|r| r.receive_batch)
            .max()
            .unwrap_or(1);
        Ok(Self {
            connector,
            receiver: ReceiverSettings {
                // Prefetch about one batch: prefetched messages' locks run while they wait.
                prefetch_count: u32::try_from(largest_batch).unwrap_or(u32::MAX),
                ..ReceiverSettings::default()
            },
        })
    }
}

fn source_entity(entity: &EntityPath) -> SourceEntity {
    match entity {
        EntityPath::Queue(q) => SourceEntity::Queue(q.clone()),
        EntityPath::Subscription {
            topic,
            subscription,
        } => SourceEntity::Subscription {
            topic: topic.clone(),
            subscription: subscription.clone(),
        },
    }
}

impl SourceOpener for ServiceBusOpener {
    type Source = ServiceBusSource;

    async fn open(&self, entity: &EntityPath) -> Result<ServiceBusSource, SourceError> {
        self.connector
            .open_receiver(&source_entity(entity), &self.receiver)
            .await
    }

    async fn accept_next_session(
        &self,
        entity: &EntityPath,
        wait: Duration,
    ) -> Result<ServiceBusSource, SourceError> {
        self.connector
            .accept_next_session(&source_entity(entity), &self.receiver, wait)
            .await
    }
}
