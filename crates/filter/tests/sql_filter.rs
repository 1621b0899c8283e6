//! SQL filter parsing and evaluation through the public API.

use busdrain_filter::{MessageProperties, ParseOptions, SqlFilter, Value};

fn message() -> MessageProperties {
    let mut m = MessageProperties::default();
    m.system.message_id = Some("msg-1".into());
    m.system.correlation_id = Some("email".into());
    m.system.label = Some("the bus stops here".into());
    m.system.to = Some("Store5".into());
    m.system.content_type = Some("application/json".into());
    m.system.sequence_number = Some(42);
    m.system.enqueued_time_utc_ms = Some(1_700_000_000_000);
    m.system.time_to_live_ms = Some(60_000);
    m.system.delivery_count = Some(0);
    m.system.size = Some(512);
    for (k, v) in [
        ("color", Value::from("red")),
        ("quantity", Value::Long(10)),
        ("price", Value::Double(2.5)),
        ("priority", Value::from("high")),
        ("flag", Value::Bool(true)),
        ("nothing", Value::Null),
        ("Property With Space", Value::from("spaced")),
        ("HR-EmployeeID", Value::Long(7)),
        ("Contoso & Northwind", Value::from("quoted")),
        ("AND", Value::from("keyword")),
        ("when", Value::Timestamp(1_700_000_100_000)),
        ("pattern", Value::from("r%")),
        ("percent", Value::from("100%")),
    ] {
        m.user.insert(k.into(), v);
    }
    m
}

/// Evaluates `expression`; panics (test failure) if it does not parse or evaluate.
fn eval(expression: &str) -> bool {
    let filter = SqlFilter::parse(expression)
        .unwrap_or_else(|e| panic!("{expression:?} did not parse: {e}"));
    filter
        .evaluate(&message())
        .unwrap_or_else(|e| panic!("{expression:?} did not evaluate: {e}"))
}

fn assert_true(expressions: &[&str]) {
    for e in expressions {
        assert!(eval(e), "expected TRUE: {e}");
    }
}

fn assert_false(expressions: &[&str]) {
    for e in expressions {
        assert!(!eval(e), "expected no match: {e}");
    }
}

fn parse_error(expression: &str) -> busdrain_filter::SqlFilterError {
    match SqlFilter::parse(expression) {
        Ok(_) => panic!("{expression:?} should have been refused"),
        Err(e) => e,
    }
}

#[test]
fn comparison_operators() {
    assert_true(&[
        "quantity = 10",
        "quantity <> 9",
        "quantity != 9",
        "quantity < 11",
        "quantity <= 10",
        "quantity > 9",
        "quantity >= 10",
        "color = 'red'",
        "color <> 'blue'",
        "color < 's'",
        "flag = TRUE",
        "flag <> FALSE",
        "when > sys.EnqueuedTimeUtc",
    ]);
    assert_false(&[
        "quantity = 11",
        "quantity <> 10",
        "quantity < 10",
        "quantity > 10",
        "color = 'Red'",
        "flag = FALSE",
    ]);
}

#[test]
fn numeric_coercion_between_long_and_double() {
    assert_true(&[
        "quantity = 10.0",
        "price > 2",
        "price = 2.5",
        "price * 2 = 5",
        "quantity / 4 = 2",
        "quantity / 4.0 = 2.5",
        "quantity % 3 = 1",
        "1e1 = quantity",
        "101.5E5 = 10150000",
        "0.5E-2 = 0.005",
        ".5 = 0.5",
    ]);
}

#[test]
fn arithmetic_and_precedence() {
    assert_true(&[
        "1 + 2 * 3 = 7",
        "(1 + 2) * 3 = 9",
        "10 - 4 - 3 = 3",
        "100 / 10 / 5 = 2",
        "-quantity = -10",
        "- -quantity = 10",
        "+quantity = 10",
        "2 * -3 = -6",
        "quantity - 1 * 2 = 8",
        "7 % 4 * 2 = 6",
        "'a' + 'b' = 'ab'",
        "'n=' + quantity = 'n=10'",
        "sys.TimeToLive + sys.EnqueuedTimeUtc > sys.EnqueuedTimeUtc",
        "when - sys.EnqueuedTimeUtc > sys.TimeToLive",
        "when - sys.EnqueuedTimeUtc < sys.TimeToLive + sys.TimeToLive",
    ]);
}

