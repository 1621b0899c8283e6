//! `$cbs` requests: the request parser and put-token handling (token parsing, signature,
//! audience) on arbitrary bytes.
#![no_main]

use busdrain_emulator::auth::ConnectionAuth;
use busdrain_emulator::request::{parse_request, CBS_STATUS_KEYS};
use busdrain_emulator::sas::{SasPolicies, SasPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policies = SasPolicies::new(vec![SasPolicy::emulator_default()]);
    let _ = policies.verify(&String::from_utf8_lossy(data), 0);
    if let Ok(request) = parse_request(data) {
        let auth = ConnectionAuth::default();
        let response = busdrain_emulator::cbs::handle(&request, &policies, &auth, 0);
        let _ = response.encode(&request, CBS_STATUS_KEYS);
    }
});
