//! Frame-level tests: a hand-driven client speaks raw AMQP to the engine, and the test
//! plays the application, so every wire detail (field counts, credit, drain, dispositions,
//! frame splitting, errors) is checked exactly.

mod support;

use std::time::Duration;

use busdrain_amqp::frame::{peek_frame_size, SaslBody};
use busdrain_amqp::serde_amqp;
use busdrain_amqp::types::definitions::{
    AmqpError, ConnectionError as ConnErr, ErrorCondition, Handle, LinkError, ReceiverSettleMode,
    Role, SenderSettleMode,
};
use busdrain_amqp::types::messaging::{Accepted, DeliveryState, Source, Target};
use busdrain_amqp::types::performatives::{
    Attach, Begin, Close, Disposition, Flow, Open, Performative, Transfer,
};
use busdrain_amqp::types::primitives::Binary;
use busdrain_amqp::{
    decode_frame, AttachReply, Connection, ConnectionConfig, ConnectionEvent, CreditMode,
    FrameBody, IncomingLinkEvent, Link, OutgoingDelivery, OutgoingLinkEvent, SendError,
};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const AMQP_HEADER: &[u8; 8] = b"AMQP\x00\x01\x00\x00";
const SASL_HEADER: &[u8; 8] = b"AMQP\x03\x01\x00\x00";
const WAIT: Duration = Duration::from_secs(5);

/// The raw bytes of one received frame, decoded, plus its raw body for field counting.
struct RawFrame {
    channel: u16,
    body: FrameBody,
    raw: Bytes,
}

impl RawFrame {
    fn performative(&self) -> &Performative {
        match &self.body {
            FrameBody::Amqp { performative, .. } => performative,
            other => panic!("expected a performative, got {other:?}"),
        }
    }

    fn payload(&self) -> &Bytes {
        match &self.body {
            FrameBody::Amqp { payload, .. } => payload,
            other => panic!("expected a performative, got {other:?}"),
        }
    }

    /// Field count of the described list: `00 53 code d0 size:4 count:4`.
    fn list_count(&self) -> u32 {
        let body = &self.raw[8..];
        assert_eq!(&body[..2], &[0x00, 0x53]);
        assert_eq!(body[3], 0xd0, "engine writes list32");
        u32::from_be_bytes([body[8], body[9], body[10], body[11]])
    }
}

struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn send(&mut self, channel: u16, performative: Performative) {
        self.send_with_payload(channel, performative, &[]).await;
    }

    async fn send_with_payload(
        &mut self,
        channel: u16,
        performative: Performative,
        payload: &[u8],
    ) {
        let body = serde_amqp::to_vec(&performative).unwrap();
        let mut frame = BytesMut::new();
        frame.put_u32((8 + body.len() + payload.len()) as u32);
        frame.put_u8(2);
        frame.put_u8(0);
        frame.put_u16(channel);
        frame.extend_from_slice(&body);
        frame.extend_from_slice(payload);
        record_fuzz_seed(&frame);
        self.write(&frame).await;
    }

    async fn read_exact(&mut self, n: usize) -> Bytes {
        while self.buf.len() < n {
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for the server")
                .unwrap();
            assert!(read > 0, "server closed the socket");
        }
        self.buf.split_to(n).freeze()
    }

    async fn header(&mut self) -> [u8; 8] {
        let bytes = self.read_exact(8).await;
        bytes[..].try_into().unwrap()
    }

    /// Next frame, skipping empty keep-alive frames.
    async fn frame(&mut self) -> RawFrame {
        loop {
            let size_bytes = self.read_exact(4).await;
            let size = peek_frame_size(&size_bytes, u32::MAX).unwrap().unwrap();
            let rest = self.read_exact(size - 4).await;
            let mut raw = BytesMut::from(&size_bytes[..]);
            raw.extend_from_slice(&rest);
            let raw = raw.freeze();
            let frame = decode_frame(&raw).unwrap();
            if matches!(frame.body, FrameBody::Empty) {
                continue;
            }
            return RawFrame {
                channel: frame.channel,
                body: frame.body,
                raw,
            };
        }
    }

    async fn expect_close(&mut self) -> Option<ErrorCondition> {
        loop {
            let frame = self.frame().await;
            if let Performative::Close(close) = frame.performative() {
                return close.error.as_ref().map(|e| e.condition.clone());
            }
        }
    }
}

