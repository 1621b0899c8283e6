//! `busdrain send`: produce sample JSON traffic on a queue or topic, for demos, tests and
//! benchmarks. Messages are rendered from a template, optionally spread over sessions and mixed
//! with poison messages, sent in batches by one or more senders, optionally rate-limited.

mod template;

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use busdrain_connector::source::{
    ConnectorSettings, MessageSender, OutgoingMessage, PropertyValue, SendError,
    ServiceBusConnectionString, ServiceBusConnector, SourceError,
};
use rand::SeedableRng as _;
use time::OffsetDateTime;

use template::{RenderContext, Template, DEFAULT_TEMPLATE, PLACEHOLDER_HELP};

const AFTER_HELP: &str = "\
The body is rendered from --template (default: a telemetry reading,
  {\"device_id\":\"{{device 100}}\",\"ts\":\"{{now}}\",\"temperature\":{{rand_float 15 30}},\"seq\":{{seq}}}).
--template takes a file path if such a file exists, otherwise the template text itself.

{PLACEHOLDERS}

Poison messages (--poison-every K): every K-th message is replaced by one of, in turn,
  invalid_json    the rendered body cut in half
  wrong_type      the default telemetry with \"temperature\":\"warm\"
  missing_field   the default telemetry without \"device_id\"
  not_json        a plain-text body
Each carries the application property `poison` = its kind, so you can check where it went.

Every message gets a random message id, content type application/json, and with
--session-count S the session id `session-<seq mod S>`.

Examples:
  busdrain send --entity telemetry --count 10000 --batch 200
  busdrain send --entity orders --count 500 --rate 50 --session-count 8 --poison-every 50
  busdrain send --entity t --count 10 --template '{\"id\":\"{{uuid}}\",\"v\":{{rand_int 1 6}}}'";

/// Arguments of `busdrain send`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = after_help())]
pub struct SendArgs {
    /// Service Bus connection string. The emulator's form
    /// (`Endpoint=sb://localhost:5672;SharedAccessKeyName=…;SharedAccessKey=…;UseDevelopmentEmulator=true`)
    /// uses plain AMQP; any other uses TLS.
    #[arg(
        long,
        env = "BUSDRAIN_SERVICE_BUS_CONNECTION_STRING",
        hide_env_values = true
    )]
    connection_string: String,

    /// Queue or topic to send to.
    #[arg(long)]
    entity: String,

    /// Number of messages to send.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,

    /// Upper bound on the send rate, in messages per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,

    /// Messages per batched transfer (split further if the broker's size limit requires).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,

    /// Concurrent senders, each with its own link.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    senders: u64,

    /// Body template: a file path, or the template text (see the placeholders below).
    #[arg(long)]
    template: Option<String>,

    /// Spread messages over S sessions (`session-0` … `session-<S-1>`), round-robin.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    session_count: Option<u64>,

    /// Replace every K-th message by a poison message (see below).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    poison_every: Option<u64>,

    /// Application property NAME=VALUE added to every message; VALUE is a template too.
    /// Repeatable.
    #[arg(long = "property", value_name = "NAME=VALUE")]
    properties: Vec<String>,
}

fn after_help() -> String {
    AFTER_HELP.replace("{PLACEHOLDERS}", PLACEHOLDER_HELP)
}

/// Kinds of poison message, in the order `--poison-every` cycles through them.
const POISON_KINDS: [&str; 4] = ["invalid_json", "wrong_type", "missing_field", "not_json"];

/// What every sender task needs, validated up front.
struct Plan {
    entity: String,
    count: u64,
    batch: u64,
    rate: Option<f64>,
    body: Template,
    properties: Vec<(String, Template)>,
    session_count: Option<u64>,
    poison_every: Option<u64>,
}

