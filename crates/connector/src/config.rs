//! The connector's configuration file: typed, strict, overridable from the environment.
//!
//! The file is TOML. Every table refuses unknown keys (`deny_unknown_fields`), so a typo is an
//! error that names the key and its line and column, never a silently ignored setting.
//!
//! Environment overrides: a variable `BUSDRAIN__<SECTION>__<KEY>` replaces (or adds) the value
//! at that path before the file is checked, e.g. `BUSDRAIN__CASSANDRA__CONTACT_POINTS` or
//! `BUSDRAIN__SERVICE_BUS__CONNECTION_STRING`. Path segments are lower-cased; a numeric
//! segment indexes an array of tables (`BUSDRAIN__ROUTES__0__TABLE`). The value is read as a
//! TOML value when it parses as one (`42`, `true`, `["a", "b"]`), otherwise as a string.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// Prefix of the environment variables that override config values.
pub const ENV_PREFIX: &str = "BUSDRAIN__";

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must hand it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub service_bus: ServiceBusConfig,
    pub cassandra: CassandraConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    pub routes: Vec<RouteConfig>,
}

/// How to reach Service Bus. Exactly one of `connection_string` and `credential`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceBusConfig {
    /// A SAS connection string (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`),
    /// including the emulator form with `UseDevelopmentEmulator=true`.
    pub connection_string: Option<Secret>,
    /// Microsoft Entra ID credentials (parsed and checked; not implemented by the client yet).
    pub credential: Option<EntraCredential>,
    /// Fully qualified namespace (`name.servicebus.windows.net`); required with `credential`.
    pub namespace: Option<String>,
}

/// Microsoft Entra ID credential kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EntraCredential {
    ClientSecret {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
    ManagedIdentity {
        /// A user-assigned identity's client id; the system-assigned identity when absent.
        client_id: Option<String>,
    },
    WorkloadIdentity {
        tenant_id: Option<String>,
        client_id: Option<String>,
        token_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraConfig {
    /// `host:port` or `host` (port 9042). An environment override may give a comma-separated list.
    #[serde(deserialize_with = "string_or_list")]
    pub contact_points: Vec<String>,
    /// Requests go to replicas in this datacenter first (token-aware within it).
    pub local_datacenter: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: Option<TlsConfig>,
    /// Default consistency of the writes; a route may override it.
    #[serde(default)]
    pub consistency: Consistency,
    /// Per-request timeout, e.g. `"10s"` or `"500ms"`.
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Upper bound of concurrent write requests; the adaptive limit moves below it.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificates that sign the nodes' certificates.
    pub ca_file: PathBuf,
    /// PEM client certificate (chain) for mutual TLS; requires `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// CQL consistency levels a writer may choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Consistency {
    Any,
    One,
    Two,
    Three,
    Quorum,
    All,
    /// The default: a write is acknowledged by a majority of the local datacenter's replicas,
    /// so a completed message survives the loss of one replica.
    #[default]
    LocalQuorum,
    EachQuorum,
    LocalOne,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::Any => "ANY",
            Consistency::One => "ONE",
            Consistency::Two => "TWO",
            Consistency::Three => "THREE",
            Consistency::Quorum => "QUORUM",
            Consistency::All => "ALL",
            Consistency::LocalQuorum => "LOCAL_QUORUM",
            Consistency::EachQuorum => "EACH_QUORUM",
            Consistency::LocalOne => "LOCAL_ONE",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight messages may keep retrying their write after a stop signal before
    /// they are abandoned (returned to the entity for redelivery).
    #[serde(default = "default_shutdown_grace", deserialize_with = "duration")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace: default_shutdown_grace(),
        }
    }
}

