//! Startup validation of every route against the live schema.
//!
//! A route is accepted only when its keyspace and table exist, every mapped column exists,
//! every primary-key column is mapped, and every source can in principle produce the column's
//! CQL type. All problems of all routes are reported at once; each names the route, the column,
//! the config line and the fix. An accepted route becomes a [`RoutePlan`] that the sink and
//! the pipeline run from.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use scylla::cluster::metadata::{ColumnKind, ColumnType, NativeType};
use scylla::cluster::ClusterState;

use crate::config::{
    split_table, BatchConfig, Consistency, EntityPath, LoadedConfig, RouteConfig, TtlConfig,
};
use crate::mapping::coerce::type_name;
use crate::mapping::expr::{BrokerProperty, SourceExpr};
use crate::mapping::{ColumnBinding, RowMapper, TtlSource, WritetimeSource, MAX_TTL_SECONDS};

/// One table's columns, as the checks need them.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub columns: HashMap<String, (ColumnType<'static>, ColumnKind)>,
    pub partition_key: Vec<String>,
    pub clustering_key: Vec<String>,
}

/// The keyspaces and tables known to the cluster.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub keyspaces: BTreeMap<String, BTreeMap<String, TableSchema>>,
}

impl Catalog {
    /// Copies what the checks need from the driver's schema metadata.
    pub fn from_cluster_state(state: &ClusterState) -> Self {
        let keyspaces = state
            .keyspaces_iter()
            .map(|(name, ks)| {
                let tables = ks
                    .tables
                    .iter()
                    .map(|(t, table)| {
                        let columns = table
                            .columns
                            .iter()
                            .map(|(c, col)| (c.clone(), (col.typ.clone(), col.kind.clone())))
                            .collect();
                        (
                            t.clone(),
                            TableSchema {
                                columns,
                                partition_key: table.partition_key.clone(),
                                clustering_key: table.clustering_key.clone(),
                            },
                        )
                    })
                    .collect();
                (name.to_owned(), tables)
            })
            .collect();
        Self { keyspaces }
    }
}

/// A route checked against the schema: everything needed to run it.
#[derive(Debug)]
pub struct RoutePlan {
    pub name: Arc<str>,
    pub entity: EntityPath,
    pub sessions: bool,
    pub keyspace: String,
    pub table: String,
    pub mapper: RowMapper,
    pub consistency: Consistency,
    pub batch: BatchConfig,
    pub receivers: usize,
    pub receive_batch: usize,
    pub receive_wait: std::time::Duration,
    pub session_idle_timeout: std::time::Duration,
}

impl RoutePlan {
    /// `INSERT INTO "ks"."t" ("a", "b") VALUES (?, ?) USING TIMESTAMP ? AND TTL ?` — the
    /// markers in the order of [`crate::mapping::MappedRow::values`].
    pub fn insert_cql(&self) -> String {
        let columns = self.mapper.columns();
        let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        let markers = vec!["?"; columns.len()].join(", ");
        format!(
            "INSERT INTO {}.{} ({}) VALUES ({markers}) USING TIMESTAMP ? AND TTL ?",
            quote(&self.keyspace),
            quote(&self.table),
            names.join(", ")
        )
    }
}