pub async fn execute(args: SendArgs) -> anyhow::Result<()> {
    let plan = plan(&args)?;
    let parsed = ServiceBusConnectionString::parse(&args.connection_string)
        .context("invalid --connection-string")?;
    let settings = ConnectorSettings::from_connection_string(&parsed);
    let connector = Arc::new(
        ServiceBusConnector::connect(settings)
            .await
            .with_context(|| format!("cannot connect to Service Bus at {}", parsed.host))?,
    );

    let mut senders = Vec::new();
    for _ in 0..args.senders {
        let sender = connector
            .open_sender(&plan.entity)
            .await
            .with_context(|| format!("cannot open a sender on `{}`", plan.entity))?;
        senders.push(sender);
    }

    let progress = progress_bar(plan.count);
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in senders {
        let share = Share {
            connector: connector.clone(),
            plan: plan.clone(),
            next: next.clone(),
            started,
            progress: progress.clone(),
        };
        tasks.spawn(async move { share.run(sender).await });
    }

    let mut sent = 0;
    let mut poison = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => {
                sent += outcome.sent;
                poison += outcome.poison;
                if let Some(error) = outcome.error {
                    // Stop the other senders from claiming more work.
                    next.store(plan.count, Ordering::SeqCst);
                    first_error.get_or_insert(error);
                }
            }
            Err(join_error) => {
                first_error.get_or_insert(anyhow::anyhow!("a sender task failed: {join_error}"));
            }
        }
    }
    progress.finish_and_clear();
    connector.close().await;

    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        sent as f64 / seconds
    } else {
        0.0
    };
    println!(
        "sent {sent} messages to {} in {seconds:.2} s ({rate:.0} msgs/s); poison: {poison}; sessions: {}",
        plan.entity,
        plan.session_count.unwrap_or(0)
    );
    match first_error {
        Some(error) => Err(error.context(format!(
            "sending stopped after {sent} of {} messages",
            plan.count
        ))),
        None => Ok(()),
    }
}

fn plan(args: &SendArgs) -> anyhow::Result<Plan> {
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            anyhow::bail!("--rate must be a positive number of messages per second, got {rate}");
        }
    }
    if args.entity.trim().is_empty() {
        anyhow::bail!("--entity must name a queue or topic");
    }
    let template_text = match &args.template {
        None => DEFAULT_TEMPLATE.to_string(),
        Some(value) if Path::new(value).is_file() => std::fs::read_to_string(value)
            .with_context(|| format!("cannot read --template file {value}"))?,
        Some(value) => value.clone(),
    };
    let body = Template::parse(&template_text).context("invalid --template")?;
    let mut properties = Vec::new();
    for property in &args.properties {
        let (name, value) = property
            .split_once('=')
            .filter(|(name, _)| !name.trim().is_empty())
            .with_context(|| format!("--property {property:?} must be NAME=VALUE"))?;
        let value = Template::parse(value)
            .with_context(|| format!("invalid template in --property {name}"))?;
        properties.push((name.trim().to_string(), value));
    }
    // With a rate, a batch holds at most ~50 ms worth of messages so the pacing stays smooth
    // (a 100-message batch at 100 msgs/s would be one burst per second).
    let batch = match args.rate {
        Some(rate) => args.batch.min(((rate / 20.0) as u64).max(1)),
        None => args.batch,
    };
    let plan = Plan {
        entity: args.entity.clone(),
        count: args.count,
        batch,
        rate: args.rate,
        body,
        properties,
        session_count: args.session_count,
        poison_every: args.poison_every,
    };
    warn_if_not_json(&plan);
    Ok(plan)
}

/// A custom template that does not render JSON is allowed (not every payload is JSON), but
/// usually a mistake, so say so once.
fn warn_if_not_json(plan: &Plan) {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut body = String::new();
    let context = RenderContext {
        seq: 0,
        session_id: Some("session-0"),
        now: OffsetDateTime::now_utc(),
    };
    plan.body.render(&context, &mut rng, &mut body);
    if let Err(error) = serde_json::from_str::<serde_json::Value>(&body) {
        tracing::warn!(error = %error, "the template does not render valid JSON; sending it anyway");
    }
}

fn progress_bar(count: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(count);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} messages ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

struct ShareOutcome {
    sent: u64,
    poison: u64,
    error: Option<anyhow::Error>,
}

/// How many times a batch is sent on a fresh sender after a transient failure.
const SEND_ATTEMPTS: u32 = 3;

/// What one sender task shares with the others.
struct Share {
    connector: Arc<ServiceBusConnector>,
    plan: Arc<Plan>,
    next: Arc<AtomicU64>,
    started: Instant,
    progress: indicatif::ProgressBar,
}

