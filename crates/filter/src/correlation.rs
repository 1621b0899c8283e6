//! Correlation filters: exact, case-sensitive equality on a set of system properties and
//! application properties, all of which must match.

use std::collections::BTreeMap;

use crate::message::{MessageView, SystemProperty};
use crate::value::{compare, ComparisonOp, Value};

/// A `CorrelationRuleFilter`. Unset fields are not compared.
///
/// A filter with nothing set matches every message; Service Bus refuses such a filter when
/// it is created, which is the caller's check ([`CorrelationFilter::is_empty`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorrelationFilter {
    pub correlation_id: Option<String>,
    pub message_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    /// `Subject` in the current SDKs, `Label` in the older ones.
    pub label: Option<String>,
    pub session_id: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    /// Application properties that must be present with an equal value.
    pub properties: BTreeMap<String, Value>,
}

impl CorrelationFilter {
    /// A filter on the correlation id alone (`new CorrelationRuleFilter("id")`).
    pub fn with_correlation_id(correlation_id: impl Into<String>) -> Self {
        CorrelationFilter {
            correlation_id: Some(correlation_id.into()),
            ..Default::default()
        }
    }

    /// The system fields this filter sets, paired with the property each one compares.
    fn system_conditions(&self) -> [(SystemProperty, &Option<String>); 8] {
        [
            (SystemProperty::CorrelationId, &self.correlation_id),
            (SystemProperty::MessageId, &self.message_id),
            (SystemProperty::To, &self.to),
            (SystemProperty::ReplyTo, &self.reply_to),
            (SystemProperty::Label, &self.label),
            (SystemProperty::SessionId, &self.session_id),
            (SystemProperty::ReplyToSessionId, &self.reply_to_session_id),
            (SystemProperty::ContentType, &self.content_type),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.properties.is_empty() && self.system_conditions().iter().all(|(_, v)| v.is_none())
    }

    pub fn matches(&self, message: &impl MessageView) -> bool {
        let system_match = self
            .system_conditions()
            .into_iter()
            .all(|(property, expected)| match expected {
                None => true,
                Some(expected) => matches!(
                    message.system_property(property),
                    Some(Value::String(actual)) if actual == *expected
                ),
            });
        system_match
            && self.properties.iter().all(|(name, expected)| {
                match (expected, message.user_property(name)) {
                    (_, None) => false,
                    (Value::Null, Some(actual)) => actual.is_null(),
                    // Same equality as SQL `=` (1 matches 1.0); other type pairs never match.
                    (expected, Some(actual)) => {
                        compare(ComparisonOp::Equal, expected, &actual) == Ok(Value::Bool(true))
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageProperties;

    fn message() -> MessageProperties {
        let mut m = MessageProperties::default();
        m.system.correlation_id = Some("high".into());
        m.system.label = Some("red".into());
        m.system.content_type = Some("application/json".into());
        m.user.insert("color".into(), "Red".into());
        m.user.insert("quantity".into(), Value::Long(10));
        m.user.insert("nothing".into(), Value::Null);
        m
    }

    #[test]
    fn every_set_field_must_match_exactly() {
        let m = message();
        let mut f = CorrelationFilter::with_correlation_id("high");
        assert!(f.matches(&m));
        f.label = Some("red".into());
        assert!(f.matches(&m));
        f.label = Some("RED".into());
        assert!(!f.matches(&m), "string comparison is case-sensitive");
        f.label = Some("red".into());
        f.session_id = Some("s".into());
        assert!(!f.matches(&m), "a field the message lacks never matches");
    }

    #[test]
    fn each_system_field_is_compared() {
        let mut m = MessageProperties::default();
        m.system.message_id = Some("mid".into());
        m.system.to = Some("to".into());
        m.system.reply_to = Some("rt".into());
        m.system.session_id = Some("sid".into());
        m.system.reply_to_session_id = Some("rtsid".into());
        m.system.content_type = Some("ct".into());
        let filters = [
            CorrelationFilter {
                message_id: Some("mid".into()),
                ..Default::default()
            },
            CorrelationFilter {
                to: Some("to".into()),
                ..Default::default()
            },
            CorrelationFilter {
                reply_to: Some("rt".into()),
                ..Default::default()
            },
            CorrelationFilter {
                session_id: Some("sid".into()),
                ..Default::default()
            },
            CorrelationFilter {
                reply_to_session_id: Some("rtsid".into()),
                ..Default::default()
            },
            CorrelationFilter {
                content_type: Some("ct".into()),
                ..Default::default()
            },
        ];
        for f in filters {
            assert!(f.matches(&m), "{f:?}");
            let mut wrong = f.clone();
            for value in [
                &mut wrong.message_id,
                &mut wrong.to,
                &mut wrong.reply_to,
                &mut wrong.session_id,
                &mut wrong.reply_to_session_id,
                &mut wrong.content_type,
            ]
            .into_iter()
            .flatten()
            {
                value.push('x');
            }
            assert!(!wrong.matches(&m), "{wrong:?}");
        }
    }

    #[test]
    fn custom_properties() {
        let m = message();
        let mut f = CorrelationFilter::default();
        f.properties.insert("color".into(), "Red".into());
        f.properties.insert("quantity".into(), Value::Double(10.0));
        assert!(f.matches(&m));
        f.properties.insert("nothing".into(), Value::Null);
        assert!(f.matches(&m));
        f.properties.insert("color".into(), "red".into());
        assert!(!f.matches(&m));
        f.properties.insert("color".into(), Value::Long(1));
        assert!(!f.matches(&m), "a type mismatch is no match, not an error");
        let mut missing = CorrelationFilter::default();
        missing.properties.insert("absent".into(), Value::Null);
        assert!(!missing.matches(&m));
    }

    #[test]
    fn empty_filter() {
        assert!(CorrelationFilter::default().is_empty());
        assert!(CorrelationFilter::default().matches(&message()));
        assert!(!CorrelationFilter::with_correlation_id("x").is_empty());
    }
}
