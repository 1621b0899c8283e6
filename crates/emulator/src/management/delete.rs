//! `com.microsoft:batch-delete-messages`: removes up to `message-count` messages enqueued
//! before `enqueued-time-utc`.
//!
//! Not served yet (issue 4): answers `501 amqp:not-implemented`.

use super::{ManagementContext, OperationError};
use crate::request::{Request, Response};

pub(crate) async fn batch_delete_messages(
    _request: &Request,
    _ctx: &ManagementContext<'_>,
) -> Result<Response, OperationError> {
    Ok(super::unsupported::answer(
        "com.microsoft:batch-delete-messages",
    ))
}
