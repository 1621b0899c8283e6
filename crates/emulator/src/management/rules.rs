//! Rule operations on a subscription's `$management`: `add-rule`, `remove-rule`,
//! `enumerate-rules`. The broker keeps rules durably; this file only translates.
//!
//! A malformed rule (SQL syntax error, no filter, an empty correlation filter) is answered
//! `400 com.microsoft:argument-error` with the reason (for SQL: the position) and changes
//! nothing.

use serde_amqp::primitives::OrderedMap;
use serde_amqp::Value;

use super::args::{as_i64, as_text, optional, required};
use super::rule_description::{check_rule_name, decode_rule, encode_rule};
use super::{ManagementContext, OperationError};
use busdrain_broker::BrokerError;

use crate::bridge::{ARGUMENT_ERROR, NOT_FOUND};
use crate::request::{Request, Response};

pub(crate) async fn add_rule(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let name = as_text(required(request, "rule-name")?, "rule-name")?;
    let description = required(request, "rule-description")?;
    let rule = match decode_rule(&name, description) {
        Ok(rule) => rule,
        Err(error) => return Ok(Response::error(400, ARGUMENT_ERROR, error.to_string())),
    };
    ctx.entity.add_rule(rule).await?;
    tracing::info!(entity = ctx.resource, rule = %name, "rule added");
    Ok(Response::ok(Some(Value::Map(OrderedMap::new()))))
}

pub(crate) async fn remove_rule(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let name = as_text(required(request, "rule-name")?, "rule-name")?;
    if let Err(error) = check_rule_name(&name) {
        return Ok(Response::error(400, ARGUMENT_ERROR, error.to_string()));
    }
    match ctx.entity.remove_rule(&name).await {
        Ok(()) => {}
        // Service Bus's wording: the JS SDK recognises "The messaging entity … could not be
        // found" (not the condition) as MessagingEntityNotFound.
        Err(BrokerError::RuleNotFound { entity, rule }) => {
            return Ok(Response::error(
                404,
                NOT_FOUND,
                format!("The messaging entity '{entity}/Rules/{rule}' could not be found."),
            ))
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(entity = ctx.resource, rule = %name, "rule removed");
    Ok(Response::ok(Some(Value::Map(OrderedMap::new()))))
}

/// Answers `rules`: a list of maps {`rule-description`: described rule}, in evaluation order,
/// `skip` rules in and at most `top` of them. An empty page is `204` without a body, which the
/// JS SDK's `listRules` pager takes as the end.
pub(crate) async fn enumerate_rules(
    request: &Request,
    ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    let top = match optional(request, "top") {
        Some(value) => as_i64(value, "top")?,
        None => i64::from(i32::MAX),
    };
    let skip = match optional(request, "skip") {
        Some(value) => as_i64(value, "skip")?,
        None => 0,
    };
    if top < 0 || skip < 0 {
        return Ok(Response::error(
            400,
            ARGUMENT_ERROR,
            format!("`top` ({top}) and `skip` ({skip}) must not be negative"),
        ));
    }
    let rules: Vec<Value> = ctx
        .entity
        .rules()?
        .iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(top).unwrap_or(usize::MAX))
        .map(|rule| {
            let mut entry = OrderedMap::new();
            entry.insert(Value::String("rule-description".into()), encode_rule(rule));
            Value::Map(entry)
        })
        .collect();
    if rules.is_empty() {
        return Ok(Response {
            status_code: 204,
            description: "No Content".to_owned(),
            error_condition: None,
            body: None,
        });
    }
    let mut body = OrderedMap::new();
    body.insert(Value::String("rules".into()), Value::List(rules));
    Ok(Response::ok(Some(Value::Map(body))))
}