/// Quotes a CQL identifier (names are case-sensitive as stored in the schema).
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Checks every route; returns one plan per route, or every problem found.
pub fn plan_routes(
    loaded: &LoadedConfig,
    catalog: &Catalog,
) -> Result<Vec<RoutePlan>, Vec<String>> {
    let default_consistency = loaded.config.cassandra.consistency;
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for route in &loaded.config.routes {
        match plan_route(loaded, route, catalog, default_consistency) {
            Ok(plan) => plans.push(plan),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(problems)
    }
}

fn plan_route(
    loaded: &LoadedConfig,
    route: &RouteConfig,
    catalog: &Catalog,
    default_consistency: Consistency,
) -> Result<RoutePlan, Vec<String>> {
    let name = route.name.get_ref();
    let head = format!("route {name:?} ({})", loaded.locate(route.name.span()));
    let qualified = route.table.get_ref();
    let Some((ks, table)) = split_table(qualified) else {
        return Err(vec![format!("{head}: table must be `keyspace.table`")]);
    };
    let table_at = loaded.locate(route.table.span());
    let Some(tables) = catalog.keyspaces.get(ks) else {
        let hint = suggest(ks, catalog.keyspaces.keys().map(String::as_str))
            .map(|s| format!(" Did you mean {s:?}?"))
            .unwrap_or_default();
        return Err(vec![format!(
            "{head}: keyspace {ks:?} does not exist ({table_at}).{hint} Fix: create it, or correct `table`."
        )]);
    };
    let Some(schema) = tables.get(table) else {
        let hint = suggest(table, tables.keys().map(String::as_str))
            .map(|s| format!(" Did you mean {ks}.{s}?"))
            .unwrap_or_default();
        return Err(vec![format!(
            "{head}: table {ks}.{table} does not exist ({table_at}).{hint} Fix: create it, or correct `table`."
        )]);
    };

    let mut problems = Vec::new();
    let mut bindings = Vec::new();
    for (column, expr_text) in route.columns.get_ref() {
        let at = loaded.locate(expr_text.span());
        let Some((typ, kind)) = schema.columns.get(column) else {
            let hint = suggest(column, schema.columns.keys().map(String::as_str))
                .map(|s| format!(" Did you mean {s:?}?"))
                .unwrap_or_default();
            problems.push(format!(
                "{head}, column {column:?} ({at}): {ks}.{table} has no such column.{hint} \
                 Fix: rename the key under [routes.columns], or add the column to the table."
            ));
            continue;
        };
        let expr = match SourceExpr::parse(expr_text.get_ref()) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("{head}, column {column:?} ({at}): {e}"));
                continue;
            }
        };
        if let Err(why) = source_can_feed(&expr, typ) {
            problems.push(format!(
                "{head}, column {column:?} ({at}): {expr} cannot fill a {} column: {why}",
                type_name(typ)
            ));
            continue;
        }
        let primary = matches!(kind, ColumnKind::PartitionKey | ColumnKind::Clustering);
        let partition = matches!(kind, ColumnKind::PartitionKey);
        match ColumnBinding::new(
            column.clone(),
            expr.clone(),
            typ.clone(),
            primary,
            partition,
        ) {
            Ok(binding) => bindings.push(binding),
            Err(e) => problems.push(format!(
                "{head}, column {column:?} ({at}): {expr} cannot fill a {} column: {}",
                type_name(typ),
                e.message()
            )),
        }
    }
    for key in schema.partition_key.iter().chain(&schema.clustering_key) {
        if !route.columns.get_ref().contains_key(key) {
            let typ = schema
                .columns
                .get(key)
                .map_or_else(|| "?".to_owned(), |(t, _)| type_name(t));
            problems.push(format!(
                "{head}, column {key:?}: primary-key column ({typ}) of {ks}.{table} is not mapped. \
                 Fix: add `{key} = \"body.{key}\"` (or another source) under [routes.columns] ({})",
                loaded.locate(route.columns.span())
            ));
        }
    }

    let writetime = match &route.writetime {
        None => WritetimeSource::EnqueuedTime,
        Some(text) if text.get_ref().trim() == "enqueued_time" => WritetimeSource::EnqueuedTime,
        Some(text) => {
            let at = loaded.locate(text.span());
            match SourceExpr::parse(text.get_ref()) {
                Ok(expr @ (SourceExpr::Now | SourceExpr::Broker(_))) => {
                    problems.push(format!(
                        "{head}, writetime ({at}): {expr} is not a stable event time (a replay \
                         must write the same timestamp); use `enqueued_time` or a `body.` / \
                         `property.` source"
                    ));
                    WritetimeSource::EnqueuedTime
                }
                Ok(expr) => {
                    match source_can_feed(&expr, &ColumnType::Native(NativeType::Timestamp)) {
                        Ok(()) => WritetimeSource::Expr(expr),
                        Err(why) => {
                            problems.push(format!("{head}, writetime ({at}): {expr}: {why}"));
                            WritetimeSource::EnqueuedTime
                        }
                    }
                }
                Err(e) => {
                    problems.push(format!("{head}, writetime ({at}): {e}"));
                    WritetimeSource::EnqueuedTime
                }
            }
        }
    };
    let ttl = match &route.ttl {
        None => TtlSource::Fixed(0),
        Some(spanned) => {
            let at = loaded.locate(spanned.span());
            match spanned.get_ref() {
                TtlConfig::Seconds(s) if i64::from(*s) > MAX_TTL_SECONDS => {
                    problems.push(format!(
                        "{head}, ttl ({at}): {s} is above Cassandra's maximum of {MAX_TTL_SECONDS} seconds"
                    ));
                    TtlSource::Fixed(0)
                }
                TtlConfig::Seconds(s) => TtlSource::Fixed(*s),
                TtlConfig::Expression(text) => match SourceExpr::parse(text) {
                    Ok(expr @ (SourceExpr::Body(_) | SourceExpr::Property(_))) => {
                        TtlSource::Expr(expr)
                    }
                    Ok(other) => {
                        problems.push(format!(
                            "{head}, ttl ({at}): {other} cannot give a TTL; use whole seconds or a \
                             `body.` / `property.` source"
                        ));
                        TtlSource::Fixed(0)
                    }
                    Err(e) => {
                        problems.push(format!("{head}, ttl ({at}): {e}"));
                        TtlSource::Fixed(0)
                    }
                },
            }
        }
    };
    let entity = match route.source.entity() {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{head}: [routes.source]: {e}"));
            return Err(problems);
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let name: Arc<str> = Arc::from(name.as_str());
    Ok(RoutePlan {
        mapper: RowMapper::new(name.clone(), bindings, writetime, ttl, route.nulls),
        name,
        entity,
        sessions: route.source.sessions,
        keyspace: ks.to_owned(),
        table: table.to_owned(),
        consistency: route.consistency.unwrap_or(default_consistency),
        batch: route.batch.clone(),
        receivers: route.receivers,
        receive_batch: route.receive_batch,
        receive_wait: route.receive_wait,
        session_idle_timeout: route.session_idle_timeout,
    })
}