/// One route: a Service Bus entity drained into one Cassandra table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: Spanned<String>,
    pub source: SourceConfig,
    /// `keyspace.table`.
    pub table: Spanned<String>,
    /// Column name → source expression (see `mapping::expr`).
    pub columns: Spanned<std::collections::BTreeMap<String, Spanned<String>>>,
    /// Where the write timestamp comes from: `enqueued_time` (default) or a source expression
    /// that yields a timestamp (e.g. `body.event_time`).
    #[serde(default)]
    pub writetime: Option<Spanned<String>>,
    /// Time to live of the written cells: whole seconds, or a source expression giving them.
    #[serde(default)]
    pub ttl: Option<Spanned<TtlConfig>>,
    /// Overrides `cassandra.consistency` for this route.
    pub consistency: Option<Consistency>,
    /// What a JSON `null` or an absent optional field writes.
    #[serde(default)]
    pub nulls: NullHandling,
    #[serde(default)]
    pub batch: BatchConfig,
    /// Concurrent receivers (for session-enabled sources: concurrent sessions).
    #[serde(default = "default_receivers")]
    pub receivers: usize,
    /// Messages asked for per receive call.
    #[serde(default = "default_prefetch")]
    pub receive_batch: usize,
    /// How long a receive call waits for the first message.
    #[serde(default = "default_receive_wait", deserialize_with = "duration")]
    pub receive_wait: Duration,
    /// A session is released after this long without a message.
    #[serde(default = "default_session_idle", deserialize_with = "duration")]
    pub session_idle_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub queue: Option<String>,
    pub topic: Option<String>,
    pub subscription: Option<String>,
    /// The entity is session-enabled: messages of a session are processed in order.
    #[serde(default)]
    pub sessions: bool,
}

/// The entity a route reads, once the `queue` / `topic`+`subscription` choice is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntityPath {
    Queue(String),
    Subscription { topic: String, subscription: String },
}

impl fmt::Display for EntityPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityPath::Queue(q) => f.write_str(q),
            EntityPath::Subscription {
                topic,
                subscription,
            } => write!(f, "{topic}/subscriptions/{subscription}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TtlConfig {
    Seconds(u32),
    Expression(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullHandling {
    /// Leave the cell untouched (no tombstone). The default.
    #[default]
    Unset,
    /// Write a null (a tombstone that deletes the cell).
    Null,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Rows per UNLOGGED batch (all of one partition).
    #[serde(default = "default_batch_rows")]
    pub max_rows: usize,
    /// Estimated bytes per batch; keep it under Cassandra's `batch_size_warn_threshold` (5 KiB).
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: default_batch_rows(),
            max_bytes: default_batch_bytes(),
        }
    }
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_concurrency() -> usize {
    256
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_receivers() -> usize {
    8
}
fn default_prefetch() -> usize {
    256
}
fn default_receive_wait() -> Duration {
    Duration::from_secs(1)
}
fn default_session_idle() -> Duration {
    Duration::from_secs(5)
}
fn default_batch_rows() -> usize {
    32
}
fn default_batch_bytes() -> usize {
    4096
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"` (one number, one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected e.g. \"500ms\", \"10s\", \"5m\"")
    })?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "invalid duration {text:?}: the unit must be ms, s, m or h"
        )),
    }
}

/// A config that could not be loaded. Every variant says where and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}{overrides}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        /// A note naming the environment overrides that were applied, if any.
        overrides: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// Checks after parsing (one per problem, all reported at once).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// Where a byte offset sits in a text, 1-based.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, column)
}

/// A config file's text (after environment overrides), kept so later checks can point at lines.
#[derive(Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub path: PathBuf,
    /// The raw text holds secrets: it is left out of `Debug`.
    pub text: String,
}

impl fmt::Debug for LoadedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedConfig")
            .field("config", &self.config)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LoadedConfig {
    /// `path:line:column` of a span in the file, for error messages.
    pub fn locate(&self, span: Range<usize>) -> String {
        let (line, column) = line_column(&self.text, span.start);
        format!("{}:{line}:{column}", self.path.display())
    }
}

impl Config {
    /// Reads the file, applies `BUSDRAIN__…` environment overrides, parses and checks it.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::load_str(path, &text, std::env::vars())
    }

    /// Like [`Config::load`] with the text and the environment given (tests pass their own).
    pub fn load_str(
        path: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LoadedConfig, ConfigError> {
        let mut overridden: Vec<String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .map(|(k, v)| format!("{k}\u{0}{v}"))
            .collect();
        overridden.sort();
        let text = if overridden.is_empty() {
            text.to_owned()
        } else {
            let pairs: Vec<(&str, &str)> = overridden
                .iter()
                .filter_map(|kv| kv.split_once('\u{0}'))
                .collect();
            apply_env_overrides(path, text, &pairs)?
        };
        let config: Config = toml::from_str(&text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(&text, span.start));
            let overrides = if overridden.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = overridden
                    .iter()
                    .filter_map(|kv| kv.split_once('\u{0}').map(|(k, _)| k))
                    .collect();
                format!(
                    " (line numbers are after applying environment overrides {})",
                    names.join(", ")
                )
            };
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_owned(),
                overrides,
            }
        })?;
        let loaded = LoadedConfig {
            config,
            path: path.to_path_buf(),
            text,
        };
        loaded.check()?;
        Ok(loaded)
    }
}