/// With `AMQP_FUZZ_SEED_DIR` set, every frame the tests send is saved there as a seed
/// for the `decode_frame` fuzz target.
fn record_fuzz_seed(frame: &[u8]) {
    if let Ok(dir) = std::env::var("AMQP_FUZZ_SEED_DIR") {
        let name = format!("{:016x}", {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            frame.hash(&mut h);
            h.finish()
        });
        let _ = std::fs::write(std::path::Path::new(&dir).join(name), frame);
    }
}

/// Start an engine on a fresh port; returns the client and the application's handle.
async fn start(config: ConnectionConfig) -> (RawClient, Connection) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = TcpStream::connect(address).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let (connection, driver) = busdrain_amqp::accept(server, config);
    tokio::spawn(driver.run());
    (
        RawClient {
            stream: client,
            buf: BytesMut::new(),
        },
        connection,
    )
}

fn open(max_frame_size: u32, idle_time_out: Option<u32>) -> Performative {
    Performative::Open(Open {
        container_id: "raw".into(),
        hostname: None,
        max_frame_size: max_frame_size.into(),
        channel_max: 10.into(),
        idle_time_out,
        outgoing_locales: None,
        incoming_locales: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    })
}

fn begin() -> Performative {
    Performative::Begin(Begin {
        remote_channel: None,
        next_outgoing_id: 0,
        incoming_window: 100,
        outgoing_window: 100,
        handle_max: Handle(100),
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    })
}

fn attach(name: &str, handle: u32, role: Role, address: &str) -> Attach {
    Attach {
        name: name.into(),
        handle: Handle(handle),
        role: role.clone(),
        snd_settle_mode: SenderSettleMode::Unsettled,
        rcv_settle_mode: ReceiverSettleMode::Second,
        source: Some(Box::new(Source::from(address))),
        target: Some(Box::new(Target::from(address).into())),
        unsettled: None,
        incomplete_unsettled: false,
        // Like .NET: no initial-delivery-count even on a sender attach.
        initial_delivery_count: None,
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    }
}

/// One transfer frame; `first` = (delivery-id, tag, message-format) on a delivery's first
/// frame.
fn transfer(
    handle: u32,
    first: Option<(u32, &[u8], u32)>,
    settled: bool,
    more: bool,
) -> Performative {
    Performative::Transfer(Transfer {
        handle: Handle(handle),
        delivery_id: first.map(|f| f.0),
        delivery_tag: first.map(|f| Binary::from(f.1.to_vec())),
        message_format: first.map(|f| f.2),
        settled: Some(settled),
        more,
        rcv_settle_mode: None,
        state: None,
        resume: false,
        aborted: false,
        batchable: false,
    })
}

fn link_flow(handle: u32, delivery_count: u32, credit: u32, drain: bool) -> Performative {
    Performative::Flow(Flow {
        next_incoming_id: Some(0),
        incoming_window: 100,
        next_outgoing_id: 0,
        outgoing_window: 100,
        handle: Some(Handle(handle)),
        delivery_count: Some(delivery_count),
        link_credit: Some(credit),
        available: None,
        drain,
        echo: false,
        properties: None,
    })
}

/// Header exchange without SASL, open and begin; returns the server's open frame.
async fn open_session(client: &mut RawClient, app: &mut Connection, max_frame: u32) -> RawFrame {
    client.write(AMQP_HEADER).await;
    assert_eq!(&client.header().await, AMQP_HEADER);
    client.send(0, open(max_frame, None)).await;
    let server_open = client.frame().await;
    assert!(matches!(server_open.performative(), Performative::Open(_)));
    assert!(matches!(
        app.next_event().await,
        Some(ConnectionEvent::Opened(_))
    ));
    client.send(0, begin()).await;
    let begin = client.frame().await;
    assert!(matches!(begin.performative(), Performative::Begin(_)));
    assert_eq!(begin.list_count(), 8, "begin must carry all 8 fields");
    assert_eq!(begin.channel, 0, "first session gets channel 0");
    server_open
}

async fn next_attach(app: &mut Connection) -> busdrain_amqp::IncomingAttach {
    match tokio::time::timeout(WAIT, app.next_event()).await.unwrap() {
        Some(ConnectionEvent::Attach(attach)) => attach,
        other => panic!("expected attach, got {other:?}"),
    }
}