#[test]
fn logical_precedence_not_and_or() {
    // AND binds tighter than OR; NOT tighter than AND.
    assert_true(&[
        "1 = 1 OR 1 = 0 AND 1 = 0",
        "NOT 1 = 0 AND 1 = 1",
        "NOT (1 = 1 AND 1 = 0)",
        "NOT 1 = 0 OR 1 = 0",
        "1 = 0 OR 1 = 0 OR 1 = 1",
        "1 = 1 AND 2 = 2 AND 3 = 3",
        "NOT NOT 1 = 1",
        "(1 = 0 OR 1 = 1) AND 2 = 2",
        "TRUE",
        "flag",
        "NOT FALSE",
    ]);
    assert_false(&[
        "(1 = 1 OR 1 = 0) AND 1 = 0",
        "NOT 1 = 1 OR 1 = 0",
        "NOT (1 = 0 OR 1 = 1)",
        "FALSE",
        "NOT flag",
    ]);
}

#[test]
fn keywords_and_system_names_are_case_insensitive() {
    assert_true(&[
        "sys.label like '%bus%'",
        "SYS.LABEL LIKE '%bus%'",
        "sys.Subject LIKE '%bus%'",
        "sys.messageid = 'msg-1'",
        "sys.correlationid like 'em%'",
        "Sys.CorrelationId = 'email' aNd user.color = 'red' Or false",
        "color IS not null",
        "exists(color)",
        "true",
    ]);
}

#[test]
fn every_system_property_is_readable() {
    assert_true(&[
        "sys.MessageId = 'msg-1'",
        "sys.CorrelationId = 'email'",
        "sys.To = 'Store5'",
        "sys.ContentType = 'application/json'",
        "sys.SequenceNumber = 42",
        "sys.EnqueuedTimeUtc IS NOT NULL",
        "sys.TimeToLive IS NOT NULL",
        "sys.DeliveryCount = 0",
        "sys.Size = 512",
        "sys.ReplyTo IS NULL",
        "sys.SessionId IS NULL",
        "sys.ReplyToSessionId IS NULL",
        "sys.PartitionKey IS NULL",
        "sys.ViaPartitionKey IS NULL",
        "sys.ScheduledEnqueueTimeUtc IS NULL",
        "sys.EnqueuedSequenceNumber IS NULL",
        "sys.ExpiresAtUtc IS NULL",
        "sys.LockedUntilUtc IS NULL",
        "sys.DeadLetterSource IS NULL",
        "NOT EXISTS(sys.SessionId)",
        "EXISTS(sys.MessageId)",
    ]);
}

#[test]
fn identifiers_scopes_delimited_and_quoted() {
    assert_true(&[
        "user.color = 'red'",
        "USER.color = 'red'",
        "[Property With Space] = 'spaced'",
        "[HR-EmployeeID] = 7",
        "user.[HR-EmployeeID] = 7",
        "\"Contoso & Northwind\" = 'quoted'",
        "[AND] = 'keyword'",
        "COLOR = 'red'",
        "property('color') = 'red'",
        "p('sys.Label') LIKE '%bus%'",
        "p('user.quantity') = 10",
        "p('col' + 'or') = 'red'",
    ]);
    // Function and scope names are only special where the grammar needs them.
    let mut m = message();
    for name in ["p", "property", "newid", "sys", "user", "größe"] {
        m.user.insert(name.into(), Value::Long(1));
    }
    for expression in [
        "p = 1",
        "property = 1",
        "newid = 1",
        "sys = 1",
        "user = 1",
        "größe = 1",
        "user.sys = 1",
    ] {
        let filter = SqlFilter::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        assert_eq!(filter.evaluate(&m), Ok(true), "{expression}");
    }
}

