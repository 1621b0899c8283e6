//! Session receivers: the attach side of a receive link on a session-enabled entity.
//!
//! The client asks for a session through the source filter `com.microsoft:session-filter`:
//! a session id, or null for the next available session. We lock the session, then answer
//! the attach echoing the filter with the actual session id (a string: every SDK reads it
//! back) and the attach property `com.microsoft:locked-until-utc` (a long of .NET ticks).
//! A next-available request waits up to the client's `com.microsoft:timeout` for a session
//! with available messages, then refuses the attach with `com.microsoft:timeout`.

use std::time::Duration;

use busdrain_amqp::types::definitions::{Error, Fields};
use busdrain_amqp::types::messaging::Source;
use busdrain_amqp::types::performatives::Attach;
use busdrain_amqp::types::primitives::Symbol;
use busdrain_broker::{BrokerError, Entity, SessionLock};
use serde_amqp::Value;

use crate::bridge::{amqp_error, broker_error, TIMEOUT};

pub const SESSION_FILTER: &str = "com.microsoft:session-filter";
const LOCKED_UNTIL_UTC: &str = "com.microsoft:locked-until-utc";
const OPERATION_TIMEOUT: &str = "com.microsoft:timeout";

/// How long a next-available request waits when the client names no timeout (Service Bus'
/// default operation timeout; pyamqp itself gives up after 65 s).
const DEFAULT_ACCEPT_TIMEOUT: Duration = Duration::from_secs(60);
/// A session also becomes available when another receiver's lock lapses or is released,
/// which wakes no watcher: look again at least this often.
const ACCEPT_POLL: Duration = Duration::from_millis(250);
/// A link that goes away releases its session only after its unsettled messages were given
/// back (so the next receiver starts with them, in order), which can be just after the client
/// saw its detach answered. A request for that session by name right then is retried this
/// long before it is refused with `session-cannot-be-locked`.
const NAMED_GRACE: Duration = Duration::from_millis(1000);
const NAMED_POLL: Duration = Duration::from_millis(20);

/// Which session a receive link asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRequest {
    Named(String),
    NextAvailable,
}

/// The session the attach's source filter asks for; `None` when it has no session filter.
pub fn session_request(attach: &Attach) -> Option<SessionRequest> {
    let filter = attach.source.as_ref()?.filter.as_ref()?;
    let value = filter.get(&Symbol::from(SESSION_FILTER))?;
    Some(match session_id_of(value) {
        Some(id) => SessionRequest::Named(id),
        None => SessionRequest::NextAvailable,
    })
}

/// The session id in a filter value: plain (Python, JS) or described; null = next available.
fn session_id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.clone()),
        Value::Symbol(id) => Some(id.0.clone()),
        Value::Described(described) => session_id_of(&described.value),
        _ => None,
    }
}

/// The client's `com.microsoft:timeout` attach property (milliseconds), or the default.
pub fn accept_timeout(attach: &Attach) -> Duration {
    let millis = attach
        .properties
        .as_ref()
        .and_then(|p| p.get(&Symbol::from(OPERATION_TIMEOUT)))
        .and_then(|value| match value {
            Value::Uint(ms) => Some(u64::from(*ms)),
            Value::Ulong(ms) => Some(*ms),
            Value::Int(ms) => u64::try_from(*ms).ok(),
            Value::Long(ms) => u64::try_from(*ms).ok(),
            // rhea encodes a JavaScript number that is not a small integer as a double.
            Value::Double(ms) if ms.into_inner().is_finite() && ms.into_inner() >= 0.0 => {
                Some(ms.into_inner() as u64)
            }
            _ => None,
        });
    millis.map_or(DEFAULT_ACCEPT_TIMEOUT, Duration::from_millis)
}

/// Locks the requested session. A named session is locked at once (or refused with
/// `session-cannot-be-locked`); the next available one is waited for until `timeout`.
pub async fn lock_session(
    entity: &Entity,
    request: &SessionRequest,
    timeout: Duration,
) -> Result<SessionLock, Error> {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let grace_deadline = started + timeout.min(NAMED_GRACE);
    loop {
        // Subscribe before looking, so a send between the two still wakes us.
        let mut watch = entity.watch();
        let wanted = match request {
            SessionRequest::Named(id) => Some(id.as_str()),
            SessionRequest::NextAvailable => None,
        };
        match entity.accept_session(wanted) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) => {}
            Err(BrokerError::SessionCannotBeLocked { .. })
                if tokio::time::Instant::now() < grace_deadline =>
            {
                tokio::time::sleep(NAMED_POLL).await;
                continue;
            }
            Err(error) => return Err(broker_error(&error)),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(amqp_error(
                TIMEOUT,
                format!(
                    "no session with available messages within {} ms",
                    timeout.as_millis()
                ),
            ));
        }
        let pause = (deadline - now).min(ACCEPT_POLL);
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return Err(broker_error(&BrokerError::ShuttingDown));
                }
            }
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// The source to answer with: the client's, with the session filter set to the actual id.
pub fn reply_source(requested: Option<&Source>, lock: &SessionLock) -> Option<Source> {
    let mut source = requested.cloned()?;
    let mut filter = source.filter.take().unwrap_or_default();
    filter.insert(
        Symbol::from(SESSION_FILTER),
        Value::String(lock.session_id.clone()),
    );
    source.filter = Some(filter);
    Some(source)
}

