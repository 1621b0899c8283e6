//! Leniency for one common client deviation: string keys in `fields` maps.
//!
//! The spec types an error's `info` (and other `fields`) as a map keyed by *symbols*.
//! rhea, the AMQP library under `@azure/service-bus`, encodes plain JavaScript objects with
//! *string* keys, so a dead-letter disposition from the JS SDK
//! (`rejected{error{com.microsoft:dead-letter, info: {DeadLetterReason: …}}}`) does not
//! decode as the typed performative. Dropping the connection for that would make the JS
//! SDK unusable, so when a typed decode fails we retry once after rewriting string keys to
//! symbols inside every `amqp:error:list` info map. Everything else stays strict.

use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use serde_amqp::primitives::{OrderedMap, Symbol};
use serde_amqp::Value;

/// Descriptor of `amqp:error:list`.
const ERROR_CODE: u64 = 0x1d;
const ERROR_NAME: &str = "amqp:error:list";
/// Position of `info` in the error's field list (condition, description, info).
const ERROR_INFO_FIELD: usize = 2;

/// Re-encode `bytes` with string keys of error info maps turned into symbols.
/// `None` when nothing needed rewriting (the original failure stands).
pub(crate) fn symbolise_error_info_keys(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = crate::frame::from_slice_checked(bytes).ok()?;
    if !rewrite(&mut value, 0) {
        return None;
    }
    serde_amqp::to_vec(&value).ok()
}

/// Walks the value (bounded depth: the input was already validated, but stay defensive)
/// and reports whether anything changed.
fn rewrite(value: &mut Value, depth: usize) -> bool {
    if depth > 32 {
        return false;
    }
    match value {
        Value::Described(described) => {
            let mut changed = false;
            if is_error(described) {
                if let Value::List(fields) = &mut described.value {
                    if let Some(Value::Map(info)) = fields.get_mut(ERROR_INFO_FIELD) {
                        changed |= symbolise_keys(info);
                    }
                }
            }
            changed | rewrite(&mut described.value, depth + 1)
        }
        Value::List(items) => items
            .iter_mut()
            .fold(false, |changed, item| rewrite(item, depth + 1) | changed),
        _ => false,
    }
}

fn is_error(described: &Described<Value>) -> bool {
    match &described.descriptor {
        Descriptor::Code(code) => *code == ERROR_CODE,
        Descriptor::Name(name) => name.as_str() == ERROR_NAME,
    }
}

fn symbolise_keys(map: &mut OrderedMap<Value, Value>) -> bool {
    if !map.keys().any(|k| matches!(k, Value::String(_))) {
        return false;
    }
    let entries: Vec<(Value, Value)> = std::mem::take(map).into_iter().collect();
    for (key, value) in entries {
        let key = match key {
            Value::String(s) => Value::Symbol(Symbol::from(s)),
            other => other,
        };
        map.insert(key, value);
    }
    true
}