#[test]
fn missing_and_null_properties_are_unknown() {
    // Unknown never matches, and NOT unknown is still unknown.
    assert_false(&[
        "missing = 1",
        "missing <> 1",
        "NOT missing = 1",
        "missing > 0 OR missing <= 0",
        "nothing = nothing",
        "quantity = NULL",
        "quantity <> NULL",
        "NULL = NULL",
        "missing + 1 = 1",
        "-missing = 0",
        "missing LIKE '%'",
        "missing NOT LIKE 'x'",
        "missing IN ('a', 'b')",
        "missing NOT IN ('a', 'b')",
        "color LIKE missing",
        "color LIKE 'r%' ESCAPE missing",
        "EXISTS(missing)",
    ]);
    assert_true(&[
        "missing IS NULL",
        "nothing IS NULL",
        "NULL IS NULL",
        "color IS NOT NULL",
        "EXISTS(nothing)",
        "NOT EXISTS(missing)",
        "missing = 1 OR 1 = 1",
        "1 = 1 OR missing = 1",
        "NOT (missing = 1 AND 1 = 0)",
    ]);
}

#[test]
fn three_valued_truth_tables() {
    // T, F, U as expressions.
    let values = [
        ("1 = 1", Some(true)),
        ("1 = 0", Some(false)),
        ("missing = 1", None),
    ];
    for (left, l) in values {
        for (right, r) in values {
            let and = match (l, r) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            let or = match (l, r) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            let and_expr = format!("({left}) AND ({right})");
            let or_expr = format!("({left}) OR ({right})");
            assert_eq!(eval(&and_expr), and == Some(true), "{and_expr}");
            assert_eq!(eval(&or_expr), or == Some(true), "{or_expr}");
            // Unknown vs false is visible through NOT.
            assert_eq!(
                eval(&format!("NOT ({and_expr})")),
                and == Some(false),
                "NOT {and_expr}"
            );
            assert_eq!(
                eval(&format!("NOT ({or_expr})")),
                or == Some(false),
                "NOT {or_expr}"
            );
        }
    }
}

#[test]
fn in_lists() {
    assert_true(&[
        "color IN ('blue', 'red')",
        "color IN ('red')",
        "color NOT IN ('blue', 'green')",
        "quantity IN (1, 5, 10)",
        "quantity IN (10.0)",
        "quantity IN (5 + 5)",
        "sys.To IN ('Store5','Store6','Store7') OR priority = 'Store8'",
        "color IN (NULL, 'red')",
        "color NOT IN (NULL, 'blue')",
    ]);
    assert_false(&[
        "color IN ('Red', 'RED')",
        "color NOT IN ('red')",
        "quantity NOT IN (10)",
        "quantity IN (1, 2)",
    ]);
}

#[test]
fn like_patterns_and_escapes() {
    assert_true(&[
        "color LIKE 'red'",
        "color LIKE 'r%'",
        "color LIKE '%d'",
        "color LIKE '_e_'",
        "color LIKE '%'",
        "color NOT LIKE 'b%'",
        "sys.Label LIKE '%bus%'",
        "percent LIKE '100!%' ESCAPE '!'",
        "percent LIKE '100\\%' ESCAPE '\\'",
        "percent LIKE '%!%' ESCAPE '!'",
        "color LIKE pattern",
        "'r%' LIKE 'r!%' ESCAPE '!'",
        "'it''s' LIKE 'it''_'",
        "color LIKE 'r' + '%'",
    ]);
    assert_false(&[
        "color LIKE 'R%'",
        "color LIKE 're'",
        "color LIKE '__'",
        "percent LIKE '100!%' ESCAPE '!' AND '1000' LIKE '100!%' ESCAPE '!'",
        "color NOT LIKE '%'",
    ]);
}

