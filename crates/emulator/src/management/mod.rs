//! The `<entity>/$management` node: Service Bus operations carried as AMQP request/response
//! messages (`operation` in application-properties, arguments in an amqp-value map).
//!
//! Answers carry camelCase `statusCode` / `statusDescription` (pyamqp's management link reads
//! those) and `errorCondition` on failures. One file per group of operations.

mod args;
mod deferred;
mod delete;
mod locks;
mod peek;
mod rule_description;
mod rules;
mod scheduled;
mod sessions;
mod unsupported;

use busdrain_broker::{BrokerError, Entity};

use crate::auth::{unix_now, ConnectionAuth};
use crate::bridge::broker_condition;
use crate::request::{Request, Response};
use crate::sas::Right;

pub use args::ArgumentError;

/// What an operation runs against.
pub struct ManagementContext<'a> {
    pub entity: &'a Entity,
    pub auth: &'a ConnectionAuth,
    /// The node's address, `<entity>/$management`, which a granted audience must cover.
    pub resource: &'a str,
}

impl ManagementContext<'_> {
    /// A refusal answer when the connection's tokens lack `right` for this entity.
    fn refusal(&self, right: Right) -> Option<Response> {
        self.auth
            .check(self.resource, right, unix_now())
            .err()
            .map(|e| Response::error(401, crate::auth::UNAUTHORIZED_ACCESS, e.to_string()))
    }
}

/// Runs one management request and builds its answer. Never panics on any request.
pub async fn handle(request: &Request, ctx: &ManagementContext<'_>) -> Response {
    let Some(operation) = request.operation() else {
        return Response::error(
            400,
            crate::bridge::ARGUMENT_ERROR,
            "the request has no `operation`",
        );
    };
    let right = match operation {
        "com.microsoft:schedule-message" | "com.microsoft:cancel-scheduled-message" => Right::Send,
        "com.microsoft:add-rule"
        | "com.microsoft:remove-rule"
        | "com.microsoft:enumerate-rules" => Right::Manage,
        _ => Right::Listen,
    };
    if let Some(refusal) = ctx.refusal(right) {
        return refusal;
    }
    let result = match operation {
        "com.microsoft:renew-lock" => locks::renew_lock(request, ctx).await,
        "com.microsoft:peek-message" => peek::peek_message(request, ctx).await,
        "com.microsoft:receive-by-sequence-number" => {
            deferred::receive_by_sequence_number(request, ctx).await
        }
        "com.microsoft:update-disposition" => deferred::update_disposition(request, ctx).await,
        "com.microsoft:schedule-message" => scheduled::schedule_message(request, ctx).await,
        "com.microsoft:cancel-scheduled-message" => scheduled::cancel_scheduled(request, ctx).await,
        "com.microsoft:renew-session-lock" => sessions::renew_session_lock(request, ctx).await,
        "com.microsoft:get-session-state" => sessions::get_session_state(request, ctx).await,
        "com.microsoft:set-session-state" => sessions::set_session_state(request, ctx).await,
        "com.microsoft:get-message-sessions" => sessions::get_message_sessions(request, ctx).await,
        "com.microsoft:add-rule" => rules::add_rule(request, ctx).await,
        "com.microsoft:remove-rule" => rules::remove_rule(request, ctx).await,
        "com.microsoft:enumerate-rules" => rules::enumerate_rules(request, ctx).await,
        "com.microsoft:batch-delete-messages" => delete::batch_delete_messages(request, ctx).await,
        other => Ok(unsupported::answer(other)),
    };
    match result {
        Ok(response) => response,
        Err(OperationError::Argument(error)) => {
            Response::error(400, crate::bridge::ARGUMENT_ERROR, error.to_string())
        }
        Err(OperationError::Encode(error)) => {
            tracing::error!(%error, "stored message cannot be encoded");
            Response::error(500, crate::bridge::INTERNAL_ERROR, error.to_string())
        }
        Err(OperationError::Broker(error)) => {
            let (condition, status) = broker_condition(&error);
            Response::error(status, condition, error.to_string())
        }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OperationError {
    #[error(transparent)]
    Argument(#[from] ArgumentError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A stored message could not be re-encoded (a corrupt store).
    #[error(transparent)]
    Encode(#[from] crate::message::MessageError),
}

#[cfg(test)]
mod rules_tests;
#[cfg(test)]
mod tests;
