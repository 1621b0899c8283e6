//! What a receiver's disposition outcome means in Service Bus terms.
//!
//! | outcome | Service Bus action |
//! |---|---|
//! | `accepted` | complete |
//! | `modified{undeliverable-here = false or absent}` | abandon; `message-annotations` are the properties to modify |
//! | `modified{undeliverable-here = true}` | defer (the SDKs' encoding, not AMQP's "don't redeliver here") |
//! | `rejected{error}` | dead-letter; `DeadLetterReason` / `DeadLetterErrorDescription` from `error.info` (else the error's description), other info entries are properties to modify |
//! | `released`, or settled without a state | abandon: Service Bus counts it as a failed delivery (delivery-count + 1, towards MaxDeliveryCount) |

use busdrain_broker::PropertyMap;
use fe2o3_amqp_types::messaging::DeliveryState;
use serde_amqp::Value;

use crate::message::{DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON};
use crate::property::from_amqp;

#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    Complete,
    Abandon(PropertyMap),
    Defer(PropertyMap),
    DeadLetter {
        reason: Option<String>,
        description: Option<String>,
        properties: PropertyMap,
    },
}

fn fields_to_properties<'a>(
    fields: impl IntoIterator<Item = (&'a serde_amqp::primitives::Symbol, &'a Value)>,
) -> PropertyMap {
    fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.0.clone(), from_amqp(v)?)))
        .collect()
}

/// Maps a client's outcome (or its absence) to a broker settlement.
pub fn from_outcome(state: Option<&DeliveryState>) -> Settlement {
    match state {
        Some(DeliveryState::Accepted(_)) => Settlement::Complete,
        Some(DeliveryState::Modified(modified)) => {
            let properties = modified
                .message_annotations
                .as_ref()
                .map(|fields| fields_to_properties(fields.iter()))
                .unwrap_or_default();
            if modified.undeliverable_here == Some(true) {
                Settlement::Defer(properties)
            } else {
                Settlement::Abandon(properties)
            }
        }
        Some(DeliveryState::Rejected(rejected)) => {
            let mut properties = PropertyMap::new();
            let mut reason = None;
            let mut description = None;
            if let Some(error) = &rejected.error {
                if let Some(info) = &error.info {
                    properties = fields_to_properties(info.iter());
                }
                reason = properties
                    .remove(DEAD_LETTER_REASON)
                    .and_then(|v| v.as_str().map(str::to_string));
                description = properties
                    .remove(DEAD_LETTER_DESCRIPTION)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .or_else(|| error.description.clone());
            }
            Settlement::DeadLetter {
                reason,
                description,
                properties,
            }
        }
        _ => Settlement::Abandon(PropertyMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busdrain_broker::PropertyValue;
    use fe2o3_amqp_types::definitions::{Error, ErrorCondition, Fields};
    use fe2o3_amqp_types::messaging::{Accepted, Modified, Rejected, Released};
    use serde_amqp::primitives::Symbol;

    #[test]
    fn maps_every_sdk_outcome() {
        assert_eq!(
            from_outcome(Some(&DeliveryState::Accepted(Accepted {}))),
            Settlement::Complete
        );
        let mut annotations = Fields::new();
        annotations.insert(Symbol::from("k"), Value::Int(1));
        let abandon = DeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            undeliverable_here: None,
            message_annotations: Some(annotations.clone()),
        });
        let mut expected = PropertyMap::new();
        expected.insert("k".into(), PropertyValue::Int(1));
        assert_eq!(
            from_outcome(Some(&abandon)),
            Settlement::Abandon(expected.clone())
        );
        let defer = DeliveryState::Modified(Modified {
            delivery_failed: None,
            undeliverable_here: Some(true),
            message_annotations: Some(annotations.clone()),
        });
        assert_eq!(
            from_outcome(Some(&defer)),
            Settlement::Defer(expected.clone())
        );

        let mut info = annotations;
        info.insert(
            Symbol::from(DEAD_LETTER_REASON),
            Value::String("bad".into()),
        );
        info.insert(
            Symbol::from(DEAD_LETTER_DESCRIPTION),
            Value::String("why".into()),
        );
        let dead_letter = DeliveryState::Rejected(Rejected {
            error: Some(Error::new(
                ErrorCondition::Custom(Symbol::from("com.microsoft:dead-letter")),
                None,
                Some(info),
            )),
        });
        assert_eq!(
            from_outcome(Some(&dead_letter)),
            Settlement::DeadLetter {
                reason: Some("bad".into()),
                description: Some("why".into()),
                properties: expected,
            }
        );
        assert_eq!(
            from_outcome(Some(&DeliveryState::Released(Released {}))),
            Settlement::Abandon(PropertyMap::new())
        );
        assert_eq!(from_outcome(None), Settlement::Abandon(PropertyMap::new()));
    }
}
