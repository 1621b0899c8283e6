//! Shared Access Signature policies and token verification.
//!
//! A SAS token is `SharedAccessSignature sr=<enc audience>&sig=<enc base64 sig>&se=<expiry>&skn=<policy>`
//! (fields in any order). Every official SDK signs the **encoded** audience exactly as it
//! appears in the token: `HMAC-SHA256(key as UTF-8 bytes, "<sr as sent>\n<se>")` (Python
//! `_generate_sas_token`: `quote_plus(uri)`; JS `createToken`: `encodeURIComponent(lowercased
//! audience)`; .NET `WebUtility.UrlEncode`). The key is used as text, never base64-decoded.
//! So we verify over the raw `sr` text and only decode it to learn the audience.

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use sha2::Sha256;

/// The default policy of Microsoft's emulator, so its connection string works unchanged.
pub const DEFAULT_POLICY_NAME: &str = "RootManageSharedAccessKey";
/// The key of Microsoft's emulator connection string.
pub const DEFAULT_POLICY_KEY: &str = "SAS_KEY_VALUE";

/// What a policy (and so a token signed with it) allows. In Service Bus, Manage implies
/// Send and Listen, so a Manage policy is always stored with all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights {
    pub send: bool,
    pub listen: bool,
    pub manage: bool,
}

/// One right an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Send,
    Listen,
    Manage,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Right::Send => "Send",
            Right::Listen => "Listen",
            Right::Manage => "Manage",
        })
    }
}

impl Rights {
    pub const ALL: Rights = Rights {
        send: true,
        listen: true,
        manage: true,
    };

    pub fn allows(&self, right: Right) -> bool {
        match right {
            Right::Send => self.send,
            Right::Listen => self.listen,
            Right::Manage => self.manage,
        }
    }

    /// Parses `Send`, `Listen`, `Manage` joined by `,` or `|` (case-insensitive).
    pub fn parse(text: &str) -> Result<Rights, SasError> {
        let mut rights = Rights::default();
        for part in text.split([',', '|']).map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "send" => rights.send = true,
                "listen" => rights.listen = true,
                "manage" => rights = Rights::ALL,
                _ => return Err(SasError::BadRights(part.to_string())),
            }
        }
        Ok(rights)
    }
}

/// A shared access policy: a key name, its key and what tokens signed with it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasPolicy {
    pub name: String,
    pub key: String,
    pub rights: Rights,
}

impl SasPolicy {
    /// Parses the `--sas-policy` form `name:key:rights`, e.g. `listener:s3cret:Listen`.
    /// The key may itself contain `:`; the name is up to the first `:`, the rights after
    /// the last one.
    pub fn parse_spec(spec: &str) -> Result<SasPolicy, SasError> {
        let bad = || SasError::BadPolicySpec(spec.to_string());
        let (name, rest) = spec.split_once(':').ok_or_else(bad)?;
        let (key, rights) = rest.rsplit_once(':').ok_or_else(bad)?;
        if name.is_empty() || key.is_empty() {
            return Err(bad());
        }
        Ok(SasPolicy {
            name: name.to_string(),
            key: key.to_string(),
            rights: Rights::parse(rights)?,
        })
    }

    /// The policy of Microsoft's emulator: `RootManageSharedAccessKey` / `SAS_KEY_VALUE`.
    pub fn emulator_default() -> SasPolicy {
        SasPolicy {
            name: DEFAULT_POLICY_NAME.to_string(),
            key: DEFAULT_POLICY_KEY.to_string(),
            rights: Rights::ALL,
        }
    }
}

