//! Entity addresses: `queue`, `topic`, `topic/Subscriptions/sub`, each optionally followed by
//! `/$DeadLetterQueue`.
//!
//! Clients spell addresses in several ways (protocol facts, see `servicebus-wire.md` §2f):
//! .NET sends the URI's absolute path with a leading `/`; pyamqp may send the full
//! `amqps://host/queue` URI; the docs write `$deadletterqueue` in lower case. [`EntityPath::parse`]
//! accepts all of them and yields one normal form.

use std::fmt;

/// Segment that selects an entity's dead-letter sub-queue (matched case-insensitively).
pub const DEAD_LETTER_QUEUE_SEGMENT: &str = "$DeadLetterQueue";
/// Segment between a topic and a subscription name (matched case-insensitively).
pub const SUBSCRIPTIONS_SEGMENT: &str = "Subscriptions";

/// A parsed, normalised entity address.
///
/// Names keep the case the client used; the broker resolves them case-insensitively, as Service
/// Bus does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityPath {
    /// Queue or topic name. May itself contain `/` (Service Bus allows it in entity names).
    pub name: String,
    /// Subscription name when the address is `<topic>/Subscriptions/<subscription>`.
    pub subscription: Option<String>,
    /// Whether the address names the `$DeadLetterQueue` sub-queue of the entity.
    pub dead_letter: bool,
}

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entity address `{address}`: {reason}")]
pub struct EntityPathError {
    /// The address as received.
    pub address: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl EntityPath {
    /// A queue or topic.
    pub fn entity(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            subscription: None,
            dead_letter: false,
        }
    }

    /// A topic subscription.
    pub fn subscription(topic: impl Into<String>, subscription: impl Into<String>) -> Self {
        Self {
            name: topic.into(),
            subscription: Some(subscription.into()),
            dead_letter: false,
        }
    }

    /// The dead-letter sub-queue of this entity.
    pub fn dead_letter_queue(&self) -> Self {
        Self {
            dead_letter: true,
            ..self.clone()
        }
    }

    /// The entity whose dead-letter queue this is (or `self` without the sub-queue).
    pub fn without_dead_letter(&self) -> Self {
        Self {
            dead_letter: false,
            ..self.clone()
        }
    }

    /// Parses an address as sent by a client: `queue`, `/queue`, `sb://host/queue`,
    /// `amqps://host:5671/topic/subscriptions/sub/$deadletterqueue`, …
    ///
    /// `$Transfer/$DeadLetterQueue` and other `$` segments are refused: the broker has no such
    /// sub-queues. The `$management` and `$cbs` nodes are the emulator's business and must be
    /// stripped before calling this.
    pub fn parse(address: &str) -> Result<Self, EntityPathError> {
        let fail = |reason| EntityPathError {
            address: address.to_owned(),
            reason,
        };
        let mut rest = address.trim();
        if let Some((scheme, after)) = rest.split_once("://") {
            if scheme.is_empty()
                || !scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
            {
                return Err(fail("malformed URI scheme"));
            }
            // Drop the host (and port); what follows the first `/` is the entity path.
            rest = after.split_once('/').map(|(_, path)| path).unwrap_or("");
        }
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let Some((last, _)) = segments.split_last() else {
            return Err(fail("no entity name"));
        };
        let dead_letter = last.eq_ignore_ascii_case(DEAD_LETTER_QUEUE_SEGMENT);
        let segments = if dead_letter {
            &segments[..segments.len() - 1]
        } else {
            &segments[..]
        };
        if segments.iter().any(|s| s.starts_with('$')) {
            return Err(fail(
                "unsupported `$` segment (only `/$DeadLetterQueue` is a sub-queue)",
            ));
        }
        let subscriptions_at = segments
            .iter()
            .rposition(|s| s.eq_ignore_ascii_case(SUBSCRIPTIONS_SEGMENT));
        let path = match subscriptions_at {
            // `<topic>/Subscriptions/<sub>`: the keyword must be second to last with a topic before it.
            Some(at) if at > 0 && at + 2 == segments.len() => Self {
                name: segments[..at].join("/"),
                subscription: Some(segments[at + 1].to_owned()),
                dead_letter,
            },
            Some(_) => {
                return Err(fail("expected `<topic>/Subscriptions/<subscription>`"));
            }
            _ => {
                if segments.is_empty() {
                    return Err(fail("no entity name before `$DeadLetterQueue`"));
                }
                Self {
                    name: segments.join("/"),
                    subscription: None,
                    dead_letter,
                }
            }
        };
        Ok(path)
    }

    /// Case-folded form used as the lookup and storage key.
    pub fn key(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl fmt::Display for EntityPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(subscription) = &self.subscription {
            write!(f, "/{SUBSCRIPTIONS_SEGMENT}/{subscription}")?;
        }
        if self.dead_letter {
            write!(f, "/{DEAD_LETTER_QUEUE_SEGMENT}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for EntityPath {
    type Err = EntityPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(address: &str) -> EntityPath {
        match EntityPath::parse(address) {
            Ok(path) => path,
            Err(error) => panic!("{address}: {error}"),
        }
    }

    #[test]
    fn queue_spellings() {
        let queue = EntityPath::entity("queue.1");
        assert_eq!(parsed("queue.1"), queue);
        assert_eq!(parsed("/queue.1"), queue);
        assert_eq!(parsed("sb://localhost/queue.1"), queue);
        assert_eq!(
            parsed("amqps://ns.servicebus.windows.net:5671/queue.1"),
            queue
        );
        assert_eq!(parsed("amqp://localhost:5672/queue.1/"), queue);
    }

    #[test]
    fn dead_letter_queue_any_case() {
        let dlq = EntityPath::entity("queue.1").dead_letter_queue();
        assert_eq!(parsed("queue.1/$DeadLetterQueue"), dlq);
        assert_eq!(parsed("/queue.1/$deadletterqueue"), dlq);
        assert_eq!(dlq.to_string(), "queue.1/$DeadLetterQueue");
    }

    #[test]
    fn subscriptions() {
        let sub = EntityPath::subscription("topic.1", "subscription.1");
        assert_eq!(parsed("topic.1/Subscriptions/subscription.1"), sub);
        assert_eq!(parsed("/topic.1/subscriptions/subscription.1"), sub);
        assert_eq!(
            parsed("sb://h/topic.1/SUBSCRIPTIONS/subscription.1/$DEADLETTERQUEUE"),
            sub.dead_letter_queue()
        );
        assert_eq!(
            sub.dead_letter_queue().key(),
            "topic.1/subscriptions/subscription.1/$deadletterqueue"
        );
    }

    #[test]
    fn names_with_slashes() {
        assert_eq!(parsed("/a/b/c"), EntityPath::entity("a/b/c"));
        assert_eq!(
            parsed("a/b/Subscriptions/s"),
            EntityPath::subscription("a/b", "s")
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "/",
            "sb://host",
            "sb://host/",
            "$DeadLetterQueue",
            "q/$Transfer/$DeadLetterQueue",
            "q/$management",
            "Subscriptions/s",
            "t/Subscriptions",
            "t/Subscriptions/s/extra",
        ] {
            assert!(EntityPath::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