/// Adds `com.microsoft:locked-until-utc` (.NET ticks) to the reply's attach properties.
pub fn add_locked_until(properties: &mut Option<Fields>, lock: &SessionLock) {
    properties.get_or_insert_with(Fields::new).insert(
        Symbol::from(LOCKED_UNTIL_UTC),
        Value::Long(lock.locked_until.as_dotnet_ticks()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_amqp::described::Described;
    use serde_amqp::descriptor::Descriptor;

    fn attach_with_filter(value: Option<Value>) -> Attach {
        let mut source = Source::builder().address("q").build();
        if let Some(value) = value {
            let mut filter = busdrain_amqp::types::messaging::FilterSet::new();
            filter.insert(Symbol::from(SESSION_FILTER), value);
            source.filter = Some(filter);
        }
        Attach {
            name: "link".into(),
            handle: 0.into(),
            role: busdrain_amqp::types::definitions::Role::Receiver,
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: Some(Box::new(source)),
            target: None,
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    #[test]
    fn the_session_filter_names_a_session_or_asks_for_the_next_one() {
        assert_eq!(session_request(&attach_with_filter(None)), None);
        assert_eq!(
            session_request(&attach_with_filter(Some(Value::Null))),
            Some(SessionRequest::NextAvailable)
        );
        assert_eq!(
            session_request(&attach_with_filter(Some(Value::String("s1".into())))),
            Some(SessionRequest::Named("s1".into()))
        );
        let described = Value::Described(Box::new(Described {
            descriptor: Descriptor::Name(Symbol::from(SESSION_FILTER)),
            value: Value::String("s2".into()),
        }));
        assert_eq!(
            session_request(&attach_with_filter(Some(described))),
            Some(SessionRequest::Named("s2".into()))
        );
    }

    #[tokio::test]
    async fn a_named_request_waits_briefly_for_a_session_being_released() {
        let broker = crate::test_broker::TestBroker::open();
        let entity = broker.entity("session-queue.1");
        let named = SessionRequest::Named("s1".into());
        let holder = lock_session(&entity, &named, Duration::from_secs(5))
            .await
            .expect("a free named session is locked at once");
        let releaser = entity.clone();
        let releasing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            releaser.release_session(&holder.session_id, holder.token);
        });
        let started = tokio::time::Instant::now();
        let next = lock_session(&entity, &named, Duration::from_secs(5))
            .await
            .expect("the session released within the grace is locked");
        assert_eq!(next.session_id, "s1");
        assert!(started.elapsed() >= Duration::from_millis(150));
        releasing.await.expect("release task");

        // Held throughout: refused once the grace is over, well before the timeout.
        let started = tokio::time::Instant::now();
        let refused = lock_session(&entity, &named, Duration::from_secs(5))
            .await
            .expect_err("a held session cannot be locked");
        assert_eq!(
            refused.condition,
            busdrain_amqp::types::definitions::ErrorCondition::Custom(Symbol::from(
                crate::bridge::SESSION_CANNOT_BE_LOCKED
            ))
        );
        let waited = started.elapsed();
        assert!(
            waited >= NAMED_GRACE && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    #[test]
    fn the_accept_timeout_comes_from_the_attach_or_defaults() {
        let mut attach = attach_with_filter(Some(Value::Null));
        assert_eq!(accept_timeout(&attach), DEFAULT_ACCEPT_TIMEOUT);
        let mut properties = Fields::new();
        properties.insert(Symbol::from(OPERATION_TIMEOUT), Value::Uint(2500));
        attach.properties = Some(properties);
        assert_eq!(accept_timeout(&attach), Duration::from_millis(2500));
        let mut properties = Fields::new();
        properties.insert(
            Symbol::from(OPERATION_TIMEOUT),
            Value::Double(1500.0.into()),
        );
        attach.properties = Some(properties);
        assert_eq!(accept_timeout(&attach), Duration::from_millis(1500));
    }
}
