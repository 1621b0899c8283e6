//! Engine throughput on loopback TCP with a minimal pipelining client: N messages sent to
//! an incoming link (each settled Accepted by the application), then N messages sent by
//! the application on an outgoing link and accepted by the client.
//!
//! `cargo run --release -p busdrain-amqp --example throughput -- 200000 256`

use std::time::Instant;

use busdrain_amqp::frame::peek_frame_size;
use busdrain_amqp::serde_amqp;
use busdrain_amqp::types::definitions::{Handle, ReceiverSettleMode, Role, SenderSettleMode};
use busdrain_amqp::types::messaging::{Accepted, DeliveryState, Source, Target};
use busdrain_amqp::types::performatives::{
    Attach, Begin, Disposition, Flow, Open, Performative, Transfer,
};
use busdrain_amqp::types::primitives::Binary;
use busdrain_amqp::{
    decode_frame, ConnectionConfig, ConnectionEvent, CreditMode, FrameBody, IncomingLinkEvent,
    Link, OutgoingDelivery, OutgoingLinkEvent,
};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn frame(out: &mut BytesMut, performative: &Performative, payload: &[u8]) -> Result<(), BoxError> {
    let body = serde_amqp::to_vec(performative)?;
    out.put_u32((8 + body.len() + payload.len()) as u32);
    out.put_slice(&[2, 0, 0, 0]);
    out.put_slice(&body);
    out.put_slice(payload);
    Ok(())
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    async fn next(&mut self) -> Result<Performative, BoxError> {
        loop {
            if let Some(size) = peek_frame_size(&self.buf, u32::MAX)? {
                if self.buf.len() >= size {
                    let raw = self.buf.split_to(size);
                    if let FrameBody::Amqp { performative, .. } = decode_frame(&raw)?.body {
                        return Ok(performative);
                    }
                    continue;
                }
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err("server closed".into());
            }
        }
    }
}

fn attach(name: &str, handle: u32, role: Role) -> Performative {
    Performative::Attach(Attach {
        name: name.into(),
        handle: Handle(handle),
        role,
        snd_settle_mode: SenderSettleMode::Unsettled,
        rcv_settle_mode: ReceiverSettleMode::First,
        source: Some(Box::new(Source::from("q"))),
        target: Some(Box::new(Target::from("q").into())),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: Some(0),
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    })
}

fn flow(handle: u32, delivery_count: u32, credit: u32, next_incoming_id: u32) -> Performative {
    Performative::Flow(Flow {
        next_incoming_id: Some(next_incoming_id),
        incoming_window: u32::MAX / 2,
        next_outgoing_id: 0,
        outgoing_window: u32::MAX / 2,
        handle: Some(Handle(handle)),
        delivery_count: Some(delivery_count),
        link_credit: Some(credit),
        available: None,
        drain: false,
        echo: false,
        properties: None,
    })
}

