//! A tiny in-memory echo broker built on the engine, used to drive it with real clients:
//! messages sent to an address are delivered to receivers of the same address, and any
//! `$`-node (`$cbs`, `$management`) answers every request with status 200.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use busdrain_amqp::serde_amqp::{self, primitives::OrderedMap, Value};
use busdrain_amqp::types::definitions::Error;
use busdrain_amqp::types::messaging::{
    message::__private::{Deserializable, Serializable},
    Accepted, ApplicationProperties, Body, DeliveryState, Message, Properties,
};
use busdrain_amqp::types::primitives::SimpleValue;
use busdrain_amqp::{
    AttachReply, ConnectionConfig, ConnectionEvent, IncomingLink, IncomingLinkEvent, Link,
    OutgoingDelivery, OutgoingLink, OutgoingLinkEvent, SessionId, MESSAGE_FORMAT_BATCH,
};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Default)]
pub struct Queues {
    map: Mutex<HashMap<String, VecDeque<Bytes>>>,
}

impl Queues {
    fn push(&self, address: &str, message: Bytes) {
        let mut map = self.map.lock().unwrap();
        map.entry(address.to_string())
            .or_default()
            .push_back(message);
    }

    fn pop(&self, address: &str) -> Option<Bytes> {
        self.map.lock().unwrap().get_mut(address)?.pop_front()
    }

    pub fn len(&self, address: &str) -> usize {
        self.map
            .lock()
            .unwrap()
            .get(address)
            .map(|q| q.len())
            .unwrap_or(0)
    }
}

pub struct EchoBroker {
    pub port: u16,
    pub queues: Arc<Queues>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoBroker {
    pub async fn start(config: ConnectionConfig) -> EchoBroker {
        Self::start_with_settle_delay(config, Duration::ZERO).await
    }

    /// `settle_delay` holds back the disposition for each received message, as a real
    /// broker's store does. The fe2o3-amqp 0.14 client registers a delivery as unsettled
    /// only after handing its transfer to the session task, so a disposition that arrives
    /// within microseconds is lost and its `send()` hangs (fe2o3-amqp 0.14.1
    /// `link/sender_link.rs`, `send_payload_with_transfer`).
    pub async fn start_with_settle_delay(
        config: ConnectionConfig,
        settle_delay: Duration,
    ) -> EchoBroker {
        // `ECHO_DEBUG=busdrain_amqp=trace` prints every frame.
        if let Ok(filter) = std::env::var("ECHO_DEBUG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let queues = Arc::new(Queues::default());
        let shared = queues.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve_connection(
                    tcp,
                    config.clone(),
                    shared.clone(),
                    settle_delay,
                ));
            }
        });
        EchoBroker { port, queues, task }
    }
}

/// Strip `sb://host/`, `amqps://host/` and leading slashes.
fn normalize(address: &str) -> String {
    let rest = match address.find("://") {
        Some(i) => {
            let after = &address[i + 3..];
            after.find('/').map(|j| &after[j..]).unwrap_or("")
        }
        None => address,
    };
    rest.trim_start_matches('/').to_string()
}

/// Replies for one request/response node: the sender, and the receiver until the node's
/// outgoing link takes it.
type NodeChannel = (
    mpsc::UnboundedSender<Bytes>,
    Option<mpsc::UnboundedReceiver<Bytes>>,
);

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    config: ConnectionConfig,
    queues: Arc<Queues>,
    settle_delay: Duration,
) {
    let (mut conn, driver) = busdrain_amqp::accept(tcp, config);
    tokio::spawn(async move {
        if let Err(e) = driver.run().await {
            eprintln!("echo broker connection ended: {e}");
        }
    });
    // Request/response pairing: (session, node) -> sender of replies to the node's
    // outgoing link. Whichever link attaches first creates the channel.
    let mut nodes: HashMap<(SessionId, String), NodeChannel> = HashMap::new();
    while let Some(event) = conn.next_event().await {
        let ConnectionEvent::Attach(attach) = event else {
            continue;
        };
        let address = normalize(attach.address().unwrap_or_default());
        let session = attach.info().session;
        if address == "refuse-me" {
            attach.refuse(Error::new(
                busdrain_amqp::types::definitions::AmqpError::NotFound,
                Some("no such node".to_string()),
                None,
            ));
            continue;
        }
        let mut reply = AttachReply::echo(attach.attach());
        if address == "small" {
            reply.max_message_size = Some(1024);
        }
        let is_node = address.starts_with('$') || address.ends_with("$management");
        let link = attach.accept(reply);
        match (link, is_node) {
            (Link::Incoming(link), true) => {
                let entry = nodes.entry((session, address.clone())).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    (tx, Some(rx))
                });
                tokio::spawn(serve_node_requests(link, entry.0.clone()));
            }
            (Link::Outgoing(link), true) => {
                let entry = nodes.entry((session, address.clone())).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    (tx, Some(rx))
                });
                if let Some(rx) = entry.1.take() {
                    tokio::spawn(serve_node_replies(link, rx));
                }
            }
            (Link::Incoming(link), false) => {
                tokio::spawn(serve_queue_sender(
                    link,
                    address,
                    queues.clone(),
                    settle_delay,
                ));
            }
            (Link::Outgoing(link), false) => {
                tokio::spawn(serve_queue_receiver(link, address, queues.clone()));
            }
        }
    }
}