impl Share {
    /// One sender's loop: claim the next batch of message numbers, wait for the rate limit,
    /// render, send. Claiming from a shared counter spreads the work over the senders.
    async fn run(self, mut sender: MessageSender) -> ShareOutcome {
        let plan = &self.plan;
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut outcome = ShareOutcome {
            sent: 0,
            poison: 0,
            error: None,
        };
        loop {
            let first = self.next.fetch_add(plan.batch, Ordering::SeqCst);
            if first >= plan.count {
                break;
            }
            let end = (first + plan.batch).min(plan.count);
            if let Some(rate) = plan.rate {
                let due = self.started + Duration::from_secs_f64(first as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let mut batch = Vec::with_capacity((end - first) as usize);
            let mut poison_in_batch = 0;
            for seq in first..end {
                let message = render_message(plan, seq, &mut rng);
                if message.application_properties.contains_key("poison") {
                    poison_in_batch += 1;
                }
                batch.push(message);
            }
            let size = batch.len() as u64;
            if let Err(error) = self.send_with_retry(&mut sender, batch).await {
                outcome.error = Some(error.context(format!(
                    "sending messages {first}..{end} to `{}`",
                    plan.entity
                )));
                break;
            }
            outcome.sent += size;
            outcome.poison += poison_in_batch;
            self.progress.inc(size);
        }
        if let Err(error) = sender.close().await {
            tracing::debug!(error = %error, "closing a sender");
        }
        outcome
    }

    /// Sends one batch; after a transient failure (a broken link, or a panic inside the AMQP
    /// client, which leaves the sender unusable) it opens a fresh sender and sends the batch
    /// again. The retry keeps the message ids, so an entity with duplicate detection drops a
    /// copy the broker had already taken; without it a retried batch may arrive twice.
    async fn send_with_retry(
        &self,
        sender: &mut MessageSender,
        batch: Vec<OutgoingMessage>,
    ) -> anyhow::Result<()> {
        let entity = &self.plan.entity;
        let mut attempt = 1;
        loop {
            let error = match sender.send(batch.clone()).await {
                Ok(()) => return Ok(()),
                Err(SendError::Broker(SourceError::Transient(error)))
                    if attempt < SEND_ATTEMPTS =>
                {
                    error
                }
                Err(error) => return Err(anyhow::Error::new(error)),
            };
            tracing::warn!(entity = %entity, attempt, %error, "sending failed; retrying the batch on a new sender");
            let fresh = self.reopen(attempt).await?;
            let broken = std::mem::replace(sender, fresh);
            // Bounded: detaching a link that is mid-recovery can hang.
            match tokio::time::timeout(Duration::from_secs(5), broken.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(error = %error, "closing a broken sender"),
                Err(_) => tracing::debug!("closing a broken sender timed out"),
            }
            attempt += 1;
        }
    }

    /// Opens a new sender after failed send number `attempt`. The first open may fail on a
    /// connection the broker lost (it is then replaced), so a failed open is tried again.
    async fn reopen(&self, attempt: u32) -> anyhow::Result<MessageSender> {
        let entity = &self.plan.entity;
        let mut open_attempt = 1;
        loop {
            tokio::time::sleep(Duration::from_millis(
                200 * u64::from(attempt + open_attempt),
            ))
            .await;
            match self.connector.open_sender(entity).await {
                Ok(sender) => return Ok(sender),
                Err(SourceError::Transient(error)) if open_attempt < SEND_ATTEMPTS => {
                    tracing::warn!(entity = %entity, open_attempt, %error, "reopening a sender failed; trying again");
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error)
                        .context(format!("cannot reopen a sender on `{entity}`")))
                }
            }
            open_attempt += 1;
        }
    }
}

fn render_message(plan: &Plan, seq: u64, rng: &mut rand::rngs::StdRng) -> OutgoingMessage {
    let session_id = plan.session_count.map(|s| format!("session-{}", seq % s));
    let context = RenderContext {
        seq,
        session_id: session_id.as_deref(),
        now: OffsetDateTime::now_utc(),
    };
    let mut body = String::new();
    plan.body.render(&context, rng, &mut body);

    let mut message = OutgoingMessage::json(Vec::new());
    // Message numbers are 0-based; the K-th, 2K-th, … messages are poison.
    if let Some(every) = plan.poison_every {
        if (seq + 1).is_multiple_of(every) {
            let kind = POISON_KINDS[(((seq + 1) / every - 1) % POISON_KINDS.len() as u64) as usize];
            body = poison_body(kind, &body, &context);
            message.application_properties.insert(
                "poison".to_string(),
                PropertyValue::String(kind.to_string()),
            );
        }
    }
    for (name, value) in &plan.properties {
        let mut text = String::new();
        value.render(&context, rng, &mut text);
        message
            .application_properties
            .insert(name.clone(), PropertyValue::String(text));
    }
    message.body = body.into();
    message.message_id = Some(uuid::Uuid::new_v4().to_string());
    message.session_id = session_id;
    message
}