#[tokio::test]
async fn server_waits_for_client_header_then_offers_all_sasl_mechanisms() {
    let (mut client, _app) = start(ConnectionConfig::default()).await;
    let early = tokio::time::timeout(
        Duration::from_millis(200),
        client.stream.read_buf(&mut client.buf),
    )
    .await;
    assert!(early.is_err(), "server spoke before the client's header");

    client.write(SASL_HEADER).await;
    assert_eq!(&client.header().await, SASL_HEADER);
    let mechanisms = client.frame().await;
    let FrameBody::Sasl(SaslBody::Mechanisms(m)) = &mechanisms.body else {
        panic!("expected sasl-mechanisms");
    };
    let names: Vec<&str> = m
        .sasl_server_mechanisms
        .0
        .iter()
        .map(|s| s.0.as_str())
        .collect();
    assert_eq!(names, ["ANONYMOUS", "PLAIN", "MSSBCBS", "EXTERNAL"]);

    let init = busdrain_amqp::types::sasl::SaslInit {
        mechanism: "MSSBCBS".into(),
        initial_response: Some(Binary::from(vec![1, 2, 3])),
        hostname: None,
    };
    let body = serde_amqp::to_vec(&init).unwrap();
    let mut frame = BytesMut::new();
    frame.put_u32((8 + body.len()) as u32);
    frame.put_slice(&[2, 1, 0, 0]);
    frame.extend_from_slice(&body);
    client.write(&frame).await;
    let outcome = client.frame().await;
    let FrameBody::Sasl(SaslBody::Outcome(outcome_body)) = &outcome.body else {
        panic!("expected sasl-outcome");
    };
    assert_eq!(outcome_body.code, busdrain_amqp::types::sasl::SaslCode::Ok);
    assert_eq!(outcome.list_count(), 2);
    // The AMQP header only after the client's.
    let early = tokio::time::timeout(
        Duration::from_millis(200),
        client.stream.read_buf(&mut client.buf),
    )
    .await;
    assert!(
        early.is_err(),
        "server sent its AMQP header before the client's"
    );
    client.write(AMQP_HEADER).await;
    assert_eq!(&client.header().await, AMQP_HEADER);
}

