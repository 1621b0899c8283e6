//! Rule operations on a subscription's `$management`: `add-rule`, `remove-rule`,
//! `enumerate-rules`.
//!
//! Not served yet (issue 4): each answers `501 amqp:not-implemented`.

use super::{ManagementContext, OperationError};
use crate::request::{Request, Response};

pub(crate) async fn add_rule(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer("com.microsoft:add-rule"))
}

pub(crate) async fn remove_rule(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer("com.microsoft:remove-rule"))
}

pub(crate) async fn enumerate_rules(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer("com.microsoft:enumerate-rules"))
}
