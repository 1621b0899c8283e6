//! The namespace configuration: Microsoft's emulator `Config.json` format, validated.
//!
//! ```json
//! { "UserConfig": {
//!     "Namespaces": [ { "Name": "sbemulatorns",
//!         "Queues": [ { "Name": "queue.1", "Properties": { "LockDuration": "PT1M", "MaxDeliveryCount": 3 } } ],
//!         "Topics": [ { "Name": "topic.1", "Properties": {},
//!             "Subscriptions": [ { "Name": "subscription.1", "Properties": {}, "Rules": [] } ] } ] } ],
//!     "Logging": { "Type": "File" } } }
//! ```
//!
//! Every key is optional except names; unknown keys are refused with their JSON path (a typo
//! must never be silently ignored). Values are checked against **our** ranges, which are wider
//! than Microsoft's emulator quotas (that emulator caps TTL at 1 h and MaxDeliveryCount at 10;
//! busdrain is durable and has no such reason):
//!
//! | Property | Applies to | Default | Allowed |
//! |---|---|---|---|
//! | `LockDuration` | queue, subscription | `PT1M` | `PT1S` ..= `PT5M` |
//! | `MaxDeliveryCount` | queue, subscription | 10 | 1 ..= 2147483647 |
//! | `DefaultMessageTimeToLive` | queue, topic, subscription | never expires | ≥ `PT1S` (`P10675199DT2H48M5.4775807S`, .NET's TimeSpan.MaxValue, also means never) |
//! | `DeadLetteringOnMessageExpiration` | queue, subscription | false | bool |
//! | `RequiresDuplicateDetection` | queue, topic | false | bool |
//! | `DuplicateDetectionHistoryTimeWindow` | queue, topic | `PT10M` | `PT1S` ..= `P7D` |
//! | `RequiresSession` | queue, subscription | false | bool |
//! | `ForwardTo`, `ForwardDeadLetteredMessagesTo` | queue, subscription | empty | must be empty: auto-forwarding is not supported |
//!
//! Durations are ISO-8601 (`PT30S`, `PT1M`, `P1D`, `PT0.5S`) or .NET `d.hh:mm:ss`. Entity
//! names follow Service Bus rules (letters, digits, `.`, `-`, `_`, `/` for queues and topics;
//! start and end with a letter or digit) and are unique case-insensitively.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::{format_duration, parse_duration};
use busdrain_filter::{Filter, Rule, SqlFilter, SqlRuleAction, Value, DEFAULT_RULE_NAME};

/// Lower bound of `LockDuration`.
pub const MIN_LOCK_DURATION: Duration = Duration::from_secs(1);
/// Upper bound of `LockDuration` (the Service Bus maximum).
pub const MAX_LOCK_DURATION: Duration = Duration::from_secs(300);
/// Default `LockDuration`.
pub const DEFAULT_LOCK_DURATION: Duration = Duration::from_secs(60);
/// Default `MaxDeliveryCount` (the Service Bus default).
pub const DEFAULT_MAX_DELIVERY_COUNT: u32 = 10;
/// Upper bound of `MaxDeliveryCount` (Service Bus stores it as an `int`).
pub const MAX_MAX_DELIVERY_COUNT: u32 = i32::MAX as u32;
/// Lower bound of `DefaultMessageTimeToLive`.
pub const MIN_TIME_TO_LIVE: Duration = Duration::from_secs(1);
/// A TTL at or beyond this (about 29,000 years, i.e. .NET `TimeSpan.MaxValue`) means "never".
pub const NEVER_EXPIRES_THRESHOLD: Duration = Duration::from_secs(10_675_199 * 86_400);
/// Lower bound of `DuplicateDetectionHistoryTimeWindow`.
pub const MIN_DUPLICATE_DETECTION_WINDOW: Duration = Duration::from_secs(1);
/// Upper bound of `DuplicateDetectionHistoryTimeWindow` (the Service Bus maximum).
pub const MAX_DUPLICATE_DETECTION_WINDOW: Duration = Duration::from_secs(7 * 86_400);
/// Default `DuplicateDetectionHistoryTimeWindow` (the Service Bus default).
pub const DEFAULT_DUPLICATE_DETECTION_WINDOW: Duration = Duration::from_secs(600);
/// Longest queue or topic name (Service Bus limit).
pub const MAX_ENTITY_NAME_LEN: usize = 260;
/// Longest subscription or rule name (Service Bus limit).
pub const MAX_SUBSCRIPTION_NAME_LEN: usize = 50;
/// Name of the default namespace.
pub const DEFAULT_NAMESPACE_NAME: &str = "sbemulatorns";

