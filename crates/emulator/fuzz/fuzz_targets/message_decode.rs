//! A producer's message bytes (single or batched) and the delivery re-encoding of whatever
//! decodes: never a panic, never unbounded recursion.
#![no_main]

use busdrain_emulator::message::{decode_transfer, encode_delivery, DeliveryStamp, BATCH_MESSAGE_FORMAT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = if data.first().is_some_and(|b| b & 1 == 1) { BATCH_MESSAGE_FORMAT } else { 0 };
    let body = data.get(1..).unwrap_or_default();
    if let Ok(messages) = decode_transfer(format, body) {
        for message in messages {
            let stamp = DeliveryStamp {
                delivery_count: 1,
                modified_properties: vec![("k".into(), busdrain_emulator::property::to_amqp(&busdrain_broker::PropertyValue::Int(1)))],
                ..Default::default()
            };
            let _ = encode_delivery(&message.payload, &stamp);
        }
    }
    let _ = encode_delivery(body, &DeliveryStamp::default());
    let _ = busdrain_emulator::address::NodeAddress::parse(&String::from_utf8_lossy(body));
});
