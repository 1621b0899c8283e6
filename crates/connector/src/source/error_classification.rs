//! Sorting azservicebus errors into what the pipeline can act on: the lock is gone, retrying is
//! pointless (fix the config or the credentials), or it is worth retrying after a reconnect.
//!
//! azservicebus returns every error as an `azure_core::Error` wrapping one of a dozen fe2o3-amqp
//! error types (attach, detach, receive, disposition, management status, SASL, I/O), most of
//! them crate-private wrappers we cannot downcast to. What they all keep is the AMQP error
//! condition or management status code, and fe2o3 renders those in `Debug` as stable
//! identifiers (`AmqpError(UnauthorizedAccess)`, `Custom(Symbol("com.microsoft:…"))`,
//! `StatusCode(404)`). We classify on those identifiers; the unit tests below build the real
//! fe2o3 error values to keep that honest if the libraries change.

use azure_core::error::ErrorKind;

use super::SourceError;

/// Identifiers meaning the message or session lock is gone (Service Bus answers a renew or
/// management settlement of an expired lock with `410 Gone` / `com.microsoft:message-lock-lost`).
const LOCK_LOST: &[&str] = &[
    "com.microsoft:message-lock-lost",
    "com.microsoft:session-lock-lost",
    "StatusCode(410)",
];

/// Identifiers meaning retrying cannot help: the entity does not exist or is disabled, the
/// credentials are wrong or lack the right, or the request itself is invalid.
const FATAL: &[&str] = &[
    "UnauthorizedAccess",
    "amqp:unauthorized-access",
    "NotFound",
    "amqp:not-found",
    "com.microsoft:entity-disabled",
    "com.microsoft:argument-error",
    "com.microsoft:argument-out-of-range",
    "NotAllowed",
    "InvalidField",
    "NotImplemented",
    "StatusCode(400)",
    "StatusCode(401)",
    "StatusCode(403)",
    "StatusCode(404)",
    "SaslError",
    "InvalidScheme",
    "InvalidDomain",
    "TlsConnectorNotFound",
    "ProtocolHeaderMismatch",
    "InvalidCertificate",
    // The broker did not echo a filter we asked for: a session receiver on a broker (or entity)
    // without sessions.
    "DesiredFilterNotSupported",
];

/// Identifiers meaning no session could be locked (every session is taken or none has messages).
const NO_SESSION: &[&str] = &[
    "com.microsoft:session-cannot-be-locked",
    "com.microsoft:timeout",
];