/// Why a configuration was refused. Every variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not valid JSON, an unknown key, or a value of the wrong JSON type.
    #[error("config {location}: {message}")]
    Parse {
        /// `at UserConfig.Namespaces[0].Queues[1].Properties` (and line/column when known).
        location: String,
        message: String,
    },
    /// A property value is outside its allowed range.
    #[error("{entity}: {property} = {value} is invalid; allowed: {allowed}")]
    Invalid {
        /// `queue "orders"`, `subscription "topic.1/Subscriptions/s1"`, …
        entity: String,
        property: &'static str,
        value: String,
        allowed: String,
    },
    /// A property that busdrain parses but does not implement was set.
    #[error(
        "{entity}: {property} is not supported by busdrain ({reason}); remove it or leave it empty"
    )]
    Unsupported {
        entity: String,
        property: &'static str,
        reason: &'static str,
    },
    /// A rule's SQL filter or action does not parse (the message carries the position).
    #[error("{entity}: {property}: {message}")]
    Rule {
        entity: String,
        property: &'static str,
        message: String,
    },
    /// Two entities share a name (names are case-insensitive).
    #[error("{entity} is declared twice (names are case-insensitive)")]
    Duplicate { entity: String },
    /// `UserConfig.Namespaces` must hold exactly one namespace.
    #[error("UserConfig.Namespaces must contain exactly one namespace, found {count}")]
    NamespaceCount { count: usize },
}

/// A validated namespace: the entities the broker serves.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceConfig {
    /// Namespace name (informational; clients address entities, not namespaces).
    pub name: String,
    pub queues: Vec<QueueConfig>,
    pub topics: Vec<TopicConfig>,
    /// `UserConfig.Logging.Type`, kept for compatibility; busdrain logs through `tracing`.
    pub logging: Option<String>,
}

/// A queue and its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub name: String,
    pub properties: EntityProperties,
}

/// Properties of an entity that holds messages (a queue or a subscription).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityProperties {
    /// How long a peek-lock lasts before the message becomes available again.
    pub lock_duration: Duration,
    /// Deliveries after which a message is dead-lettered with `MaxDeliveryCountExceeded`.
    pub max_delivery_count: u32,
    /// Default TTL; `None` = messages never expire unless they carry their own TTL.
    pub default_message_time_to_live: Option<Duration>,
    /// Whether expired messages go to the dead-letter queue (else they are dropped).
    pub dead_lettering_on_message_expiration: bool,
    /// Whether only session receivers may receive (and senders must set a session id).
    pub requires_session: bool,
    /// Whether a MessageId seen within the window is dropped as a duplicate.
    pub requires_duplicate_detection: bool,
    /// How long MessageIds are remembered for duplicate detection.
    pub duplicate_detection_history_time_window: Duration,
}

impl Default for EntityProperties {
    fn default() -> Self {
        Self {
            lock_duration: DEFAULT_LOCK_DURATION,
            max_delivery_count: DEFAULT_MAX_DELIVERY_COUNT,
            default_message_time_to_live: None,
            dead_lettering_on_message_expiration: false,
            requires_session: false,
            requires_duplicate_detection: false,
            duplicate_detection_history_time_window: DEFAULT_DUPLICATE_DETECTION_WINDOW,
        }
    }
}

