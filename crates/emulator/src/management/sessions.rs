//! Session operations on `$management`: `renew-session-lock`, `get-session-state`,
//! `set-session-state`, `get-message-sessions`.
//!
//! Not served yet (issue 4): each answers `501 amqp:not-implemented`.

use super::{ManagementContext, OperationError};
use crate::request::{Request, Response};

pub(crate) async fn renew_session_lock(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer(
        "com.microsoft:renew-session-lock",
    ))
}

pub(crate) async fn get_session_state(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer(
        "com.microsoft:get-session-state",
    ))
}

pub(crate) async fn set_session_state(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer(
        "com.microsoft:set-session-state",
    ))
}

pub(crate) async fn get_message_sessions(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer(
        "com.microsoft:get-message-sessions",
    ))
}