#[test]
fn parameters_are_substituted() {
    let mut options = ParseOptions::default();
    options
        .parameters
        .insert("@color".into(), Value::from("red"));
    options.parameters.insert("limit".into(), Value::Long(5));
    options.parameters.insert("@on".into(), Value::Bool(true));
    let filter =
        SqlFilter::parse_with("color = @color AND quantity > @LIMIT AND @on", &options).unwrap();
    assert!(filter.evaluate(&message()).unwrap());
    let e = SqlFilter::parse_with("color = @other", &options).unwrap_err();
    assert_eq!(e.position, 9);
    assert!(e.message.contains("@other"), "{e}");
}

#[test]
fn newid_is_a_fresh_uuid() {
    assert_true(&["newid() <> newid()", "NEWID() IS NOT NULL"]);
}

#[test]
fn evaluation_errors_are_errors_not_panics() {
    let m = message();
    for expression in [
        "color = 1",
        "color > 1",
        "quantity / 0 = 1",
        "quantity % 0 = 1",
        "9223372036854775807 + quantity > 0",
        "color LIKE 'x' ESCAPE priority",
        "quantity LIKE 'x'",
        "color LIKE pattern ESCAPE '%'",
        "flag AND color",
        "NOT color",
        "-color = 1",
        "flag < TRUE",
        "p(quantity) = 1",
        "p('sys.' + 'Nope') = 1",
        "color",
    ] {
        let filter = SqlFilter::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        assert!(
            filter.evaluate(&m).is_err(),
            "{expression} should fail to evaluate"
        );
        assert!(!filter.matches(&m), "{expression} must not match");
    }
    // Doubles follow IEEE rules like C#: no error.
    assert_true(&["price / 0 > 1000000", "price / 0.0 > 1000000"]);
    let e = SqlFilter::parse("color = 1")
        .unwrap()
        .evaluate(&m)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "operator '=' cannot be applied to string and integer"
    );
}

#[test]
fn syntax_errors_carry_position_and_expectation() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "color = 'red' AND",
            18,
            "expected an expression after 'AND', found the end of the expression",
        ),
        (
            "color = 'red' AND OR x = 1",
            19,
            "expected an expression after 'AND', found 'OR'",
        ),
        (
            "",
            1,
            "expected an expression, found the end of the expression",
        ),
        (
            "color = ",
            9,
            "expected an expression after '=', found the end",
        ),
        (
            "(color = 'red'",
            15,
            "expected ')' to close the '(' at position 1",
        ),
        (
            "color = 'red')",
            14,
            "expected AND, OR or the end of the filter, found ')'",
        ),
        ("color = 'red", 9, "unterminated string constant"),
        ("[color = 'red'", 1, "unterminated delimited identifier"),
        ("a = 1 = 2", 7, "comparisons cannot be chained"),
        ("a IN 1", 6, "expected '(' after IN, found number 1"),
        ("a IN ()", 7, "expected an expression after '(', found ')'"),
        ("a IN (1, 2", 11, "expected ',' or ')' in the IN list"),
        ("a IS 1", 6, "expected NULL after IS, found number 1"),
        ("a IS NOT 1", 10, "expected NULL after IS NOT"),
        ("EXISTS a", 8, "expected '(' after EXISTS"),
        (
            "EXISTS(1)",
            8,
            "expected a property name in EXISTS, found number 1",
        ),
        ("sys.Nope = 1", 5, "sys.Nope is not a system property"),
        (
            "p('sys.Nope') = 1",
            3,
            "'sys.Nope' is not a system property",
        ),
        ("a LIKE 'x' ESCAPE 'ab'", 19, "single character"),
        (
            "a LIKE 'x!' ESCAPE '!'",
            8,
            "ends with its escape character",
        ),
        ("a LIKE 5", 8, "the LIKE pattern must be a string"),
        ("a + 1", 1, "a filter must be a condition"),
        ("'text'", 1, "a filter must be a condition"),
        ("1 AND a = 1", 1, "AND needs a condition on each side"),
        ("NOT 5", 5, "NOT needs a condition"),
        ("(a = 1) + 1 = 2", 1, "'+' needs values; found a condition"),
        (
            "a = 1 b = 2",
            7,
            "expected AND, OR or the end of the filter, found 'b'",
        ),
        (
            "AND = 1",
            1,
            "(a keyword; write [AND] for a property of that name)",
        ),
        ("a ! b", 3, "unexpected character '!'"),
        ("a = 1\n AND b = ", 16, "expected an expression after '='"),
        ("newid(1) = 1", 7, "expected ')' after newid("),
        (
            "a NOT BETWEEN 1",
            3,
            "expected AND, OR or the end of the filter, found 'NOT'",
        ),
    ];
    for (expression, position, message) in cases {
        let e = parse_error(expression);
        assert_eq!(e.position, *position, "{expression:?}: {e}");
        assert!(e.message.contains(message), "{expression:?}: got {e}");
    }
    let e = parse_error("color = 'red' AND");
    assert_eq!(
        e.to_string(),
        "syntax error at position 18: expected an expression after 'AND', found the end of the expression"
    );
    let e = parse_error("a = 1\n AND b = ");
    assert_eq!((e.line, e.column), (2, 10));
    assert!(e
        .to_string()
        .starts_with("syntax error at position 16 (line 2, column 10): "));
}

