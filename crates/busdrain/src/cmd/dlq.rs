//! `busdrain dlq`: list the messages in a queue's or subscription's dead-letter queue with their
//! `DeadLetterReason` and `DeadLetterErrorDescription` — what the connector refused and why.
//! Listing peeks (`$management` `com.microsoft:peek-message`): nothing is locked and the delivery
//! counts do not move, so inspecting is free of side effects. `--remove` then receives the listed
//! messages in peek-lock mode and completes them.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use busdrain_connector::source::{
    ConnectorSettings, MessageSource as _, PropertyValue, ReceivedMessage, ReceiverSettings,
    ServiceBusConnectionString, ServiceBusConnector, ServiceBusSource, SourceEntity,
};

/// Messages asked for per peek (the emulator and Service Bus cap a peek themselves).
const PEEK_PAGE: u64 = 100;

/// Arguments of `busdrain dlq`.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    /// Service Bus connection string (the emulator's `UseDevelopmentEmulator=true` form works).
    #[arg(
        long,
        env = "BUSDRAIN_SERVICE_BUS_CONNECTION_STRING",
        hide_env_values = true
    )]
    connection_string: String,

    /// A queue (`orders`) or a subscription (`topic/subscriptions/name`).
    #[arg(long)]
    entity: String,

    /// Most messages to list.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max: u64,

    /// Complete (delete) the listed messages instead of leaving them in the DLQ.
    #[arg(long)]
    remove: bool,
}

fn parse_entity(entity: &str) -> anyhow::Result<SourceEntity> {
    match entity.split('/').collect::<Vec<_>>().as_slice() {
        [queue] if !queue.is_empty() => Ok(SourceEntity::Queue((*queue).to_owned())),
        [topic, subs, subscription]
            if subs.eq_ignore_ascii_case("subscriptions")
                && !topic.is_empty()
                && !subscription.is_empty() =>
        {
            Ok(SourceEntity::Subscription {
                topic: (*topic).to_owned(),
                subscription: (*subscription).to_owned(),
            })
        }
        _ => anyhow::bail!(
            "--entity {entity:?}: expected a queue name or topic/subscriptions/<subscription>"
        ),
    }
}

fn property(message: &ReceivedMessage, name: &str) -> String {
    match message.application_properties.get(name) {
        Some(PropertyValue::String(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => "-".to_owned(),
    }
}

/// The body as text, on one line, at most `max` characters.
fn excerpt(body: &[u8], max: usize) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max).collect::<String>())
    } else {
        text
    }
}

pub async fn execute(args: DlqArgs) -> anyhow::Result<()> {
    let entity = parse_entity(&args.entity)?;
    let parsed = ServiceBusConnectionString::parse(&args.connection_string)
        .context("invalid --connection-string")?;
    let connector =
        ServiceBusConnector::connect(ConnectorSettings::from_connection_string(&parsed))
            .await
            .with_context(|| format!("cannot connect to Service Bus at {}", parsed.host))?;
    let settings = ReceiverSettings {
        dead_letter_queue: true,
        ..ReceiverSettings::default()
    };
    let mut dlq = connector
        .open_receiver(&entity, &settings)
        .await
        .with_context(|| format!("cannot open the dead-letter queue of `{}`", args.entity))?;

    let listed = peek_all(&mut dlq, args.max).await?;
    println!(
        "{} message(s) in the dead-letter queue of {}{}",
        listed.len(),
        args.entity,
        if listed.len() as u64 >= args.max {
            " (--max reached)"
        } else {
            ""
        }
    );
    for m in &listed {
        println!(
            "  #{seq} id={id} deliveries={count} reason={reason}\n      description: {description}\n      body: {body}",
            seq = m.sequence_number,
            id = m.message_id.as_deref().unwrap_or("-"),
            count = m.delivery_count,
            reason = property(m, "DeadLetterReason"),
            description = property(m, "DeadLetterErrorDescription"),
            body = excerpt(&m.body, 100),
        );
    }
    if args.remove {
        let wanted: BTreeSet<i64> = listed.iter().map(|m| m.sequence_number).collect();
        let removed = remove(&mut dlq, wanted).await?;
        println!("removed {removed} message(s)");
    }
    dlq.close().await.context("closing the receiver")?;
    connector.close().await;
    Ok(())
}

/// Peeks the first `max` messages of the DLQ, page by page in sequence-number order.
async fn peek_all(dlq: &mut ServiceBusSource, max: u64) -> anyhow::Result<Vec<ReceivedMessage>> {
    let mut listed: Vec<ReceivedMessage> = Vec::new();
    let mut from = 0_i64;
    while (listed.len() as u64) < max {
        let want = (max - listed.len() as u64).min(PEEK_PAGE) as u32;
        let page = dlq
            .peek(from, want)
            .await
            .context("peeking at the dead-letter queue")?;
        let Some(last) = page.iter().map(|m| m.sequence_number).max() else {
            break;
        };
        from = last.saturating_add(1);
        listed.extend(page);
    }
    listed.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    Ok(listed)
}

/// Receives the DLQ in peek-lock mode and completes the messages whose sequence numbers are in
/// `wanted` (those that were listed); anything else received (a message dead-lettered since the
/// listing) is abandoned and stays. Returns how many were completed.
async fn remove(dlq: &mut ServiceBusSource, mut wanted: BTreeSet<i64>) -> anyhow::Result<usize> {
    let mut removed = 0;
    let mut others = Vec::new();
    while !wanted.is_empty() {
        let want = wanted.len().min(PEEK_PAGE as usize);
        let batch = dlq
            .receive(want, Duration::from_secs(2))
            .await
            .context("receiving from the dead-letter queue")?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            if wanted.remove(&m.sequence_number) {
                dlq.complete(m.lock_token)
                    .await
                    .context("completing a dead-lettered message")?;
                removed += 1;
            } else {
                // Held until the end, so it is not received again in this loop.
                others.push(m.lock_token);
            }
        }
    }
    for token in others {
        dlq.abandon(token)
            .await
            .context("abandoning a message that was not listed")?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_forms() {
        assert_eq!(
            parse_entity("orders").ok(),
            Some(SourceEntity::Queue("orders".into()))
        );
        assert_eq!(
            parse_entity("t/Subscriptions/s").ok(),
            Some(SourceEntity::Subscription {
                topic: "t".into(),
                subscription: "s".into()
            })
        );
        assert!(parse_entity("t/s").is_err());
        assert!(parse_entity("").is_err());
    }

    #[test]
    fn excerpt_is_one_bounded_line() {
        assert_eq!(excerpt(b"a\nb", 10), "a b");
        assert_eq!(excerpt("ééééé".as_bytes(), 2), "éé…");
    }
}
