//! The message as a filter sees it: broker/system properties (`sys.X`) and application
//! properties (`user.X` or bare names).

use std::collections::BTreeMap;

use crate::error::EvaluationError;
use crate::value::Value;

/// A Service Bus system property, addressable in SQL as `sys.<Name>` (case-insensitive).
///
/// The names are those of the .NET message classes; `Subject` (the current SDKs) and `Label`
/// (the older ones) are the same property.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum SystemProperty {
    MessageId,
    CorrelationId,
    To,
    ReplyTo,
    Label,
    SessionId,
    ReplyToSessionId,
    ContentType,
    PartitionKey,
    ViaPartitionKey,
    TimeToLive,
    ScheduledEnqueueTimeUtc,
    SequenceNumber,
    EnqueuedSequenceNumber,
    EnqueuedTimeUtc,
    ExpiresAtUtc,
    LockedUntilUtc,
    DeliveryCount,
    Size,
    DeadLetterSource,
}

impl SystemProperty {
    /// Every system property, in declaration order.
    pub const ALL: [SystemProperty; 20] = [
        SystemProperty::MessageId,
        SystemProperty::CorrelationId,
        SystemProperty::To,
        SystemProperty::ReplyTo,
        SystemProperty::Label,
        SystemProperty::SessionId,
        SystemProperty::ReplyToSessionId,
        SystemProperty::ContentType,
        SystemProperty::PartitionKey,
        SystemProperty::ViaPartitionKey,
        SystemProperty::TimeToLive,
        SystemProperty::ScheduledEnqueueTimeUtc,
        SystemProperty::SequenceNumber,
        SystemProperty::EnqueuedSequenceNumber,
        SystemProperty::EnqueuedTimeUtc,
        SystemProperty::ExpiresAtUtc,
        SystemProperty::LockedUntilUtc,
        SystemProperty::DeliveryCount,
        SystemProperty::Size,
        SystemProperty::DeadLetterSource,
    ];

    /// The canonical name (what follows `sys.`).
    pub fn name(self) -> &'static str {
        match self {
            SystemProperty::MessageId => "MessageId",
            SystemProperty::CorrelationId => "CorrelationId",
            SystemProperty::To => "To",
            SystemProperty::ReplyTo => "ReplyTo",
            SystemProperty::Label => "Label",
            SystemProperty::SessionId => "SessionId",
            SystemProperty::ReplyToSessionId => "ReplyToSessionId",
            SystemProperty::ContentType => "ContentType",
            SystemProperty::PartitionKey => "PartitionKey",
            SystemProperty::ViaPartitionKey => "ViaPartitionKey",
            SystemProperty::TimeToLive => "TimeToLive",
            SystemProperty::ScheduledEnqueueTimeUtc => "ScheduledEnqueueTimeUtc",
            SystemProperty::SequenceNumber => "SequenceNumber",
            SystemProperty::EnqueuedSequenceNumber => "EnqueuedSequenceNumber",
            SystemProperty::EnqueuedTimeUtc => "EnqueuedTimeUtc",
            SystemProperty::ExpiresAtUtc => "ExpiresAtUtc",
            SystemProperty::LockedUntilUtc => "LockedUntilUtc",
            SystemProperty::DeliveryCount => "DeliveryCount",
            SystemProperty::Size => "Size",
            SystemProperty::DeadLetterSource => "DeadLetterSource",
        }
    }

    /// Looks a name up case-insensitively; `Subject` is accepted for `Label`.
    pub fn from_name(name: &str) -> Option<SystemProperty> {
        if name.eq_ignore_ascii_case("Subject") {
            return Some(SystemProperty::Label);
        }
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether a rule action may `SET` or `REMOVE` it. The broker-assigned ones (sequence
    /// numbers, times, counts, size) describe the message's life in the entity, so they are
    /// read-only.
    pub fn is_settable(self) -> bool {
        matches!(
            self,
            SystemProperty::MessageId
                | SystemProperty::CorrelationId
                | SystemProperty::To
                | SystemProperty::ReplyTo
                | SystemProperty::Label
                | SystemProperty::SessionId
                | SystemProperty::ReplyToSessionId
                | SystemProperty::ContentType
                | SystemProperty::PartitionKey
                | SystemProperty::ViaPartitionKey
                | SystemProperty::TimeToLive
                | SystemProperty::ScheduledEnqueueTimeUtc
        )
    }
}

/// The system properties of one message; `None` is "not set" (evaluates as NULL).
///
/// Times are milliseconds since the Unix epoch (UTC), lengths of time are milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SystemProperties {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    /// `Subject` in the current SDKs, `Label` in the older ones (AMQP `properties.subject`).
    pub label: Option<String>,
    pub session_id: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    pub partition_key: Option<String>,
    pub via_partition_key: Option<String>,
    pub time_to_live_ms: Option<i64>,
    pub scheduled_enqueue_time_utc_ms: Option<i64>,
    pub sequence_number: Option<i64>,
    pub enqueued_sequence_number: Option<i64>,
    pub enqueued_time_utc_ms: Option<i64>,
    pub expires_at_utc_ms: Option<i64>,
    pub locked_until_utc_ms: Option<i64>,
    pub delivery_count: Option<i64>,
    pub size: Option<i64>,
    pub dead_letter_source: Option<String>,
}