/// Whether a source can ever produce a value of a column type (checked once, at startup).
/// JSON and application properties are typed per message, so only per-message checks apply.
pub fn source_can_feed(expr: &SourceExpr, typ: &ColumnType<'_>) -> Result<(), String> {
    use NativeType as N;
    let native = match typ {
        ColumnType::Native(N::Counter) => {
            return Err(
                "counter columns cannot be written by an INSERT (replays would double-count)"
                    .into(),
            )
        }
        ColumnType::Native(n) => Some(n),
        _ => None,
    };
    let time_like = |n: Option<&NativeType>| {
        matches!(
            n,
            Some(N::Timestamp | N::Date | N::Text | N::Ascii | N::BigInt)
        )
    };
    let refuse = |what: &str, allowed: &str| Err(format!("{what}; it can fill {allowed}"));
    match expr {
        SourceExpr::Body(_) | SourceExpr::Property(_) | SourceExpr::Const(_) => Ok(()),
        SourceExpr::Now => {
            if time_like(native) || matches!(native, Some(N::Timeuuid)) {
                Ok(())
            } else {
                refuse(
                    "now() is a point in time",
                    "timestamp, date, timeuuid, bigint or text",
                )
            }
        }
        SourceExpr::Broker(BrokerProperty::EnqueuedTime) => {
            if time_like(native) {
                Ok(())
            } else {
                refuse(
                    "enqueued_time is a point in time",
                    "timestamp, date, bigint (epoch ms) or text",
                )
            }
        }
        SourceExpr::Broker(BrokerProperty::SequenceNumber) => {
            if matches!(
                native,
                Some(N::BigInt | N::Varint | N::Decimal | N::Double | N::Text | N::Ascii)
            ) {
                Ok(())
            } else {
                refuse(
                    "sequence_number is a 64-bit integer",
                    "bigint, varint, decimal, double or text",
                )
            }
        }
        SourceExpr::Broker(BrokerProperty::DeliveryCount) => {
            if matches!(
                native,
                Some(
                    N::SmallInt
                        | N::Int
                        | N::BigInt
                        | N::Varint
                        | N::Decimal
                        | N::Float
                        | N::Double
                        | N::Text
                        | N::Ascii
                )
            ) {
                Ok(())
            } else {
                refuse(
                    "delivery_count is a count",
                    "int, bigint, varint, decimal, double or text",
                )
            }
        }
        SourceExpr::Broker(_) => {
            // The string-valued broker properties (message_id, session_id, ...).
            if native.is_some() && !matches!(native, Some(N::Duration)) {
                Ok(())
            } else {
                refuse(
                    "this broker property is a string",
                    "text and the scalar types parsed from text",
                )
            }
        }
    }
}