impl LoadedConfig {
    /// Checks that serde cannot express: choices between keys, names, limits.
    fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let c = &self.config;
        match (&c.service_bus.connection_string, &c.service_bus.credential) {
            (None, None) => problems.push(
                "[service_bus]: set `connection_string` (SAS) or a `[service_bus.credential]`"
                    .to_owned(),
            ),
            (Some(_), Some(_)) => problems.push(
                "[service_bus]: set either `connection_string` or `[service_bus.credential]`, not both"
                    .to_owned(),
            ),
            (None, Some(_)) if c.service_bus.namespace.is_none() => problems.push(
                "[service_bus]: `namespace` is required with `[service_bus.credential]`".to_owned(),
            ),
            _ => {}
        }
        if c.cassandra.contact_points.is_empty() {
            problems.push("[cassandra] contact_points: give at least one `host:port`".to_owned());
        }
        if c.cassandra.username.is_some() != c.cassandra.password.is_some() {
            problems.push("[cassandra]: set both `username` and `password`, or neither".to_owned());
        }
        if let Some(tls) = &c.cassandra.tls {
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                problems.push(
                    "[cassandra.tls]: set both `client_cert` and `client_key`, or neither"
                        .to_owned(),
                );
            }
        }
        if c.cassandra.max_concurrency == 0 {
            problems.push("[cassandra] max_concurrency: must be at least 1".to_owned());
        }
        if c.routes.is_empty() {
            problems.push("no [[routes]]: configure at least one route".to_owned());
        }
        let mut names = std::collections::HashSet::new();
        for route in &c.routes {
            let at = self.locate(route.name.span());
            let name = route.name.get_ref();
            if !names.insert(name.as_str()) {
                problems.push(format!("{at}: route name {name:?} is used twice"));
            }
            if let Err(e) = route.source.entity() {
                problems.push(format!("{at}: route {name:?} [routes.source]: {e}"));
            }
            if split_table(route.table.get_ref()).is_none() {
                problems.push(format!(
                    "{}: route {name:?}: table must be `keyspace.table`, got {:?}",
                    self.locate(route.table.span()),
                    route.table.get_ref()
                ));
            }
            if route.receivers == 0 || route.receive_batch == 0 {
                problems.push(format!(
                    "{at}: route {name:?}: receivers and receive_batch must be at least 1"
                ));
            }
            if route.batch.max_rows == 0 || route.batch.max_bytes == 0 {
                problems.push(format!(
                    "{at}: route {name:?} [routes.batch]: max_rows and max_bytes must be at least 1"
                ));
            }
            if route.columns.get_ref().is_empty() {
                problems.push(format!(
                    "{}: route {name:?}: [routes.columns] maps no column",
                    self.locate(route.columns.span())
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

impl SourceConfig {
    pub fn entity(&self) -> Result<EntityPath, String> {
        match (&self.queue, &self.topic, &self.subscription) {
            (Some(q), None, None) => Ok(EntityPath::Queue(q.clone())),
            (None, Some(t), Some(s)) => Ok(EntityPath::Subscription {
                topic: t.clone(),
                subscription: s.clone(),
            }),
            (None, Some(_), None) => Err("`topic` needs a `subscription`".to_owned()),
            (None, None, Some(_)) => Err("`subscription` needs a `topic`".to_owned()),
            (None, None, None) => Err("set `queue`, or `topic` and `subscription`".to_owned()),
            (Some(_), _, _) => Err("set `queue` or `topic` + `subscription`, not both".to_owned()),
        }
    }
}

/// Splits `keyspace.table`; both parts non-empty.
pub fn split_table(qualified: &str) -> Option<(&str, &str)> {
    let (ks, table) = qualified.split_once('.')?;
    (!ks.is_empty() && !table.is_empty() && !table.contains('.')).then_some((ks, table))
}

/// Rewrites the TOML text with each `BUSDRAIN__A__B=value` placed at `a.b`.
fn apply_env_overrides(
    path: &Path,
    text: &str,
    pairs: &[(&str, &str)],
) -> Result<String, ConfigError> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_owned(),
            overrides: String::new(),
        }
    })?;
    for (var, raw) in pairs {
        let segments: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: (*var).to_owned(),
                message: "empty path segment (use `__` only between keys)".to_owned(),
            });
        }
        let value = parse_env_value(raw);
        set_path(doc.as_table_mut(), &segments, value).map_err(|message| ConfigError::Env {
            var: (*var).to_owned(),
            message,
        })?;
    }
    Ok(doc.to_string())
}