impl SystemProperties {
    /// The value of one property; `None` when it is not set.
    pub fn get(&self, property: SystemProperty) -> Option<Value> {
        let string = |s: &Option<String>| s.clone().map(Value::String);
        let long = |v: &Option<i64>| v.map(Value::Long);
        let time = |v: &Option<i64>| v.map(Value::Timestamp);
        match property {
            SystemProperty::MessageId => string(&self.message_id),
            SystemProperty::CorrelationId => string(&self.correlation_id),
            SystemProperty::To => string(&self.to),
            SystemProperty::ReplyTo => string(&self.reply_to),
            SystemProperty::Label => string(&self.label),
            SystemProperty::SessionId => string(&self.session_id),
            SystemProperty::ReplyToSessionId => string(&self.reply_to_session_id),
            SystemProperty::ContentType => string(&self.content_type),
            SystemProperty::PartitionKey => string(&self.partition_key),
            SystemProperty::ViaPartitionKey => string(&self.via_partition_key),
            SystemProperty::DeadLetterSource => string(&self.dead_letter_source),
            SystemProperty::TimeToLive => self.time_to_live_ms.map(Value::Duration),
            SystemProperty::ScheduledEnqueueTimeUtc => time(&self.scheduled_enqueue_time_utc_ms),
            SystemProperty::EnqueuedTimeUtc => time(&self.enqueued_time_utc_ms),
            SystemProperty::ExpiresAtUtc => time(&self.expires_at_utc_ms),
            SystemProperty::LockedUntilUtc => time(&self.locked_until_utc_ms),
            SystemProperty::SequenceNumber => long(&self.sequence_number),
            SystemProperty::EnqueuedSequenceNumber => long(&self.enqueued_sequence_number),
            SystemProperty::DeliveryCount => long(&self.delivery_count),
            SystemProperty::Size => long(&self.size),
        }
    }

    /// The string-typed property, if `property` is one (used by correlation filters).
    pub fn get_str(&self, property: SystemProperty) -> Option<&str> {
        let field = match property {
            SystemProperty::MessageId => &self.message_id,
            SystemProperty::CorrelationId => &self.correlation_id,
            SystemProperty::To => &self.to,
            SystemProperty::ReplyTo => &self.reply_to,
            SystemProperty::Label => &self.label,
            SystemProperty::SessionId => &self.session_id,
            SystemProperty::ReplyToSessionId => &self.reply_to_session_id,
            SystemProperty::ContentType => &self.content_type,
            SystemProperty::PartitionKey => &self.partition_key,
            SystemProperty::ViaPartitionKey => &self.via_partition_key,
            SystemProperty::DeadLetterSource => &self.dead_letter_source,
            _ => return None,
        };
        field.as_deref()
    }

    /// Sets (or, with `Value::Null`, clears) a settable property, as a rule action does.
    ///
    /// String properties take strings (and GUIDs, rendered as strings, so
    /// `SET sys.MessageId = newid()` works); `TimeToLive` takes a duration and
    /// `ScheduledEnqueueTimeUtc` a timestamp.
    pub fn set(&mut self, property: SystemProperty, value: Value) -> Result<(), EvaluationError> {
        if !property.is_settable() {
            return Err(EvaluationError::ReadOnlySystemProperty(property.name()));
        }
        let invalid = |value: &Value| EvaluationError::InvalidSystemValue {
            property: property.name(),
            found: value.type_name(),
        };
        match property {
            SystemProperty::TimeToLive => {
                self.time_to_live_ms = match value {
                    Value::Null => None,
                    Value::Duration(ms) => Some(ms),
                    other => return Err(invalid(&other)),
                };
            }
            SystemProperty::ScheduledEnqueueTimeUtc => {
                self.scheduled_enqueue_time_utc_ms = match value {
                    Value::Null => None,
                    Value::Timestamp(ms) => Some(ms),
                    other => return Err(invalid(&other)),
                };
            }
            _ => {
                let text = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    Value::Uuid(u) => Some(u.hyphenated().to_string()),
                    other => return Err(invalid(&other)),
                };
                let field = match property {
                    SystemProperty::MessageId => &mut self.message_id,
                    SystemProperty::CorrelationId => &mut self.correlation_id,
                    SystemProperty::To => &mut self.to,
                    SystemProperty::ReplyTo => &mut self.reply_to,
                    SystemProperty::Label => &mut self.label,
                    SystemProperty::SessionId => &mut self.session_id,
                    SystemProperty::ReplyToSessionId => &mut self.reply_to_session_id,
                    SystemProperty::ContentType => &mut self.content_type,
                    SystemProperty::PartitionKey => &mut self.partition_key,
                    _ => &mut self.via_partition_key,
                };
                *field = text;
            }
        }
        Ok(())
    }
}