/// The closest candidate by edit distance, if close enough to be a likely typo.
pub fn suggest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let wanted_lower = wanted.to_lowercase();
    candidates
        .map(|c| {
            let distance = if c.to_lowercase() == wanted_lower {
                0
            } else {
                strsim::levenshtein(&wanted_lower, &c.to_lowercase())
            };
            (distance, c)
        })
        .filter(|(d, _)| *d <= (wanted.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn catalog() -> Catalog {
        let native = ColumnType::Native;
        let columns = HashMap::from([
            (
                "device".to_owned(),
                (native(NativeType::Text), ColumnKind::PartitionKey),
            ),
            (
                "ts".to_owned(),
                (native(NativeType::Timestamp), ColumnKind::Clustering),
            ),
            (
                "temp".to_owned(),
                (native(NativeType::Double), ColumnKind::Regular),
            ),
            (
                "count".to_owned(),
                (native(NativeType::Int), ColumnKind::Regular),
            ),
            (
                "note".to_owned(),
                (native(NativeType::Text), ColumnKind::Regular),
            ),
        ]);
        let table = TableSchema {
            columns,
            partition_key: vec!["device".into()],
            clustering_key: vec!["ts".into()],
        };
        Catalog {
            keyspaces: BTreeMap::from([(
                "demo".to_owned(),
                BTreeMap::from([("readings".to_owned(), table)]),
            )]),
        }
    }

    fn config(columns: &str, extra: &str) -> LoadedConfig {
        let text = format!(
            r#"
[service_bus]
connection_string = "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=x"
[cassandra]
contact_points = ["127.0.0.1"]
[[routes]]
name = "r1"
table = "demo.readings"
source = {{ queue = "q" }}
{extra}
[routes.columns]
{columns}
"#
        );
        Config::load_str(Path::new("b.toml"), &text, Vec::new()).expect("config parses")
    }

    fn problems(columns: &str, extra: &str) -> Vec<String> {
        plan_routes(&config(columns, extra), &catalog()).expect_err("should be refused")
    }

    #[test]
    fn a_good_route_is_planned_with_its_insert() {
        let loaded = config(
            "device = \"body.device\"\nts = \"enqueued_time\"\ntemp = \"body.t\"",
            "",
        );
        let plans = plan_routes(&loaded, &catalog()).expect("valid");
        assert_eq!(
            plans[0].insert_cql(),
            "INSERT INTO \"demo\".\"readings\" (\"device\", \"temp\", \"ts\") VALUES (?, ?, ?) \
             USING TIMESTAMP ? AND TTL ?"
        );
        assert_eq!(plans[0].consistency, Consistency::LocalQuorum);
    }

    #[test]
    fn missing_column_suggests_the_near_name() {
        let p = problems(
            "device = \"body.device\"\nts = \"enqueued_time\"\ntmp = \"body.t\"",
            "",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("column \"tmp\""), "{}", p[0]);
        assert!(p[0].contains("Did you mean \"temp\"?"), "{}", p[0]);
        assert!(p[0].contains("b.toml:14:7"), "{}", p[0]);
    }

    #[test]
    fn unmapped_primary_key_is_named_with_the_fix() {
        let p = problems("device = \"body.device\"\ntemp = \"body.t\"", "");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("\"ts\": primary-key column (timestamp)"),
            "{}",
            p[0]
        );
        assert!(p[0].contains("Fix: add `ts = "), "{}", p[0]);
    }

    #[test]
    fn uncoercible_sources_are_refused() {
        let p = problems(
            "device = \"body.device\"\nts = \"enqueued_time\"\ncount = \"const:abc\"",
            "",
        );
        assert!(
            p[0].contains("const:\"abc\" cannot fill a int column"),
            "{p:?}"
        );
        let p = problems(
            "device = \"body.device\"\nts = \"enqueued_time\"\ncount = \"enqueued_time\"",
            "",
        );
        assert!(
            p[0].contains("enqueued_time cannot fill a int column"),
            "{p:?}"
        );
        // enqueued_time into text is fine.
        let loaded = config(
            "device = \"body.device\"\nts = \"enqueued_time\"\nnote = \"enqueued_time\"",
            "",
        );
        assert!(plan_routes(&loaded, &catalog()).is_ok());
    }

    #[test]
    fn bad_expressions_and_all_problems_are_reported_together() {
        let p = problems(
            "device = \"bdy.device\"\nts = \"now\"\ntmp = \"body.t\"",
            "",
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn missing_keyspace_or_table_suggests() {
        let loaded = config("device = \"body.device\"", "").clone();
        let mut text = loaded.text.replace("demo.readings", "demo.reading");
        let l = Config::load_str(Path::new("b.toml"), &text, Vec::new()).expect("parses");
        let p = plan_routes(&l, &catalog()).expect_err("no table");
        assert!(p[0].contains("Did you mean demo.readings?"), "{p:?}");
        text = loaded.text.replace("demo.readings", "dmeo.readings");
        let l = Config::load_str(Path::new("b.toml"), &text, Vec::new()).expect("parses");
        let p = plan_routes(&l, &catalog()).expect_err("no keyspace");
        assert!(p[0].contains("Did you mean \"demo\"?"), "{p:?}");
    }

    #[test]
    fn writetime_and_ttl_sources_are_checked() {
        let cols = "device = \"body.device\"\nts = \"enqueued_time\"";
        let p = problems(cols, "writetime = \"message_id\"\nttl = \"enqueued_time\"");
        assert_eq!(p.len(), 2, "{p:?}");
        let loaded = config(cols, "writetime = \"body.ts\"\nttl = \"body.ttl\"");
        let plans = plan_routes(&loaded, &catalog()).expect("valid");
        assert_eq!(plans[0].name.as_ref(), "r1");
        let p = problems(cols, "ttl = 999999999");
        assert!(p[0].contains("maximum"), "{p:?}");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let names = ["temperature", "device", "ts"];
        assert_eq!(
            suggest("temprature", names.into_iter()),
            Some("temperature")
        );
        assert_eq!(suggest("Device", names.into_iter()), Some("device"));
        assert_eq!(suggest("humidity", names.into_iter()), None);
    }
}
