//! Link addresses as the SDKs send them, normalised to what they name.
//!
//! .NET sends `endpoint.AbsolutePath` (a leading `/`), pyamqp may send a full URI
//! (`amqp://host:port/queue`), and the docs spell `$DeadLetterQueue` in several cases. All of
//! them name the same node.

/// Which sub-queue of an entity an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubQueue {
    /// The entity itself.
    Main,
    /// `<entity>/$DeadLetterQueue`.
    DeadLetter,
    /// `<entity>/$Transfer/$DeadLetterQueue`.
    TransferDeadLetter,
}

/// An entity path: a queue (`orders`) or a subscription (`topic/Subscriptions/sub`), plus the
/// sub-queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityPath {
    /// The entity's name as the client spelled it, `Subscriptions` normalised.
    pub name: String,
    pub sub_queue: SubQueue,
}

impl EntityPath {
    /// The path a token audience must cover.
    pub fn resource(&self) -> String {
        match self.sub_queue {
            SubQueue::Main => self.name.clone(),
            SubQueue::DeadLetter => format!("{}/$DeadLetterQueue", self.name),
            SubQueue::TransferDeadLetter => format!("{}/$Transfer/$DeadLetterQueue", self.name),
        }
    }
}

impl std::fmt::Display for EntityPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.resource())
    }
}

/// The node a link attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAddress {
    /// `$cbs`: claims-based security (put-token).
    Cbs,
    /// `<entity>/$management`: the request/response node of an entity.
    Management(EntityPath),
    /// A queue, a subscription or one of their sub-queues.
    Entity(EntityPath),
}

/// Why an address names nothing we serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {0:?}")]
pub struct AddressError(pub String);

impl NodeAddress {
    pub fn parse(address: &str) -> Result<NodeAddress, AddressError> {
        let invalid = || AddressError(address.to_string());
        let path = strip_scheme_and_host(address.trim());
        let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some(last) = segments.last().copied() else {
            return Err(invalid());
        };
        if segments.len() == 1 && last.eq_ignore_ascii_case("$cbs") {
            return Ok(NodeAddress::Cbs);
        }
        let management = last.eq_ignore_ascii_case("$management");
        if management {
            segments.pop();
        }
        let mut sub_queue = SubQueue::Main;
        if segments
            .last()
            .is_some_and(|s| s.eq_ignore_ascii_case("$DeadLetterQueue"))
        {
            segments.pop();
            sub_queue = SubQueue::DeadLetter;
            if segments
                .last()
                .is_some_and(|s| s.eq_ignore_ascii_case("$Transfer"))
            {
                segments.pop();
                sub_queue = SubQueue::TransferDeadLetter;
            }
        }
        let name = match segments.as_slice() {
            [queue] => queue.to_string(),
            [topic, subs, sub] if subs.eq_ignore_ascii_case("subscriptions") => {
                format!("{topic}/Subscriptions/{sub}")
            }
            _ => return Err(invalid()),
        };
        if name.starts_with('$') {
            return Err(invalid());
        }
        let entity = EntityPath { name, sub_queue };
        Ok(if management {
            NodeAddress::Management(entity)
        } else {
            NodeAddress::Entity(entity)
        })
    }
}

fn strip_scheme_and_host(address: &str) -> &str {
    match address.find("://") {
        Some(scheme_end) => {
            let after = &address[scheme_end + 3..];
            match after.find('/') {
                Some(slash) => &after[slash..],
                None => "",
            }
        }
        None => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, sub_queue: SubQueue) -> EntityPath {
        EntityPath {
            name: name.to_string(),
            sub_queue,
        }
    }

    #[test]
    fn normalises_the_sdk_spellings() {
        assert_eq!(NodeAddress::parse("$cbs"), Ok(NodeAddress::Cbs));
        assert_eq!(NodeAddress::parse("/$cbs"), Ok(NodeAddress::Cbs));
        assert_eq!(
            NodeAddress::parse("/orders"),
            Ok(NodeAddress::Entity(entity("orders", SubQueue::Main)))
        );
        assert_eq!(
            NodeAddress::parse("amqp://localhost:5672/orders/$management"),
            Ok(NodeAddress::Management(entity("orders", SubQueue::Main)))
        );
        assert_eq!(
            NodeAddress::parse("orders/$deadletterqueue"),
            Ok(NodeAddress::Entity(entity("orders", SubQueue::DeadLetter)))
        );
        assert_eq!(
            NodeAddress::parse("sb://h/orders/$DeadLetterQueue/$management"),
            Ok(NodeAddress::Management(entity(
                "orders",
                SubQueue::DeadLetter
            )))
        );
        assert_eq!(
            NodeAddress::parse("t/subscriptions/s/$Transfer/$DeadLetterQueue"),
            Ok(NodeAddress::Entity(entity(
                "t/Subscriptions/s",
                SubQueue::TransferDeadLetter
            )))
        );
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "/",
            "a/b",
            "$management",
            "amqp://host",
            "a/x/b",
            "$foo",
        ] {
            assert!(NodeAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
