//! Evaluation with SQL three-valued logic: `Value::Null` is *unknown*, comparisons and
//! arithmetic with an unknown operand are unknown, and AND / OR follow the Service Bus truth
//! tables (F AND U = F, T OR U = T, otherwise U).

use uuid::Uuid;

use crate::error::EvaluationError;
use crate::message::MessageView;
use crate::sql::ast::{Expr, LikeSource, PropertyRef};
use crate::sql::like::{escape_char, LikePattern};
use crate::value::{arithmetic, compare, negate, unary_plus, ComparisonOp, Value};

/// Reads a property; `None` when the message does not have it.
pub(crate) fn read(property: &PropertyRef, message: &dyn MessageView) -> Option<Value> {
    match property {
        PropertyRef::System(p) => message.system_property(*p),
        PropertyRef::User(name) => message.user_property(name),
    }
}

/// Evaluates an expression; recursion depth is bounded by the parser's depth limit.
pub(crate) fn evaluate(expr: &Expr, message: &dyn MessageView) -> Result<Value, EvaluationError> {
    match expr {
        Expr::Constant(value) => Ok(value.clone()),
        Expr::Property(property) => Ok(read(property, message).unwrap_or(Value::Null)),
        Expr::PropertyByName(name) => match evaluate(name, message)? {
            Value::Null => Ok(Value::Null),
            Value::String(name) => {
                let property = PropertyRef::from_qualified_name(&name)
                    .ok_or(EvaluationError::UnknownSystemProperty(name))?;
                Ok(read(&property, message).unwrap_or(Value::Null))
            }
            other => Err(EvaluationError::NotString {
                context: "property(name)",
                found: other.type_name(),
            }),
        },
        Expr::NewId => Ok(Value::Uuid(Uuid::new_v4())),
        Expr::Negate(operand) => negate(&evaluate(operand, message)?),
        Expr::UnaryPlus(operand) => unary_plus(&evaluate(operand, message)?),
        Expr::Not(operand) => match evaluate(operand, message)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            Value::Null => Ok(Value::Null),
            other => Err(not_boolean("NOT", &other)),
        },
        Expr::Arithmetic { op, left, right } => {
            arithmetic(*op, &evaluate(left, message)?, &evaluate(right, message)?)
        }
        Expr::Comparison { op, left, right } => {
            compare(*op, &evaluate(left, message)?, &evaluate(right, message)?)
        }
        Expr::And(items) => logical(items, message, "AND", false),
        Expr::Or(items) => logical(items, message, "OR", true),
        Expr::IsNull { operand, negated } => Ok(Value::Bool(
            evaluate(operand, message)?.is_null() != *negated,
        )),
        Expr::In {
            operand,
            list,
            negated,
        } => {
            let value = evaluate(operand, message)?;
            if value.is_null() {
                return Ok(Value::Null);
            }
            for item in list {
                let candidate = evaluate(item, message)?;
                if compare(ComparisonOp::Equal, &value, &candidate)? == Value::Bool(true) {
                    return Ok(Value::Bool(!negated));
                }
            }
            Ok(Value::Bool(*negated))
        }
        Expr::Like {
            operand,
            pattern,
            negated,
        } => {
            let text = match evaluate(operand, message)? {
                Value::Null => return Ok(Value::Null),
                Value::String(text) => text,
                other => return Err(not_string("LIKE", &other)),
            };
            let matched = match pattern {
                LikeSource::Compiled(compiled) => compiled.matches(&text),
                LikeSource::Dynamic { pattern, escape } => {
                    let pattern = match evaluate(pattern, message)? {
                        Value::Null => return Ok(Value::Null),
                        Value::String(pattern) => pattern,
                        other => return Err(not_string("the LIKE pattern", &other)),
                    };
                    let escape = match escape {
                        None => None,
                        Some(escape) => match evaluate(escape, message)? {
                            Value::Null => return Ok(Value::Null),
                            Value::String(escape) => Some(escape_char(&escape)?),
                            other => return Err(not_string("the LIKE escape", &other)),
                        },
                    };
                    LikePattern::compile(&pattern, escape)?.matches(&text)
                }
            };
            Ok(Value::Bool(matched != *negated))
        }
        Expr::Exists(property) => Ok(Value::Bool(read(property, message).is_some())),
    }
}

/// AND (`decisive` = false) or OR (`decisive` = true): the first operand equal to
/// `decisive` settles it; otherwise any unknown makes the result unknown.
fn logical(
    items: &[Expr],
    message: &dyn MessageView,
    name: &'static str,
    decisive: bool,
) -> Result<Value, EvaluationError> {
    let mut unknown = false;
    for item in items {
        match evaluate(item, message)? {
            Value::Bool(b) if b == decisive => return Ok(Value::Bool(decisive)),
            Value::Bool(_) => {}
            Value::Null => unknown = true,
            other => return Err(not_boolean(name, &other)),
        }
    }
    Ok(if unknown {
        Value::Null
    } else {
        Value::Bool(!decisive)
    })
}

fn not_boolean(context: &'static str, found: &Value) -> EvaluationError {
    EvaluationError::NotBoolean {
        context,
        found: found.type_name(),
    }
}

fn not_string(context: &'static str, found: &Value) -> EvaluationError {
    EvaluationError::NotString {
        context,
        found: found.type_name(),
    }
}
