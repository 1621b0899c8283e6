//! Which subscriptions receive a topic message, and with which changes: the subscription's
//! rules, evaluated by `busdrain-filter` (True/False, correlation and SQL filters, SQL rule
//! actions).
//!
//! Filters see the message as sent plus what the broker stamps at enqueue (sequence number,
//! enqueued time, size). A matching rule **with** an action yields a copy whose changed
//! application properties are recorded in `modified_properties` (the emulator overlays them on
//! delivery) and whose changed system properties are applied to the stored `content` fields.

use busdrain_filter::{route, MessageProperties, RoutedCopy, Rule, SystemProperties, Value};

use crate::message::{NewMessage, PropertyMap, PropertyValue};
use crate::time::Timestamp;

/// The application property naming the rule whose action made a subscription's copy.
pub const RULE_NAME_PROPERTY: &str = "RuleName";

/// Whether `rule`'s filter selects `message` (its action is not applied). A filter that fails
/// to evaluate (e.g. comparing a string with a number) does not match, as in Service Bus.
pub fn matches(rule: &Rule, message: &NewMessage) -> bool {
    rule.filter
        .matches(&filter_view(message, 0, Timestamp::now()))
}

/// What a subscription receives for one topic message.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RoutedMessage {
    /// Application property changes made by a rule action (empty for an unmodified copy).
    pub(crate) modified_properties: PropertyMap,
    /// The message with system property changes made by a rule action applied.
    pub(crate) content: Option<NewMessage>,
}

/// Routes one message through a subscription's rules: `None` when no rule selects it.
///
/// Service Bus may deliver several copies to one subscription (one per matching rule with an
/// action); busdrain stores one copy per subscription and topic message: the unmodified one if
/// any rule without an action matched, else the first action's copy.
pub(crate) fn route_to_subscription(
    rules: &[Rule],
    message: &NewMessage,
    view: &MessageProperties,
) -> Option<RoutedMessage> {
    if selects_everything(rules) {
        return Some(RoutedMessage::default());
    }
    let routing = route(rules, view);
    for failure in &routing.failures {
        tracing::debug!(rule = %failure.rule_name, error = %failure.error, "rule could not be evaluated; it selects nothing");
    }
    match routing.copies.into_iter().next()? {
        RoutedCopy::Original => Some(RoutedMessage::default()),
        RoutedCopy::Modified {
            rule_name,
            properties,
        } => {
            let mut routed = apply_action_changes(message, view, &properties);
            // Service Bus marks a copy made by a rule's action with the rule's name.
            routed.modified_properties.insert(
                RULE_NAME_PROPERTY.to_owned(),
                PropertyValue::String(rule_name),
            );
            Some(routed)
        }
    }
}

/// Whether a True rule without an action ($Default) is present: every message is selected
/// unmodified, no evaluation needed (the common case).
pub(crate) fn selects_everything(rules: &[Rule]) -> bool {
    rules
        .iter()
        .any(|r| matches!(r.filter, busdrain_filter::Filter::True) && r.action.is_none())
}

/// Turns a rule action's result into the broker's representation of the changes.
fn apply_action_changes(
    message: &NewMessage,
    before: &MessageProperties,
    after: &MessageProperties,
) -> RoutedMessage {
    let mut modified_properties = PropertyMap::new();
    for (name, value) in &after.user {
        if before.user.get(name) != Some(value) {
            modified_properties.insert(name.clone(), from_filter_value(value));
        }
    }
    // A REMOVE is recorded as `Removed`, not `Null`: the consumer must not see the property
    // at all, whereas `SET p = NULL` delivers it with a null value.
    for name in before.user.keys() {
        if !after.user.contains_key(name) {
            modified_properties.insert(name.clone(), PropertyValue::Removed);
        }
    }
    let content = (after.system != before.system).then(|| {
        let system = &after.system;
        NewMessage {
            message_id: system.message_id.clone(),
            correlation_id: system.correlation_id.clone(),
            to: system.to.clone(),
            reply_to: system.reply_to.clone(),
            subject: system.label.clone(),
            session_id: system.session_id.clone(),
            reply_to_session_id: system.reply_to_session_id.clone(),
            content_type: system.content_type.clone(),
            partition_key: system.partition_key.clone(),
            time_to_live: system
                .time_to_live_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .map(std::time::Duration::from_millis),
            scheduled_enqueue_time: system
                .scheduled_enqueue_time_utc_ms
                .map(Timestamp::from_unix_millis),
            ..message.clone()
        }
    });
    RoutedMessage {
        modified_properties,
        content,
    }
}