/// A topic: fans messages out to its subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub name: String,
    pub properties: TopicProperties,
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// Properties of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicProperties {
    /// Default TTL applied to every subscription's copy (the smaller of this and the
    /// subscription's own wins).
    pub default_message_time_to_live: Option<Duration>,
    pub requires_duplicate_detection: bool,
    pub duplicate_detection_history_time_window: Duration,
}

impl Default for TopicProperties {
    fn default() -> Self {
        Self {
            default_message_time_to_live: None,
            requires_duplicate_detection: false,
            duplicate_detection_history_time_window: DEFAULT_DUPLICATE_DETECTION_WINDOW,
        }
    }
}

/// A subscription of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionConfig {
    pub name: String,
    /// Duplicate detection fields are unused here (it is a topic property).
    pub properties: EntityProperties,
    /// Never empty: a subscription declared without rules gets the `$Default` TrueFilter.
    /// SQL filters and actions are parsed (and refused with the error position) at load.
    pub rules: Vec<Rule>,
}

impl NamespaceConfig {
    /// The namespace served when no config file is given, modelled on Microsoft's sample
    /// `Config.json`: namespace `sbemulatorns`; queues `queue.1`, `queue.2`, `queue.3` and the
    /// session-enabled `session-queue.1`; topic `topic.1` with subscriptions `subscription.1`
    /// and `subscription.2`, each receiving every message (`$Default` rule). All with default
    /// properties: LockDuration 1 min, MaxDeliveryCount 10, no expiry.
    pub fn default_namespace() -> Self {
        let queue = |name: &str, requires_session| QueueConfig {
            name: name.to_owned(),
            properties: EntityProperties {
                requires_session,
                ..EntityProperties::default()
            },
        };
        let subscription = |name: &str| SubscriptionConfig {
            name: name.to_owned(),
            properties: EntityProperties::default(),
            rules: vec![Rule::default_rule()],
        };
        Self {
            name: DEFAULT_NAMESPACE_NAME.to_owned(),
            queues: vec![
                queue("queue.1", false),
                queue("queue.2", false),
                queue("queue.3", false),
                queue("session-queue.1", true),
            ],
            topics: vec![TopicConfig {
                name: "topic.1".to_owned(),
                properties: TopicProperties::default(),
                subscriptions: vec![
                    subscription("subscription.1"),
                    subscription("subscription.2"),
                ],
            }],
            logging: None,
        }
    }

    /// Reads and validates a `Config.json` file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json_str(&text)
    }

    /// Parses and validates `Config.json` text.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let raw: RawFile =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                let location = if path.is_empty() || path == "." {
                    format!("at line {} column {}", inner.line(), inner.column())
                } else {
                    format!(
                        "at {path} (line {} column {})",
                        inner.line(),
                        inner.column()
                    )
                };
                ConfigError::Parse {
                    location,
                    message: strip_position(&inner.to_string()),
                }
            })?;
        validate(raw.user_config)
    }

    /// Every configured queue and topic name, for logs.
    pub fn entity_count(&self) -> usize {
        self.queues.len()
            + self
                .topics
                .iter()
                .map(|t| 1 + t.subscriptions.len())
                .sum::<usize>()
    }
}

