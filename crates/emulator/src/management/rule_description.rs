//! Rule descriptions on the wire: the map an `add-rule` request carries, and the described
//! list `enumerate-rules` answers with.
//!
//! Requests (JS `managementClient.addRule`, .NET `AmqpMessageConverter`): `rule-description`
//! is a plain map holding one of `sql-filter` {`expression`, [`parameters`]} or
//! `correlation-filter` {`correlation-id`, `message-id`, `to`, `reply-to`, `label`,
//! `session-id`, `reply-to-session-id`, `content-type`, `properties`}, and optionally
//! `sql-rule-action` {`expression`}.
//!
//! Answers are AMQP described lists. The descriptor codes (Microsoft's request-response
//! protocol guide; JS core-amqp `Constants.descriptorCodes`; Java `ClientConstants`) mix two
//! widths on purpose: the rule description and actions use `0x0000_0137_0000_000N`, the
//! filters `0x0000_0013_7000_000N`.

use std::collections::BTreeMap;

use busdrain_filter::{CorrelationFilter, Filter, ParseOptions, Rule, SqlFilter, SqlRuleAction};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use serde_amqp::primitives::{OrderedMap, Timestamp as AmqpTimestamp, Uuid as AmqpUuid};
use serde_amqp::Value;

use crate::message::{key_text, value_text};

/// `com.microsoft:rule-description:list`: filter, action, name, created-at.
pub(crate) const RULE_DESCRIPTION_CODE: u64 = 0x0000_0137_0000_0004;
/// `com.microsoft:empty-rule-action:list`: no fields.
pub(crate) const EMPTY_RULE_ACTION_CODE: u64 = 0x0000_0137_0000_0005;
/// `com.microsoft:sql-rule-action:list`: expression, compatibility-level.
pub(crate) const SQL_RULE_ACTION_CODE: u64 = 0x0000_0137_0000_0006;
/// `com.microsoft:sql-filter:list`: expression, compatibility-level.
pub(crate) const SQL_FILTER_CODE: u64 = 0x0000_0013_7000_0006;
/// `com.microsoft:true-filter:list`: no fields.
pub(crate) const TRUE_FILTER_CODE: u64 = 0x0000_0013_7000_0007;
/// `com.microsoft:false-filter:list`: no fields.
pub(crate) const FALSE_FILTER_CODE: u64 = 0x0000_0013_7000_0008;
/// `com.microsoft:correlation-filter:list`: the eight system fields, then the properties map.
pub(crate) const CORRELATION_FILTER_CODE: u64 = 0x0000_0013_7000_0009;

/// The SQL compatibility level Service Bus reports for filters and actions.
const SQL_COMPATIBILITY_LEVEL: i32 = 20;

/// Service Bus refuses rule names longer than this.
const MAX_RULE_NAME_CHARS: usize = 50;

/// Why a rule description was refused; the text goes back to the client verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RuleDescriptionError(String);

impl RuleDescriptionError {
    fn new(text: impl Into<String>) -> Self {
        RuleDescriptionError(text.into())
    }
}

