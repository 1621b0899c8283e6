//! How a subscription's rules turn one message into zero, one or several copies.

use busdrain_filter::{
    route, CorrelationFilter, EvaluationError, Filter, MessageProperties, RoutedCopy, Rule,
    SqlFilter, SqlRuleAction, Value,
};

fn message(color: &str) -> MessageProperties {
    let mut m = MessageProperties::default();
    m.system.correlation_id = Some("high".into());
    m.user.insert("color".into(), color.into());
    m.user.insert("quantity".into(), Value::Long(10));
    m
}

fn sql_rule(name: &str, filter: &str, action: Option<&str>) -> Rule {
    Rule {
        name: name.into(),
        filter: Filter::Sql(SqlFilter::parse(filter).unwrap()),
        action: action.map(|a| SqlRuleAction::parse(a).unwrap()),
    }
}

#[test]
fn default_rule_selects_everything() {
    let routing = route(&[Rule::default_rule()], &message("red"));
    assert_eq!(routing.copies, vec![RoutedCopy::Original]);
    assert!(routing.failures.is_empty());
    assert_eq!(Rule::default_rule().name, "$Default");
}

#[test]
fn no_rules_or_no_match_selects_nothing() {
    assert!(route(&[], &message("red")).copies.is_empty());
    let rules = [
        Rule {
            name: "never".into(),
            filter: Filter::False,
            action: None,
        },
        sql_rule("blue", "color = 'blue'", None),
    ];
    assert!(route(&rules, &message("red")).copies.is_empty());
}

#[test]
fn rules_without_actions_yield_one_copy_and_each_action_rule_its_own() {
    // Five matching rules, two with actions: three copies (Service Bus's documented example).
    let rules = [
        sql_rule("a", "color = 'red'", None),
        Rule {
            name: "b".into(),
            filter: Filter::Correlation(CorrelationFilter::with_correlation_id("high")),
            action: None,
        },
        Rule {
            name: "c".into(),
            filter: Filter::True,
            action: None,
        },
        sql_rule("half", "quantity > 5", Some("SET quantity = quantity / 2")),
        sql_rule("tag", "1=1", Some("SET tagged = TRUE; REMOVE color")),
    ];
    let routing = route(&rules, &message("red"));
    assert!(routing.failures.is_empty());
    assert_eq!(routing.copies.len(), 3);
    assert_eq!(routing.copies[0], RoutedCopy::Original);
    let RoutedCopy::Modified {
        rule_name,
        properties,
    } = &routing.copies[1]
    else {
        panic!("expected a modified copy: {:?}", routing.copies[1]);
    };
    assert_eq!(rule_name, "half");
    assert_eq!(properties.user["quantity"], Value::Long(5));
    assert_eq!(properties.user["color"], Value::from("red"));
    let RoutedCopy::Modified {
        rule_name,
        properties,
    } = &routing.copies[2]
    else {
        panic!("expected a modified copy: {:?}", routing.copies[2]);
    };
    assert_eq!(rule_name, "tag");
    assert_eq!(properties.user["tagged"], Value::Bool(true));
    assert!(!properties.user.contains_key("color"));
}

#[test]
fn failing_rules_are_reported_and_select_nothing() {
    let rules = [
        sql_rule("bad-filter", "color > 1", None),
        sql_rule("bad-action", "1=1", Some("SET x = color * 2")),
        sql_rule("good", "color = 'red'", None),
    ];
    let routing = route(&rules, &message("red"));
    assert_eq!(routing.copies, vec![RoutedCopy::Original]);
    let names: Vec<_> = routing
        .failures
        .iter()
        .map(|f| f.rule_name.as_str())
        .collect();
    assert_eq!(names, ["bad-filter", "bad-action"]);
    assert!(matches!(
        routing.failures[0].error,
        EvaluationError::TypeMismatch { operator: ">", .. }
    ));
}

#[test]
fn filter_enum_evaluates_each_kind() {
    let m = message("red");
    assert!(Filter::True.matches(&m));
    assert!(!Filter::False.matches(&m));
    assert!(Filter::Correlation(CorrelationFilter::with_correlation_id("high")).matches(&m));
    assert!(!Filter::Correlation(CorrelationFilter::with_correlation_id("HIGH")).matches(&m));
    assert!(Filter::Sql(SqlFilter::parse("color = 'red'").unwrap()).matches(&m));
    assert!(Filter::Sql(SqlFilter::parse("color > 1").unwrap())
        .evaluate(&m)
        .is_err());
}