/// The message as filters see it: the sent fields plus the broker's stamps.
pub(crate) fn filter_view(
    message: &NewMessage,
    sequence_number: i64,
    enqueued_time: Timestamp,
) -> MessageProperties {
    let ttl_ms = message
        .time_to_live
        .map(|ttl| i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    MessageProperties {
        system: SystemProperties {
            message_id: message.message_id.clone(),
            correlation_id: message.correlation_id.clone(),
            to: message.to.clone(),
            reply_to: message.reply_to.clone(),
            label: message.subject.clone(),
            session_id: message.session_id.clone(),
            reply_to_session_id: message.reply_to_session_id.clone(),
            content_type: message.content_type.clone(),
            partition_key: message.partition_key.clone(),
            time_to_live_ms: ttl_ms,
            scheduled_enqueue_time_utc_ms: message
                .scheduled_enqueue_time
                .map(Timestamp::as_unix_millis),
            sequence_number: Some(sequence_number),
            enqueued_time_utc_ms: Some(enqueued_time.as_unix_millis()),
            expires_at_utc_ms: ttl_ms.map(|ttl| enqueued_time.as_unix_millis().saturating_add(ttl)),
            delivery_count: Some(0),
            size: i64::try_from(message.payload.len()).ok(),
            ..SystemProperties::default()
        },
        user: message
            .application_properties
            .iter()
            .map(|(name, value)| (name.clone(), to_filter_value(value)))
            .collect(),
    }
}

/// Application property → filter value (the mapping in busdrain-filter's README).
pub(crate) fn to_filter_value(value: &PropertyValue) -> Value {
    match value {
        // `Removed` never occurs in a message's own application properties.
        PropertyValue::Null | PropertyValue::Removed => Value::Null,
        PropertyValue::Bool(b) => Value::Bool(*b),
        PropertyValue::UByte(n) => Value::Long(i64::from(*n)),
        PropertyValue::UShort(n) => Value::Long(i64::from(*n)),
        PropertyValue::UInt(n) => Value::Long(i64::from(*n)),
        PropertyValue::ULong(n) => match i64::try_from(*n) {
            Ok(n) => Value::Long(n),
            Err(_) => Value::Double(*n as f64),
        },
        PropertyValue::Byte(n) => Value::Long(i64::from(*n)),
        PropertyValue::Short(n) => Value::Long(i64::from(*n)),
        PropertyValue::Int(n) => Value::Long(i64::from(*n)),
        PropertyValue::Long(n) => Value::Long(*n),
        PropertyValue::Float(f) => Value::Double(f64::from(*f)),
        PropertyValue::Double(f) => Value::Double(*f),
        PropertyValue::Char(c) => Value::String(c.to_string()),
        PropertyValue::Timestamp(t) => Value::Timestamp(t.as_unix_millis()),
        PropertyValue::Uuid(u) => Value::Uuid(*u),
        PropertyValue::Binary(b) => Value::Binary(b.to_vec()),
        PropertyValue::String(s) | PropertyValue::Symbol(s) => Value::String(s.clone()),
    }
}

/// Filter value → application property. A duration (no AMQP primitive) becomes milliseconds.
pub(crate) fn from_filter_value(value: &Value) -> PropertyValue {
    match value {
        Value::Null => PropertyValue::Null,
        Value::Bool(b) => PropertyValue::Bool(*b),
        Value::Long(n) | Value::Duration(n) => PropertyValue::Long(*n),
        Value::Double(f) => PropertyValue::Double(*f),
        Value::String(s) => PropertyValue::String(s.clone()),
        Value::Timestamp(ms) => PropertyValue::Timestamp(Timestamp::from_unix_millis(*ms)),
        Value::Uuid(u) => PropertyValue::Uuid(*u),
        Value::Binary(b) => PropertyValue::Binary(b.clone().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busdrain_filter::{CorrelationFilter, Filter, SqlFilter, SqlRuleAction};

    fn rule(filter: Filter, action: Option<&str>) -> Rule {
        Rule {
            name: "r".to_owned(),
            filter,
            action: action.map(|a| SqlRuleAction::parse(a).unwrap()),
        }
    }

    fn message_with(name: &str, value: PropertyValue) -> NewMessage {
        let mut message = NewMessage {
            subject: Some("orders".to_owned()),
            ..NewMessage::default()
        };
        message
            .application_properties
            .insert(name.to_owned(), value);
        message
    }

    #[test]
    fn correlation_filter_on_subject_and_property() {
        let mut filter = CorrelationFilter {
            label: Some("orders".to_owned()),
            ..CorrelationFilter::default()
        };
        filter
            .properties
            .insert("region".to_owned(), Value::String("eu".to_owned()));
        let rule = rule(Filter::Correlation(filter), None);
        assert!(matches(
            &rule,
            &message_with("region", PropertyValue::from("eu"))
        ));
        assert!(!matches(
            &rule,
            &message_with("region", PropertyValue::from("us"))
        ));
    }

    #[test]
    fn sql_filter_sees_typed_properties_and_system_fields() {
        let sql = SqlFilter::parse("quantity > 5 AND sys.Label = 'orders'").unwrap();
        let rule = rule(Filter::Sql(sql), None);
        assert!(matches(
            &rule,
            &message_with("quantity", PropertyValue::Int(7))
        ));
        assert!(!matches(
            &rule,
            &message_with("quantity", PropertyValue::UByte(3))
        ));
        assert!(
            !matches(&rule, &message_with("quantity", PropertyValue::from("7"))),
            "type mismatch never matches"
        );
    }

    #[test]
    fn action_changes_become_modified_properties_and_content() {
        let sql = SqlFilter::parse("1=1").unwrap();
        let rules = vec![rule(
            Filter::Sql(sql),
            Some("SET quantity = quantity * 2; SET sys.To = 'x'; REMOVE tmp"),
        )];
        let mut message = message_with("quantity", PropertyValue::Int(4));
        message
            .application_properties
            .insert("tmp".to_owned(), PropertyValue::Bool(true));
        let view = filter_view(&message, 1, Timestamp::now());
        let routed = route_to_subscription(&rules, &message, &view).unwrap();
        assert_eq!(
            routed.modified_properties.get("quantity"),
            Some(&PropertyValue::Long(8))
        );
        assert_eq!(
            routed.modified_properties.get("tmp"),
            Some(&PropertyValue::Removed)
        );
        assert_eq!(routed.content.and_then(|c| c.to), Some("x".to_owned()));
    }

    #[test]
    fn set_null_and_remove_are_recorded_apart() {
        let rules = vec![rule(
            Filter::True,
            Some("SET nulled = NULL; REMOVE gone; SET fresh = NULL"),
        )];
        let mut message = message_with("nulled", PropertyValue::Int(1));
        message
            .application_properties
            .insert("gone".to_owned(), PropertyValue::Int(2));
        let view = filter_view(&message, 1, Timestamp::now());
        let routed = route_to_subscription(&rules, &message, &view).unwrap();
        let modified = &routed.modified_properties;
        assert_eq!(modified.get("nulled"), Some(&PropertyValue::Null));
        assert_eq!(modified.get("fresh"), Some(&PropertyValue::Null));
        assert_eq!(modified.get("gone"), Some(&PropertyValue::Removed));
        assert_eq!(
            modified.get(RULE_NAME_PROPERTY),
            Some(&PropertyValue::String(rules[0].name.clone())),
            "a copy made by an action names its rule"
        );
        assert_eq!(routed.content, None, "no system property changed");
    }

    #[test]
    fn no_matching_rule_routes_nothing() {
        let rules = vec![rule(Filter::False, None)];
        let message = NewMessage::default();
        let view = filter_view(&message, 1, Timestamp::now());
        assert_eq!(route_to_subscription(&rules, &message, &view), None);
        let rules = vec![Rule::default_rule()];
        assert_eq!(
            route_to_subscription(&rules, &message, &view),
            Some(RoutedMessage::default())
        );
    }
}
