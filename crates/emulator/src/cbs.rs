//! The `$cbs` node: claims-based security. A client puts a SAS token for an audience; we check
//! it against the namespace's policies and remember the grant on the connection.
//!
//! Request application-properties: `operation = "put-token"`, `type`
//! (`servicebus.windows.net:sastoken`, though pyamqp says `jwt` for SAS tokens too),
//! `name` (the audience) and `expiration`; the body is the token string. The answer carries
//! `status-code` / `status-description` (kebab-case: pyamqp's CBS link reads those).

use serde_amqp::Value;

use crate::auth::ConnectionAuth;
use crate::request::{Request, Response};
use crate::sas::{audience_covers, SasPolicies};

pub const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

/// Handles one `$cbs` request at `now` (unix seconds).
pub fn handle(
    request: &Request,
    policies: &SasPolicies,
    auth: &ConnectionAuth,
    now: i64,
) -> Response {
    let respond = |code: i32, description: String| Response {
        status_code: code,
        description,
        error_condition: None,
        body: None,
    };
    match request.operation() {
        Some("put-token") => {}
        other => {
            return respond(
                400,
                format!("unsupported $cbs operation {other:?}; only put-token"),
            )
        }
    }
    let Some(audience) = request.property_text("name") else {
        return respond(400, "put-token lacks the `name` (audience) property".into());
    };
    let token = match &request.body {
        Some(Value::String(token)) => token.as_str(),
        Some(Value::Binary(bytes)) => match std::str::from_utf8(bytes) {
            Ok(token) => token,
            Err(_) => return respond(400, "the token is not UTF-8 text".into()),
        },
        _ => return respond(400, "put-token body must be the token string".into()),
    };
    // The `type` is not a reliable signal: pyamqp sends `jwt` for SAS tokens too. The token
    // itself says what it is; anything but a SAS token would be an Entra ID token.
    if !token.trim_start().starts_with("SharedAccessSignature ") {
        return respond(
            401,
            "only SharedAccessSignature tokens are supported (the emulator has no Entra ID)".into(),
        );
    }
    let verified = match policies.verify(token, now) {
        Ok(verified) => verified,
        Err(error) => {
            tracing::info!(audience, %error, "put-token refused");
            return respond(401, format!("InvalidSignature: {error}"));
        }
    };
    if !audience_covers(&verified.audience, audience) {
        tracing::info!(audience, token_audience = %verified.audience, "put-token refused: audience");
        return respond(
            401,
            format!(
                "the token's audience {} does not cover {audience}",
                verified.audience
            ),
        );
    }
    auth.grant(audience, verified.rights, verified.expires_at);
    tracing::debug!(audience, policy = %verified.policy, "put-token accepted");
    respond(202, "Accepted".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sas::{sign_token, Right, SasPolicy};

    fn request(token: &str, audience: &str) -> Request {
        Request {
            properties: vec![
                ("operation".into(), Value::String("put-token".into())),
                ("type".into(), Value::String(SAS_TOKEN_TYPE.into())),
                ("name".into(), Value::String(audience.into())),
            ],
            body: Some(Value::String(token.into())),
            ..Default::default()
        }
    }

    #[test]
    fn put_token_grants_and_refuses() {
        let policies = SasPolicies::new(vec![SasPolicy::emulator_default()]);
        let auth = ConnectionAuth::default();
        let good = sign_token(
            "sb://localhost/orders",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            2000,
        );
        assert_eq!(
            handle(
                &request(&good, "sb://localhost/orders"),
                &policies,
                &auth,
                1000
            )
            .status_code,
            202
        );
        assert!(auth.check("orders", Right::Send, 1000).is_ok());

        let foreign = handle(
            &request(&good, "sb://localhost/payments"),
            &policies,
            &auth,
            1000,
        );
        assert_eq!(foreign.status_code, 401);
        let wrong_key = sign_token(
            "sb://localhost/payments",
            "RootManageSharedAccessKey",
            "x",
            2000,
        );
        assert_eq!(
            handle(
                &request(&wrong_key, "sb://localhost/payments"),
                &policies,
                &auth,
                1000
            )
            .status_code,
            401
        );
        assert!(auth.check("payments", Right::Send, 1000).is_err());
        assert_eq!(
            handle(
                &request(&good, "sb://localhost/orders"),
                &policies,
                &auth,
                3000
            )
            .status_code,
            401
        );
        let mut not_put = request(&good, "sb://localhost/orders");
        not_put.properties[0].1 = Value::String("get-token".into());
        assert_eq!(handle(&not_put, &policies, &auth, 1000).status_code, 400);
    }
}
