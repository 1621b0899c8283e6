//! Parsing of Service Bus connection strings into a typed, secret-safe form.
//!
//! We parse the string ourselves instead of handing it to azservicebus because its parser drops
//! the endpoint's port and ignores `UseDevelopmentEmulator` (which decides TLS vs plain AMQP),
//! and because its errors are untyped. Keys are matched case-insensitively and unknown keys are
//! ignored, as the .NET SDK does (portal strings may carry keys we do not use). Error messages
//! name keys, never values: a value may be the secret.

use super::credential::Credential;
use crate::config::Secret;

/// Port of plain AMQP, which Microsoft's emulator (and ours) serve.
pub const AMQP_PORT: u16 = 5672;
/// Port of AMQP over TLS, which Azure serves.
pub const AMQPS_PORT: u16 = 5671;

/// A parsed connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusConnectionString {
    /// Host name of the namespace, e.g. `contoso.servicebus.windows.net` or `localhost`.
    pub host: String,
    /// Port given in the endpoint, if any.
    pub port: Option<u16>,
    /// `EntityPath`: set when the key is scoped to one queue or topic.
    pub entity_path: Option<String>,
    pub credential: Credential,
    /// `UseDevelopmentEmulator=true`: plain AMQP without TLS, as the official SDKs do.
    pub use_development_emulator: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("the Service Bus connection string is empty")]
    Empty,
    #[error("segment {position} of the connection string has no `=` (expected `Key=Value`)")]
    MalformedSegment { position: usize },
    #[error("the connection string sets `{key}` twice")]
    DuplicateKey { key: String },
    #[error("the connection string has no `Endpoint=sb://<namespace>` ")]
    MissingEndpoint,
    #[error(
        "the connection string's `Endpoint` is not a valid `sb://host[:port]` address: {reason}"
    )]
    InvalidEndpoint { reason: String },
    #[error(
        "the connection string has no credential: give `SharedAccessKeyName` and \
         `SharedAccessKey`, or `SharedAccessSignature`"
    )]
    MissingCredential,
    #[error("the connection string sets `{present}` but not `{missing}`")]
    IncompleteKey {
        present: &'static str,
        missing: &'static str,
    },
    #[error(
        "the connection string sets both a shared access key and a `SharedAccessSignature`; \
         keep only one"
    )]
    ConflictingCredentials,
    #[error("`UseDevelopmentEmulator` must be `true` or `false`")]
    InvalidEmulatorFlag,
}

const ENDPOINT: &str = "Endpoint";
const ENTITY_PATH: &str = "EntityPath";
const KEY_NAME: &str = "SharedAccessKeyName";
const KEY: &str = "SharedAccessKey";
const SIGNATURE: &str = "SharedAccessSignature";
const EMULATOR: &str = "UseDevelopmentEmulator";