#[test]
fn length_and_depth_limits() {
    let long = format!("a = '{}'", "x".repeat(1100));
    let e = parse_error(&long);
    assert_eq!(e.position, 1025);
    assert!(e.message.contains("maximum is 1024"), "{e}");
    let exactly = format!("a = '{}'", "x".repeat(1024 - 6));
    assert_eq!(exactly.chars().count(), 1024);
    assert!(SqlFilter::parse(&exactly).is_ok());

    let options = ParseOptions {
        max_expression_chars: 10_000_000,
        ..ParseOptions::default()
    };
    // Hostile nesting is refused, not a stack overflow.
    for hostile in [
        format!("{}a = 1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}a = 1", "NOT ".repeat(100_000)),
        format!("a = {}1", "-".repeat(100_000)),
        format!("a = {}", "1 + ".repeat(100_000) + "1"),
        format!("a IN ({})", "(".repeat(100_000)),
    ] {
        let e = SqlFilter::parse_with(&hostile, &options).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e}");
    }
    // Long flat chains are fine: AND/OR chains do not nest.
    let chain = vec!["a = 1"; 5_000].join(" OR ");
    let filter = SqlFilter::parse_with(&chain, &options).unwrap();
    assert!(!filter.matches(&message()));
}

#[test]
fn expressions_seen_in_microsoft_docs_and_sdks() {
    let mut m = message();
    m.user.insert(
        "NServiceBus.EnclosedMessageTypes".into(),
        "Shop.Events+OrderPlaced, Shop".into(),
    );
    m.user.insert("myproperty".into(), "a".into());
    m.user.insert("test".into(), "a".into());
    m.user.insert("StoreId".into(), "Store8".into());
    m.user.insert("sender".into(), "joseph".into());
    m.user.insert("importance".into(), Value::Null);
    m.user.insert(
        "http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName".into(),
        "account".into(),
    );
    for expression in [
        "[NServiceBus.EnclosedMessageTypes] LIKE '%Shop.Events+OrderPlaced%'",
        "myproperty=test",
        "1=1",
        "sys.To IN ('Store5','Store6','Store7') OR StoreId = 'Store8'",
        "sys.To NOT IN ('Store1','Store2','Store3','Store4','Store6','Store7','Store8') OR StoreId NOT IN ('Store1','Store2')",
        "StoreId IN('Store1', 'Store8')",
        "sys.CorrelationId = 'email' AND sender = 'joseph' AND (importance IS NULL OR importance = 'high')",
        "\"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName\" = 'account'",
        "color='red' AND quantity=10",
        "user.color='red'",
    ] {
        let filter = SqlFilter::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        assert_eq!(filter.evaluate(&m), Ok(true), "{expression}");
    }
    assert_eq!(SqlFilter::parse("1=0").unwrap().evaluate(&m), Ok(false));
}