/// Classifies an error from any operation except accepting a session.
pub(crate) fn classify(operation: &str, entity: &str, error: &azure_core::Error) -> SourceError {
    let (display, debug) = describe(error);
    let found = |ids: &[&'static str]| ids.iter().copied().find(|id| debug.contains(id));
    // The message shows the error chain, plus the identifier that decided the class when the
    // chain's text does not already show it.
    let text = |id: Option<&str>| match id {
        Some(id) if !display.contains(id) => {
            format!("{operation} on `{entity}` failed: {display} [{id}]")
        }
        _ => format!("{operation} on `{entity}` failed: {display}"),
    };
    if let Some(id) = found(LOCK_LOST) {
        return SourceError::LockLost(text(Some(id)));
    }
    if matches!(error.kind(), ErrorKind::Credential) {
        return SourceError::Fatal(text(None));
    }
    if let Some(id) = found(FATAL) {
        return SourceError::Fatal(text(Some(id)));
    }
    SourceError::Transient(text(None))
}

/// Classifies an error from accepting the next session, where a broker timeout means "none free".
pub(crate) fn classify_accept_session(entity: &str, error: &azure_core::Error) -> SourceError {
    let (_, debug) = describe(error);
    if NO_SESSION.iter().any(|id| debug.contains(id)) {
        return SourceError::NoSessionAvailable;
    }
    classify("accepting a session", entity, error)
}

/// The error with its sources (for people), and its `Debug` form (where the AMQP condition and
/// status code live, for classification).
fn describe(error: &azure_core::Error) -> (String, String) {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = inner.source();
    }
    (text, format!("{error:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use azservicebus_amqp::link::{DetachError, LinkStateError, ReceiverAttachError, RecvError};
    use azservicebus_amqp_management::error::{Error as ManagementError, StatusError};
    use azservicebus_amqp_management::status::StatusCode;
    use azservicebus_amqp_types::definitions::{self, AmqpError, ErrorCondition, LinkError};
    use azservicebus_amqp_types::primitives::Symbol;
    use std::num::NonZeroU16;

    fn amqp_error(condition: ErrorCondition) -> definitions::Error {
        definitions::Error::new(condition, Some("from the broker".to_string()), None)
    }

    fn status(code: u16) -> azure_core::Error {
        let error = ManagementError::Status(StatusError {
            code: StatusCode(NonZeroU16::new(code).unwrap()),
            description: Some("status from $management".into()),
        });
        azure_core::Error::new(ErrorKind::Other, error)
    }

    #[test]
    fn unauthorized_and_missing_entities_are_fatal() {
        let unauthorized = ReceiverAttachError::RemoteClosedWithError(amqp_error(
            ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess),
        ));
        let error = azure_core::Error::new(ErrorKind::Io, unauthorized);
        assert!(matches!(
            classify("receive", "q", &error),
            SourceError::Fatal(_)
        ));

        let not_found = DetachError::RemoteDetachedWithError(amqp_error(
            ErrorCondition::AmqpError(AmqpError::NotFound),
        ));
        let error = azure_core::Error::new(ErrorKind::Io, not_found);
        assert!(matches!(
            classify("receive", "q", &error),
            SourceError::Fatal(_)
        ));

        assert!(matches!(
            classify("renew", "q", &status(401)),
            SourceError::Fatal(_)
        ));
        assert!(matches!(
            classify("renew", "q", &status(404)),
            SourceError::Fatal(_)
        ));

        let credential = azure_core::Error::message(ErrorKind::Credential, "token refused");
        assert!(matches!(
            classify("open", "q", &credential),
            SourceError::Fatal(_)
        ));
    }

    #[test]
    fn lost_locks_are_recognised() {
        assert!(matches!(
            classify("renew", "q", &status(410)),
            SourceError::LockLost(_)
        ));
        let lost = DetachError::RemoteDetachedWithError(amqp_error(ErrorCondition::Custom(
            Symbol::from("com.microsoft:session-lock-lost"),
        )));
        let error = azure_core::Error::new(ErrorKind::Io, lost);
        assert!(matches!(
            classify("receive", "q", &error),
            SourceError::LockLost(_)
        ));
    }

    #[test]
    fn connection_trouble_is_transient() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let error = azure_core::Error::new(ErrorKind::Io, io);
        let classified = classify("receive", "q", &error);
        assert!(matches!(classified, SourceError::Transient(_)));
        assert!(
            classified.to_string().contains("reset by peer"),
            "{classified}"
        );

        let forced = DetachError::RemoteDetachedWithError(amqp_error(ErrorCondition::LinkError(
            LinkError::DetachForced,
        )));
        let error = azure_core::Error::new(ErrorKind::Io, forced);
        assert!(matches!(
            classify("receive", "q", &error),
            SourceError::Transient(_)
        ));

        let detached = RecvError::LinkStateError(LinkStateError::RemoteDetached);
        let error = azure_core::Error::new(ErrorKind::Io, detached);
        assert!(matches!(
            classify("receive", "q", &error),
            SourceError::Transient(_)
        ));
        assert!(matches!(
            classify("renew", "q", &status(503)),
            SourceError::Transient(_)
        ));
    }

    #[test]
    fn no_free_session_is_its_own_outcome() {
        let timeout = ReceiverAttachError::RemoteClosedWithError(amqp_error(
            ErrorCondition::Custom(Symbol::from("com.microsoft:timeout")),
        ));
        let error = azure_core::Error::new(ErrorKind::Io, timeout);
        assert!(matches!(
            classify_accept_session("q", &error),
            SourceError::NoSessionAvailable
        ));
        let denied = ReceiverAttachError::RemoteClosedWithError(amqp_error(
            ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess),
        ));
        let error = azure_core::Error::new(ErrorKind::Io, denied);
        assert!(matches!(
            classify_accept_session("q", &error),
            SourceError::Fatal(_)
        ));
    }
}