/// serde_json appends " at line L column C"; we print the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written: PascalCase keys, everything optional, unknown keys refused.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawFile {
    user_config: RawUserConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawUserConfig {
    namespaces: Vec<RawNamespace>,
    #[serde(default)]
    logging: Option<RawLogging>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawLogging {
    #[serde(rename = "Type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawNamespace {
    name: String,
    #[serde(default)]
    queues: Vec<RawQueue>,
    #[serde(default)]
    topics: Vec<RawTopic>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawQueue {
    name: String,
    #[serde(default)]
    properties: RawEntityProperties,
}

/// Queue and subscription properties (one shape; topic-only keys are checked per kind).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawEntityProperties {
    dead_lettering_on_message_expiration: Option<bool>,
    default_message_time_to_live: Option<String>,
    duplicate_detection_history_time_window: Option<String>,
    forward_dead_lettered_messages_to: Option<String>,
    forward_to: Option<String>,
    lock_duration: Option<String>,
    max_delivery_count: Option<i64>,
    requires_duplicate_detection: Option<bool>,
    requires_session: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawTopic {
    name: String,
    #[serde(default)]
    properties: RawTopicProperties,
    #[serde(default)]
    subscriptions: Vec<RawSubscription>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawTopicProperties {
    default_message_time_to_live: Option<String>,
    duplicate_detection_history_time_window: Option<String>,
    requires_duplicate_detection: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawSubscription {
    name: String,
    #[serde(default)]
    properties: RawSubscriptionProperties,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawSubscriptionProperties {
    dead_lettering_on_message_expiration: Option<bool>,
    default_message_time_to_live: Option<String>,
    forward_dead_lettered_messages_to: Option<String>,
    forward_to: Option<String>,
    lock_duration: Option<String>,
    max_delivery_count: Option<i64>,
    requires_session: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawRule {
    name: String,
    properties: RawRuleProperties,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawRuleProperties {
    filter_type: RawFilterType,
    correlation_filter: Option<RawCorrelationFilter>,
    sql_filter: Option<RawSqlExpression>,
    action: Option<RawSqlExpression>,
}

#[derive(Deserialize, Clone, Copy)]
enum RawFilterType {
    Correlation,
    Sql,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawCorrelationFilter {
    content_type: Option<String>,
    correlation_id: Option<String>,
    label: Option<String>,
    message_id: Option<String>,
    reply_to: Option<String>,
    reply_to_session_id: Option<String>,
    session_id: Option<String>,
    to: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawSqlExpression {
    sql_expression: String,
}

// ---------------------------------------------------------------------------------------------
// Validation: raw → NamespaceConfig.

fn validate(raw: RawUserConfig) -> Result<NamespaceConfig, ConfigError> {
    let count = raw.namespaces.len();
    let Some(namespace) = raw.namespaces.into_iter().next().filter(|_| count == 1) else {
        return Err(ConfigError::NamespaceCount { count });
    };
    let logging = raw.logging.map(|l| l.kind);
    if let Some(kind) = &logging {
        let allowed = ["File", "Console", "File,Console", "Console,File"];
        if !allowed.contains(&kind.as_str()) {
            return Err(ConfigError::Invalid {
                entity: "UserConfig.Logging".to_owned(),
                property: "Type",
                value: format!("{kind:?}"),
                allowed: allowed.join(", "),
            });
        }
    }
    check_name(
        "namespace",
        &namespace.name,
        &namespace.name,
        "Name",
        false,
        MAX_ENTITY_NAME_LEN,
    )?;

    // Queues and topics share one name space.
    let mut seen = HashSet::new();
    let mut queues = Vec::with_capacity(namespace.queues.len());
    for raw_queue in namespace.queues {
        let label = format!("queue {:?}", raw_queue.name);
        check_name(
            &label,
            &raw_queue.name,
            &raw_queue.name,
            "Name",
            true,
            MAX_ENTITY_NAME_LEN,
        )?;
        if !seen.insert(raw_queue.name.to_ascii_lowercase()) {
            return Err(ConfigError::Duplicate { entity: label });
        }
        let properties = entity_properties(&label, raw_queue.properties)?;
        queues.push(QueueConfig {
            name: raw_queue.name,
            properties,
        });
    }

    let mut topics = Vec::with_capacity(namespace.topics.len());
    for raw_topic in namespace.topics {
        let label = format!("topic {:?}", raw_topic.name);
        check_name(
            &label,
            &raw_topic.name,
            &raw_topic.name,
            "Name",
            true,
            MAX_ENTITY_NAME_LEN,
        )?;
        if !seen.insert(raw_topic.name.to_ascii_lowercase()) {
            return Err(ConfigError::Duplicate { entity: label });
        }
        let properties = topic_properties(&label, raw_topic.properties)?;
        let mut subscription_names = HashSet::new();
        let mut subscriptions = Vec::with_capacity(raw_topic.subscriptions.len());
        for raw_subscription in raw_topic.subscriptions {
            let label = format!(
                "subscription {:?}",
                format!("{}/Subscriptions/{}", raw_topic.name, raw_subscription.name)
            );
            check_name(
                &label,
                &raw_subscription.name,
                &raw_subscription.name,
                "Name",
                false,
                MAX_SUBSCRIPTION_NAME_LEN,
            )?;
            if !subscription_names.insert(raw_subscription.name.to_ascii_lowercase()) {
                return Err(ConfigError::Duplicate { entity: label });
            }
            let properties = subscription_properties(&label, raw_subscription.properties)?;
            let rules = rules(&label, raw_subscription.rules)?;
            subscriptions.push(SubscriptionConfig {
                name: raw_subscription.name,
                properties,
                rules,
            });
        }
        topics.push(TopicConfig {
            name: raw_topic.name,
            properties,
            subscriptions,
        });
    }

    Ok(NamespaceConfig {
        name: namespace.name,
        queues,
        topics,
        logging,
    })
}

/// Service Bus naming: letters, digits, `.`, `-`, `_` (and `/` inside queue and topic names);
/// first and last character a letter or digit.
fn check_name(
    entity: &str,
    name: &str,
    value: &str,
    property: &'static str,
    allow_slash: bool,
    max_len: usize,
) -> Result<(), ConfigError> {
    let allowed_inner = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (allow_slash && c == '/')
    };
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let segments_ok = !name.split('/').any(|s| {
        s.is_empty()
            || s.starts_with('$')
            || s.eq_ignore_ascii_case(crate::path::SUBSCRIPTIONS_SEGMENT)
    });
    if name.len() > max_len || !ends_ok || !name.chars().all(allowed_inner) || !segments_ok {
        let slash = if allow_slash { ", '/'" } else { "" };
        return Err(ConfigError::Invalid {
            entity: entity.to_owned(),
            property,
            value: format!("{value:?}"),
            allowed: format!(
                "1..={max_len} characters: letters, digits, '.', '-', '_'{slash}; starting and ending with a letter or digit"
            ),
        });
    }
    Ok(())
}

fn duration_in_range(
    entity: &str,
    property: &'static str,
    text: &str,
    min: Duration,
    max: Option<Duration>,
) -> Result<Duration, ConfigError> {
    let allowed = match max {
        Some(max) => format!("{} ..= {}", format_duration(min), format_duration(max)),
        None => format!("{} or more", format_duration(min)),
    };
    let invalid = || ConfigError::Invalid {
        entity: entity.to_owned(),
        property,
        value: format!("{text:?}"),
        allowed: allowed.clone(),
    };
    let value = parse_duration(text).map_err(|_| invalid())?;
    if value < min || max.is_some_and(|max| value > max) {
        return Err(invalid());
    }
    Ok(value)
}

fn time_to_live(entity: &str, text: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = text else { return Ok(None) };
    let ttl = duration_in_range(
        entity,
        "DefaultMessageTimeToLive",
        text,
        MIN_TIME_TO_LIVE,
        None,
    )?;
    Ok((ttl < NEVER_EXPIRES_THRESHOLD).then_some(ttl))
}

fn lock_duration(entity: &str, text: Option<&str>) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(DEFAULT_LOCK_DURATION),
        Some(text) => duration_in_range(
            entity,
            "LockDuration",
            text,
            MIN_LOCK_DURATION,
            Some(MAX_LOCK_DURATION),
        ),
    }
}

fn duplicate_window(entity: &str, text: Option<&str>) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(DEFAULT_DUPLICATE_DETECTION_WINDOW),
        Some(text) => duration_in_range(
            entity,
            "DuplicateDetectionHistoryTimeWindow",
            text,
            MIN_DUPLICATE_DETECTION_WINDOW,
            Some(MAX_DUPLICATE_DETECTION_WINDOW),
        ),
    }
}

fn max_delivery_count(entity: &str, value: Option<i64>) -> Result<u32, ConfigError> {
    match value {
        None => Ok(DEFAULT_MAX_DELIVERY_COUNT),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_MAX_DELIVERY_COUNT).contains(n))
            .ok_or_else(|| ConfigError::Invalid {
                entity: entity.to_owned(),
                property: "MaxDeliveryCount",
                value: n.to_string(),
                allowed: format!("1 ..= {MAX_MAX_DELIVERY_COUNT}"),
            }),
    }
}

fn refuse_forwarding(
    entity: &str,
    forward_to: Option<&str>,
    forward_dead_lettered: Option<&str>,
) -> Result<(), ConfigError> {
    let set = |v: Option<&str>| v.is_some_and(|v| !v.trim().is_empty());
    if set(forward_to) {
        return Err(ConfigError::Unsupported {
            entity: entity.to_owned(),
            property: "ForwardTo",
            reason: "auto-forwarding is not implemented",
        });
    }
    if set(forward_dead_lettered) {
        return Err(ConfigError::Unsupported {
            entity: entity.to_owned(),
            property: "ForwardDeadLetteredMessagesTo",
            reason: "auto-forwarding is not implemented",
        });
    }
    Ok(())
}

fn entity_properties(
    entity: &str,
    raw: RawEntityProperties,
) -> Result<EntityProperties, ConfigError> {
    refuse_forwarding(
        entity,
        raw.forward_to.as_deref(),
        raw.forward_dead_lettered_messages_to.as_deref(),
    )?;
    Ok(EntityProperties {
        lock_duration: lock_duration(entity, raw.lock_duration.as_deref())?,
        max_delivery_count: max_delivery_count(entity, raw.max_delivery_count)?,
        default_message_time_to_live: time_to_live(
            entity,
            raw.default_message_time_to_live.as_deref(),
        )?,
        dead_lettering_on_message_expiration: raw
            .dead_lettering_on_message_expiration
            .unwrap_or(false),
        requires_session: raw.requires_session.unwrap_or(false),
        requires_duplicate_detection: raw.requires_duplicate_detection.unwrap_or(false),
        duplicate_detection_history_time_window: duplicate_window(
            entity,
            raw.duplicate_detection_history_time_window.as_deref(),
        )?,
    })
}

fn topic_properties(entity: &str, raw: RawTopicProperties) -> Result<TopicProperties, ConfigError> {
    Ok(TopicProperties {
        default_message_time_to_live: time_to_live(
            entity,
            raw.default_message_time_to_live.as_deref(),
        )?,
        requires_duplicate_detection: raw.requires_duplicate_detection.unwrap_or(false),
        duplicate_detection_history_time_window: duplicate_window(
            entity,
            raw.duplicate_detection_history_time_window.as_deref(),
        )?,
    })
}

/// A subscription takes the queue properties minus duplicate detection (a topic property).
fn subscription_properties(
    entity: &str,
    raw: RawSubscriptionProperties,
) -> Result<EntityProperties, ConfigError> {
    entity_properties(
        entity,
        RawEntityProperties {
            dead_lettering_on_message_expiration: raw.dead_lettering_on_message_expiration,
            default_message_time_to_live: raw.default_message_time_to_live,
            duplicate_detection_history_time_window: None,
            forward_dead_lettered_messages_to: raw.forward_dead_lettered_messages_to,
            forward_to: raw.forward_to,
            lock_duration: raw.lock_duration,
            max_delivery_count: raw.max_delivery_count,
            requires_duplicate_detection: None,
            requires_session: raw.requires_session,
        },
    )
}

fn rules(subscription: &str, raw_rules: Vec<RawRule>) -> Result<Vec<Rule>, ConfigError> {
    if raw_rules.is_empty() {
        return Ok(vec![Rule::default_rule()]);
    }
    let mut names = HashSet::new();
    let mut rules = Vec::with_capacity(raw_rules.len());
    for raw in raw_rules {
        let label = format!("rule {:?} of {subscription}", raw.name);
        if raw.name != DEFAULT_RULE_NAME {
            check_name(
                &label,
                &raw.name,
                &raw.name,
                "Name",
                false,
                MAX_SUBSCRIPTION_NAME_LEN,
            )?;
        }
        if !names.insert(raw.name.to_ascii_lowercase()) {
            return Err(ConfigError::Duplicate { entity: label });
        }
        let properties = raw.properties;
        let filter = match properties.filter_type {
            RawFilterType::Correlation => {
                if properties.sql_filter.is_some() {
                    return Err(mismatched_filter(&label, "SqlFilter", "Correlation"));
                }
                let Some(correlation) = properties.correlation_filter else {
                    return Err(missing_filter(&label, "CorrelationFilter", "Correlation"));
                };
                Filter::Correlation(correlation_filter(&label, correlation)?)
            }
            RawFilterType::Sql => {
                if properties.correlation_filter.is_some() {
                    return Err(mismatched_filter(&label, "CorrelationFilter", "Sql"));
                }
                let Some(sql) = properties.sql_filter else {
                    return Err(missing_filter(&label, "SqlFilter", "Sql"));
                };
                let parsed =
                    SqlFilter::parse(&sql.sql_expression).map_err(|error| ConfigError::Rule {
                        entity: label.clone(),
                        property: "SqlFilter.SqlExpression",
                        message: error.to_string(),
                    })?;
                Filter::Sql(parsed)
            }
        };
        let action = match properties.action.map(|a| a.sql_expression) {
            Some(text) if !text.trim().is_empty() => Some(SqlRuleAction::parse(&text).map_err(
                |error| ConfigError::Rule {
                    entity: label.clone(),
                    property: "Action.SqlExpression",
                    message: error.to_string(),
                },
            )?),
            _ => None,
        };
        rules.push(Rule {
            name: raw.name,
            filter,
            action,
        });
    }
    Ok(rules)
}

fn missing_filter(rule: &str, property: &'static str, filter_type: &str) -> ConfigError {
    ConfigError::Invalid {
        entity: rule.to_owned(),
        property,
        value: "missing".to_owned(),
        allowed: format!("required when FilterType is {filter_type}"),
    }
}

fn mismatched_filter(rule: &str, property: &'static str, filter_type: &str) -> ConfigError {
    ConfigError::Invalid {
        entity: rule.to_owned(),
        property,
        value: "present".to_owned(),
        allowed: format!("not allowed when FilterType is {filter_type}"),
    }
}

fn correlation_filter(
    rule: &str,
    raw: RawCorrelationFilter,
) -> Result<busdrain_filter::CorrelationFilter, ConfigError> {
    let mut properties = BTreeMap::new();
    for (name, value) in raw.properties {
        let converted = match &value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Value::Long(i),
                (None, Some(f)) => Value::Double(f),
                (None, None) => return Err(bad_correlation_property(rule, &name, &value)),
            },
            _ => return Err(bad_correlation_property(rule, &name, &value)),
        };
        properties.insert(name, converted);
    }
    let filter = busdrain_filter::CorrelationFilter {
        content_type: raw.content_type,
        correlation_id: raw.correlation_id,
        label: raw.label,
        message_id: raw.message_id,
        reply_to: raw.reply_to,
        reply_to_session_id: raw.reply_to_session_id,
        session_id: raw.session_id,
        to: raw.to,
        properties,
    };
    if filter.is_empty() {
        return Err(ConfigError::Invalid {
            entity: rule.to_owned(),
            property: "CorrelationFilter",
            value: "{}".to_owned(),
            allowed: "at least one of ContentType, CorrelationId, Label, MessageId, ReplyTo, ReplyToSessionId, SessionId, To, Properties".to_owned(),
        });
    }
    Ok(filter)
}

fn bad_correlation_property(rule: &str, name: &str, value: &serde_json::Value) -> ConfigError {
    ConfigError::Invalid {
        entity: rule.to_owned(),
        property: "CorrelationFilter.Properties",
        value: format!("{name} = {value}"),
        allowed: "string, number, boolean or null values".to_owned(),
    }
}

#[cfg(test)]
mod tests;
