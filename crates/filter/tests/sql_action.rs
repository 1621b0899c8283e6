//! SQL rule actions: SET / REMOVE applied to a message's properties.

use busdrain_filter::{EvaluationError, MessageProperties, SqlRuleAction, Value};

fn message() -> MessageProperties {
    let mut m = MessageProperties::default();
    m.system.correlation_id = Some("high".into());
    m.system.label = Some("red".into());
    m.system.sequence_number = Some(7);
    m.user.insert("quantity".into(), Value::Long(10));
    m.user.insert("price".into(), Value::Double(2.5));
    m.user.insert("priority".into(), "high".into());
    m.user.insert("Color".into(), "red".into());
    m
}

fn apply(action: &str) -> MessageProperties {
    let action = SqlRuleAction::parse(action).unwrap_or_else(|e| panic!("{action:?}: {e}"));
    let mut m = message();
    action
        .apply(&mut m)
        .unwrap_or_else(|e| panic!("{action}: {e}"));
    m
}

#[test]
fn set_creates_and_updates_user_properties() {
    let m = apply("SET quantity = quantity / 2; SET source = 'routed'");
    assert_eq!(m.user["quantity"], Value::Long(5));
    assert_eq!(m.user["source"], Value::from("routed"));
    assert_eq!(m.user["priority"], Value::from("high"));
}

#[test]
fn statements_run_in_order_and_see_earlier_ones() {
    let m = apply("SET a = 1; SET b = a + 1; SET a = b * 10");
    assert_eq!(m.user["a"], Value::Long(20));
    assert_eq!(m.user["b"], Value::Long(2));
}

#[test]
fn semicolons_are_optional_separators() {
    for action in [
        "SET a = 1 SET b = 2",
        "SET a = 1; SET b = 2;",
        ";;SET a = 1;;SET b = 2;;",
        "set a = 1\nset b = 2",
    ] {
        let m = apply(action);
        assert_eq!(m.user["a"], Value::Long(1), "{action}");
        assert_eq!(m.user["b"], Value::Long(2), "{action}");
    }
}

#[test]
fn remove_deletes_user_and_clears_system_properties() {
    let m = apply("REMOVE priority; REMOVE missing; REMOVE sys.Label");
    assert!(!m.user.contains_key("priority"));
    assert_eq!(m.system.label, None);
    assert_eq!(m.system.correlation_id.as_deref(), Some("high"));
}

#[test]
fn set_system_properties() {
    let m = apply(
        "SET sys.CorrelationId = 'low'; SET sys.Subject = sys.Label + '-copy'; SET sys.To = color",
    );
    assert_eq!(m.system.correlation_id.as_deref(), Some("low"));
    assert_eq!(m.system.label.as_deref(), Some("red-copy"));
    assert_eq!(
        m.system.to.as_deref(),
        Some("red"),
        "user lookup ignores case"
    );
    let m = apply("SET sys.MessageId = newid()");
    let id = m.system.message_id.unwrap_or_default();
    assert_eq!(id.len(), 36, "{id}");
}

#[test]
fn names_match_existing_properties_ignoring_case() {
    let m = apply("SET color = 'blue'; REMOVE PRICE");
    assert_eq!(m.user["Color"], Value::from("blue"));
    assert!(!m.user.contains_key("color"));
    assert!(!m.user.contains_key("price"));
}

#[test]
fn implicit_conversion_keeps_a_double_property_double() {
    let m = apply("SET price = 3; SET quantity = 2.5");
    assert_eq!(m.user["price"], Value::Double(3.0));
    assert_eq!(m.user["quantity"], Value::Double(2.5));
}

#[test]
fn unknown_values_set_null() {
    let m = apply("SET copy = missing; SET sum = missing + 1");
    assert_eq!(m.user["copy"], Value::Null);
    assert_eq!(m.user["sum"], Value::Null);
}

#[test]
fn failures_leave_the_message_unchanged() {
    let action = SqlRuleAction::parse("SET a = 1; SET b = priority * 2").unwrap();
    let mut m = message();
    let err = action.apply(&mut m).unwrap_err();
    assert_eq!(
        err,
        EvaluationError::TypeMismatch {
            operator: "*",
            left: "string",
            right: "integer"
        }
    );
    assert_eq!(m, message(), "all or nothing");
    let action = SqlRuleAction::parse("SET sys.Label = 5").unwrap();
    assert!(action.apply(&mut m).is_err());
    assert_eq!(m, message());
}

#[test]
fn syntax_errors() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "",
            1,
            "expected SET or REMOVE, found the end of the expression",
        ),
        ("UPDATE a = 1", 1, "expected SET or REMOVE, found 'UPDATE'"),
        ("SET = 1", 5, "expected a property name in SET, found '='"),
        (
            "SET a 1",
            7,
            "expected '=' after the property in SET, found number 1",
        ),
        ("SET a =", 8, "expected an expression after '='"),
        (
            "SET a = 1 2",
            11,
            "expected ';' or the end of the action, found number 2",
        ),
        ("REMOVE", 7, "expected a property name in REMOVE"),
        (
            "SET sys.SequenceNumber = 1",
            5,
            "sys.SequenceNumber is assigned by the broker",
        ),
        (
            "REMOVE sys.EnqueuedTimeUtc",
            8,
            "cannot be changed by REMOVE",
        ),
        ("SET sys.Bogus = 1", 9, "sys.Bogus is not a system property"),
        (
            "SET a = (1",
            11,
            "expected ')' to close the '(' at position 9",
        ),
    ];
    for (action, position, message) in cases {
        let e = SqlRuleAction::parse(action).expect_err(action);
        assert_eq!(e.position, *position, "{action:?}: {e}");
        assert!(e.message.contains(message), "{action:?}: got {e}");
    }
    let too_many = vec!["SET a = 1"; 33].join("; ");
    let e = SqlRuleAction::parse(&too_many).unwrap_err();
    assert!(e.message.contains("at most 32 statements"), "{e}");
    assert!(SqlRuleAction::parse(&vec!["SET a = 1"; 32].join("; ")).is_ok());
}

#[test]
fn expression_text_is_kept() {
    let text = "SET a = 1; REMOVE b";
    let action = SqlRuleAction::parse(text).unwrap();
    assert_eq!(action.expression(), text);
    assert_eq!(action.to_string(), text);
}