async fn serve(listener: TcpListener, count: usize, payload: Bytes) {
    let Ok((tcp, _)) = listener.accept().await else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let (mut connection, driver) = busdrain_amqp::accept(tcp, ConnectionConfig::default());
    tokio::spawn(driver.run());
    while let Some(event) = connection.next_event().await {
        let ConnectionEvent::Attach(attach) = event else {
            continue;
        };
        let mut reply = busdrain_amqp::AttachReply::echo(attach.attach());
        reply.credit = CreditMode::Auto { window: 1000 };
        match attach.accept(reply) {
            Link::Incoming(mut link) => {
                tokio::spawn(async move {
                    while let Some(IncomingLinkEvent::Delivery(d)) = link.next_event().await {
                        link.settle(d.delivery_id, DeliveryState::Accepted(Accepted {}));
                    }
                });
            }
            Link::Outgoing(mut link) => {
                let payload = payload.clone();
                tokio::spawn(async move {
                    let mut sent = 0usize;
                    loop {
                        while sent < count && link.credit() > 0 {
                            let tag = (sent as u128).to_be_bytes();
                            let delivery = OutgoingDelivery {
                                tag,
                                message_format: 0,
                                settled: false,
                                payload: payload.clone(),
                            };
                            if link.try_send(delivery).is_err() {
                                return;
                            }
                            sent += 1;
                        }
                        match link.next_event().await {
                            Some(OutgoingLinkEvent::Detached { .. }) | None => return,
                            _ => {}
                        }
                    }
                });
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);
    // A data section holding `size` bytes.
    let mut message = BytesMut::new();
    message.put_slice(&[0x00, 0x53, 0x75, 0xb0]);
    message.put_u32(size as u32);
    message.put_bytes(b'm', size);
    let message = message.freeze();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(serve(listener, count, message.clone()));
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut client = Client {
        stream,
        buf: BytesMut::with_capacity(1 << 20),
    };
    let mut out = BytesMut::new();
    out.put_slice(b"AMQP\x00\x01\x00\x00");
    let open = Open {
        container_id: "throughput".into(),
        hostname: None,
        max_frame_size: (1u32 << 20).into(),
        channel_max: 1.into(),
        idle_time_out: None,
        outgoing_locales: None,
        incoming_locales: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    frame(&mut out, &Performative::Open(open), &[])?;
    let begin = Begin {
        remote_channel: None,
        next_outgoing_id: 0,
        incoming_window: u32::MAX / 2,
        outgoing_window: u32::MAX / 2,
        handle_max: Handle(10),
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    frame(&mut out, &Performative::Begin(begin), &[])?;
    frame(&mut out, &attach("send", 0, Role::Sender), &[])?;
    client.stream.write_all(&out).await?;
    let mut header = [0u8; 8];
    client.stream.read_exact(&mut header).await?;

    // Phase 1: the client sends, the application settles each message.
    let started = Instant::now();
    let (mut sent, mut settled, mut credit) = (0usize, 0usize, 0u32);
    while settled < count {
        if credit > 0 && sent < count {
            out.clear();
            while credit > 0 && sent < count {
                let transfer = Transfer {
                    handle: Handle(0),
                    delivery_id: Some(sent as u32),
                    delivery_tag: Some(Binary::from((sent as u64).to_be_bytes().to_vec())),
                    message_format: Some(0),
                    settled: Some(false),
                    more: false,
                    rcv_settle_mode: None,
                    state: None,
                    resume: false,
                    aborted: false,
                    batchable: false,
                };
                frame(&mut out, &Performative::Transfer(transfer), &message)?;
                sent += 1;
                credit -= 1;
            }
            client.stream.write_all(&out).await?;
        }
        match client.next().await? {
            Performative::Flow(f) if f.handle.is_some() => {
                let count_now = f.delivery_count.unwrap_or(0);
                credit = count_now
                    .wrapping_add(f.link_credit.unwrap_or(0))
                    .wrapping_sub(sent as u32);
            }
            Performative::Disposition(d) => {
                settled += (d.last.unwrap_or(d.first) - d.first + 1) as usize
            }
            _ => {}
        }
    }
    let send_rate = count as f64 / started.elapsed().as_secs_f64();

    // Phase 2: the application sends, the client accepts in ranges.
    out.clear();
    frame(&mut out, &attach("receive", 1, Role::Receiver), &[])?;
    frame(&mut out, &flow(1, 0, 1000, 0), &[])?;
    client.stream.write_all(&out).await?;
    let started = Instant::now();
    let (mut received, mut unacked_from) = (0u32, 0u32);
    while (received as usize) < count {
        if let Performative::Transfer(_) = client.next().await? {
            received += 1;
            if received - unacked_from >= 500 || received as usize == count {
                out.clear();
                let disposition = Disposition {
                    role: Role::Receiver,
                    first: unacked_from,
                    last: Some(received - 1),
                    settled: true,
                    state: Some(DeliveryState::Accepted(Accepted {})),
                    batchable: false,
                };
                frame(&mut out, &Performative::Disposition(disposition), &[])?;
                frame(&mut out, &flow(1, received, 1000, received), &[])?;
                client.stream.write_all(&out).await?;
                unacked_from = received;
            }
        }
    }
    let receive_rate = count as f64 / started.elapsed().as_secs_f64();
    println!(
        "messages={count} size={size}B  client->engine (each settled by the app): {send_rate:.0} msg/s  engine->client (accepted in ranges): {receive_rate:.0} msg/s"
    );
    Ok(())
}
