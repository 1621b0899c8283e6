//! The broker: builds the entities of a namespace over one store and runs the sweeper.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{EntityProperties, NamespaceConfig};
use crate::entity::{Entity, EntityInner, EntityKind, EntitySpec};
use crate::error::BrokerError;
use crate::path::EntityPath;
use crate::store::{decode_rules, Store};
use crate::time::Timestamp;
use busdrain_filter::Rule;

/// Operational limits of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLimits {
    /// Largest accepted message payload in bytes (default 1 MiB). Larger sends fail with
    /// `MessageSizeExceeded`.
    pub max_message_size: usize,
    /// How often lock expiry, scheduled activation and TTL expiry are checked (default
    /// 100 ms): the worst-case lateness of those events.
    pub sweep_interval: Duration,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        Self {
            max_message_size: 1024 * 1024,
            sweep_interval: Duration::from_millis(100),
        }
    }
}

/// The entity model of one namespace over one durable store.
///
/// Cheap to clone, `Send + Sync`. Opening needs no async runtime: the store writer and the
/// sweeper are plain threads; operations are async only because they await durability.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<BrokerInner>,
}

struct BrokerInner {
    namespace: String,
    limits: BrokerLimits,
    /// Every addressable entity by case-folded path (queues, topics, subscriptions, DLQs).
    entities: HashMap<String, Arc<EntityInner>>,
    /// Display paths in configuration order, for listings.
    order: Vec<EntityPath>,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl Broker {
    /// Opens (or creates) the store in `data_dir`, builds the entities of `config`, recovers
    /// stored messages (every lock has lapsed) and starts the writer and sweeper threads.
    pub fn open(
        data_dir: &Path,
        config: NamespaceConfig,
        limits: BrokerLimits,
    ) -> Result<Broker, BrokerError> {
        let mut paths: Vec<EntityPath> = Vec::new();
        for queue in &config.queues {
            paths.push(EntityPath::entity(&queue.name));
            paths.push(EntityPath::entity(&queue.name).dead_letter_queue());
        }
        for topic in &config.topics {
            paths.push(EntityPath::entity(&topic.name));
            for subscription in &topic.subscriptions {
                let path = EntityPath::subscription(&topic.name, &subscription.name);
                paths.push(path.dead_letter_queue());
                paths.push(path);
            }
        }
        let keys: Vec<String> = paths.iter().map(EntityPath::key).collect();
        let (store, mut recovered) = Store::open(data_dir, &keys)?;

        let id_of = |path: &EntityPath| {
            recovered
                .entity_ids
                .get(&path.key())
                .copied()
                .ok_or_else(|| BrokerError::Corrupt {
                    detail: format!("no id assigned to entity `{path}`"),
                })
        };
        let size = limits.max_message_size;
        let mut built: Vec<Arc<EntityInner>> = Vec::new();
        let new_entity = |path: EntityPath,
                          kind,
                          properties: EntityProperties,
                          dlq: Option<Arc<EntityInner>>,
                          subscriptions,
                          config_rules: Vec<Rule>|
         -> Result<Arc<EntityInner>, BrokerError> {
            let id = id_of(&path)?;
            // Rules changed at runtime survive restarts, unless Config.json's rules for this
            // subscription changed since: then the config wins again.
            let rules = recovered
                .rules
                .get(&id)
                .and_then(|stored| decode_rules(&path, stored))
                .filter(|stored| stored.config == config_rules)
                .map(|stored| stored.current)
                .unwrap_or_else(|| config_rules.clone());
            let spec = EntitySpec {
                id,
                path,
                kind,
                properties,
                max_message_size: size,
                dead_letter_queue: dlq,
                subscriptions,
                rules,
                config_rules,
            };
            Ok(Arc::new(EntityInner::new(spec, Arc::clone(&store))))
        };

        for queue in &config.queues {
            let path = EntityPath::entity(&queue.name);
            let dlq = new_entity(
                path.dead_letter_queue(),
                EntityKind::Queue,
                dead_letter_queue_properties(&queue.properties),
                None,
                Vec::new(),
                Vec::new(),
            )?;
            let entity = new_entity(
                path,
                EntityKind::Queue,
                queue.properties.clone(),
                Some(Arc::clone(&dlq)),
                Vec::new(),
                Vec::new(),
            )?;
            built.push(entity);
            built.push(dlq);
        }
        for topic in &config.topics {
            let mut subscriptions = Vec::with_capacity(topic.subscriptions.len());
            for subscription in &topic.subscriptions {
                let path = EntityPath::subscription(&topic.name, &subscription.name);
                let mut properties = subscription.properties.clone();
                // A subscription copy lives no longer than the topic's TTL allows.
                properties.default_message_time_to_live = match (
                    properties.default_message_time_to_live,
                    topic.properties.default_message_time_to_live,
                ) {
                    (Some(own), Some(topic_ttl)) => Some(own.min(topic_ttl)),
                    (own, topic_ttl) => own.or(topic_ttl),
                };
                properties.requires_duplicate_detection = false;
                let dlq = new_entity(
                    path.dead_letter_queue(),
                    EntityKind::Subscription,
                    dead_letter_queue_properties(&properties),
                    None,
                    Vec::new(),
                    Vec::new(),
                )?;
                let entity = new_entity(
                    path,
                    EntityKind::Subscription,
                    properties,
                    Some(Arc::clone(&dlq)),
                    Vec::new(),
                    subscription.rules.clone(),
                )?;
                subscriptions.push(Arc::clone(&entity));
                built.push(entity);
                built.push(dlq);
            }
            let properties = EntityProperties {
                default_message_time_to_live: topic.properties.default_message_time_to_live,
                requires_duplicate_detection: topic.properties.requires_duplicate_detection,
                duplicate_detection_history_time_window: topic
                    .properties
                    .duplicate_detection_history_time_window,
                ..EntityProperties::default()
            };
            built.push(new_entity(
                EntityPath::entity(&topic.name),
                EntityKind::Topic,
                properties,
                None,
                subscriptions,
                Vec::new(),
            )?);
        }

        let mut recovered_messages = 0usize;
        let mut entities = HashMap::with_capacity(built.len());
        // MessageIds of stored messages per entity id, for duplicate detection.
        let mut message_ids: HashMap<u32, Vec<(String, Timestamp, i64)>> = HashMap::new();
        for entity in &built {
            let messages = recovered.messages.remove(&entity.id).unwrap_or_default();
            let ids = messages
                .iter()
                .filter_map(|m| {
                    let id = m.content.message_id.clone()?;
                    Some((id, m.enqueued_time, m.sequence_number))
                })
                .collect();
            message_ids.insert(entity.id, ids);
            recovered_messages += messages.len();
            let last = recovered
                .last_sequences
                .get(&entity.id)
                .copied()
                .unwrap_or(0);
            entity.recover(messages, last);
            if let Some(states) = recovered.session_states.remove(&entity.id) {
                Entity {
                    inner: Arc::clone(entity),
                }
                .recover_session_states(states);
            }
        }
        for entity in built {
            if entity.properties.requires_duplicate_detection {
                // A topic stores nothing itself: its history is in its subscriptions.
                let sources: Vec<u32> = match entity.kind {
                    EntityKind::Topic => entity.subscriptions.iter().map(|s| s.id).collect(),
                    _ => vec![entity.id],
                };
                for source in sources {
                    if let Some(ids) = message_ids.get(&source) {
                        entity.remember_message_ids(ids);
                    }
                }
            }
            entities.insert(entity.path.key(), entity);
        }
        let orphaned: usize = recovered.messages.values().map(Vec::len).sum();
        if orphaned > 0 {
            tracing::warn!(messages = orphaned, "stored messages belong to entities no longer in the config; they are kept but unreachable");
        }
        tracing::info!(
            namespace = %config.name,
            data_dir = %data_dir.display(),
            entities = entities.len(),
            recovered_messages,
            "broker opened"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let inner = Arc::new(BrokerInner {
            namespace: config.name,
            limits,
            entities,
            order: paths,
            store,
            stop: Arc::clone(&stop),
            sweeper: Mutex::new(None),
        });
        let sweeper = spawn_sweeper(Arc::downgrade(&inner), stop, inner.limits.sweep_interval)?;
        if let Ok(mut slot) = inner.sweeper.lock() {
            *slot = Some(sweeper);
        }
        Ok(Broker { inner })
    }

    /// The namespace name from the configuration.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The limits the broker was opened with.
    pub fn limits(&self) -> &BrokerLimits {
        &self.inner.limits
    }

    /// Resolves an address (case-insensitively) to its entity.
    pub fn entity(&self, path: &EntityPath) -> Result<Entity, BrokerError> {
        self.inner
            .entities
            .get(&path.key())
            .map(|inner| Entity {
                inner: Arc::clone(inner),
            })
            .ok_or_else(|| BrokerError::EntityNotFound {
                path: path.to_string(),
            })
    }

    /// Every addressable entity (queues, topics, subscriptions and their dead-letter queues),
    /// in configuration order.
    pub fn entity_paths(&self) -> &[EntityPath] {
        &self.inner.order
    }

    /// Stops the sweeper and the writer after the queued writes are committed. Later
    /// operations fail with `ShuttingDown`. Idempotent. The database file is released when
    /// the last `Broker` and `Entity` handle is dropped.
    pub fn close(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let sweeper = self.inner.sweeper.lock().ok().and_then(|mut s| s.take());
        if let Some(sweeper) = sweeper {
            sweeper.thread().unpark();
            if sweeper.join().is_err() {
                tracing::error!("broker sweeper thread panicked");
            }
        }
        self.inner.store.close();
    }
}

/// A dead-letter queue keeps its parent's lock duration and delivery count, but is read
/// without sessions, never detects duplicates and never expires messages.
fn dead_letter_queue_properties(parent: &EntityProperties) -> EntityProperties {
    EntityProperties {
        requires_session: false,
        requires_duplicate_detection: false,
        default_message_time_to_live: None,
        dead_lettering_on_message_expiration: false,
        ..parent.clone()
    }
}

/// The sweeper holds only a weak reference, so dropping every `Broker` ends it.
fn spawn_sweeper(
    broker: Weak<BrokerInner>,
    stop: Arc<AtomicBool>,
    interval: Duration,
) -> Result<JoinHandle<()>, BrokerError> {
    std::thread::Builder::new()
        .name("broker-sweeper".to_owned())
        .spawn(move || loop {
            std::thread::park_timeout(interval);
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Some(broker) = broker.upgrade() else {
                return;
            };
            let now = Timestamp::now();
            for entity in broker.entities.values() {
                entity.sweep(now);
            }
        })
        .map_err(|source| BrokerError::DataDir {
            path: "<sweeper thread>".to_owned(),
            source,
        })
}