/// Client sends requests: answer each with status 200, correlated by message-id.
async fn serve_node_requests(mut link: IncomingLink, replies: mpsc::UnboundedSender<Bytes>) {
    while let Some(event) = link.next_event().await {
        let IncomingLinkEvent::Delivery(delivery) = event else {
            break;
        };
        let request: Result<Deserializable<Message<Body<Value>>>, _> =
            serde_amqp::from_slice(&delivery.payload);
        let Ok(Deserializable(request)) = request else {
            link.settle(
                delivery.delivery_id,
                DeliveryState::Rejected(busdrain_amqp::types::messaging::Rejected { error: None }),
            );
            continue;
        };
        let props = request.properties.unwrap_or_default();
        let mut app = OrderedMap::new();
        app.insert("status-code".to_string(), SimpleValue::Int(200));
        app.insert(
            "status-description".to_string(),
            SimpleValue::String("OK".into()),
        );
        app.insert("statusCode".to_string(), SimpleValue::Int(200));
        app.insert(
            "statusDescription".to_string(),
            SimpleValue::String("OK".into()),
        );
        let response = Message {
            header: None,
            delivery_annotations: None,
            message_annotations: None,
            properties: Some(Properties {
                correlation_id: props.message_id,
                to: props.reply_to,
                ..Default::default()
            }),
            application_properties: Some(ApplicationProperties(app)),
            body: Body::Value(busdrain_amqp::types::messaging::AmqpValue(Value::Map(
                OrderedMap::new(),
            ))),
            footer: None,
        };
        let encoded = serde_amqp::to_vec(&Serializable(response)).unwrap();
        let _ = replies.send(Bytes::from(encoded));
        link.settle(delivery.delivery_id, DeliveryState::Accepted(Accepted {}));
    }
}

async fn serve_node_replies(mut link: OutgoingLink, mut replies: mpsc::UnboundedReceiver<Bytes>) {
    let mut tag = 0u128;
    let mut waiting: VecDeque<Bytes> = VecDeque::new();
    loop {
        while link.credit() > 0 {
            let Some(payload) = waiting.pop_front() else {
                break;
            };
            tag += 1;
            let _ = link.try_send(OutgoingDelivery {
                tag: tag.to_be_bytes(),
                message_format: 0,
                settled: true,
                payload,
            });
        }
        tokio::select! {
            reply = replies.recv() => match reply {
                Some(r) => waiting.push_back(r),
                None => return,
            },
            event = link.next_event() => match event {
                Some(OutgoingLinkEvent::Detached { .. }) | None => return,
                Some(OutgoingLinkEvent::Flow { drain: true, .. }) => {
                    if waiting.is_empty() { link.drained(); }
                }
                Some(_) => {}
            }
        }
    }
}

/// Split a batch (format 0x80013700): an envelope whose `data` sections each hold one
/// encoded message.
fn split_batch(payload: &Bytes) -> Vec<Bytes> {
    let decoded: Result<Deserializable<Message<Body<Value>>>, _> = serde_amqp::from_slice(payload);
    match decoded {
        Ok(Deserializable(Message {
            body: Body::Data(batch),
            ..
        })) => batch
            .into_iter()
            .map(|data| Bytes::from(data.0.into_vec()))
            .collect(),
        _ => Vec::new(),
    }
}

async fn serve_queue_sender(
    mut link: IncomingLink,
    address: String,
    queues: Arc<Queues>,
    settle_delay: Duration,
) {
    while let Some(event) = link.next_event().await {
        let IncomingLinkEvent::Delivery(delivery) = event else {
            break;
        };
        if delivery.message_format == MESSAGE_FORMAT_BATCH {
            for message in split_batch(&delivery.payload) {
                queues.push(&address, message);
            }
        } else {
            queues.push(&address, delivery.payload.clone());
        }
        if !delivery.settled {
            if !settle_delay.is_zero() {
                tokio::time::sleep(settle_delay).await;
            }
            link.settle(delivery.delivery_id, DeliveryState::Accepted(Accepted {}));
        }
    }
}

async fn serve_queue_receiver(mut link: OutgoingLink, address: String, queues: Arc<Queues>) {
    let mut tag = 0u128;
    let presettled = matches!(
        link.info().snd_settle_mode,
        busdrain_amqp::types::definitions::SenderSettleMode::Settled
    );
    let mut in_flight: HashMap<[u8; 16], Bytes> = HashMap::new();
    loop {
        while link.credit() > 0 {
            let Some(payload) = queues.pop(&address) else {
                break;
            };
            tag += 1;
            let key = tag.to_be_bytes();
            if !presettled {
                in_flight.insert(key, payload.clone());
            }
            if link
                .try_send(OutgoingDelivery {
                    tag: key,
                    message_format: 0,
                    settled: presettled,
                    payload,
                })
                .is_err()
            {
                return;
            }
        }
        if link.drain_requested() && queues.len(&address) == 0 {
            link.drained();
        }
        let event = tokio::select! {
            event = link.next_event() => event,
            _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
        };
        match event {
            Some(OutgoingLinkEvent::Disposition(d)) => {
                let accepted = matches!(d.state, Some(DeliveryState::Accepted(_)));
                if let Some(payload) = in_flight.remove(&d.delivery_tag) {
                    if !accepted {
                        queues.push(&address, payload);
                    }
                }
                if !d.settled {
                    link.settle(
                        d.delivery_id,
                        d.state.unwrap_or(DeliveryState::Accepted(Accepted {})),
                    );
                }
            }
            Some(OutgoingLinkEvent::Flow { .. }) => {}
            Some(OutgoingLinkEvent::Detached { .. }) | None => {
                for (_, payload) in in_flight.drain() {
                    queues.push(&address, payload);
                }
                return;
            }
        }
    }
}
