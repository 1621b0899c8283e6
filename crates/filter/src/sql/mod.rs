//! The SQL filter and rule-action language of Service Bus subscription rules.
//!
//! Grammar (Microsoft's "SQL filter syntax" / "SQL rule action syntax"), see the crate README.

mod ast;
mod eval;
mod lexer;
mod like;
mod parser;

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{EvaluationError, SqlFilterError};
use crate::message::{MessageProperties, MessageView};
use crate::value::Value;
use ast::{Expr, PropertyRef, Statement};

/// Limits and parameters for parsing filters and actions.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseOptions {
    /// Longest accepted expression, in characters. Service Bus allows 1024.
    pub max_expression_chars: usize,
    /// Deepest accepted nesting (parentheses, NOT, unary signs, operator chains). Bounds the
    /// recursion of parsing and evaluation, so hostile input cannot overflow the stack.
    pub max_depth: usize,
    /// Most statements in one action (the Microsoft emulator allows 32 per action).
    pub max_action_statements: usize,
    /// Values of `@name` parameters (keys with or without the `@`, matched ignoring case).
    pub parameters: BTreeMap<String, Value>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_expression_chars: 1024,
            max_depth: 128,
            max_action_statements: 32,
            parameters: BTreeMap::new(),
        }
    }
}

/// A parsed SQL filter (`SqlRuleFilter`).
///
/// It serializes as its text and parameters and is parsed again
/// (with the default limits) when deserialized.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "StoredExpression", into = "StoredExpression")]
pub struct SqlFilter {
    expression: String,
    parameters: BTreeMap<String, Value>,
    root: Expr,
}

impl SqlFilter {
    /// Parses with the default limits and no parameters.
    pub fn parse(expression: &str) -> Result<SqlFilter, SqlFilterError> {
        Self::parse_with(expression, &ParseOptions::default())
    }

    pub fn parse_with(
        expression: &str,
        options: &ParseOptions,
    ) -> Result<SqlFilter, SqlFilterError> {
        Ok(SqlFilter {
            expression: expression.to_owned(),
            parameters: options.parameters.clone(),
            root: parser::parse_filter(expression, options)?,
        })
    }

    /// The expression text as given (what `$management` enumerate-rules returns).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The `@parameter` values it was parsed with.
    pub fn parameters(&self) -> &BTreeMap<String, Value> {
        &self.parameters
    }

    /// `Ok(true)` when the condition is TRUE; FALSE and unknown are `Ok(false)`.
    pub fn evaluate(&self, message: &impl MessageView) -> Result<bool, EvaluationError> {
        match eval::evaluate(&self.root, message)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(EvaluationError::NotBoolean {
                context: "a filter",
                found: other.type_name(),
            }),
        }
    }

    /// Like [`SqlFilter::evaluate`], with an evaluation error counting as no match.
    pub fn matches(&self, message: &impl MessageView) -> bool {
        self.evaluate(message).unwrap_or(false)
    }
}

/// Two filters are equal when their expression text is.
impl PartialEq for SqlFilter {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl fmt::Display for SqlFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// A parsed SQL rule action (`SqlRuleAction`): `SET` / `REMOVE` statements.
///
/// Serializes like [`SqlFilter`]: as text and parameters, parsed again when deserialized.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "StoredExpression", into = "StoredExpression")]
pub struct SqlRuleAction {
    expression: String,
    parameters: BTreeMap<String, Value>,
    statements: Vec<Statement>,
}

impl SqlRuleAction {
    pub fn parse(expression: &str) -> Result<SqlRuleAction, SqlFilterError> {
        Self::parse_with(expression, &ParseOptions::default())
    }

    pub fn parse_with(
        expression: &str,
        options: &ParseOptions,
    ) -> Result<SqlRuleAction, SqlFilterError> {
        Ok(SqlRuleAction {
            expression: expression.to_owned(),
            parameters: options.parameters.clone(),
            statements: parser::parse_action(expression, options)?,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Runs the statements in order, each seeing the effect of the previous ones. All or
    /// nothing: on an error `message` is left as it was.
    ///
    /// `SET` on an existing user property keeps its name's spelling and, as the "implicit
    /// conversion" Service Bus documents, turns an integer result into a double when the
    /// property held a double. A result of unknown sets the property to NULL.
    pub fn apply(&self, message: &mut MessageProperties) -> Result<(), EvaluationError> {
        let mut working = message.clone();
        for statement in &self.statements {
            match statement {
                Statement::Set { target, value } => {
                    let value = eval::evaluate(value, &working)?;
                    assign(&mut working, target, value)?;
                }
                Statement::Remove(PropertyRef::System(property)) => {
                    working.system.set(*property, Value::Null)?;
                }
                Statement::Remove(PropertyRef::User(name)) => {
                    if let Some(key) = working.user_key(name).map(str::to_owned) {
                        working.user.remove(&key);
                    }
                }
            }
        }
        *message = working;
        Ok(())
    }
}

fn assign(
    message: &mut MessageProperties,
    target: &PropertyRef,
    value: Value,
) -> Result<(), EvaluationError> {
    match target {
        PropertyRef::System(property) => message.system.set(*property, value),
        PropertyRef::User(name) => {
            match message.user_key(name).map(str::to_owned) {
                Some(key) => {
                    let value = match (message.user.get(&key), value) {
                        (Some(Value::Double(_)), Value::Long(v)) => Value::Double(v as f64),
                        (_, value) => value,
                    };
                    message.user.insert(key, value);
                }
                None => {
                    message.user.insert(name.clone(), value);
                }
            }
            Ok(())
        }
    }
}

impl PartialEq for SqlRuleAction {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl fmt::Display for SqlRuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// The stored form of a [`SqlFilter`] or [`SqlRuleAction`].
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredExpression {
    expression: String,
    parameters: BTreeMap<String, Value>,
}

impl StoredExpression {
    fn options(&self) -> ParseOptions {
        ParseOptions {
            parameters: self.parameters.clone(),
            ..ParseOptions::default()
        }
    }
}

impl TryFrom<StoredExpression> for SqlFilter {
    type Error = SqlFilterError;

    fn try_from(stored: StoredExpression) -> Result<Self, Self::Error> {
        SqlFilter::parse_with(&stored.expression, &stored.options())
    }
}

impl From<SqlFilter> for StoredExpression {
    fn from(filter: SqlFilter) -> Self {
        StoredExpression {
            expression: filter.expression,
            parameters: filter.parameters,
        }
    }
}

impl TryFrom<StoredExpression> for SqlRuleAction {
    type Error = SqlFilterError;

    fn try_from(stored: StoredExpression) -> Result<Self, Self::Error> {
        SqlRuleAction::parse_with(&stored.expression, &stored.options())
    }
}

impl From<SqlRuleAction> for StoredExpression {
    fn from(action: SqlRuleAction) -> Self {
        StoredExpression {
            expression: action.expression,
            parameters: action.parameters,
        }
    }
}