fn poison_body(kind: &str, rendered: &str, context: &RenderContext<'_>) -> String {
    let ts = template::rfc3339_millis(context.now);
    let seq = context.seq;
    match kind {
        "invalid_json" => {
            let mut cut = rendered.len() / 2;
            while !rendered.is_char_boundary(cut) {
                cut -= 1;
            }
            let half = &rendered[..cut];
            // A body that is still valid JSON when cut (e.g. a bare number) gets a stray brace.
            if serde_json::from_str::<serde_json::Value>(half).is_ok() {
                format!("{half}{{")
            } else {
                half.to_string()
            }
        }
        "wrong_type" => {
            format!(r#"{{"device_id":"dev-{seq}","ts":"{ts}","temperature":"warm","seq":{seq}}}"#)
        }
        "missing_field" => format!(r#"{{"ts":"{ts}","temperature":21.5,"seq":{seq}}}"#),
        _ => format!("reading {seq}: 21.5 degrees"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SendArgs,
    }

    fn parse(extra: &[&str]) -> Result<SendArgs, clap::Error> {
        let mut argv = vec![
            "send",
            "--connection-string",
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
            "--entity",
            "q",
        ];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| cli.args)
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["--count", "0"]).is_err());
        assert!(parse(&["--count", "-3"]).is_err());
        assert!(parse(&["--count", "5", "--batch", "0"]).is_err());
        assert!(parse(&["--count", "5", "--session-count", "0"]).is_err());
        assert!(parse(&["--count", "5", "--poison-every", "0"]).is_err());
        assert!(parse(&["--count", "five"]).is_err());

        let args = parse(&["--count", "5", "--rate", "0"]).unwrap();
        assert!(plan(&args).is_err());
        let args = parse(&["--count", "5", "--rate", "nan"]).unwrap();
        assert!(plan(&args).is_err());
        let args = parse(&["--count", "5", "--template", "{{bogus}}"]).unwrap();
        let error = format!("{:#}", plan(&args).err().unwrap());
        assert!(error.contains("bogus"), "{error}");
        let args = parse(&["--count", "5", "--property", "novalue"]).unwrap();
        assert!(plan(&args).is_err());
    }

    #[test]
    fn messages_carry_sessions_properties_and_poison() {
        let args = parse(&[
            "--count",
            "8",
            "--session-count",
            "3",
            "--poison-every",
            "2",
            "--property",
            "tenant=acme-{{seq}}",
        ])
        .unwrap();
        let plan = plan(&args).unwrap();
        let mut rng = rand::rngs::StdRng::from_entropy();
        let messages: Vec<OutgoingMessage> = (0..8)
            .map(|seq| render_message(&plan, seq, &mut rng))
            .collect();

        let kinds: Vec<Option<String>> = messages
            .iter()
            .map(|m| match m.application_properties.get("poison") {
                Some(PropertyValue::String(kind)) => Some(kind.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                None,
                Some("invalid_json".into()),
                None,
                Some("wrong_type".into()),
                None,
                Some("missing_field".into()),
                None,
                Some("not_json".into()),
            ]
        );
        for (seq, message) in messages.iter().enumerate() {
            assert_eq!(
                message.session_id.as_deref(),
                Some(format!("session-{}", seq % 3).as_str())
            );
            assert_eq!(
                message.application_properties.get("tenant"),
                Some(&PropertyValue::String(format!("acme-{seq}")))
            );
            let json = serde_json::from_slice::<serde_json::Value>(&message.body);
            match kinds[seq].as_deref() {
                None => {
                    let json = json.unwrap();
                    assert_eq!(json["seq"], seq as u64);
                }
                Some("invalid_json") | Some("not_json") => assert!(json.is_err()),
                Some("wrong_type") => assert!(json.unwrap()["temperature"].is_string()),
                Some("missing_field") => assert!(json.unwrap().get("device_id").is_none()),
                Some(other) => panic!("unexpected kind {other}"),
            }
        }
    }

    #[test]
    fn help_lists_every_placeholder() {
        let help = after_help();
        for name in [
            "{{seq}}",
            "{{uuid}}",
            "{{now}}",
            "{{rand_int A B}}",
            "{{device N}}",
        ] {
            assert!(help.contains(name), "{name}");
        }
    }
}
