//! Rules survive a serialize / deserialize round trip (the broker stores them durably).

use busdrain_filter::{
    CorrelationFilter, Filter, MessageProperties, ParseOptions, Rule, SqlFilter, SqlRuleAction,
    Value,
};

#[test]
fn rules_round_trip_and_still_evaluate() {
    let mut options = ParseOptions::default();
    options.parameters.insert("@min".into(), Value::Long(5));
    let mut correlation = CorrelationFilter::with_correlation_id("high");
    correlation
        .properties
        .insert("price".into(), Value::Double(2.5));
    correlation
        .properties
        .insert("id".into(), Value::Uuid(uuid::Uuid::nil()));
    let rules = vec![
        Rule::default_rule(),
        Rule {
            name: "sql".into(),
            filter: Filter::Sql(SqlFilter::parse_with("quantity > @min", &options).unwrap()),
            action: Some(SqlRuleAction::parse("SET quantity = quantity / 2").unwrap()),
        },
        Rule {
            name: "correlation".into(),
            filter: Filter::Correlation(correlation),
            action: None,
        },
        Rule {
            name: "none".into(),
            filter: Filter::False,
            action: None,
        },
    ];
    let json = serde_json::to_string(&rules).unwrap();
    let back: Vec<Rule> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rules);

    let mut m = MessageProperties::default();
    m.user.insert("quantity".into(), Value::Long(10));
    assert!(back[1].filter.matches(&m));
    m.user.insert("quantity".into(), Value::Long(4));
    assert!(!back[1].filter.matches(&m));
}

#[test]
fn a_stored_expression_that_no_longer_parses_is_an_error() {
    let json = r#"{"Sql":{"expression":"a = ","parameters":{}}}"#;
    let error = serde_json::from_str::<Filter>(json).unwrap_err();
    assert!(
        error.to_string().contains("syntax error at position 5"),
        "{error}"
    );
}