/// Checks a rule name as Service Bus does: 1 to 50 characters.
pub(crate) fn check_rule_name(name: &str) -> Result<(), RuleDescriptionError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_RULE_NAME_CHARS {
        return Err(RuleDescriptionError::new(format!(
            "the rule name '{name}' must have 1 to {MAX_RULE_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// Builds the rule `name` from an `add-rule` request's `rule-description` map. SQL filters and
/// actions are parsed here, so a malformed one is refused before anything changes.
pub(crate) fn decode_rule(name: &str, description: &Value) -> Result<Rule, RuleDescriptionError> {
    check_rule_name(name)?;
    let Value::Map(map) = description else {
        return Err(RuleDescriptionError::new(
            "`rule-description` must be a map",
        ));
    };
    let sql = present(map, "sql-filter");
    let correlation = present(map, "correlation-filter");
    let filter = match (sql, correlation) {
        (Some(sql), None) => Filter::Sql(decode_sql_filter(name, sql)?),
        (None, Some(correlation)) => Filter::Correlation(decode_correlation_filter(correlation)?),
        (Some(_), Some(_)) => {
            return Err(RuleDescriptionError::new(
                "`rule-description` holds both `sql-filter` and `correlation-filter`; a rule has one filter",
            ))
        }
        (None, None) => {
            return Err(RuleDescriptionError::new(
                "`rule-description` holds neither `sql-filter` nor `correlation-filter`",
            ))
        }
    };
    let action = match present(map, "sql-rule-action") {
        None => None,
        Some(action) => decode_sql_action(name, action)?,
    };
    Ok(Rule {
        name: name.to_owned(),
        filter,
        action,
    })
}

/// A non-null entry of a map with a text key.
fn present<'a>(map: &'a OrderedMap<Value, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| key_text(k) == Some(key))
        .map(|(_, v)| v)
        .filter(|v| !matches!(v, Value::Null))
}

fn map_of<'a>(
    value: &'a Value,
    what: &str,
) -> Result<&'a OrderedMap<Value, Value>, RuleDescriptionError> {
    match value {
        Value::Map(map) => Ok(map),
        _ => Err(RuleDescriptionError::new(format!("`{what}` must be a map"))),
    }
}