#[tokio::test]
async fn open_begin_attach_carry_full_field_lists_and_initial_delivery_count_defaults() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    let server_open = open_session(&mut client, &mut app, 65536).await;
    assert_eq!(
        server_open.list_count(),
        10,
        "open must carry all 10 fields"
    );

    client
        .send(0, Performative::Attach(attach("s", 0, Role::Sender, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    assert_eq!(incoming.attach().initial_delivery_count, Some(0));
    assert_eq!(incoming.address(), Some("q"));
    let Link::Incoming(_link) = incoming.accept_echo() else {
        panic!("client sender must give an incoming link");
    };
    let reply = client.frame().await;
    assert_eq!(reply.list_count(), 14, "attach must carry all 14 fields");
    let Performative::Attach(reply_attach) = reply.performative() else {
        panic!("expected attach");
    };
    assert_eq!(reply_attach.role, Role::Receiver);
    assert_eq!(reply_attach.max_message_size, Some(1024 * 1024));
    // Auto credit: the default window is granted at once.
    let flow = client.frame().await;
    let Performative::Flow(flow) = flow.performative() else {
        panic!("expected flow");
    };
    assert_eq!(flow.link_credit, Some(100));
}

#[tokio::test]
async fn outgoing_link_respects_credit_drains_and_splits_frames() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    // The smallest frame size AMQP allows: a 2000-byte message needs several frames.
    open_session(&mut client, &mut app, 512).await;
    client
        .send(0, Performative::Attach(attach("r", 7, Role::Receiver, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let Link::Outgoing(mut link) = incoming.accept_echo() else {
        panic!("client receiver must give an outgoing link");
    };
    let reply = client.frame().await;
    let Performative::Attach(reply_attach) = reply.performative() else {
        panic!("expected attach");
    };
    assert_eq!(reply_attach.initial_delivery_count, Some(0));
    let our_handle = reply_attach.handle.0;

    assert_eq!(link.credit(), 0);
    let payload = Bytes::from(vec![0xab; 2000]);
    let delivery = |tag: u8| OutgoingDelivery {
        tag: [tag; 16],
        message_format: 0,
        settled: false,
        payload: payload.clone(),
    };
    assert_eq!(link.try_send(delivery(1)), Err(SendError::NoCredit));

    client.send(0, link_flow(7, 0, 2, false)).await;
    let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert!(
        matches!(
            event,
            Some(OutgoingLinkEvent::Flow {
                credit: 2,
                drain: false
            })
        ),
        "{event:?}"
    );
    link.try_send(delivery(1)).unwrap();
    link.try_send(delivery(2)).unwrap();
    assert_eq!(link.try_send(delivery(3)), Err(SendError::NoCredit));

    // Two deliveries arrive, each split into frames that fit 512 bytes.
    for (expected_id, tag) in [(0u32, 1u8), (1, 2)] {
        let mut reassembled = BytesMut::new();
        let mut frames = 0;
        loop {
            let frame = client.frame().await;
            assert!(
                frame.raw.len() <= 512,
                "frame of {} bytes exceeds max-frame-size",
                frame.raw.len()
            );
            let Performative::Transfer(t) = frame.performative() else {
                panic!("expected transfer, got {:?}", frame.performative());
            };
            assert_eq!(t.handle.0, our_handle);
            if frames == 0 {
                assert_eq!(t.delivery_id, Some(expected_id));
                assert_eq!(
                    t.delivery_tag.as_ref().map(|b| b.to_vec()),
                    Some(vec![tag; 16])
                );
                assert_eq!(t.message_format, Some(0));
            }
            assert_eq!(frame.list_count(), 11, "transfer must carry all 11 fields");
            reassembled.extend_from_slice(frame.payload());
            frames += 1;
            if !t.more {
                break;
            }
        }
        assert!(
            frames >= 4,
            "2000 bytes in 512-byte frames needs at least 4 frames"
        );
        assert_eq!(reassembled.freeze(), payload);
    }

    // Drain with 5 credit and nothing to send: delivery-count advances by 5, credit 0.
    client.send(0, link_flow(7, 2, 5, true)).await;
    let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert!(
        matches!(
            event,
            Some(OutgoingLinkEvent::Flow {
                credit: 5,
                drain: true
            })
        ),
        "{event:?}"
    );
    link.drained();
    let flow = client.frame().await;
    let Performative::Flow(flow) = flow.performative() else {
        panic!("expected flow");
    };
    assert_eq!(flow.handle, Some(Handle(our_handle)));
    assert_eq!(flow.delivery_count, Some(7));
    assert_eq!(flow.link_credit, Some(0));
    assert!(flow.drain);
    assert_eq!(link.credit(), 0);
    assert_eq!(link.try_send(delivery(3)), Err(SendError::NoCredit));
}

#[tokio::test]
async fn dispositions_are_expanded_per_tag_and_second_mode_is_answered() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .send(0, Performative::Attach(attach("r", 0, Role::Receiver, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let Link::Outgoing(mut link) = incoming.accept_echo() else {
        panic!("expected outgoing link");
    };
    client.frame().await; // attach
    client.send(0, link_flow(0, 0, 10, false)).await;
    tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    for tag in 1..=3u8 {
        link.try_send(OutgoingDelivery {
            tag: [tag; 16],
            message_format: 0,
            settled: false,
            payload: Bytes::from_static(&[0x00, 0x53, 0x77, 0x40]),
        })
        .unwrap();
    }
    for _ in 0..3 {
        assert!(matches!(
            client.frame().await.performative(),
            Performative::Transfer(_)
        ));
    }
    // rcv-settle-mode second: the client reports Accepted unsettled for 0..=2 ...
    client
        .send(
            0,
            Performative::Disposition(Disposition {
                role: Role::Receiver,
                first: 0,
                last: Some(2),
                settled: false,
                state: Some(DeliveryState::Accepted(Accepted {})),
                batchable: false,
            }),
        )
        .await;
    for tag in 1..=3u8 {
        let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
        let Some(OutgoingLinkEvent::Disposition(d)) = event else {
            panic!("expected disposition, got {event:?}");
        };
        assert_eq!(d.delivery_tag, [tag; 16]);
        assert!(!d.settled);
        assert!(matches!(d.state, Some(DeliveryState::Accepted(_))));
        // ... and the application settles each.
        link.settle(d.delivery_id, DeliveryState::Accepted(Accepted {}));
    }
    // Consecutive Accepted settlements are merged into ranges; together they cover 0..=2.
    let mut covered = Vec::new();
    while covered.len() < 3 {
        let frame = client.frame().await;
        let Performative::Disposition(d) = frame.performative() else {
            panic!("expected disposition");
        };
        assert_eq!(d.role, Role::Sender);
        assert!(d.settled);
        assert!(matches!(d.state, Some(DeliveryState::Accepted(_))));
        covered.extend(d.first..=d.last.unwrap_or(d.first));
    }
    assert_eq!(covered, [0, 1, 2]);
}

#[tokio::test]
async fn incoming_multi_frame_transfer_is_reassembled_and_oversize_detaches() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .send(0, Performative::Attach(attach("s", 3, Role::Sender, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let mut reply = AttachReply::echo(incoming.attach());
    reply.max_message_size = Some(3000);
    reply.credit = CreditMode::Manual;
    let Link::Incoming(mut link) = incoming.accept(reply) else {
        panic!("expected incoming link");
    };
    client.frame().await; // attach
    link.set_credit(2);
    let flow = client.frame().await;
    let Performative::Flow(flow) = flow.performative() else {
        panic!("expected flow");
    };
    assert_eq!(flow.link_credit, Some(2));

    let first = Some((0, &[9u8; 4][..], 0x8001_3700));
    client
        .send_with_payload(0, transfer(3, first, false, true), &[1; 1000])
        .await;
    client
        .send_with_payload(0, transfer(3, None, false, true), &[2; 1000])
        .await;
    client
        .send_with_payload(0, transfer(3, None, false, false), &[3; 500])
        .await;
    let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    let Some(IncomingLinkEvent::Delivery(d)) = event else {
        panic!("expected delivery, got {event:?}");
    };
    assert_eq!(d.delivery_id, 0);
    assert_eq!(&d.delivery_tag[..], &[9u8; 4]);
    assert_eq!(d.message_format, 0x8001_3700);
    assert_eq!(d.payload.len(), 2500);
    assert_eq!(d.payload[999], 1);
    assert_eq!(d.payload[1000], 2);
    assert_eq!(d.payload[2499], 3);
    link.settle(0, DeliveryState::Accepted(Accepted {}));
    let settled = client.frame().await;
    let Performative::Disposition(disposition) = settled.performative() else {
        panic!("expected disposition");
    };
    assert_eq!((disposition.first, disposition.settled), (0, true));

    // A second message of 4000 bytes exceeds max-message-size 3000: the link is detached.
    client
        .send_with_payload(
            0,
            transfer(3, Some((1, &[8u8; 4], 0)), false, true),
            &[1; 2000],
        )
        .await;
    client
        .send_with_payload(0, transfer(3, None, false, false), &[1; 2000])
        .await;
    let detach = client.frame().await;
    let Performative::Detach(detach) = detach.performative() else {
        panic!("expected detach, got {:?}", detach.performative());
    };
    assert!(detach.closed);
    assert_eq!(
        detach.error.as_ref().map(|e| e.condition.clone()),
        Some(ErrorCondition::LinkError(LinkError::MessageSizeExceeded))
    );
    let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert!(
        matches!(event, Some(IncomingLinkEvent::Detached { error: Some(_) })),
        "{event:?}"
    );
}

#[tokio::test]
async fn transfer_beyond_credit_detaches_with_transfer_limit_exceeded() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .send(0, Performative::Attach(attach("s", 0, Role::Sender, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let mut reply = AttachReply::echo(incoming.attach());
    reply.credit = CreditMode::Manual;
    let _link = incoming.accept(reply);
    client.frame().await; // attach
    let transfer = transfer(0, Some((0, &[1], 0)), true, false);
    client
        .send_with_payload(0, transfer, &[0x00, 0x53, 0x77, 0x40])
        .await;
    let detach = client.frame().await;
    let Performative::Detach(detach) = detach.performative() else {
        panic!("expected detach");
    };
    assert_eq!(
        detach.error.as_ref().map(|e| e.condition.clone()),
        Some(ErrorCondition::LinkError(LinkError::TransferLimitExceeded))
    );
}

#[tokio::test]
async fn malformed_frames_close_the_connection_with_the_right_condition() {
    // A body that is not a described list.
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .write(&[0, 0, 0, 12, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef])
        .await;
    assert_eq!(
        client.expect_close().await,
        Some(ErrorCondition::AmqpError(AmqpError::DecodeError))
    );

    // A frame shorter than its own header.
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client.write(&[0, 0, 0, 4]).await;
    assert_eq!(
        client.expect_close().await,
        Some(ErrorCondition::AmqpError(AmqpError::FrameSizeTooSmall))
    );

    // A frame larger than our max-frame-size.
    let config = ConnectionConfig {
        max_frame_size: 4096,
        ..ConnectionConfig::default()
    };
    let (mut client, mut app) = start(config).await;
    open_session(&mut client, &mut app, 65536).await;
    client.write(&[0, 1, 0, 0, 2, 0, 0, 0]).await;
    assert_eq!(
        client.expect_close().await,
        Some(ErrorCondition::ConnectionError(ConnErr::FramingError))
    );

    // A performative before open.
    let (mut client, _app) = start(ConnectionConfig::default()).await;
    client.write(AMQP_HEADER).await;
    client.header().await;
    client.send(0, begin()).await;
    assert_eq!(
        client.expect_close().await,
        Some(ErrorCondition::AmqpError(AmqpError::IllegalState))
    );
}

#[tokio::test]
async fn idle_peer_is_closed_and_heartbeats_follow_the_peer_timeout() {
    let config = ConnectionConfig {
        idle_timeout: Some(Duration::from_millis(600)),
        ..ConnectionConfig::default()
    };
    let (mut client, mut app) = start(config).await;
    client.write(AMQP_HEADER).await;
    client.header().await;
    // The client asks for traffic at least every 400 ms: expect empty frames.
    client.send(0, open(65536, Some(400))).await;
    let server_open = client.frame().await;
    let Performative::Open(server_open) = server_open.performative() else {
        panic!("expected open");
    };
    assert_eq!(server_open.idle_time_out, Some(600));
    assert!(matches!(
        app.next_event().await,
        Some(ConnectionEvent::Opened(_))
    ));
    let mut empty_frames = 0;
    let started = std::time::Instant::now();
    // The client stays silent, so the server closes it after ~600 ms.
    let condition = loop {
        let size = client.read_exact(8).await;
        let frame_size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        if frame_size == 8 {
            empty_frames += 1;
            continue;
        }
        let rest = client.read_exact(frame_size - 8).await;
        let mut raw = BytesMut::from(&size[..]);
        raw.extend_from_slice(&rest);
        let frame = decode_frame(&raw).unwrap();
        if let FrameBody::Amqp {
            performative: Performative::Close(Close { error }),
            ..
        } = frame.body
        {
            break error.map(|e| e.condition);
        }
    };
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        empty_frames >= 1,
        "expected heartbeats at half the peer's idle timeout"
    );
    assert_eq!(
        condition,
        Some(ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded))
    );
    assert!(matches!(
        app.next_event().await,
        Some(ConnectionEvent::Closed { .. })
    ));
}

#[tokio::test]
async fn client_close_ends_links_and_connection_events() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .send(0, Performative::Attach(attach("r", 0, Role::Receiver, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let Link::Outgoing(mut link) = incoming.accept_echo() else {
        panic!("expected outgoing link");
    };
    client.frame().await;
    client
        .send(0, Performative::Close(Close { error: None }))
        .await;
    assert!(matches!(
        client.frame().await.performative(),
        Performative::Close(_)
    ));
    let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert!(
        matches!(event, Some(OutgoingLinkEvent::Detached { .. })),
        "{event:?}"
    );
    assert!(matches!(
        app.next_event().await,
        Some(ConnectionEvent::Closed { error: None })
    ));
    assert_eq!(
        link.try_send(OutgoingDelivery {
            tag: [0; 16],
            message_format: 0,
            settled: true,
            payload: Bytes::new(),
        }),
        Err(SendError::Detached)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_throttled_not_buffered() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .send(0, Performative::Attach(attach("r", 0, Role::Receiver, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let _link = incoming.accept_echo();
    client.frame().await; // attach

    // Every flow with echo=true makes the server answer with its own flow.
    let mut echo = link_flow(0, 0, 1, false);
    if let Performative::Flow(flow) = &mut echo {
        flow.echo = true;
    }
    let body = serde_amqp::to_vec(&echo).unwrap();
    let mut one = BytesMut::new();
    one.put_u32((8 + body.len()) as u32);
    one.put_slice(&[2, 0, 0, 0]);
    one.extend_from_slice(&body);
    let flows = 500_000;
    let mut all = Vec::with_capacity(one.len() * flows);
    for _ in 0..flows {
        all.extend_from_slice(&one);
    }
    let (mut read_half, mut write_half) = client.stream.into_split();
    let writer = tokio::spawn(async move { write_half.write_all(&all).await.map(|_| write_half) });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !writer.is_finished(),
        "the server kept reading although its {} MB of answers were never read",
        flows * 50 / 1_000_000
    );
    // Once the client reads, everything flows again.
    let reader = tokio::spawn(async move {
        let mut sink = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = read_half.read(&mut sink).await {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let written = tokio::time::timeout(Duration::from_secs(60), writer).await;
    assert!(
        matches!(written, Ok(Ok(Ok(_)))),
        "client writes never completed"
    );
    reader.abort();
}

#[tokio::test]
async fn heartbeats_follow_a_short_peer_timeout_even_without_ours() {
    let config = ConnectionConfig {
        idle_timeout: None,
        ..ConnectionConfig::default()
    };
    let (mut client, mut app) = start(config).await;
    client.write(AMQP_HEADER).await;
    client.header().await;
    client.send(0, open(65536, Some(400))).await;
    let server_open = client.frame().await;
    let Performative::Open(server_open) = server_open.performative() else {
        panic!("expected open");
    };
    assert_eq!(server_open.idle_time_out, None);
    assert!(matches!(
        app.next_event().await,
        Some(ConnectionEvent::Opened(_))
    ));
    let started = std::time::Instant::now();
    let mut empty_frames = 0;
    let mut last = started;
    while started.elapsed() < Duration::from_millis(1500) {
        let header = client.read_exact(8).await;
        assert_eq!(&header[..4], &[0, 0, 0, 8], "only heartbeats expected");
        let gap = last.elapsed();
        assert!(
            gap < Duration::from_millis(400),
            "{gap:?} without traffic exceeds the peer's idle time-out"
        );
        last = std::time::Instant::now();
        empty_frames += 1;
    }
    assert!(empty_frames >= 3, "{empty_frames} heartbeats in 1.5 s");
}

#[tokio::test]
async fn application_detach_end_and_close_reach_the_client_with_their_errors() {
    use busdrain_amqp::types::definitions::Error;
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .send(0, Performative::Attach(attach("r", 0, Role::Receiver, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let session = incoming.info().session;
    let Link::Outgoing(link) = incoming.accept_echo() else {
        panic!("expected outgoing link");
    };
    client.frame().await; // attach

    // Link detach with an error (e.g. session lock lost).
    link.detach(Some(Error::new(
        AmqpError::NotFound,
        Some("entity deleted".into()),
        None,
    )));
    let detach = client.frame().await;
    let Performative::Detach(detach) = detach.performative() else {
        panic!("expected detach");
    };
    assert!(detach.closed);
    assert_eq!(
        detach.error.as_ref().and_then(|e| e.description.as_deref()),
        Some("entity deleted")
    );

    // Session end with an error; the client's answer completes it.
    app.end_session(
        session,
        Some(Error::new(
            AmqpError::InternalError,
            Some("bye".into()),
            None,
        )),
    );
    let end = client.frame().await;
    let Performative::End(end) = end.performative() else {
        panic!("expected end");
    };
    assert_eq!(
        end.error.as_ref().and_then(|e| e.description.as_deref()),
        Some("bye")
    );
    client
        .send(
            0,
            Performative::End(busdrain_amqp::types::performatives::End { error: None }),
        )
        .await;

    // Connection close with an error; the client's close ends the connection.
    app.close(Some(Error::new(
        AmqpError::UnauthorizedAccess,
        Some("token expired".into()),
        None,
    )));
    assert_eq!(
        client.expect_close().await,
        Some(ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess))
    );
    client
        .send(0, Performative::Close(Close { error: None }))
        .await;
    loop {
        match tokio::time::timeout(WAIT, app.next_event()).await.unwrap() {
            Some(ConnectionEvent::Closed { .. }) => break,
            Some(ConnectionEvent::SessionEnded { .. }) => continue,
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[tokio::test]
async fn credit_accounts_for_deliveries_in_flight() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    open_session(&mut client, &mut app, 65536).await;
    client
        .send(0, Performative::Attach(attach("r", 0, Role::Receiver, "q")))
        .await;
    let incoming = next_attach(&mut app).await;
    let Link::Outgoing(mut link) = incoming.accept_echo() else {
        panic!("expected outgoing link");
    };
    client.frame().await; // attach
    client.send(0, link_flow(0, 0, 3, false)).await;
    tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    for tag in 0..3u8 {
        link.try_send(OutgoingDelivery {
            tag: [tag; 16],
            message_format: 0,
            settled: true,
            payload: Bytes::from_static(&[0x00, 0x53, 0x77, 0x40]),
        })
        .unwrap();
    }
    // A flow the client sent before seeing the 3 deliveries (credit 2 at count 0) grants
    // nothing: all of it and more is already in flight.
    client.send(0, link_flow(0, 0, 2, false)).await;
    let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert!(
        matches!(event, Some(OutgoingLinkEvent::Flow { credit: 0, .. })),
        "{event:?}"
    );
    // Having received them, it grants 2 more.
    client.send(0, link_flow(0, 3, 2, false)).await;
    let event = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert!(
        matches!(event, Some(OutgoingLinkEvent::Flow { credit: 2, .. })),
        "{event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_each_send_a_message() {
    let broker = support::EchoBroker::start(ConnectionConfig::default()).await;
    let connections = 1000;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(connections));
    let mut tasks = Vec::new();
    for i in 0..connections {
        let barrier = barrier.clone();
        let port = broker.port;
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut client = RawClient {
                stream,
                buf: BytesMut::new(),
            };
            client.write(AMQP_HEADER).await;
            client.header().await;
            client.send(0, open(65536, None)).await;
            client.frame().await; // open
            client.send(0, begin()).await;
            client.frame().await; // begin
            client
                .send(
                    0,
                    Performative::Attach(attach("s", 0, Role::Sender, "scale")),
                )
                .await;
            client.frame().await; // attach
            client.frame().await; // flow with credit
            let tag = (i as u32).to_be_bytes();
            let body = [0x00, 0x53, 0x77, 0xa1, 0x01, b'x'];
            client
                .send_with_payload(0, transfer(0, Some((0, &tag, 0)), true, false), &body)
                .await;
            // Hold every connection open until all of them have sent.
            barrier.wait().await;
            client
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while broker.queues.len("scale") < connections && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(broker.queues.len("scale"), connections);
    drop(clients);
}

#[tokio::test]
async fn pipelined_sasl_header_init_amqp_header_and_open_are_served_in_order() {
    let (mut client, mut app) = start(ConnectionConfig::default()).await;
    let init = busdrain_amqp::types::sasl::SaslInit {
        mechanism: "ANONYMOUS".into(),
        initial_response: None,
        hostname: Some("localhost".into()),
    };
    let body = serde_amqp::to_vec(&init).unwrap();
    let mut everything = BytesMut::new();
    everything.extend_from_slice(SASL_HEADER);
    everything.put_u32((8 + body.len()) as u32);
    everything.put_slice(&[2, 1, 0, 0]);
    everything.extend_from_slice(&body);
    everything.extend_from_slice(AMQP_HEADER);
    let open_body = serde_amqp::to_vec(&open(65536, None)).unwrap();
    everything.put_u32((8 + open_body.len()) as u32);
    everything.put_slice(&[2, 0, 0, 0]);
    everything.extend_from_slice(&open_body);
    client.write(&everything).await;

    assert_eq!(&client.header().await, SASL_HEADER);
    assert!(matches!(
        client.frame().await.body,
        FrameBody::Sasl(SaslBody::Mechanisms(_))
    ));
    assert!(matches!(
        client.frame().await.body,
        FrameBody::Sasl(SaslBody::Outcome(_))
    ));
    assert_eq!(&client.header().await, AMQP_HEADER);
    assert!(matches!(
        client.frame().await.performative(),
        Performative::Open(_)
    ));
    let Some(ConnectionEvent::Opened(info)) = app.next_event().await else {
        panic!("expected opened");
    };
    assert_eq!(info.sasl_mechanism.as_deref(), Some("ANONYMOUS"));
}