impl ServiceBusConnectionString {
    pub fn parse(input: &str) -> Result<Self, ConnectionStringError> {
        if input.split(';').all(|segment| segment.trim().is_empty()) {
            return Err(ConnectionStringError::Empty);
        }
        let mut endpoint = None;
        let mut entity_path = None;
        let mut key_name = None;
        let mut key = None;
        let mut signature = None;
        let mut emulator = None;

        for (index, segment) in input.split(';').enumerate() {
            if segment.trim().is_empty() {
                continue;
            }
            // Split at the first `=` only: base64 keys end in `=` and SAS tokens contain many.
            let (name, value) =
                segment
                    .split_once('=')
                    .ok_or(ConnectionStringError::MalformedSegment {
                        position: index + 1,
                    })?;
            let (name, value) = (name.trim(), value.trim());
            let slot = match () {
                _ if name.eq_ignore_ascii_case(ENDPOINT) => (&mut endpoint, ENDPOINT),
                _ if name.eq_ignore_ascii_case(ENTITY_PATH) => (&mut entity_path, ENTITY_PATH),
                _ if name.eq_ignore_ascii_case(KEY_NAME) => (&mut key_name, KEY_NAME),
                _ if name.eq_ignore_ascii_case(KEY) => (&mut key, KEY),
                _ if name.eq_ignore_ascii_case(SIGNATURE) => (&mut signature, SIGNATURE),
                _ if name.eq_ignore_ascii_case(EMULATOR) => (&mut emulator, EMULATOR),
                _ => continue,
            };
            if slot.0.is_some() {
                return Err(ConnectionStringError::DuplicateKey {
                    key: slot.1.to_string(),
                });
            }
            *slot.0 = Some(value.to_string());
        }

        let endpoint = endpoint
            .filter(|e| !e.is_empty())
            .ok_or(ConnectionStringError::MissingEndpoint)?;
        let (host, port) = parse_endpoint(&endpoint)?;
        let use_development_emulator = match emulator.as_deref() {
            None => false,
            Some(flag) if flag.eq_ignore_ascii_case("true") => true,
            Some(flag) if flag.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(ConnectionStringError::InvalidEmulatorFlag),
        };
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let credential = match (non_empty(key_name), non_empty(key), non_empty(signature)) {
            (Some(_), Some(_), Some(_)) | (None, Some(_), Some(_)) | (Some(_), None, Some(_)) => {
                return Err(ConnectionStringError::ConflictingCredentials)
            }
            (None, None, Some(token)) => Credential::SharedAccessSignature(Secret::new(token)),
            (Some(name), Some(key), None) => Credential::SharedAccessKey {
                name,
                key: Secret::new(key),
            },
            (Some(_), None, None) => {
                return Err(ConnectionStringError::IncompleteKey {
                    present: KEY_NAME,
                    missing: KEY,
                })
            }
            (None, Some(_), None) => {
                return Err(ConnectionStringError::IncompleteKey {
                    present: KEY,
                    missing: KEY_NAME,
                })
            }
            (None, None, None) => return Err(ConnectionStringError::MissingCredential),
        };

        Ok(Self {
            host,
            port,
            entity_path: non_empty(entity_path),
            credential,
            use_development_emulator,
        })
    }

    /// The port to connect to: the endpoint's, else 5672 for the emulator, else 5671 (TLS).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.use_development_emulator {
            AMQP_PORT
        } else {
            AMQPS_PORT
        })
    }
}

