//! Arbitrary bytes as a filter and as an action: parsing must refuse or accept without a
//! panic, and whatever is accepted must evaluate / apply without a panic.
#![no_main]

use busdrain_filter::{MessageProperties, SqlFilter, SqlRuleAction, Value};
use libfuzzer_sys::fuzz_target;

fn message() -> MessageProperties {
    let mut m = MessageProperties::default();
    m.system.label = Some("the bus".into());
    m.system.sequence_number = Some(i64::MAX);
    m.system.enqueued_time_utc_ms = Some(i64::MIN);
    m.system.time_to_live_ms = Some(i64::MAX);
    m.user.insert("color".into(), Value::from("red"));
    m.user.insert("quantity".into(), Value::Long(i64::MIN));
    m.user.insert("price".into(), Value::Double(f64::NAN));
    m.user.insert("when".into(), Value::Timestamp(i64::MAX));
    m
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let message = message();
    match SqlFilter::parse(text) {
        Ok(filter) => {
            let _ = filter.evaluate(&message);
        }
        Err(error) => assert!(error.position <= text.chars().count() + 1),
    }
    if let Ok(action) = SqlRuleAction::parse(text) {
        let mut copy = message.clone();
        let _ = action.apply(&mut copy);
    }
});
