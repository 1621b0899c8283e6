//! `busdrain dlq`: list the messages in a queue's or subscription's dead-letter queue with their
//! `DeadLetterReason` and `DeadLetterErrorDescription` — what the connector refused and why.
//! Messages are received in peek-lock mode and abandoned afterwards (they stay in the DLQ)
//! unless `--remove` completes them.

use std::time::Duration;

use anyhow::Context as _;
use busdrain_connector::source::{
    ConnectorSettings, MessageSource as _, PropertyValue, ReceivedMessage, ReceiverSettings,
    ServiceBusConnectionString, ServiceBusConnector, SourceEntity,
};

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

    // Everything listed stays locked until the end, so an abandoned message is not listed twice.
    let mut listed: Vec<ReceivedMessage> = Vec::new();
    while (listed.len() as u64) < args.max {
        let want = (args.max - listed.len() as u64).min(100) as usize;
        let batch = dlq
            .receive(want, Duration::from_secs(2))
            .await
            .context("receiving from the dead-letter queue")?;
        if batch.is_empty() {
            break;
        }
        listed.extend(batch);
    }
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
            "  #{seq} id={id} reason={reason}\n      description: {description}\n      body: {body}",
            seq = m.sequence_number,
            id = m.message_id.as_deref().unwrap_or("-"),
            reason = property(m, "DeadLetterReason"),
            description = property(m, "DeadLetterErrorDescription"),
            body = excerpt(&m.body, 100),
        );
    }
    for m in listed {
        let settled = if args.remove {
            dlq.complete(m.lock_token).await
        } else {
            dlq.abandon(m.lock_token).await
        };
        settled.context("settling a dead-lettered message")?;
    }
    dlq.close().await.context("closing the receiver")?;
    connector.close().await;
    Ok(())
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