fn text_entry(
    map: &OrderedMap<Value, Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, RuleDescriptionError> {
    match present(map, key) {
        None => Ok(None),
        Some(value) => value_text(value)
            .map(Some)
            .ok_or_else(|| RuleDescriptionError::new(format!("`{what}.{key}` must be a string"))),
    }
}

/// The `expression` of a filter or action map.
fn expression(map: &OrderedMap<Value, Value>, what: &str) -> Result<String, RuleDescriptionError> {
    text_entry(map, "expression", what)?
        .ok_or_else(|| RuleDescriptionError::new(format!("`{what}` lacks `expression`")))
}

/// `@name` parameter values of a SQL filter (.NET `SqlRuleFilter.Parameters`).
fn parse_options(
    map: &OrderedMap<Value, Value>,
    what: &str,
) -> Result<ParseOptions, RuleDescriptionError> {
    let mut options = ParseOptions::default();
    if let Some(parameters) = present(map, "parameters") {
        for (key, value) in map_of(parameters, what)?.iter() {
            let name = key_text(key).ok_or_else(|| {
                RuleDescriptionError::new(format!("`{what}.parameters` needs string keys"))
            })?;
            options
                .parameters
                .insert(name.to_owned(), filter_value(value, what)?);
        }
    }
    Ok(options)
}

fn decode_sql_filter(rule: &str, value: &Value) -> Result<SqlFilter, RuleDescriptionError> {
    let map = map_of(value, "sql-filter")?;
    let text = expression(map, "sql-filter")?;
    let options = parse_options(map, "sql-filter")?;
    SqlFilter::parse_with(&text, &options).map_err(|error| {
        RuleDescriptionError::new(format!(
            "the SQL filter of rule '{rule}' is invalid: {error} (expression: {text})"
        ))
    })
}

/// `None` for an action without an expression (the SDKs' empty action).
fn decode_sql_action(
    rule: &str,
    value: &Value,
) -> Result<Option<SqlRuleAction>, RuleDescriptionError> {
    let map = map_of(value, "sql-rule-action")?;
    let Some(text) = text_entry(map, "expression", "sql-rule-action")? else {
        return Ok(None);
    };
    let options = parse_options(map, "sql-rule-action")?;
    SqlRuleAction::parse_with(&text, &options)
        .map(Some)
        .map_err(|error| {
            RuleDescriptionError::new(format!(
                "the SQL action of rule '{rule}' is invalid: {error} (expression: {text})"
            ))
        })
}

fn decode_correlation_filter(value: &Value) -> Result<CorrelationFilter, RuleDescriptionError> {
    const WHAT: &str = "correlation-filter";
    let map = map_of(value, WHAT)?;
    let mut properties = BTreeMap::new();
    if let Some(entries) = present(map, "properties") {
        for (key, value) in map_of(entries, "correlation-filter.properties")?.iter() {
            let name = key_text(key).ok_or_else(|| {
                RuleDescriptionError::new("`correlation-filter.properties` needs string keys")
            })?;
            properties.insert(name.to_owned(), filter_value(value, WHAT)?);
        }
    }
    let filter = CorrelationFilter {
        correlation_id: text_entry(map, "correlation-id", WHAT)?,
        message_id: text_entry(map, "message-id", WHAT)?,
        to: text_entry(map, "to", WHAT)?,
        reply_to: text_entry(map, "reply-to", WHAT)?,
        label: text_entry(map, "label", WHAT)?,
        session_id: text_entry(map, "session-id", WHAT)?,
        reply_to_session_id: text_entry(map, "reply-to-session-id", WHAT)?,
        content_type: text_entry(map, "content-type", WHAT)?,
        properties,
    };
    // Service Bus refuses a correlation filter that compares nothing.
    if filter.is_empty() {
        return Err(RuleDescriptionError::new(
            "the correlation filter sets no property to compare",
        ));
    }
    Ok(filter)
}

/// An AMQP property value as the filter engine sees it (integers widen to long, floats to
/// double, symbols and chars to strings).
fn filter_value(value: &Value, what: &str) -> Result<busdrain_filter::Value, RuleDescriptionError> {
    use busdrain_filter::Value as F;
    Ok(match value {
        Value::Null => F::Null,
        Value::Bool(b) => F::Bool(*b),
        Value::Ubyte(v) => F::Long(i64::from(*v)),
        Value::Ushort(v) => F::Long(i64::from(*v)),
        Value::Uint(v) => F::Long(i64::from(*v)),
        Value::Ulong(v) => match i64::try_from(*v) {
            Ok(v) => F::Long(v),
            Err(_) => F::Double(*v as f64),
        },
        Value::Byte(v) => F::Long(i64::from(*v)),
        Value::Short(v) => F::Long(i64::from(*v)),
        Value::Int(v) => F::Long(i64::from(*v)),
        Value::Long(v) => F::Long(*v),
        Value::Float(v) => F::Double(f64::from(v.into_inner())),
        Value::Double(v) => F::Double(v.into_inner()),
        Value::Char(c) => F::String(c.to_string()),
        Value::Timestamp(t) => F::Timestamp(t.milliseconds()),
        Value::Uuid(u) => F::Uuid(uuid::Uuid::from_bytes(*u.as_inner())),
        Value::Binary(b) => F::Binary(b.to_vec()),
        Value::String(s) => F::String(s.clone()),
        Value::Symbol(s) => F::String(s.0.clone()),
        _ => {
            return Err(RuleDescriptionError::new(format!(
                "`{what}` holds a value that is not a simple type"
            )))
        }
    })
}

/// A filter value back on the wire. A duration (no AMQP primitive) goes as milliseconds.
fn amqp_value(value: &busdrain_filter::Value) -> Value {
    use busdrain_filter::Value as F;
    match value {
        F::Null => Value::Null,
        F::Bool(b) => Value::Bool(*b),
        F::Long(v) | F::Duration(v) => Value::Long(*v),
        F::Double(v) => Value::Double((*v).into()),
        F::String(s) => Value::String(s.clone()),
        F::Timestamp(ms) => Value::Timestamp(AmqpTimestamp::from_milliseconds(*ms)),
        F::Uuid(u) => Value::Uuid(AmqpUuid::from(*u.as_bytes())),
        F::Binary(b) => Value::Binary(serde_bytes::ByteBuf::from(b.clone())),
    }
}

fn described(code: u64, fields: Vec<Value>) -> Value {
    Value::Described(Box::new(Described {
        descriptor: Descriptor::Code(code),
        value: Value::List(fields),
    }))
}

fn optional_text(text: &Option<String>) -> Value {
    text.clone().map_or(Value::Null, Value::String)
}

/// The described `rule-description` list `enumerate-rules` returns for `rule`.
///
/// busdrain does not record when a rule was created, so `created-at` is null (the JS SDK reads
/// only the first three fields).
pub(crate) fn encode_rule(rule: &Rule) -> Value {
    let filter = match &rule.filter {
        Filter::True => described(TRUE_FILTER_CODE, Vec::new()),
        Filter::False => described(FALSE_FILTER_CODE, Vec::new()),
        Filter::Sql(sql) => described(
            SQL_FILTER_CODE,
            vec![
                Value::String(sql.expression().to_owned()),
                Value::Int(SQL_COMPATIBILITY_LEVEL),
            ],
        ),
        Filter::Correlation(correlation) => {
            let mut properties = OrderedMap::new();
            for (name, value) in &correlation.properties {
                properties.insert(Value::String(name.clone()), amqp_value(value));
            }
            described(
                CORRELATION_FILTER_CODE,
                vec![
                    optional_text(&correlation.correlation_id),
                    optional_text(&correlation.message_id),
                    optional_text(&correlation.to),
                    optional_text(&correlation.reply_to),
                    optional_text(&correlation.label),
                    optional_text(&correlation.session_id),
                    optional_text(&correlation.reply_to_session_id),
                    optional_text(&correlation.content_type),
                    Value::Map(properties),
                ],
            )
        }
    };
    let action = match &rule.action {
        None => described(EMPTY_RULE_ACTION_CODE, Vec::new()),
        Some(action) => described(
            SQL_RULE_ACTION_CODE,
            vec![
                Value::String(action.expression().to_owned()),
                Value::Int(SQL_COMPATIBILITY_LEVEL),
            ],
        ),
    };
    described(
        RULE_DESCRIPTION_CODE,
        vec![
            filter,
            action,
            Value::String(rule.name.clone()),
            Value::Null,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, Value)>) -> Value {
        let mut map = OrderedMap::new();
        for (k, v) in entries {
            map.insert(Value::String(k.into()), v);
        }
        Value::Map(map)
    }

    fn fields(value: &Value) -> (u64, &[Value]) {
        let Value::Described(d) = value else {
            panic!("not described: {value:?}")
        };
        let Descriptor::Code(code) = d.descriptor else {
            panic!("not a code descriptor")
        };
        let Value::List(list) = &d.value else {
            panic!("not a list")
        };
        (code, list.as_slice())
    }

    #[test]
    fn descriptor_codes_match_the_published_decimal_values() {
        // JS core-amqp Constants.descriptorCodes.
        assert_eq!(RULE_DESCRIPTION_CODE, 1_335_734_829_060);
        assert_eq!(SQL_RULE_ACTION_CODE, 1_335_734_829_062);
        assert_eq!(SQL_FILTER_CODE, 83_483_426_822);
        assert_eq!(TRUE_FILTER_CODE, 83_483_426_823);
        assert_eq!(FALSE_FILTER_CODE, 83_483_426_824);
        assert_eq!(CORRELATION_FILTER_CODE, 83_483_426_825);
    }

    #[test]
    fn a_sql_rule_with_an_action_round_trips() {
        let description = map(vec![
            (
                "sql-filter",
                map(vec![("expression", Value::String("color = 'red'".into()))]),
            ),
            (
                "sql-rule-action",
                map(vec![("expression", Value::String("SET seen = 1".into()))]),
            ),
        ]);
        let rule = decode_rule("red", &description).expect("valid");
        assert_eq!(rule.name, "red");
        let encoded = encode_rule(&rule);
        let (code, list) = fields(&encoded);
        assert_eq!(code, RULE_DESCRIPTION_CODE);
        assert_eq!(list[2], Value::String("red".into()));
        let (filter_code, filter) = fields(&list[0]);
        assert_eq!(filter_code, SQL_FILTER_CODE);
        assert_eq!(filter[0], Value::String("color = 'red'".into()));
        let (action_code, action) = fields(&list[1]);
        assert_eq!(action_code, SQL_RULE_ACTION_CODE);
        assert_eq!(action[0], Value::String("SET seen = 1".into()));
    }

    #[test]
    fn a_correlation_rule_keeps_system_fields_and_properties() {
        let mut properties = OrderedMap::new();
        properties.insert(Value::String("region".into()), Value::String("eu".into()));
        properties.insert(Value::String("tier".into()), Value::Int(2));
        let description = map(vec![(
            "correlation-filter",
            map(vec![
                ("correlation-id", Value::String("c-1".into())),
                ("label", Value::String("order".into())),
                ("to", Value::Null),
                ("properties", Value::Map(properties)),
            ]),
        )]);
        let rule = decode_rule("corr", &description).expect("valid");
        let Filter::Correlation(filter) = &rule.filter else {
            panic!("not a correlation filter")
        };
        assert_eq!(filter.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(filter.label.as_deref(), Some("order"));
        assert_eq!(filter.to, None);
        assert_eq!(filter.properties["tier"], busdrain_filter::Value::Long(2));
        let encoded = encode_rule(&rule);
        let (_, list) = fields(&encoded);
        let (code, filter) = fields(&list[0]);
        assert_eq!(code, CORRELATION_FILTER_CODE);
        assert_eq!(filter.len(), 9);
        assert_eq!(filter[4], Value::String("order".into()));
        assert!(matches!(&filter[8], Value::Map(m) if m.len() == 2));
        let (action_code, action) = fields(&list[1]);
        assert_eq!(action_code, EMPTY_RULE_ACTION_CODE);
        assert!(action.is_empty());
    }

    #[test]
    fn the_default_rule_is_a_true_filter() {
        let encoded = encode_rule(&Rule::default_rule());
        let (_, list) = fields(&encoded);
        assert_eq!(fields(&list[0]).0, TRUE_FILTER_CODE);
        assert_eq!(list[2], Value::String("$Default".into()));
    }

    #[test]
    fn a_malformed_filter_is_refused_with_its_position() {
        let description = map(vec![(
            "sql-filter",
            map(vec![(
                "expression",
                Value::String("color = = 'red'".into()),
            )]),
        )]);
        let error = decode_rule("bad", &description).expect_err("malformed");
        assert!(error.to_string().contains("position 9"), "{error}");
        assert!(error.to_string().contains("'bad'"), "{error}");
    }

    #[test]
    fn a_malformed_action_is_refused_with_its_position() {
        let description = map(vec![
            (
                "sql-filter",
                map(vec![("expression", Value::String("1=1".into()))]),
            ),
            (
                "sql-rule-action",
                map(vec![("expression", Value::String("SET = 1".into()))]),
            ),
        ]);
        let error = decode_rule("bad", &description).expect_err("malformed");
        assert!(error.to_string().contains("SQL action"), "{error}");
        assert!(error.to_string().contains("position 5"), "{error}");
    }

    #[test]
    fn descriptions_without_one_filter_are_refused() {
        assert!(decode_rule("r", &map(vec![])).is_err());
        assert!(decode_rule("r", &map(vec![("correlation-filter", map(vec![]))])).is_err());
        assert!(decode_rule("r", &Value::String("x".into())).is_err());
        let sql = map(vec![("expression", Value::String("1=1".into()))]);
        assert!(decode_rule("", &map(vec![("sql-filter", sql.clone())])).is_err());
        assert!(decode_rule(&"n".repeat(51), &map(vec![("sql-filter", sql)])).is_err());
    }
}