fn parse_env_value(raw: &str) -> toml_edit::Value {
    // A bare string (e.g. a connection string) is not a TOML value; anything that parses as
    // one (numbers, booleans, arrays, quoted strings) is taken as written.
    match raw.parse::<toml_edit::Value>() {
        Ok(v) => v,
        Err(_) => toml_edit::Value::from(raw),
    }
}

fn set_path(
    table: &mut toml_edit::Table,
    segments: &[String],
    value: toml_edit::Value,
) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        return Err("empty key path".to_owned());
    };
    if rest.is_empty() {
        table.insert(first, toml_edit::Item::Value(value));
        return Ok(());
    }
    let item = table
        .entry(first)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    match item {
        toml_edit::Item::Table(t) => set_path(t, rest, value),
        toml_edit::Item::ArrayOfTables(array) => {
            let (index, rest) = rest
                .split_first()
                .ok_or_else(|| format!("`{first}` is an array of tables: add an index"))?;
            let index: usize = index.parse().map_err(|_| {
                format!("`{first}` is an array of tables: `{index}` is not an index")
            })?;
            let len = array.len();
            let t = array.get_mut(index).ok_or_else(|| {
                format!("`{first}` has {len} entries; index {index} does not exist")
            })?;
            if rest.is_empty() {
                return Err(format!("`{first}.{index}` is a table, not a value"));
            }
            set_path(t, rest, value)
        }
        toml_edit::Item::Value(toml_edit::Value::InlineTable(inline)) => {
            let mut t = std::mem::take(inline).into_table();
            let result = set_path(&mut t, rest, value);
            *item = toml_edit::Item::Table(t);
            result
        }
        _ => Err(format!("`{first}` is a value, not a table")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[service_bus]
connection_string = "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=s3cr3t;UseDevelopmentEmulator=true;"

[cassandra]
contact_points = ["127.0.0.1:9042"]

[[routes]]
name = "telemetry"
table = "demo.readings"
source = { queue = "telemetry" }

[routes.columns]
device_id = "body.device"
ts = "enqueued_time"
"#;

    fn load(text: &str) -> Result<LoadedConfig, ConfigError> {
        Config::load_str(Path::new("busdrain.toml"), text, Vec::new())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let loaded = load(MINIMAL).expect("valid");
        let c = &loaded.config;
        assert_eq!(c.cassandra.consistency, Consistency::LocalQuorum);
        assert_eq!(c.cassandra.request_timeout, Duration::from_secs(10));
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9464");
        let route = &c.routes[0];
        assert_eq!(route.nulls, NullHandling::Unset);
        assert_eq!(route.batch.max_rows, 32);
        assert_eq!(route.batch.max_bytes, 4096);
        assert_eq!(
            route.source.entity(),
            Ok(EntityPath::Queue("telemetry".into()))
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let text = MINIMAL.replace(
            "contact_points = [\"127.0.0.1:9042\"]",
            "contact_points = [\"127.0.0.1:9042\"]\ncontact_pionts = 3",
        );
        let err = load(&text).expect_err("unknown key");
        let shown = err.to_string();
        assert!(shown.contains("busdrain.toml:7:1"), "{shown}");
        assert!(shown.contains("contact_pionts"), "{shown}");
    }

    #[test]
    fn unknown_key_in_route_is_refused() {
        let text = MINIMAL.replace(
            "table = \"demo.readings\"",
            "table = \"demo.readings\"\ntll = 5",
        );
        let shown = load(&text).expect_err("unknown key").to_string();
        assert!(shown.contains("busdrain.toml:11:1"), "{shown}");
        assert!(shown.contains("tll"), "{shown}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let loaded = load(MINIMAL).expect("valid");
        let debug = format!("{loaded:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("***"));
    }

    #[test]
    fn env_overrides_replace_values_and_reach_routes() {
        let env = vec![
            (
                "BUSDRAIN__CASSANDRA__CONTACT_POINTS".to_owned(),
                "10.0.0.1:9042, 10.0.0.2".to_owned(),
            ),
            (
                "BUSDRAIN__CASSANDRA__CONSISTENCY".to_owned(),
                "LOCAL_ONE".to_owned(),
            ),
            (
                "BUSDRAIN__ROUTES__0__TABLE".to_owned(),
                "other.t".to_owned(),
            ),
            (
                "BUSDRAIN__ROUTES__0__SOURCE__QUEUE".to_owned(),
                "q2".to_owned(),
            ),
            (
                "BUSDRAIN__ADMIN__LISTEN".to_owned(),
                "0.0.0.0:9000".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let loaded = Config::load_str(Path::new("f.toml"), MINIMAL, env).expect("valid");
        let c = &loaded.config;
        assert_eq!(
            c.cassandra.contact_points,
            vec!["10.0.0.1:9042", "10.0.0.2"]
        );
        assert_eq!(c.cassandra.consistency, Consistency::LocalOne);
        assert_eq!(c.routes[0].table.get_ref(), "other.t");
        assert_eq!(c.routes[0].source.queue.as_deref(), Some("q2"));
        assert_eq!(c.admin.listen.port(), 9000);
    }

    #[test]
    fn env_override_of_a_missing_route_names_the_variable() {
        let env = vec![("BUSDRAIN__ROUTES__3__TABLE".to_owned(), "a.b".to_owned())];
        let err = Config::load_str(Path::new("f.toml"), MINIMAL, env).expect_err("bad index");
        assert!(
            err.to_string().contains("BUSDRAIN__ROUTES__3__TABLE"),
            "{err}"
        );
    }

    #[test]
    fn source_must_be_queue_or_topic_and_subscription() {
        let text = MINIMAL.replace(
            "source = { queue = \"telemetry\" }",
            "source = { topic = \"t\" }",
        );
        let shown = load(&text).expect_err("no subscription").to_string();
        assert!(shown.contains("`topic` needs a `subscription`"), "{shown}");
        let text = MINIMAL.replace(
            "source = { queue = \"telemetry\" }",
            "source = { topic = \"t\", subscription = \"s\", sessions = true }",
        );
        let loaded = load(&text).expect("valid");
        assert!(loaded.config.routes[0].source.sessions);
    }

    #[test]
    fn table_must_be_qualified() {
        let text = MINIMAL.replace("demo.readings", "readings");
        let shown = load(&text).expect_err("unqualified").to_string();
        assert!(shown.contains("busdrain.toml:10:9"), "{shown}");
        assert!(shown.contains("keyspace.table"), "{shown}");
    }

    #[test]
    fn entra_credential_is_parsed() {
        let text = MINIMAL.replace(
            "connection_string = \"Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=s3cr3t;UseDevelopmentEmulator=true;\"",
            "namespace = \"x.servicebus.windows.net\"\n[service_bus.credential]\nkind = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"hush\"",
        );
        let loaded = load(&text).expect("valid");
        assert!(matches!(
            loaded.config.service_bus.credential,
            Some(EntraCredential::ClientSecret { .. })
        ));
        assert!(!format!("{:?}", loaded.config).contains("hush"));
    }

    #[test]
    fn ttl_and_durations_parse() {
        let text = MINIMAL.replace(
            "table = \"demo.readings\"",
            "table = \"demo.readings\"\nttl = 3600\nreceive_wait = \"250ms\"",
        );
        let loaded = load(&text).expect("valid");
        let route = &loaded.config.routes[0];
        assert_eq!(
            route.ttl.as_ref().map(|t| t.get_ref().clone()),
            Some(TtlConfig::Seconds(3600))
        );
        assert_eq!(route.receive_wait, Duration::from_millis(250));
        let text = MINIMAL.replace(
            "table = \"demo.readings\"",
            "table = \"demo.readings\"\nreceive_wait = \"soon\"",
        );
        assert!(load(&text)
            .expect_err("bad duration")
            .to_string()
            .contains("invalid duration"));
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
