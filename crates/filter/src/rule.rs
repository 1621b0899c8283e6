//! Rules (a filter plus an optional action) and how a subscription's rules route a message.

use crate::correlation::CorrelationFilter;
use crate::error::EvaluationError;
use crate::message::{MessageProperties, MessageView};
use crate::sql::{SqlFilter, SqlRuleAction};

/// The name of the rule every new subscription gets (a `True` filter, no action).
pub const DEFAULT_RULE_NAME: &str = "$Default";

/// A rule's filter.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Filter {
    /// Matches every message (`TrueRuleFilter`, SQL `1=1`).
    True,
    /// Matches no message (`FalseRuleFilter`, SQL `1=0`).
    False,
    Correlation(CorrelationFilter),
    Sql(SqlFilter),
}

impl Filter {
    pub fn evaluate(&self, message: &impl MessageView) -> Result<bool, EvaluationError> {
        match self {
            Filter::True => Ok(true),
            Filter::False => Ok(false),
            Filter::Correlation(filter) => Ok(filter.matches(message)),
            Filter::Sql(filter) => filter.evaluate(message),
        }
    }

    /// Like [`Filter::evaluate`], with an evaluation error counting as no match.
    pub fn matches(&self, message: &impl MessageView) -> bool {
        self.evaluate(message).unwrap_or(false)
    }
}

/// A subscription rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    pub name: String,
    pub filter: Filter,
    pub action: Option<SqlRuleAction>,
}

impl Rule {
    /// `$Default`: the True filter without an action.
    pub fn default_rule() -> Rule {
        Rule {
            name: DEFAULT_RULE_NAME.to_owned(),
            filter: Filter::True,
            action: None,
        }
    }
}

/// One message a subscription receives for one topic message.
#[derive(Debug, Clone, PartialEq)]
pub enum RoutedCopy {
    /// Selected by one or more rules without an action: the message as sent.
    Original,
    /// Selected by a rule with an action: the properties after that action.
    /// (Service Bus documents a `RuleName` property on such copies; adding it is the
    /// broker's choice.)
    Modified {
        rule_name: String,
        properties: Box<MessageProperties>,
    },
}

/// A rule whose filter or action could not be evaluated for this message.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFailure {
    pub rule_name: String,
    pub error: EvaluationError,
}

/// What a subscription's rules make of one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    /// Empty when no rule matched.
    pub copies: Vec<RoutedCopy>,
    /// Rules that failed; they select nothing. A subscription with
    /// `DeadLetteringOnFilterEvaluationExceptions` dead-letters the message instead.
    pub failures: Vec<RuleFailure>,
}

/// Routes a message through a subscription's rules, as Service Bus does: all matching rules
/// without an action together yield one unmodified copy; each matching rule with an action
/// yields its own modified copy. Copies come in rule order, the unmodified one first.
pub fn route(rules: &[Rule], message: &MessageProperties) -> Routing {
    let mut routing = Routing::default();
    let mut original = false;
    let mut modified = Vec::new();
    for rule in rules {
        match rule.filter.evaluate(message) {
            Ok(false) => {}
            Ok(true) => match &rule.action {
                None => original = true,
                Some(action) => {
                    let mut properties = message.clone();
                    match action.apply(&mut properties) {
                        Ok(()) => modified.push(RoutedCopy::Modified {
                            rule_name: rule.name.clone(),
                            properties: Box::new(properties),
                        }),
                        Err(error) => routing.failures.push(RuleFailure {
                            rule_name: rule.name.clone(),
                            error,
                        }),
                    }
                }
            },
            Err(error) => routing.failures.push(RuleFailure {
                rule_name: rule.name.clone(),
                error,
            }),
        }
    }
    if original {
        routing.copies.push(RoutedCopy::Original);
    }
    routing.copies.extend(modified);
    routing
}
