//! Which subscriptions receive a topic message: rule filters.
//!
//! Correlation filters are evaluated here. SQL filters and SQL rule actions arrive with
//! issue 4 (`sql.rs` beside this file); until then a SQL filter matches every message so no
//! configured subscription silently misses messages.

use crate::config::{CorrelationFilter, RuleConfig, RuleFilter};
use crate::message::NewMessage;

/// Whether `rule` selects `message`. A subscription receives a copy of a topic message when
/// any of its rules matches.
pub fn matches(rule: &RuleConfig, message: &NewMessage) -> bool {
    match &rule.filter {
        RuleFilter::True => true,
        RuleFilter::Correlation(filter) => correlation_matches(filter, message),
        // Issue 4: evaluate the SQL-92 subset. Matching everything is the safe placeholder.
        RuleFilter::Sql(_) => true,
    }
}

/// Every field set on the filter must equal the message's; unset fields are ignored.
fn correlation_matches(filter: &CorrelationFilter, message: &NewMessage) -> bool {
    let field = |wanted: &Option<String>, actual: &Option<String>| match wanted {
        None => true,
        Some(wanted) => actual.as_deref() == Some(wanted.as_str()),
    };
    field(&filter.content_type, &message.content_type)
        && field(&filter.correlation_id, &message.correlation_id)
        && field(&filter.subject, &message.subject)
        && field(&filter.message_id, &message.message_id)
        && field(&filter.reply_to, &message.reply_to)
        && field(&filter.reply_to_session_id, &message.reply_to_session_id)
        && field(&filter.session_id, &message.session_id)
        && field(&filter.to, &message.to)
        && filter
            .properties
            .iter()
            .all(|(name, wanted)| message.application_properties.get(name) == Some(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PropertyValue;

    fn rule(filter: RuleFilter) -> RuleConfig {
        RuleConfig {
            name: "r".to_owned(),
            filter,
            action: None,
        }
    }

    #[test]
    fn correlation_filter_fields_and_properties() {
        let mut filter = CorrelationFilter {
            subject: Some("orders".to_owned()),
            ..CorrelationFilter::default()
        };
        filter
            .properties
            .insert("region".to_owned(), PropertyValue::from("eu"));
        let rule = rule(RuleFilter::Correlation(filter));
        let mut message = NewMessage {
            subject: Some("orders".to_owned()),
            ..NewMessage::default()
        };
        assert!(!matches(&rule, &message), "property missing");
        message
            .application_properties
            .insert("region".to_owned(), PropertyValue::from("eu"));
        assert!(matches(&rule, &message));
        message.subject = Some("refunds".to_owned());
        assert!(!matches(&rule, &message));
    }

    #[test]
    fn true_filter_matches_everything() {
        assert!(matches(&rule(RuleFilter::True), &NewMessage::default()));
    }
}
