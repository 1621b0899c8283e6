//! How the connector proves who it is to Service Bus.
//!
//! Secrets live in the config's [`Secret`], whose `Debug` and `Display` print a placeholder, so
//! a credential can be logged, put in an error, or `{:?}`-printed without leaking.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;

use crate::config::{EntraCredential, Secret};

/// The identity used to obtain tokens for the `$cbs` put-token exchange.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A named shared access key (`SharedAccessKeyName` + `SharedAccessKey`). Tokens are minted
    /// and refreshed locally, so the connection never expires.
    SharedAccessKey { name: String, key: Secret },
    /// A ready-made `SharedAccessSignature sr=…&sig=…&se=…&skn=…` token. It cannot be
    /// refreshed: once its `se` expiry passes, the broker refuses new links.
    SharedAccessSignature(Secret),
    /// Microsoft Entra ID application (service principal) with a client secret.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
    /// The managed identity of the Azure host: system-assigned, or the user-assigned identity
    /// with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// Kubernetes workload identity federation; unset fields come from the `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE` variables the webhook injects.
    WorkloadIdentity {
        tenant_id: Option<String>,
        client_id: Option<String>,
        token_file: Option<PathBuf>,
    },
}

impl Credential {
    /// The config file's Entra ID credential.
    pub fn from_entra(config: &EntraCredential) -> Self {
        match config {
            EntraCredential::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => Credential::ClientSecret {
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            },
            EntraCredential::ManagedIdentity { client_id } => Credential::ManagedIdentity {
                client_id: client_id.clone(),
            },
            EntraCredential::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => Credential::WorkloadIdentity {
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                token_file: token_file.clone(),
            },
        }
    }

    /// An Entra ID token source for azservicebus's `new_from_token_credential`, which takes an
    /// `azure_core` 0.25 `TokenCredential` (hence `azure_identity` 0.25: 1.x implements a
    /// different trait version). `None` for the shared-access kinds, which azservicebus signs
    /// itself. Building one does no network I/O; tokens are fetched when links authenticate.
    pub(crate) fn entra_token_source(
        &self,
    ) -> Result<Option<Arc<dyn TokenCredential>>, azure_core::Error> {
        let source: Arc<dyn TokenCredential> = match self {
            Credential::SharedAccessKey { .. } | Credential::SharedAccessSignature(_) => {
                return Ok(None)
            }
            Credential::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => azure_identity::ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                azure_core::credentials::Secret::new(client_secret.expose().to_string()),
                None,
            )?,
            Credential::ManagedIdentity { client_id } => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    ..Default::default()
                };
                azure_identity::ManagedIdentityCredential::new(Some(options))?
            }
            Credential::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let options = azure_identity::WorkloadIdentityCredentialOptions {
                    tenant_id: tenant_id.clone(),
                    client_id: client_id.clone(),
                    token_file_path: token_file.clone(),
                    ..Default::default()
                };
                azure_identity::WorkloadIdentityCredential::new(Some(options))?
            }
        };
        Ok(Some(source))
    }
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
            Credential::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("client_secret", client_secret)
                .finish(),
            Credential::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            Credential::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => f
                .debug_struct("WorkloadIdentity")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("token_file", token_file)
                .finish(),
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
        let app = Credential::ClientSecret {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "app".into(),
            client_secret: Secret::new("client-secret-value"),
        };
        assert!(!format!("{app:?}").contains("client-secret-value"));
        let token = Credential::SharedAccessSignature(Secret::new("SharedAccessSignature sig=abc"));
        assert!(!format!("{token:?}").contains("sig=abc"));
        assert!(!Secret::new("x").to_string().contains('x'));
    }

    #[test]
    fn entra_credentials_build_without_network() {
        let app = Credential::ClientSecret {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            client_secret: Secret::new("s3cret"),
        };
        assert!(app.entra_token_source().unwrap().is_some());
        let mi = Credential::ManagedIdentity { client_id: None };
        assert!(mi.entra_token_source().unwrap().is_some());
        let sas = Credential::SharedAccessKey {
            name: "k".into(),
            key: Secret::new("v"),
        };
        assert!(sas.entra_token_source().unwrap().is_none());

        // An invalid tenant id is refused when the credential is built, before any request.
        let bad = Credential::ClientSecret {
            tenant_id: "not a tenant/../".into(),
            client_id: "app".into(),
            client_secret: Secret::new("s3cret"),
        };
        let error = bad
            .entra_token_source()
            .expect_err("invalid tenant refused");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn config_entra_credentials_convert() {
        let config = EntraCredential::ManagedIdentity {
            client_id: Some("uai".into()),
        };
        assert_eq!(
            Credential::from_entra(&config),
            Credential::ManagedIdentity {
                client_id: Some("uai".into())
            }
        );
    }
}
