//! A subscription's rules at runtime (`$management` add-rule, remove-rule, enumerate-rules).
//!
//! Changes are durable. At open, stored rules are used while the subscription's rules in
//! Config.json are the same as when they were stored; a changed config replaces them.

use std::sync::Arc;

use busdrain_filter::Rule;

use super::{Entity, EntityKind};
use crate::error::BrokerError;
use crate::store::{encode_rules, StoredRules, WriteOp};

impl Entity {
    fn check_subscription(&self, operation: &'static str) -> Result<(), BrokerError> {
        if self.inner.kind != EntityKind::Subscription || self.inner.is_dead_letter_queue() {
            return Err(self
                .inner
                .invalid(operation, "rules belong to topic subscriptions"));
        }
        Ok(())
    }

    /// The subscription's rules, in evaluation order.
    pub fn rules(&self) -> Result<Vec<Rule>, BrokerError> {
        self.check_subscription("enumerate-rules")?;
        Ok(self.inner.rules().clone())
    }

    /// Adds a rule (durably). `RuleAlreadyExists` if a rule has that name (case-insensitive).
    /// Messages sent afterwards are routed with it.
    pub async fn add_rule(&self, rule: Rule) -> Result<(), BrokerError> {
        self.check_subscription("add-rule")?;
        let _serialised = self.inner.rule_changes.lock().await;
        let mut rules = self.inner.rules().clone();
        if rules
            .iter()
            .any(|r| r.name.eq_ignore_ascii_case(&rule.name))
        {
            return Err(BrokerError::RuleAlreadyExists {
                entity: self.inner.name(),
                rule: rule.name,
            });
        }
        rules.push(rule);
        self.store_rules(rules).await
    }

    /// Removes a rule by name (case-insensitive), durably. `RuleNotFound` if there is none.
    pub async fn remove_rule(&self, name: &str) -> Result<(), BrokerError> {
        self.check_subscription("remove-rule")?;
        let _serialised = self.inner.rule_changes.lock().await;
        let mut rules = self.inner.rules().clone();
        let before = rules.len();
        rules.retain(|r| !r.name.eq_ignore_ascii_case(name));
        if rules.len() == before {
            return Err(BrokerError::RuleNotFound {
                entity: self.inner.name(),
                rule: name.to_owned(),
            });
        }
        self.store_rules(rules).await
    }

    async fn store_rules(&self, rules: Vec<Rule>) -> Result<(), BrokerError> {
        let record = encode_rules(&StoredRules {
            config: self.inner.config_rules.clone(),
            current: rules.clone(),
        })?;
        let ops = vec![WriteOp::SetRules {
            entity: self.inner.id,
            record,
        }];
        let entity = Arc::clone(&self.inner);
        self.inner
            .write(ops, move |result| {
                if result.is_ok() {
                    let mut current = entity
                        .rules
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    *current = rules;
                }
            })
            .await
    }
}