/// Why a token or a policy spec is refused. The text goes back to the client in
/// `status-description`, so it names what is wrong without echoing the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("the token is not a SharedAccessSignature token")]
    NotSas,
    #[error("the token lacks the `{0}` field")]
    MissingField(&'static str),
    #[error("the token's `{0}` field is malformed")]
    MalformedField(&'static str),
    #[error("no shared access policy named {0:?}")]
    UnknownPolicy(String),
    #[error("the token's signature does not match policy {0:?}")]
    BadSignature(String),
    #[error("the token expired at {0} (unix seconds)")]
    Expired(i64),
    #[error("the token's audience {token} does not cover {resource}")]
    AudienceMismatch { token: String, resource: String },
    #[error("invalid rights {0:?}: use Send, Listen, Manage joined by ','")]
    BadRights(String),
    #[error("invalid SAS policy {0:?}: expected name:key:rights, e.g. sender:s3cret:Send")]
    BadPolicySpec(String),
}

/// A token whose signature and expiry were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The decoded audience, e.g. `sb://localhost/orders`.
    pub audience: String,
    pub rights: Rights,
    /// Unix seconds after which the token is no longer valid.
    pub expires_at: i64,
    pub policy: String,
}

/// The configured policies of the namespace.
#[derive(Debug, Clone)]
pub struct SasPolicies {
    policies: Vec<SasPolicy>,
}

impl SasPolicies {
    pub fn new(policies: Vec<SasPolicy>) -> SasPolicies {
        SasPolicies { policies }
    }

    pub fn policies(&self) -> &[SasPolicy] {
        &self.policies
    }

    /// Checks a token's form, policy, signature and expiry at `now` (unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, SasError> {
        let fields = token
            .trim()
            .strip_prefix("SharedAccessSignature ")
            .ok_or(SasError::NotSas)?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for pair in fields.split('&') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            match name.trim() {
                "sr" => sr = Some(value),
                "sig" => sig = Some(value),
                "se" => se = Some(value),
                "skn" => skn = Some(value),
                _ => {}
            }
        }
        let sr = sr.ok_or(SasError::MissingField("sr"))?;
        let sig = sig.ok_or(SasError::MissingField("sig"))?;
        let se = se.ok_or(SasError::MissingField("se"))?;
        let skn = skn.ok_or(SasError::MissingField("skn"))?;

        let policy_name = decode_component(skn).ok_or(SasError::MalformedField("skn"))?;
        let policy = self
            .policies
            .iter()
            .find(|p| p.name == policy_name)
            .ok_or_else(|| SasError::UnknownPolicy(policy_name.clone()))?;

        let signature = decode_component(sig)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or(SasError::MalformedField("sig"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(policy.key.as_bytes())
            .map_err(|_| SasError::BadSignature(policy.name.clone()))?;
        mac.update(sr.as_bytes());
        mac.update(b"\n");
        mac.update(se.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| SasError::BadSignature(policy.name.clone()))?;

        let expires_at: i64 = se
            .trim()
            .parse()
            .map_err(|_| SasError::MalformedField("se"))?;
        if expires_at <= now {
            return Err(SasError::Expired(expires_at));
        }
        let audience = decode_component(sr).ok_or(SasError::MalformedField("sr"))?;
        Ok(VerifiedToken {
            audience,
            rights: policy.rights,
            expires_at,
            policy: policy.name.clone(),
        })
    }
}

