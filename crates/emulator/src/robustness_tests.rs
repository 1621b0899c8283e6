//! Randomized robustness tests (stable Rust; the coverage-guided targets are in `fuzz/`):
//! mutated requests and messages must be refused with an error, never a panic.

use serde_amqp::primitives::{Array, OrderedMap, Uuid as AmqpUuid};
use serde_amqp::Value;

use crate::auth::ConnectionAuth;
use crate::message::{decode_transfer, encode_delivery, DeliveryStamp, BATCH_MESSAGE_FORMAT};
use crate::request::{parse_request, CBS_STATUS_KEYS};
use crate::sas::{sign_token, SasPolicies, SasPolicy};

/// xorshift64*: deterministic, so a failure reproduces from the printed iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            1 => bytes.truncate(rng.below(bytes.len() + 1)),
            2 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, rng.next() as u8);
            }
            3 if !bytes.is_empty() => {
                // Interesting values for sizes and counts.
                let i = rng.below(bytes.len());
                bytes[i] = [0x00, 0xff, 0x7f, 0x80, 0x40, 0xc0, 0xd0, 0xe0, 0xf0][rng.below(9)];
            }
            _ if !bytes.is_empty() => {
                let start = rng.below(bytes.len());
                let end = (start + rng.below(16)).min(bytes.len());
                let chunk = bytes[start..end].to_vec();
                let at = rng.below(bytes.len() + 1);
                bytes.splice(at..at, chunk);
            }
            _ => bytes.push(rng.next() as u8),
        }
    }
    bytes
}

fn encode_request(properties: &[(&str, Value)], body: Value) -> Vec<u8> {
    let props = fe2o3_amqp_types::messaging::Properties {
        message_id: Some(fe2o3_amqp_types::messaging::MessageId::Ulong(1)),
        ..Default::default()
    };
    let mut out = serde_amqp::to_vec(&props).expect("encodes");
    let mut map = OrderedMap::new();
    for (k, v) in properties {
        map.insert(Value::String(k.to_string()), v.clone());
    }
    out.extend_from_slice(&[0x00, 0x53, 0x74]);
    out.extend_from_slice(&serde_amqp::to_vec(&Value::Map(map)).expect("encodes"));
    out.extend_from_slice(&[0x00, 0x53, 0x77]);
    out.extend_from_slice(&serde_amqp::to_vec(&body).expect("encodes"));
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let token = sign_token(
        "sb://localhost/q",
        "RootManageSharedAccessKey",
        "SAS_KEY_VALUE",
        i64::MAX / 2,
    );
    let cbs = encode_request(
        &[
            ("operation", Value::String("put-token".into())),
            ("type", Value::String("jwt".into())),
            ("name", Value::String("sb://localhost/q".into())),
        ],
        Value::String(token),
    );
    let mut args = OrderedMap::new();
    args.insert(
        Value::String("lock-tokens".into()),
        Value::Array(Array(vec![Value::Uuid(AmqpUuid::from([1u8; 16]))])),
    );
    args.insert(
        Value::String("properties-to-modify".into()),
        Value::Map(OrderedMap::new()),
    );
    let management = encode_request(
        &[(
            "operation",
            Value::String("com.microsoft:update-disposition".into()),
        )],
        Value::Map(args),
    );
    let mut message = vec![0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0x41];
    message.extend_from_slice(&[0x00, 0x53, 0x72, 0xc1, 0x05, 0x02, 0xa3, 0x01, b'k', 0x40]);
    message.extend_from_slice(
        &serde_amqp::to_vec(&fe2o3_amqp_types::messaging::Properties {
            message_id: Some(fe2o3_amqp_types::messaging::MessageId::String("m".into())),
            group_id: Some("s".into()),
            ..Default::default()
        })
        .expect("encodes"),
    );
    message.extend_from_slice(&[
        0x00, 0x53, 0x74, 0xc1, 0x06, 0x02, 0xa1, 0x01, b'a', 0x54, 0x07,
    ]);
    message.extend_from_slice(&[0x00, 0x53, 0x75, 0xa0, 0x02, b'h', b'i']);
    let mut batch = vec![0x00, 0x53, 0x75, 0xb0];
    batch.extend_from_slice(&(message.len() as u32).to_be_bytes());
    batch.extend_from_slice(&message);
    vec![cbs, management, message, batch]
}

#[test]
fn mutated_inputs_never_panic() {
    let policies = SasPolicies::new(vec![SasPolicy::emulator_default()]);
    let auth = ConnectionAuth::default();
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for iteration in 0..20_000 {
        let seed = &seeds[iteration % seeds.len()];
        let input = mutate(&mut rng, seed);
        if let Ok(request) = parse_request(&input) {
            let response = crate::cbs::handle(&request, &policies, &auth, 0);
            let _ = response.encode(&request, CBS_STATUS_KEYS);
        }
        for format in [0, BATCH_MESSAGE_FORMAT] {
            if let Ok(messages) = decode_transfer(format, &input) {
                for message in messages {
                    let _ = encode_delivery(&message.payload, &DeliveryStamp::default());
                }
            }
        }
        let _ = encode_delivery(&input, &DeliveryStamp::default());
        let _ = policies.verify(&String::from_utf8_lossy(&input), 0);
    }
}

#[test]
fn seeds_are_valid() {
    let seeds = seeds();
    // `BUSDRAIN_FUZZ_SEEDS=crates/emulator/fuzz/seeds cargo test -p busdrain-emulator seeds`
    // writes them out as a starting corpus for the cargo-fuzz targets.
    if let Some(dir) = std::env::var_os("BUSDRAIN_FUZZ_SEEDS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("seed dir");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).expect("seed written");
        }
    }
    assert!(parse_request(&seeds[0]).is_ok());
    assert!(parse_request(&seeds[1]).is_ok());
    assert_eq!(decode_transfer(0, &seeds[2]).map(|m| m.len()), Ok(1));
    assert_eq!(
        decode_transfer(BATCH_MESSAGE_FORMAT, &seeds[3]).map(|m| m.len()),
        Ok(1)
    );
    let policies = SasPolicies::new(vec![SasPolicy::emulator_default()]);
    let auth = ConnectionAuth::default();
    let request = parse_request(&seeds[0]).expect("valid");
    assert_eq!(
        crate::cbs::handle(&request, &policies, &auth, 0).status_code,
        202
    );
}
