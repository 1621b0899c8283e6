//! How the connector proves who it is to Service Bus.
//!
//! Secrets live in the config's [`Secret`], whose `Debug` and `Display` print a placeholder, so
//! a credential can be logged, put in an error, or `{:?}`-printed without leaking.

use std::fmt;

use crate::config::Secret;

/// The identity used to obtain tokens for the `$cbs` put-token exchange.
///
/// Only the shared-access forms are implemented today. Microsoft Entra ID (client secret,
/// managed identity, workload identity) plugs in through azservicebus's
/// `new_from_token_credential`, which takes an `azure_core` 0.25 `TokenCredential`; the matching
/// `azure_identity` is 0.25 (1.x implements a different trait version and will not fit).
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A named shared access key (`SharedAccessKeyName` + `SharedAccessKey`). Tokens are minted
    /// and refreshed locally, so the connection never expires.
    SharedAccessKey { name: String, key: Secret },
    /// A ready-made `SharedAccessSignature sr=…&sig=…&se=…&skn=…` token. It cannot be
    /// refreshed: once its `se` expiry passes, the broker refuses new links.
    SharedAccessSignature(Secret),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::SharedAccessKey { name, key } => f
                .debug_struct("SharedAccessKey")
                .field("name", name)
                .field("key", key)
                .finish(),
            Credential::SharedAccessSignature(token) => {
                f.debug_tuple("SharedAccessSignature").field(token).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let credential = Credential::SharedAccessKey {
            name: "RootManageSharedAccessKey".into(),
            key: Secret::new("c2VjcmV0LWtleQ=="),
        };
        let debug = format!("{credential:?}");
        assert!(debug.contains("RootManageSharedAccessKey"), "{debug}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        let token = Credential::SharedAccessSignature(Secret::new("SharedAccessSignature sig=abc"));
        assert!(!format!("{token:?}").contains("sig=abc"));
        assert!(!Secret::new("x").to_string().contains('x'));
    }
}