/// Read access to a message for filter evaluation.
///
/// [`MessageProperties`] implements it; the broker may implement it on its own message type
/// to avoid a copy when it only filters (rule actions need a [`MessageProperties`]).
pub trait MessageView {
    /// A system property; `None` when the message does not carry it.
    fn system_property(&self, property: SystemProperty) -> Option<Value>;
    /// An application property; `None` when absent, `Some(Value::Null)` when present with a
    /// null value (the difference is what `EXISTS` sees).
    fn user_property(&self, name: &str) -> Option<Value>;
}

/// Application properties keyed by name.
pub type UserProperties = BTreeMap<String, Value>;

/// A message's properties, owned, so a rule action can change them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MessageProperties {
    pub system: SystemProperties,
    pub user: UserProperties,
}

impl MessageProperties {
    /// Finds the stored key for `name`: the exact key, else the first key equal to it
    /// ignoring case (Service Bus documents property names as case-insensitive).
    pub fn user_key(&self, name: &str) -> Option<&str> {
        if let Some((key, _)) = self.user.get_key_value(name) {
            return Some(key);
        }
        self.user
            .keys()
            .find(|key| key.eq_ignore_ascii_case(name) || key.to_lowercase() == name.to_lowercase())
            .map(String::as_str)
    }
}

impl MessageView for MessageProperties {
    fn system_property(&self, property: SystemProperty) -> Option<Value> {
        self.system.get(property)
    }

    fn user_property(&self, name: &str) -> Option<Value> {
        let key = self.user_key(name)?;
        self.user.get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_are_case_insensitive_and_subject_aliases_label() {
        assert_eq!(
            SystemProperty::from_name("messageid"),
            Some(SystemProperty::MessageId)
        );
        assert_eq!(
            SystemProperty::from_name("SUBJECT"),
            Some(SystemProperty::Label)
        );
        assert_eq!(
            SystemProperty::from_name("label"),
            Some(SystemProperty::Label)
        );
        assert_eq!(SystemProperty::from_name("Nope"), None);
        for p in SystemProperty::ALL {
            assert_eq!(SystemProperty::from_name(p.name()), Some(p));
        }
    }

    #[test]
    fn user_lookup_prefers_exact_then_ignores_case() {
        let mut m = MessageProperties::default();
        m.user.insert("Color".into(), "red".into());
        m.user.insert("color".into(), "blue".into());
        m.user.insert("Größe".into(), Value::Long(3));
        assert_eq!(m.user_property("color"), Some("blue".into()));
        assert_eq!(m.user_property("Color"), Some("red".into()));
        assert_eq!(m.user_property("COLOR"), Some("red".into()));
        assert_eq!(m.user_property("GRÖSSE"), None);
        assert_eq!(m.user_property("größe"), Some(Value::Long(3)));
        assert_eq!(m.user_property("missing"), None);
    }

    #[test]
    fn broker_assigned_properties_are_read_only() {
        let mut s = SystemProperties::default();
        assert_eq!(
            s.set(SystemProperty::SequenceNumber, Value::Long(1)),
            Err(EvaluationError::ReadOnlySystemProperty("SequenceNumber"))
        );
        assert!(s.set(SystemProperty::Label, Value::Long(1)).is_err());
        s.set(SystemProperty::Label, "x".into()).unwrap();
        assert_eq!(s.label.as_deref(), Some("x"));
        s.set(SystemProperty::Label, Value::Null).unwrap();
        assert_eq!(s.label, None);
        s.set(SystemProperty::TimeToLive, Value::Duration(5))
            .unwrap();
        assert_eq!(s.get(SystemProperty::TimeToLive), Some(Value::Duration(5)));
    }
}
