//! Source expressions: which part of a message a column's value comes from.
//!
//! Grammar (parsed once, at config load):
//! - `body` — the whole JSON body; `body.a.b[0].c` — a path into it; `body["odd key"]` for keys
//!   that are not plain identifiers.
//! - `property.<name>` — an application property.
//! - a broker property: `message_id`, `sequence_number`, `enqueued_time`, `session_id`,
//!   `correlation_id`, `subject`, `content_type`, `partition_key`, `delivery_count`.
//! - `const:<literal>` — a constant; the literal is read as JSON when it parses as JSON
//!   (`const:42`, `const:[1,2]`, `const:"x"`), otherwise as text (`const:abc`).
//! - `now()` — the time the row is written.

use std::fmt;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A broker-assigned or sender-set message property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerProperty {
    MessageId,
    SequenceNumber,
    EnqueuedTime,
    SessionId,
    CorrelationId,
    Subject,
    ContentType,
    PartitionKey,
    DeliveryCount,
}

impl BrokerProperty {
    pub const ALL: [(&'static str, BrokerProperty); 9] = [
        ("message_id", BrokerProperty::MessageId),
        ("sequence_number", BrokerProperty::SequenceNumber),
        ("enqueued_time", BrokerProperty::EnqueuedTime),
        ("session_id", BrokerProperty::SessionId),
        ("correlation_id", BrokerProperty::CorrelationId),
        ("subject", BrokerProperty::Subject),
        ("content_type", BrokerProperty::ContentType),
        ("partition_key", BrokerProperty::PartitionKey),
        ("delivery_count", BrokerProperty::DeliveryCount),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceExpr {
    /// A path into the JSON body (empty = the whole body).
    Body(Vec<PathSegment>),
    Property(String),
    Broker(BrokerProperty),
    Const(serde_json::Value),
    Now,
}

impl fmt::Display for SourceExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceExpr::Body(path) => {
                f.write_str("body")?;
                for seg in path {
                    match seg {
                        PathSegment::Key(k) if is_identifier(k) => write!(f, ".{k}")?,
                        PathSegment::Key(k) => write!(f, "[{k:?}]")?,
                        PathSegment::Index(i) => write!(f, "[{i}]")?,
                    }
                }
                Ok(())
            }
            SourceExpr::Property(name) => write!(f, "property.{name}"),
            SourceExpr::Broker(p) => f.write_str(p.name()),
            SourceExpr::Const(v) => write!(f, "const:{v}"),
            SourceExpr::Now => f.write_str("now()"),
        }
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl SourceExpr {
    /// Parses an expression; the error says what was expected.
    pub fn parse(text: &str) -> Result<SourceExpr, String> {
        let trimmed = text.trim();
        if let Some(literal) = trimmed.strip_prefix("const:") {
            let value = serde_json::from_str(literal)
                .unwrap_or_else(|_| serde_json::Value::String(literal.to_owned()));
            return Ok(SourceExpr::Const(value));
        }
        if trimmed == "now()" {
            return Ok(SourceExpr::Now);
        }
        if let Some(name) = trimmed.strip_prefix("property.") {
            if name.is_empty() {
                return Err("`property.` needs a property name, e.g. `property.tenant`".into());
            }
            return Ok(SourceExpr::Property(name.to_owned()));
        }
        if trimmed == "body" || trimmed.starts_with("body.") || trimmed.starts_with("body[") {
            return parse_body_path(&trimmed[4..]).map(SourceExpr::Body);
        }
        if let Some((_, p)) = BrokerProperty::ALL.iter().find(|(n, _)| *n == trimmed) {
            return Ok(SourceExpr::Broker(*p));
        }
        Err(format!(
            "unknown source {trimmed:?}: expected `body.<path>`, `property.<name>`, one of {}, \
             `const:<literal>` or `now()`",
            BrokerProperty::ALL
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Parses what follows `body`: `.key`, `[3]`, `["key"]`, repeated.
fn parse_body_path(mut rest: &str) -> Result<Vec<PathSegment>, String> {
    let mut path = Vec::new();
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let key = &after_dot[..end];
            if key.is_empty() {
                return Err("empty key in body path (two dots, or a trailing dot)".into());
            }
            path.push(PathSegment::Key(key.to_owned()));
            rest = &after_dot[end..];
        } else if let Some(after_bracket) = rest.strip_prefix('[') {
            let close = after_bracket.find(']').ok_or("unclosed `[` in body path")?;
            let inside = after_bracket[..close].trim();
            if inside.starts_with('"') {
                let key: String = serde_json::from_str(inside)
                    .map_err(|_| format!("invalid quoted key {inside} in body path"))?;
                path.push(PathSegment::Key(key));
            } else {
                let index = inside.parse::<usize>().map_err(|_| {
                    format!("`[{inside}]` in body path: expected an array index or a quoted key")
                })?;
                path.push(PathSegment::Index(index));
            }
            rest = &after_bracket[close + 1..];
        } else {
            return Err(format!("unexpected {rest:?} in body path"));
        }
    }
    Ok(path)
}

/// Follows a path into a JSON value; `None` when a step is missing.
pub fn resolve<'v>(
    root: &'v serde_json::Value,
    path: &[PathSegment],
) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        PathSegment::Key(k) => v.as_object()?.get(k),
        PathSegment::Index(i) => v.as_array()?.get(*i),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> PathSegment {
        PathSegment::Key(k.into())
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(SourceExpr::parse("body"), Ok(SourceExpr::Body(vec![])));
        assert_eq!(
            SourceExpr::parse("body.a.b[0].c"),
            Ok(SourceExpr::Body(vec![
                key("a"),
                key("b"),
                PathSegment::Index(0),
                key("c")
            ]))
        );
        assert_eq!(
            SourceExpr::parse(r#"body["odd key"][2]"#),
            Ok(SourceExpr::Body(vec![
                key("odd key"),
                PathSegment::Index(2)
            ]))
        );
        assert_eq!(
            SourceExpr::parse("property.tenant"),
            Ok(SourceExpr::Property("tenant".into()))
        );
        assert_eq!(
            SourceExpr::parse("enqueued_time"),
            Ok(SourceExpr::Broker(BrokerProperty::EnqueuedTime))
        );
        assert_eq!(SourceExpr::parse("now()"), Ok(SourceExpr::Now));
        assert_eq!(
            SourceExpr::parse("const:42"),
            Ok(SourceExpr::Const(json!(42)))
        );
        assert_eq!(
            SourceExpr::parse("const:abc"),
            Ok(SourceExpr::Const(json!("abc")))
        );
        assert_eq!(
            SourceExpr::parse("const:[1,2]"),
            Ok(SourceExpr::Const(json!([1, 2])))
        );
    }

    #[test]
    fn every_broker_property_round_trips() {
        for (name, prop) in BrokerProperty::ALL {
            assert_eq!(SourceExpr::parse(name), Ok(SourceExpr::Broker(prop)));
            assert_eq!(SourceExpr::Broker(prop).to_string(), name);
        }
    }

    #[test]
    fn rejects_malformed_expressions() {
        for bad in [
            "bdy.a",
            "body..a",
            "body.a.",
            "body[x]",
            "body[1",
            "property.",
            "sequence",
        ] {
            assert!(SourceExpr::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn display_is_parseable() {
        for text in [
            "body.a[1].b",
            r#"body["x y"]"#,
            "property.p",
            "now()",
            "const:42",
        ] {
            let parsed = SourceExpr::parse(text).expect("valid");
            assert_eq!(SourceExpr::parse(&parsed.to_string()), Ok(parsed));
        }
    }

    #[test]
    fn resolves_nested_paths() {
        let doc = json!({"a": {"b": [{"c": 7}]}});
        let SourceExpr::Body(path) = SourceExpr::parse("body.a.b[0].c").expect("valid") else {
            panic!("not a body path");
        };
        assert_eq!(resolve(&doc, &path), Some(&json!(7)));
        assert_eq!(resolve(&doc, &[key("a"), key("x")]), None);
        assert_eq!(
            resolve(&doc, &[key("a"), key("b"), PathSegment::Index(5)]),
            None
        );
        assert_eq!(resolve(&doc, &[key("a"), PathSegment::Index(0)]), None);
    }
}