/// Accepts `sb://host[:port][/]`; also `amqp://`, `amqps://` and a bare `host[:port]`, since
/// people paste those. Any path other than `/` is refused: an entity belongs in `EntityPath`.
pub(crate) fn parse_endpoint(
    endpoint: &str,
) -> Result<(String, Option<u16>), ConnectionStringError> {
    let invalid = |reason: &str| ConnectionStringError::InvalidEndpoint {
        reason: reason.to_string(),
    };
    let rest = match endpoint.split_once("://") {
        Some((scheme, rest)) => {
            let known = ["sb", "amqp", "amqps"];
            if !known.iter().any(|k| scheme.eq_ignore_ascii_case(k)) {
                return Err(invalid("the scheme must be `sb://`"));
            }
            rest
        }
        None => endpoint,
    };
    let authority = match rest.split_once('/') {
        Some((authority, "")) => authority,
        Some(_) => return Err(invalid("it has a path; put the entity in `EntityPath`")),
        None => rest,
    };
    if authority.contains('@') {
        return Err(invalid("it must not carry user information"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]:5672` style IPv6 literals keep their brackets in the host.
        Some((host, port)) if !port.contains(']') => {
            let port: u16 = port
                .parse()
                .map_err(|_| invalid("the port is not a number between 1 and 65535"))?;
            if port == 0 {
                return Err(invalid("the port is not a number between 1 and 65535"));
            }
            (host, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(invalid("the host is empty"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '?' | '#' | '/' | '\\'))
    {
        return Err(invalid(
            "the host contains characters a host name cannot have",
        ));
    }
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMULATOR_STRING: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

    #[test]
    fn parses_the_emulator_string() {
        let parsed = ServiceBusConnectionString::parse(EMULATOR_STRING).unwrap();
        assert_eq!(parsed.host, "localhost");
        assert_eq!(parsed.port, None);
        assert!(parsed.use_development_emulator);
        assert_eq!(parsed.effective_port(), 5672);
        assert_eq!(
            parsed.credential,
            Credential::SharedAccessKey {
                name: "RootManageSharedAccessKey".into(),
                key: Secret::new("SAS_KEY_VALUE"),
            }
        );
    }

    #[test]
    fn keeps_the_port_and_base64_padding() {
        let parsed = ServiceBusConnectionString::parse(
            "endpoint=sb://127.0.0.1:5673/;sharedaccesskeyname=k;sharedaccesskey=YWJj==;usedevelopmentemulator=TRUE",
        )
        .unwrap();
        assert_eq!(parsed.host, "127.0.0.1");
        assert_eq!(parsed.port, Some(5673));
        assert_eq!(parsed.effective_port(), 5673);
        match parsed.credential {
            Credential::SharedAccessKey { key, .. } => assert_eq!(key.expose(), "YWJj=="),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn azure_strings_default_to_tls() {
        let parsed = ServiceBusConnectionString::parse(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=abc=;EntityPath=orders",
        )
        .unwrap();
        assert_eq!(parsed.host, "contoso.servicebus.windows.net");
        assert!(!parsed.use_development_emulator);
        assert_eq!(parsed.effective_port(), 5671);
        assert_eq!(parsed.entity_path.as_deref(), Some("orders"));
    }

    #[test]
    fn accepts_a_ready_made_signature() {
        let token = "SharedAccessSignature sr=sb%3a%2f%2fx&sig=a%3d&se=1&skn=k";
        let parsed = ServiceBusConnectionString::parse(&format!(
            "Endpoint=sb://x.servicebus.windows.net;SharedAccessSignature={token}"
        ))
        .unwrap();
        assert_eq!(
            parsed.credential,
            Credential::SharedAccessSignature(Secret::new(token))
        );
    }

    #[test]
    fn refuses_bad_strings_without_echoing_secrets() {
        let cases: &[(&str, ConnectionStringError)] = &[
            ("", ConnectionStringError::Empty),
            ("  ;; ", ConnectionStringError::Empty),
            (
                "SharedAccessKeyName=a;SharedAccessKey=supersecret",
                ConnectionStringError::MissingEndpoint,
            ),
            (
                "Endpoint=sb://h;supersecret",
                ConnectionStringError::MalformedSegment { position: 2 },
            ),
            (
                "Endpoint=sb://h;SharedAccessKeyName=a",
                ConnectionStringError::IncompleteKey {
                    present: "SharedAccessKeyName",
                    missing: "SharedAccessKey",
                },
            ),
            (
                "Endpoint=sb://h;SharedAccessKey=supersecret",
                ConnectionStringError::IncompleteKey {
                    present: "SharedAccessKey",
                    missing: "SharedAccessKeyName",
                },
            ),
            ("Endpoint=sb://h", ConnectionStringError::MissingCredential),
            (
                "Endpoint=sb://h;SharedAccessKeyName=a;SharedAccessKey=supersecret;SharedAccessSignature=x",
                ConnectionStringError::ConflictingCredentials,
            ),
            (
                "Endpoint=sb://h;Endpoint=sb://g;SharedAccessKeyName=a;SharedAccessKey=supersecret",
                ConnectionStringError::DuplicateKey {
                    key: "Endpoint".into(),
                },
            ),
            (
                "Endpoint=sb://h;SharedAccessKeyName=a;SharedAccessKey=supersecret;UseDevelopmentEmulator=yes",
                ConnectionStringError::InvalidEmulatorFlag,
            ),
        ];
        for (input, expected) in cases {
            let error = ServiceBusConnectionString::parse(input).unwrap_err();
            assert_eq!(&error, expected, "input {input:?}");
            assert!(!error.to_string().contains("supersecret"), "{error}");
        }
    }

    #[test]
    fn refuses_bad_endpoints() {
        for endpoint in [
            "http://h",
            "sb://",
            "sb://h:0",
            "sb://h:99999",
            "sb://h:port",
            "sb://h/queue",
            "sb://user@h",
            "sb://h h",
        ] {
            let input = format!("Endpoint={endpoint};SharedAccessKeyName=a;SharedAccessKey=b");
            let error = ServiceBusConnectionString::parse(&input).unwrap_err();
            assert!(
                matches!(error, ConnectionStringError::InvalidEndpoint { .. }),
                "{endpoint}: {error:?}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let parsed = ServiceBusConnectionString::parse(
            "Endpoint=sb://h;SharedAccessKeyName=a;SharedAccessKey=supersecret",
        )
        .unwrap();
        assert!(!format!("{parsed:?}").contains("supersecret"));
    }
}