/// Creates a token the way the SDKs do; used by tests and by `busdrain` tooling.
pub fn sign_token(audience: &str, policy: &str, key: &str, expires_at: i64) -> String {
    let encoded: String =
        percent_encoding::utf8_percent_encode(audience, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let signature = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(encoded.as_bytes());
            mac.update(b"\n");
            mac.update(expires_at.to_string().as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        Err(_) => String::new(),
    };
    let signature: String =
        percent_encoding::utf8_percent_encode(&signature, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    format!("SharedAccessSignature sr={encoded}&sig={signature}&se={expires_at}&skn={policy}")
}

fn decode_component(text: &str) -> Option<String> {
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// The path segments of an audience or address, lower-cased: the scheme and host of a full
/// URI are dropped (the emulator answers to any host name, so only the path identifies what a
/// token is for), as are empty segments from leading, trailing or doubled `/`.
pub fn path_segments(audience: &str) -> Vec<String> {
    let path = match audience.find("://") {
        Some(scheme_end) => {
            let after = &audience[scheme_end + 3..];
            match after.find('/') {
                Some(slash) => &after[slash..],
                None => "",
            }
        }
        None => audience,
    };
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase())
        .collect()
}

/// Whether a token issued for `audience` covers `resource`: its path segments are a prefix
/// of the resource's. A namespace-level audience (`sb://localhost/`) covers everything.
pub fn audience_covers(audience: &str, resource: &str) -> bool {
    let granted = path_segments(audience);
    let wanted = path_segments(resource);
    granted.len() <= wanted.len() && granted.iter().zip(&wanted).all(|(g, w)| g == w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> SasPolicies {
        SasPolicies::new(vec![
            SasPolicy::emulator_default(),
            SasPolicy::parse_spec("listener:k:ey:Listen").unwrap(),
        ])
    }

    #[test]
    fn accepts_a_token_signed_like_the_sdks() {
        let token = sign_token(
            "sb://localhost/orders",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            2000,
        );
        let verified = policies().verify(&token, 1000).unwrap();
        assert_eq!(verified.audience, "sb://localhost/orders");
        assert_eq!(verified.rights, Rights::ALL);
        assert_eq!(verified.expires_at, 2000);
    }

    #[test]
    fn accepts_python_quote_plus_and_quote_encoding() {
        // Python: sr=quote_plus(uri), sig=quote(b64) which leaves '/' unescaped.
        let sr = "sb%3A%2F%2Flocalhost%2Forders";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"SAS_KEY_VALUE").unwrap();
        mac.update(format!("{sr}\n2000").as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let sig = b64.replace('+', "%2B").replace('=', "%3D");
        let token = format!(
            "SharedAccessSignature sr={sr}&sig={sig}&se=2000&skn=RootManageSharedAccessKey"
        );
        assert!(policies().verify(&token, 1000).is_ok());
    }

    #[test]
    fn refuses_wrong_key_expired_and_unknown_policy() {
        let wrong = sign_token(
            "sb://localhost/q",
            "RootManageSharedAccessKey",
            "nope",
            2000,
        );
        assert!(matches!(
            policies().verify(&wrong, 1000),
            Err(SasError::BadSignature(_))
        ));
        let expired = sign_token(
            "sb://localhost/q",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            999,
        );
        assert_eq!(
            policies().verify(&expired, 1000),
            Err(SasError::Expired(999))
        );
        let unknown = sign_token("sb://localhost/q", "other", "SAS_KEY_VALUE", 2000);
        assert!(matches!(
            policies().verify(&unknown, 1000),
            Err(SasError::UnknownPolicy(_))
        ));
        assert_eq!(policies().verify("Bearer x", 1000), Err(SasError::NotSas));
        assert!(policies()
            .verify("SharedAccessSignature sr=a&se=1", 1000)
            .is_err());
    }

    #[test]
    fn listen_policy_with_colon_in_key() {
        let token = sign_token("sb://localhost/q", "listener", "k:ey", 2000);
        let verified = policies().verify(&token, 1000).unwrap();
        assert!(verified.rights.listen && !verified.rights.send && !verified.rights.manage);
    }

    #[test]
    fn audience_prefix_rules() {
        assert!(audience_covers("sb://localhost/", "sb://localhost/orders"));
        assert!(audience_covers("sb://localhost", "orders/$management"));
        assert!(audience_covers(
            "sb://localhost:5672/Orders",
            "/orders/$DeadLetterQueue"
        ));
        assert!(audience_covers("sb://LOCALHOST/orders", "orders"));
        assert!(!audience_covers("sb://localhost/orders", "orders2"));
        assert!(!audience_covers("sb://localhost/orders/x", "orders"));
        assert!(!audience_covers(
            "sb://localhost/other",
            "sb://localhost/orders"
        ));
    }

    #[test]
    fn rights_and_spec_parsing() {
        assert_eq!(Rights::parse("Manage").unwrap(), Rights::ALL);
        let r = Rights::parse("send,LISTEN").unwrap();
        assert!(r.send && r.listen && !r.manage);
        assert!(Rights::parse("Write").is_err());
        assert!(SasPolicy::parse_spec("nokey").is_err());
        assert!(SasPolicy::parse_spec(":k:Send").is_err());
    }
}
