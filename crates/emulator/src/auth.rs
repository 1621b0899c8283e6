//! What one connection is allowed to do: the audiences its `$cbs` put-tokens granted.
//!
//! Service Bus authorises per connection: a client puts a token for an audience (an entity or
//! the whole namespace) and then attaches links to entities under it. Every attach, send and
//! receive checks the grants again, so an expired token stops a link that outlives it.

use std::sync::Mutex;

use fe2o3_amqp_types::definitions::Error;

pub const UNAUTHORIZED_ACCESS: &str = "amqp:unauthorized-access";

use crate::sas::{audience_covers, Right, Rights};

/// One accepted put-token.
#[derive(Debug, Clone)]
struct Grant {
    audience: String,
    rights: Rights,
    /// Unix seconds.
    expires_at: i64,
}

/// Why an operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unauthorized access to '{resource}': no valid token was put on $cbs for it")]
    NoToken { resource: String },
    #[error("unauthorized access to '{resource}': the token expired")]
    Expired { resource: String },
    #[error("unauthorized access to '{resource}': the token's policy lacks the '{right}' claim")]
    MissingRight { resource: String, right: Right },
}

impl AuthError {
    /// The AMQP error sent to the client (`amqp:unauthorized-access`, as Service Bus does).
    pub fn to_amqp(&self) -> Error {
        crate::bridge::amqp_error(UNAUTHORIZED_ACCESS, self.to_string())
    }
}

/// The grants of one connection.
#[derive(Debug, Default)]
pub struct ConnectionAuth {
    grants: Mutex<Vec<Grant>>,
}

impl ConnectionAuth {
    /// Records an accepted token for `audience`, replacing an earlier one for the same
    /// audience (clients refresh tokens before they expire).
    pub fn grant(&self, audience: &str, rights: Rights, expires_at: i64) {
        let mut grants = self.lock();
        let key = crate::sas::path_segments(audience);
        grants.retain(|g| crate::sas::path_segments(&g.audience) != key);
        grants.push(Grant {
            audience: audience.to_string(),
            rights,
            expires_at,
        });
    }

    /// Whether a valid, unexpired grant covering `resource` carries `right` at `now`
    /// (unix seconds).
    pub fn check(&self, resource: &str, right: Right, now: i64) -> Result<(), AuthError> {
        let grants = self.lock();
        let covering: Vec<&Grant> = grants
            .iter()
            .filter(|g| audience_covers(&g.audience, resource))
            .collect();
        let resource = resource.to_string();
        if covering.is_empty() {
            return Err(AuthError::NoToken { resource });
        }
        let valid: Vec<&&Grant> = covering.iter().filter(|g| g.expires_at > now).collect();
        if valid.is_empty() {
            return Err(AuthError::Expired { resource });
        }
        if valid.iter().any(|g| g.rights.allows(right)) {
            Ok(())
        } else {
            Err(AuthError::MissingRight { resource, right })
        }
    }

    /// Whether any valid grant covers `resource`, whatever its rights (attaching to a
    /// `$management` node; each operation then checks its own right).
    pub fn check_any(&self, resource: &str, now: i64) -> Result<(), AuthError> {
        [Right::Listen, Right::Send, Right::Manage]
            .into_iter()
            .map(|right| self.check(resource, right, now))
            .find(Result::is_ok)
            .unwrap_or_else(|| self.check(resource, Right::Listen, now))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        // The vector stays consistent even if a holder panicked mid-push.
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Now, in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_cover_by_audience_right_and_time() {
        let auth = ConnectionAuth::default();
        assert!(matches!(
            auth.check("orders", Right::Send, 0),
            Err(AuthError::NoToken { .. })
        ));
        let listen = Rights {
            listen: true,
            ..Default::default()
        };
        auth.grant("sb://localhost/orders", listen, 100);
        assert!(auth.check("orders", Right::Listen, 50).is_ok());
        assert!(auth
            .check("orders/$DeadLetterQueue", Right::Listen, 50)
            .is_ok());
        assert!(matches!(
            auth.check("orders", Right::Send, 50),
            Err(AuthError::MissingRight { .. })
        ));
        assert!(matches!(
            auth.check("orders", Right::Listen, 100),
            Err(AuthError::Expired { .. })
        ));
        assert!(matches!(
            auth.check("other", Right::Listen, 50),
            Err(AuthError::NoToken { .. })
        ));
        assert!(auth.check_any("orders", 50).is_ok());
        // A refreshed token for the same audience replaces the old one.
        auth.grant("sb://localhost/Orders", Rights::ALL, 200);
        assert!(auth.check("orders", Right::Send, 150).is_ok());
        let error = auth.check("nothing", Right::Send, 0).unwrap_err().to_amqp();
        let encoded = serde_amqp::to_vec(&error).unwrap();
        let decoded: Error = serde_amqp::from_slice(&encoded).unwrap();
        assert_eq!(
            decoded.condition,
            fe2o3_amqp_types::definitions::ErrorCondition::AmqpError(
                fe2o3_amqp_types::definitions::AmqpError::UnauthorizedAccess
            )
        );
    }
}
