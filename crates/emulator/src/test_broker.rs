//! A real broker for unit tests: the default namespace in a fresh temp dir, closed and removed
//! when dropped.

use busdrain_broker::{Broker, BrokerLimits, Entity, EntityPath, NamespaceConfig};

pub(crate) struct TestBroker {
    pub(crate) broker: Broker,
    dir: std::path::PathBuf,
}

impl TestBroker {
    /// Opens the default namespace (`queue.1`, `session-queue.1`, `topic.1`, …).
    pub(crate) fn open() -> Self {
        let dir =
            std::env::temp_dir().join(format!("busdrain-emulator-test-{}", uuid::Uuid::new_v4()));
        let broker = Broker::open(
            &dir,
            NamespaceConfig::default_namespace(),
            BrokerLimits::default(),
        )
        .expect("broker opens in a fresh temp dir");
        Self { broker, dir }
    }

    /// An entity of the default namespace.
    pub(crate) fn entity(&self, path: &str) -> Entity {
        self.broker
            .entity(&EntityPath::parse(path).expect("valid path"))
            .expect("the entity exists in the default namespace")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.broker.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
