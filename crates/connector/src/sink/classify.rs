//! What a failed write means for the messages behind it.

use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

/// The decision a failed write leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// Retry later. `overload` shrinks the concurrency limit; `unreachable` pauses receiving.
    Transient { overload: bool, unreachable: bool },
    /// Cassandra refused these rows' values; retrying cannot help (a row split off alone and
    /// still refused is dead-lettered as `WriteRejected`).
    Rejected,
    /// The statement itself no longer works (table dropped, permission revoked): no row is at
    /// fault, so nothing is dead-lettered; the connector pauses and keeps retrying.
    Misconfigured,
}

pub fn classify(error: &ExecutionError) -> WriteFailure {
    let transient = |overload, unreachable| WriteFailure::Transient {
        overload,
        unreachable,
    };
    match error {
        ExecutionError::BadQuery(_) => WriteFailure::Rejected,
        ExecutionError::RequestTimeout(_) => transient(true, true),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => {
            transient(false, true)
        }
        ExecutionError::LastAttemptError(attempt) => classify_attempt(attempt),
        _ => transient(false, true),
    }
}

fn classify_attempt(error: &RequestAttemptError) -> WriteFailure {
    let transient = |overload, unreachable| WriteFailure::Transient {
        overload,
        unreachable,
    };
    match error {
        RequestAttemptError::SerializationError(_) => WriteFailure::Rejected,
        RequestAttemptError::DbError(db, message) => classify_db(db, message),
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => transient(false, true),
        _ => transient(false, false),
    }
}

fn classify_db(error: &DbError, message: &str) -> WriteFailure {
    let transient = |overload, unreachable| WriteFailure::Transient {
        overload,
        unreachable,
    };
    match error {
        DbError::Overloaded | DbError::RateLimitReached { .. } => transient(true, false),
        DbError::WriteTimeout { .. } | DbError::ReadTimeout { .. } => transient(true, false),
        DbError::Unavailable { .. } | DbError::IsBootstrapping => transient(true, true),
        DbError::WriteFailure { .. } | DbError::ServerError | DbError::Unprepared { .. } => {
            transient(false, false)
        }
        DbError::Invalid if schema_problem(message) => WriteFailure::Misconfigured,
        DbError::Invalid | DbError::FunctionFailure { .. } => WriteFailure::Rejected,
        DbError::SyntaxError
        | DbError::Unauthorized
        | DbError::AuthenticationError
        | DbError::ConfigError
        | DbError::AlreadyExists { .. }
        | DbError::TruncateError
        | DbError::ProtocolError => WriteFailure::Misconfigured,
        _ => transient(false, false),
    }
}

/// `Invalid` errors that come from the schema, not from the row's values.
fn schema_problem(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("unconfigured table")
        || m.contains("does not exist")
        || m.contains("undefined column")
        || m.contains("unknown identifier")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(error: DbError, message: &str) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(error, message.into()))
    }

    #[test]
    fn overload_and_timeouts_are_transient_and_shrink() {
        assert_eq!(
            classify(&db(DbError::Overloaded, "busy")),
            WriteFailure::Transient {
                overload: true,
                unreachable: false
            }
        );
        assert_eq!(
            classify(&ExecutionError::RequestTimeout(
                std::time::Duration::from_secs(1)
            )),
            WriteFailure::Transient {
                overload: true,
                unreachable: true
            }
        );
        assert_eq!(
            classify(&ExecutionError::EmptyPlan),
            WriteFailure::Transient {
                overload: false,
                unreachable: true
            }
        );
    }

    #[test]
    fn invalid_values_are_rejected_but_schema_errors_are_not() {
        assert_eq!(
            classify(&db(
                DbError::Invalid,
                "Key length of 70000 is longer than maximum of 65535"
            )),
            WriteFailure::Rejected
        );
        assert_eq!(
            classify(&db(DbError::Invalid, "unconfigured table readings")),
            WriteFailure::Misconfigured
        );
        assert_eq!(
            classify(&db(DbError::Unauthorized, "no")),
            WriteFailure::Misconfigured
        );
    }
}
