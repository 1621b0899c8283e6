//! AMQP request/response messages, the envelope shared by `$cbs` and `$management`.
//!
//! A request carries its operation in application-properties and its arguments in an
//! amqp-value body. The response's `correlation-id` is the request's `message-id` **with the
//! same AMQP type** (pyamqp matches a uuid for CBS and a ulong for management; a stringified
//! id never matches), and its status goes in application-properties under keys that differ
//! per node (see [`StatusKeys`]).

use fe2o3_amqp_types::messaging::{MessageId, Properties};
use serde_amqp::primitives::OrderedMap;
use serde_amqp::Value;

use crate::codec::{self, SectionKind};
use crate::message::{key_text, MessageError};

/// A decoded request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub message_id: Option<MessageId>,
    pub reply_to: Option<String>,
    /// Application properties with text keys.
    pub properties: Vec<(String, Value)>,
    /// The amqp-value body, if any.
    pub body: Option<Value>,
}

impl Request {
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn property_text(&self, name: &str) -> Option<&str> {
        match self.property(name)? {
            Value::String(s) => Some(s),
            Value::Symbol(s) => Some(&s.0),
            _ => None,
        }
    }

    /// The operation named in `operation`.
    pub fn operation(&self) -> Option<&str> {
        self.property_text("operation")
    }

    /// An entry of the body map (keys may be strings or symbols).
    pub fn body_entry(&self, name: &str) -> Option<&Value> {
        match self.body.as_ref()? {
            Value::Map(map) => map
                .iter()
                .find(|(k, _)| key_text(k) == Some(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Decodes a request message. Never panics; malformed input is an error.
pub fn parse_request(bytes: &[u8]) -> Result<Request, MessageError> {
    let mut request = Request::default();
    for section in codec::split_sections(bytes)? {
        match section.kind {
            SectionKind::Properties => {
                let properties: Properties =
                    serde_amqp::from_slice(section.encoded).map_err(|e| MessageError::Section {
                        section: "properties",
                        reason: e.to_string(),
                    })?;
                request.message_id = properties.message_id;
                request.reply_to = properties.reply_to;
            }
            SectionKind::ApplicationProperties => {
                if let Value::Map(map) = decode_value("application-properties", section.value)? {
                    request.properties = map
                        .into_inner()
                        .into_iter()
                        .filter_map(|(k, v)| Some((key_text(&k)?.to_string(), v)))
                        .collect();
                }
            }
            SectionKind::AmqpValue => {
                request.body = Some(decode_value("amqp-value", section.value)?);
            }
            _ => {}
        }
    }
    Ok(request)
}

fn decode_value(section: &'static str, bytes: &[u8]) -> Result<Value, MessageError> {
    serde_amqp::from_slice(bytes).map_err(|e| MessageError::Section {
        section,
        reason: e.to_string(),
    })
}

/// Which application-properties keys carry the status.
#[derive(Debug, Clone, Copy)]
pub struct StatusKeys {
    pub code: &'static str,
    pub description: &'static str,
}

/// `$cbs` answers in kebab-case (pyamqp's CBS link reads `status-code`).
pub const CBS_STATUS_KEYS: StatusKeys = StatusKeys {
    code: "status-code",
    description: "status-description",
};

/// `$management` answers in camelCase (pyamqp's management link reads `statusCode`;
/// JS accepts both).
pub const MANAGEMENT_STATUS_KEYS: StatusKeys = StatusKeys {
    code: "statusCode",
    description: "statusDescription",
};

/// A response before encoding.
#[derive(Debug, Clone)]
pub struct Response {
    pub status_code: i32,
    pub description: String,
    /// `errorCondition` on failed management operations.
    pub error_condition: Option<String>,
    /// amqp-value body.
    pub body: Option<Value>,
}

impl Response {
    pub fn ok(body: Option<Value>) -> Response {
        Response {
            status_code: 200,
            description: "OK".to_string(),
            error_condition: None,
            body,
        }
    }

    pub fn error(status_code: i32, condition: &str, description: impl Into<String>) -> Response {
        Response {
            status_code,
            description: description.into(),
            error_condition: Some(condition.to_string()),
            body: None,
        }
    }

    /// Encodes the response to `request`.
    pub fn encode(&self, request: &Request, keys: StatusKeys) -> Result<Vec<u8>, MessageError> {
        let encode_error = |e: serde_amqp::Error| MessageError::Encode(e.to_string());
        let properties = Properties {
            message_id: Some(MessageId::String(uuid::Uuid::new_v4().to_string())),
            correlation_id: request.message_id.clone(),
            to: request.reply_to.clone(),
            ..Default::default()
        };
        let mut out = serde_amqp::to_vec(&properties).map_err(encode_error)?;

        let mut application_properties = OrderedMap::new();
        application_properties.insert(
            Value::String(keys.code.to_string()),
            Value::Int(self.status_code),
        );
        application_properties.insert(
            Value::String(keys.description.to_string()),
            Value::String(self.description.clone()),
        );
        if let Some(condition) = &self.error_condition {
            application_properties.insert(
                Value::String("errorCondition".to_string()),
                Value::Symbol(condition.as_str().into()),
            );
        }
        out.extend_from_slice(&[0x00, 0x53, 0x74]);
        out.extend_from_slice(
            &serde_amqp::to_vec(&Value::Map(application_properties)).map_err(encode_error)?,
        );
        out.extend_from_slice(&[0x00, 0x53, 0x77]);
        let body = self.body.clone().unwrap_or(Value::Null);
        out.extend_from_slice(&serde_amqp::to_vec(&body).map_err(encode_error)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as pyamqp builds it: uuid message-id, string-keyed properties, map body.
    pub(crate) fn encode_request(
        message_id: MessageId,
        properties: &[(&str, Value)],
        body: Value,
    ) -> Vec<u8> {
        let props = Properties {
            message_id: Some(message_id),
            reply_to: Some("reply".into()),
            ..Default::default()
        };
        let mut out = serde_amqp::to_vec(&props).unwrap();
        let mut map = OrderedMap::new();
        for (k, v) in properties {
            map.insert(Value::String(k.to_string()), v.clone());
        }
        out.extend_from_slice(&[0x00, 0x53, 0x74]);
        out.extend_from_slice(&serde_amqp::to_vec(&Value::Map(map)).unwrap());
        out.extend_from_slice(&[0x00, 0x53, 0x77]);
        out.extend_from_slice(&serde_amqp::to_vec(&body).unwrap());
        out
    }

    #[test]
    fn response_keeps_the_message_id_type() {
        for id in [
            MessageId::Ulong(7),
            MessageId::Uuid(serde_amqp::primitives::Uuid::from([3u8; 16])),
            MessageId::String("x".into()),
        ] {
            let bytes = encode_request(
                id.clone(),
                &[("operation", Value::String("op".into()))],
                Value::Null,
            );
            let request = parse_request(&bytes).unwrap();
            assert_eq!(request.operation(), Some("op"));
            let response = Response::ok(None)
                .encode(&request, MANAGEMENT_STATUS_KEYS)
                .unwrap();
            let sections = codec::split_sections(&response).unwrap();
            let properties: Properties = serde_amqp::from_slice(sections[0].encoded).unwrap();
            assert_eq!(properties.correlation_id, Some(id));
        }
    }
}
