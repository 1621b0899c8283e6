//! `$management` requests on arbitrary bytes, run against a real broker (opened once in a
//! temporary directory): the request parser and every operation's argument parsing.
#![no_main]

use std::sync::OnceLock;

use busdrain_broker::{Broker, BrokerLimits, Entity, EntityPath, NamespaceConfig};
use busdrain_emulator::auth::ConnectionAuth;
use busdrain_emulator::management::{handle, ManagementContext};
use busdrain_emulator::request::{parse_request, MANAGEMENT_STATUS_KEYS};
use busdrain_emulator::sas::Rights;
use libfuzzer_sys::fuzz_target;

struct Target {
    runtime: tokio::runtime::Runtime,
    entity: Entity,
    auth: ConnectionAuth,
    _broker: Broker,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("busdrain-emulator-fuzz-{}", std::process::id()));
        let broker = Broker::open(&dir, NamespaceConfig::default_namespace(), BrokerLimits::default())
            .expect("broker opens");
        let entity = broker.entity(&EntityPath::parse("queue.1").expect("path")).expect("queue.1");
        let auth = ConnectionAuth::default();
        auth.grant("sb://localhost/", Rights::ALL, i64::MAX);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Target { runtime, entity, auth, _broker: broker }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_request(data) else { return };
    let target = target();
    let ctx = ManagementContext { entity: &target.entity, auth: &target.auth, resource: "queue.1" };
    let response = target.runtime.block_on(handle(&request, &ctx));
    let _ = response.encode(&request, MANAGEMENT_STATUS_KEYS);
});
