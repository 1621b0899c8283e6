//! The connection task: owns the transport and all session and link state.
//!
//! One task per connection reads frames, applies application commands and writes frames
//! into one output buffer that is handed to a writer task whenever the task is about to
//! wait, so a burst of frames becomes one socket write.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use crate::command::{Command, CommandSender, LinkEvents, LinkId};
use crate::config::{ConnectionConfig, CreditMode};
use crate::connection::{ConnectionDriver, ConnectionEvent, OpenInfo};
use crate::delivery::{DispositionEvent, IncomingDelivery, OutgoingDelivery};
use crate::encode;
use crate::error::ConnectionError;
use crate::frame::{self, FrameBody, FrameError, MIN_MAX_FRAME_SIZE};
use crate::handshake;
use crate::link::{
    direction_of_client_role, AttachReply, IncomingAttach, IncomingLinkEvent, LinkDirection,
    LinkInfo, OutgoingLinkEvent, OutgoingShared, SessionId,
};
use crate::session::{
    LinkState, PartialDelivery, PartialPayload, PendingTransfer, Phase, Session, UnsettledOut,
    OUTGOING_WINDOW,
};
use crate::types::definitions::{
    AmqpError, ConnectionError as ConnErr, Error, ErrorCondition, LinkError, Role, SessionError,
};
use crate::types::messaging::{Accepted, DeliveryState, Released, TargetArchetype};
use crate::types::performatives::{
    Attach, Begin, Close, Detach, Disposition, Flow, Open, Performative, Transfer,
};

/// Commands applied per wake-up before frames are flushed, so one busy link cannot
/// starve reading.
const COMMAND_BATCH: usize = 512;
/// How long we wait for the client's `close` after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Hand the output buffer to the writer once it is this large, even mid-batch.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// Output handed to the writer but not yet written to the socket, above which we stop
/// reading from the client until it reads what we sent. Bounds memory against a client
/// that provokes answers (echo flows, attaches) but never reads.
const MAX_QUEUED_OUTPUT: usize = 8 * 1024 * 1024;

/// Bytes queued for the writer task, and a signal when the queue has drained.
#[derive(Default)]
struct OutputQueue {
    queued: std::sync::atomic::AtomicUsize,
    drained: tokio::sync::Notify,
}

impl OutputQueue {
    fn queued(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Acquire)
    }

    fn add(&self, n: usize) {
        self.queued
            .fetch_add(n, std::sync::atomic::Ordering::AcqRel);
    }

    fn written(&self, n: usize) {
        let before = self
            .queued
            .fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
        if before > MAX_QUEUED_OUTPUT && before - n <= MAX_QUEUED_OUTPUT {
            self.drained.notify_one();
        }
    }
}

pub(crate) async fn run<IO>(driver: ConnectionDriver<IO>) -> Result<(), ConnectionError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ConnectionDriver {
        mut io,
        config,
        events,
        commands_tx,
        commands_rx,
    } = driver;
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let negotiated = tokio::time::timeout(
        config.handshake_timeout,
        handshake::negotiate(&mut io, &mut inbuf, &config),
    )
    .await;
    let sasl_mechanism = match negotiated {
        Ok(Ok(mechanism)) => mechanism,
        Ok(Err(error)) => {
            let _ = events.send(ConnectionEvent::Closed { error: None });
            return Err(error);
        }
        Err(_) => {
            let _ = events.send(ConnectionEvent::Closed { error: None });
            return Err(ConnectionError::HandshakeTimeout);
        }
    };

    let (reader, writer) = tokio::io::split(io);
    let (writer_tx, writer_rx) = unbounded_channel();
    let output = Arc::new(OutputQueue::default());
    let writer_task = tokio::spawn(write_loop(writer, writer_rx, output.clone()));
    let now = Instant::now();
    let mut engine = Engine {
        handshake_deadline: now + config.handshake_timeout,
        config,
        events,
        commands: commands_tx,
        out: BytesMut::with_capacity(16 * 1024),
        writer: writer_tx,
        output,
        sasl_mechanism,
        opened: false,
        peer_max_frame: MIN_MAX_FRAME_SIZE as usize,
        peer_idle: None,
        sessions: Vec::new(),
        channels: HashMap::new(),
        links: HashMap::new(),
        next_link_id: 1,
        last_sent: now,
        last_received: now,
        close_sent_at: None,
        pending_disposition: None,
    };
    let result = engine.serve(reader, inbuf, commands_rx).await;
    engine.shutdown(&result);
    drop(engine);
    // Let the writer deliver our final frames (close) before the socket is dropped.
    let _ = tokio::time::timeout(CLOSE_GRACE, writer_task).await;
    result
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut chunks: UnboundedReceiver<Bytes>,
    output: Arc<OutputQueue>,
) -> std::io::Result<()> {
    while let Some(chunk) = chunks.recv().await {
        writer.write_all(&chunk).await?;
        output.written(chunk.len());
        while let Ok(more) = chunks.try_recv() {
            writer.write_all(&more).await?;
            output.written(more.len());
        }
        writer.flush().await?;
    }
    writer.shutdown().await
}

/// What ends a connection from inside frame or command handling.
enum Stop {
    /// Close the connection with this error (and report it as a protocol violation).
    Violation(Error),
    /// The exchange is over (close sent and received, or transport gone).
    Done(Result<(), ConnectionError>),
}

type Step = Result<(), Stop>;

fn violation(condition: impl Into<ErrorCondition>, description: impl Into<String>) -> Stop {
    Stop::Violation(Error::new(condition, Some(description.into()), None))
}

fn error(condition: impl Into<ErrorCondition>, description: impl Into<String>) -> Error {
    Error::new(condition, Some(description.into()), None)
}

/// Consecutive settled-Accepted dispositions are merged into one range frame.
struct PendingDisposition {
    channel: u16,
    role: Role,
    first: u32,
    last: u32,
}

struct Engine {
    config: ConnectionConfig,
    events: UnboundedSender<ConnectionEvent>,
    commands: CommandSender,
    out: BytesMut,
    writer: UnboundedSender<Bytes>,
    output: Arc<OutputQueue>,
    sasl_mechanism: Option<String>,
    opened: bool,
    handshake_deadline: Instant,
    /// Outgoing frame limit: the smaller of the client's and our max-frame-size.
    peer_max_frame: usize,
    /// The client's idle-time-out: we send something at least every half of it.
    peer_idle: Option<Duration>,
    /// Sessions by our channel number.
    sessions: Vec<Option<Session>>,
    /// Our channel by the client's channel.
    channels: HashMap<u16, u16>,
    /// (our channel, our handle) by link id.
    links: HashMap<LinkId, (u16, u32)>,
    next_link_id: LinkId,
    last_sent: Instant,
    last_received: Instant,
    close_sent_at: Option<Instant>,
    pending_disposition: Option<PendingDisposition>,
}

impl Engine {
    async fn serve<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: R,
        mut inbuf: BytesMut,
        mut commands: UnboundedReceiver<Command>,
    ) -> Result<(), ConnectionError> {
        let tick = self.tick_period();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut eof = false;
        loop {
            let step = self.process_input(&mut inbuf, eof);
            let step = step.and_then(|()| self.flush());
            match step {
                Ok(()) => {}
                Err(Stop::Done(result)) => return result,
                Err(Stop::Violation(error)) => return self.fail(error),
            }
            if eof {
                return Err(ConnectionError::Io(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            inbuf.reserve(8 * 1024);
            let backpressured = self.output.queued() > MAX_QUEUED_OUTPUT;
            let output = self.output.clone();
            let step = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.apply_commands(command, &mut commands),
                    // The engine holds a sender itself, so this cannot happen.
                    None => Ok(()),
                },
                _ = output.drained.notified(), if backpressured => Ok(()),
                read = reader.read_buf(&mut inbuf), if !backpressured => match read {
                    Ok(0) => {
                        eof = true;
                        Ok(())
                    }
                    Ok(_) => {
                        self.last_received = Instant::now();
                        Ok(())
                    }
                    Err(io_error) => Err(Stop::Done(Err(ConnectionError::Io(io_error)))),
                },
                _ = ticker.tick() => self.on_tick(),
            };
            match step {
                Ok(()) => {}
                Err(Stop::Done(result)) => {
                    let _ = self.flush();
                    return result;
                }
                Err(Stop::Violation(error)) => return self.fail(error),
            }
        }
    }

    fn tick_period(&self) -> Duration {
        let ours = self.config.idle_timeout.map(|d| d / 4);
        let period = ours.unwrap_or(Duration::from_secs(1));
        period.clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// Send `close` with `error` and end: a protocol violation by the client.
    fn fail(&mut self, error: Error) -> Result<(), ConnectionError> {
        tracing::debug!(condition = ?error.condition, description = ?error.description, "closing connection on protocol error");
        if self.close_sent_at.is_none() {
            self.write_close(Some(&error));
        }
        let _ = self.flush();
        Err(ConnectionError::Protocol(error))
    }

    /// Tell every handle the connection is gone.
    fn shutdown(&mut self, result: &Result<(), ConnectionError>) {
        let error = match result {
            Ok(()) => None,
            Err(ConnectionError::Protocol(e)) | Err(ConnectionError::ClosedByPeer(e)) => {
                Some(e.clone())
            }
            Err(other) => Some(error(AmqpError::InternalError, other.to_string())),
        };
        for channel in 0..self.sessions.len() {
            if let Some(session) = self.sessions[channel].take() {
                notify_session_links(session, error.clone());
            }
        }
        self.links.clear();
        let _ = self.events.send(ConnectionEvent::Closed { error });
    }

    // ----- input ---------------------------------------------------------------------

    fn process_input(&mut self, inbuf: &mut BytesMut, eof: bool) -> Step {
        loop {
            let size = match frame::peek_frame_size(inbuf, self.config.max_frame_size) {
                Ok(Some(size)) => size,
                Ok(None) => break,
                Err(e) => return Err(Stop::Violation(frame_error(&e))),
            };
            if inbuf.len() < size {
                break;
            }
            let bytes = inbuf.split_to(size).freeze();
            let frame =
                frame::decode_frame_bytes(bytes).map_err(|e| Stop::Violation(frame_error(&e)))?;
            self.on_frame(frame.channel, frame.body)?;
            if self.out.len() >= FLUSH_THRESHOLD {
                self.flush()?;
            }
        }
        if eof && self.close_sent_at.is_some() {
            return Err(Stop::Done(Ok(())));
        }
        Ok(())
    }

    fn on_frame(&mut self, channel: u16, body: FrameBody) -> Step {
        if tracing::enabled!(tracing::Level::TRACE) {
            if let FrameBody::Amqp {
                performative,
                payload,
            } = &body
            {
                tracing::trace!(
                    channel,
                    ?performative,
                    payload_len = payload.len(),
                    "frame in"
                );
            }
        }
        let (performative, payload) = match body {
            FrameBody::Empty => return Ok(()),
            FrameBody::Sasl(_) => {
                return Err(violation(
                    ConnErr::FramingError,
                    "SASL frame after SASL negotiation",
                ))
            }
            FrameBody::Amqp {
                performative,
                payload,
            } => (performative, payload),
        };
        if !self.opened {
            return match performative {
                Performative::Open(open) => self.on_open(open),
                _ => Err(violation(AmqpError::IllegalState, "expected open")),
            };
        }
        if self.close_sent_at.is_some() {
            // After our close only the client's close matters.
            return match performative {
                Performative::Close(_) => Err(Stop::Done(Ok(()))),
                _ => Ok(()),
            };
        }
        match performative {
            Performative::Open(_) => Err(violation(AmqpError::IllegalState, "second open")),
            Performative::Begin(begin) => self.on_begin(channel, begin),
            Performative::Close(close) => self.on_close(close),
            other => {
                let local = *self.channels.get(&channel).ok_or_else(|| {
                    violation(
                        ConnErr::FramingError,
                        format!("frame on channel {channel} without a session"),
                    )
                })?;
                self.on_session_frame(local, other, payload)
            }
        }
    }

    fn on_open(&mut self, open: Open) -> Step {
        self.opened = true;
        let peer_max = open.max_frame_size.0.max(MIN_MAX_FRAME_SIZE);
        self.peer_max_frame = peer_max.min(self.config.max_frame_size) as usize;
        self.peer_idle = open
            .idle_time_out
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms as u64));
        let container_id = self.config.container_id.clone();
        let fields = encode::OpenFields {
            container_id: &container_id,
            max_frame_size: self.config.max_frame_size,
            channel_max: self.config.channel_max,
            idle_time_out: self
                .config
                .idle_timeout
                .map(|d| d.as_millis().min(u32::MAX as u128) as u32),
        };
        self.before_write();
        encode::open(&mut self.out, &fields)
            .map_err(|e| violation(AmqpError::InternalError, format!("encoding open: {e}")))?;
        let _ = self.events.send(ConnectionEvent::Opened(OpenInfo {
            container_id: open.container_id,
            hostname: open.hostname,
            sasl_mechanism: self.sasl_mechanism.clone(),
            properties: open.properties,
        }));
        Ok(())
    }

    fn on_close(&mut self, close: Close) -> Step {
        self.write_close(None);
        let _ = self.flush();
        Err(Stop::Done(match close.error {
            None => Ok(()),
            Some(error) => Err(ConnectionError::ClosedByPeer(error)),
        }))
    }

    fn on_begin(&mut self, remote_channel: u16, begin: Begin) -> Step {
        if begin.remote_channel.is_some() {
            return Err(violation(
                AmqpError::NotAllowed,
                "begin with remote-channel: the server never initiates sessions",
            ));
        }
        if remote_channel > self.config.channel_max {
            return Err(violation(
                ConnErr::FramingError,
                format!("channel {remote_channel} above channel-max"),
            ));
        }
        if self.channels.contains_key(&remote_channel) {
            return Err(violation(
                AmqpError::NotAllowed,
                format!("channel {remote_channel} already has a session"),
            ));
        }
        let local = match self.sessions.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.sessions.push(None);
                self.sessions.len() - 1
            }
        };
        let local_channel = local as u16;
        let session = Session::new(
            remote_channel,
            begin.incoming_window,
            self.config.session_incoming_window,
        );
        self.sessions[local] = Some(session);
        self.channels.insert(remote_channel, local_channel);
        let fields = encode::BeginFields {
            remote_channel,
            next_outgoing_id: 0,
            incoming_window: self.config.session_incoming_window,
            outgoing_window: OUTGOING_WINDOW,
            handle_max: self.config.handle_max,
        };
        self.before_write();
        encode::begin(&mut self.out, local_channel, &fields)
            .map_err(|e| violation(AmqpError::InternalError, format!("encoding begin: {e}")))?;
        Ok(())
    }

    fn session(&mut self, local: u16) -> Option<&mut Session> {
        self.sessions
            .get_mut(local as usize)
            .and_then(Option::as_mut)
    }

    fn on_session_frame(&mut self, local: u16, performative: Performative, payload: Bytes) -> Step {
        let ending = self.session(local).map(|s| s.ending).unwrap_or(true);
        if ending {
            // After our end only the client's end matters.
            if let Performative::End(_) = performative {
                self.remove_session(local, None, false);
            }
            return Ok(());
        }
        match performative {
            Performative::Attach(attach) => self.on_attach(local, attach),
            Performative::Flow(flow) => self.on_flow(local, flow),
            Performative::Transfer(transfer) => self.on_transfer(local, transfer, payload),
            Performative::Disposition(disposition) => self.on_disposition(local, disposition),
            Performative::Detach(detach) => self.on_detach(local, detach),
            Performative::End(end) => {
                self.before_write();
                let _ = encode::end(&mut self.out, local, None);
                self.remove_session(local, end.error, true);
                Ok(())
            }
            Performative::Open(_) | Performative::Begin(_) | Performative::Close(_) => Ok(()),
        }
    }

    /// Drop a session whose end exchange is complete (or that we abandon).
    fn remove_session(&mut self, local: u16, error: Option<Error>, notify_app: bool) {
        let Some(session) = self.sessions.get_mut(local as usize).and_then(Option::take) else {
            return;
        };
        self.channels.remove(&session.remote_channel);
        for link in session.links.iter().flatten() {
            self.links.remove(&link.id);
        }
        notify_session_links(session, error.clone());
        if notify_app {
            let _ = self.events.send(ConnectionEvent::SessionEnded {
                session: SessionId(local),
                error,
            });
        }
    }

    /// End a session because the client broke a session rule.
    fn end_session_with(&mut self, local: u16, error: Error) -> Step {
        tracing::debug!(channel = local, condition = ?error.condition, "ending session on protocol error");
        self.before_write();
        let _ = encode::end(&mut self.out, local, Some(&error));
        if let Some(session) = self.session(local) {
            session.ending = true;
            let links: Vec<LinkState> = session.links.iter_mut().filter_map(Option::take).collect();
            session.remote_handles.clear();
            session.unsettled_in.clear();
            session.unsettled_out.clear();
            session.pending.clear();
            for link in links {
                self.links.remove(&link.id);
                notify_link(&link, Some(error.clone()));
            }
        }
        let _ = self.events.send(ConnectionEvent::SessionEnded {
            session: SessionId(local),
            error: Some(error),
        });
        Ok(())
    }

    fn on_attach(&mut self, local: u16, mut attach: Attach) -> Step {
        let handle_max = self.config.handle_max;
        let remote_handle = attach.handle.0;
        let Some(session) = self.session(local) else {
            return Ok(());
        };
        if session.remote_handles.contains_key(&remote_handle) {
            let e = error(
                SessionError::HandleInUse,
                format!("handle {remote_handle} is in use"),
            );
            return self.end_session_with(local, e);
        }
        if remote_handle > handle_max {
            let e = error(
                ConnErr::FramingError,
                format!("handle {remote_handle} above handle-max {handle_max}"),
            );
            return self.end_session_with(local, e);
        }
        let Some(handle) = session.allocate_handle(handle_max) else {
            let e = error(
                AmqpError::ResourceLimitExceeded,
                "too many links in session",
            );
            return self.end_session_with(local, e);
        };
        let direction = direction_of_client_role(&attach.role);
        if direction == LinkDirection::Incoming && attach.initial_delivery_count.is_none() {
            // Microsoft.Azure.Amqp omits it on sender attaches; AMQP says it MUST be set.
            attach.initial_delivery_count = Some(0);
        }
        let address = match direction {
            LinkDirection::Outgoing => attach.source.as_ref().and_then(|s| s.address.clone()),
            LinkDirection::Incoming => match attach.target.as_deref() {
                Some(TargetArchetype::Target(target)) => target.address.clone(),
                _ => None,
            },
        };
        let id = self.next_link_id;
        self.next_link_id += 1;
        let outgoing = Arc::new(OutgoingShared::default());
        outgoing.lock().peer_max_message_size = attach.max_message_size.unwrap_or(0);
        let link = LinkState {
            id,
            name: attach.name.clone(),
            remote_handle,
            direction,
            phase: Phase::Pending,
            events: None,
            outgoing: outgoing.clone(),
            credit_mode: CreditMode::Manual,
            link_credit: 0,
            delivery_count: attach.initial_delivery_count.unwrap_or(0),
            outstanding: 0,
            max_message_size: self.config.max_message_size,
            partial: None,
        };
        let Some(session) = self.session(local) else {
            return Ok(());
        };
        session.links[handle as usize] = Some(link);
        session.remote_handles.insert(remote_handle, handle);
        self.links.insert(id, (local, handle));
        let info = LinkInfo {
            session: SessionId(local),
            name: attach.name.clone(),
            direction,
            address,
            snd_settle_mode: attach.snd_settle_mode.clone(),
            rcv_settle_mode: attach.rcv_settle_mode.clone(),
        };
        let incoming = IncomingAttach {
            attach,
            info,
            link_id: id,
            commands: self.commands.clone(),
            outgoing_shared: outgoing,
            decided: false,
        };
        // If the application dropped its Connection, the attach comes back to us through
        // IncomingAttach's Drop as a refusal.
        let _ = self.events.send(ConnectionEvent::Attach(incoming));
        Ok(())
    }

    fn on_flow(&mut self, local: u16, flow: Flow) -> Step {
        let Some(session) = self.session(local) else {
            return Ok(());
        };
        let remote_next_incoming = flow.next_incoming_id.unwrap_or(0);
        session.remote_incoming_window = remote_next_incoming
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(session.next_outgoing_id);
        let mut echo_link = None;
        if let Some(remote_handle) = flow.handle {
            let Some(&handle) = session.remote_handles.get(&remote_handle.0) else {
                let e = error(
                    SessionError::UnattachedHandle,
                    format!("flow for unattached handle {}", remote_handle.0),
                );
                return self.end_session_with(local, e);
            };
            let Some(link) = session.link_mut(handle) else {
                return Ok(());
            };
            match link.direction {
                LinkDirection::Outgoing => {
                    let mut state = link.outgoing.lock();
                    // Spec 2.6.7: credit = receiver's delivery-count + link-credit - ours.
                    let rcv_count = flow.delivery_count.unwrap_or(0);
                    let rcv_credit = flow.link_credit.unwrap_or(0);
                    state.link_credit = rcv_count
                        .wrapping_add(rcv_credit)
                        .wrapping_sub(state.delivery_count);
                    if state.link_credit > rcv_credit {
                        // The client counted deliveries we have not sent yet (impossible)
                        // or wrapped: trust its credit.
                        state.link_credit = rcv_credit;
                    }
                    state.drain = flow.drain;
                    let notify = link.phase == Phase::Attached && !state.flow_event_pending;
                    if notify {
                        state.flow_event_pending = true;
                    }
                    drop(state);
                    if notify {
                        if let Some(LinkEvents::Outgoing(tx)) = &link.events {
                            let _ = tx.send(OutgoingLinkEvent::Flow {
                                credit: 0,
                                drain: false,
                            });
                        }
                    }
                }
                LinkDirection::Incoming => {}
            }
            if flow.echo {
                echo_link = Some(handle);
            }
        } else if flow.echo {
            self.write_session_flow(local, None);
        }
        if let Some(handle) = echo_link {
            self.write_link_flow(local, handle);
        }
        self.pump(local);
        Ok(())
    }

    fn on_transfer(&mut self, local: u16, transfer: Transfer, payload: Bytes) -> Step {
        let window = self.config.session_incoming_window;
        let Some(session) = self.session(local) else {
            return Ok(());
        };
        session.next_incoming_id = session.next_incoming_id.wrapping_add(1);
        session.incoming_window = session.incoming_window.saturating_sub(1);
        let replenish = session.incoming_window < window / 2;
        if replenish {
            session.incoming_window = window;
        }
        let remote_handle = transfer.handle.0;
        let Some(&handle) = session.remote_handles.get(&remote_handle) else {
            let e = error(
                SessionError::UnattachedHandle,
                format!("transfer for unattached handle {remote_handle}"),
            );
            return self.end_session_with(local, e);
        };
        if replenish {
            self.write_session_flow(local, None);
        }
        let Some(session) = self.session(local) else {
            return Ok(());
        };
        let Some(link) = session.link_mut(handle) else {
            return Ok(());
        };
        if link.phase == Phase::Detaching {
            return Ok(());
        }
        if link.direction != LinkDirection::Incoming {
            let e = error(
                AmqpError::NotAllowed,
                "transfer on a link where the client receives",
            );
            return self.detach_with_error(local, handle, e);
        }
        if transfer.aborted {
            link.partial = None;
            return Ok(());
        }
        let mut partial = match link.partial.take() {
            Some(partial) => partial,
            None => {
                let Some(delivery_id) = transfer.delivery_id else {
                    let e = error(
                        AmqpError::InvalidField,
                        "first transfer without delivery-id",
                    );
                    return self.detach_with_error(local, handle, e);
                };
                if link.link_credit == 0 {
                    let e = error(
                        LinkError::TransferLimitExceeded,
                        "transfer without link credit",
                    );
                    return self.detach_with_error(local, handle, e);
                }
                link.link_credit -= 1;
                link.delivery_count = link.delivery_count.wrapping_add(1);
                PartialDelivery {
                    delivery_id,
                    tag: transfer
                        .delivery_tag
                        .map(|t| Bytes::from(t.into_vec()))
                        .unwrap_or_default(),
                    message_format: transfer.message_format.unwrap_or(0),
                    settled: false,
                    payload: PartialPayload::One(Bytes::new()),
                }
            }
        };
        partial.settled |= transfer.settled.unwrap_or(false);
        let size = partial.payload.len() as u64 + payload.len() as u64;
        if link.max_message_size > 0 && size > link.max_message_size {
            let e = error(
                LinkError::MessageSizeExceeded,
                format!(
                    "message exceeds the link's max-message-size of {} bytes",
                    link.max_message_size
                ),
            );
            return self.detach_with_error(local, handle, e);
        }
        partial.payload.push(payload);
        if transfer.more {
            link.partial = Some(partial);
            return Ok(());
        }
        let delivery = IncomingDelivery {
            delivery_id: partial.delivery_id,
            delivery_tag: partial.tag,
            message_format: partial.message_format,
            settled: partial.settled,
            payload: partial.payload.freeze(),
        };
        link.outstanding += 1;
        if let Some(LinkEvents::Incoming(tx)) = &link.events {
            let _ = tx.send(IncomingLinkEvent::Delivery(delivery.clone()));
        }
        if !delivery.settled {
            session.unsettled_in.insert(delivery.delivery_id, handle);
        }
        Ok(())
    }

    fn on_disposition(&mut self, local: u16, disposition: Disposition) -> Step {
        let Some(session) = self.session(local) else {
            return Ok(());
        };
        let first = disposition.first;
        let last = disposition.last.unwrap_or(first);
        let span = last.wrapping_sub(first);
        match disposition.role {
            // The client (receiver) reports on deliveries we sent.
            Role::Receiver => {
                let ids: Vec<u32> = if (span as usize) <= session.unsettled_out.len() {
                    (0..=span).map(|i| first.wrapping_add(i)).collect()
                } else {
                    session
                        .unsettled_out
                        .keys()
                        .copied()
                        .filter(|id| id.wrapping_sub(first) <= span)
                        .collect()
                };
                for id in ids {
                    let Some(entry) = session.unsettled_out.get_mut(&id) else {
                        continue;
                    };
                    if !disposition.settled && entry.reported {
                        continue;
                    }
                    entry.reported = true;
                    let event = DispositionEvent {
                        delivery_id: id,
                        delivery_tag: entry.tag,
                        settled: disposition.settled,
                        state: disposition.state.clone(),
                    };
                    let handle = entry.handle;
                    if disposition.settled {
                        session.unsettled_out.remove(&id);
                    }
                    if let Some(link) = session.link_mut(handle) {
                        if let Some(LinkEvents::Outgoing(tx)) = &link.events {
                            let _ = tx.send(OutgoingLinkEvent::Disposition(event));
                        }
                    }
                }
            }
            // The client (sender) settles deliveries it sent before we did: they no longer
            // occupy a credit slot, and our later settlement has nothing left to send.
            Role::Sender => {
                if disposition.settled {
                    let ids: Vec<u32> = if (span as usize) <= session.unsettled_in.len() {
                        (0..=span).map(|i| first.wrapping_add(i)).collect()
                    } else {
                        session
                            .unsettled_in
                            .keys()
                            .copied()
                            .filter(|id| id.wrapping_sub(first) <= span)
                            .collect()
                    };
                    let mut freed = Vec::new();
                    for id in ids {
                        if let Some(handle) = session.unsettled_in.remove(&id) {
                            if let Some(link) = session.link_mut(handle) {
                                link.outstanding = link.outstanding.saturating_sub(1);
                            }
                            freed.push(handle);
                        }
                    }
                    freed.sort_unstable();
                    freed.dedup();
                    for handle in freed {
                        self.top_up_credit(local, handle);
                    }
                }
            }
        }
        Ok(())
    }

    fn on_detach(&mut self, local: u16, detach: Detach) -> Step {
        let remote_handle = detach.handle.0;
        let Some(session) = self.session(local) else {
            return Ok(());
        };
        let Some(&handle) = session.remote_handles.get(&remote_handle) else {
            let e = error(
                SessionError::UnattachedHandle,
                format!("detach for unattached handle {remote_handle}"),
            );
            return self.end_session_with(local, e);
        };
        let Some(link) = session.remove_link(handle) else {
            return Ok(());
        };
        self.links.remove(&link.id);
        match link.phase {
            // Our detach was already sent; this is the answer.
            Phase::Detaching => {}
            Phase::Pending => {
                // The client gave up before the application decided: complete the
                // exchange with an empty attach so the client sees a well-formed answer.
                self.write_attach_refusal_stub(
                    local,
                    handle,
                    &LinkStub {
                        name: link.name.clone(),
                        direction: link.direction,
                    },
                );
                self.before_write();
                let _ = encode::detach(&mut self.out, local, handle, detach.closed, None);
            }
            Phase::Attached => {
                self.before_write();
                let _ = encode::detach(&mut self.out, local, handle, detach.closed, None);
                notify_link(&link, detach.error);
            }
        }
        Ok(())
    }

    /// Detach a link because the client broke a link rule (oversized message, no credit).
    fn detach_with_error(&mut self, local: u16, handle: u32, error: Error) -> Step {
        tracing::debug!(channel = local, handle, condition = ?error.condition, "detaching link on error");
        self.before_write();
        let _ = encode::detach(&mut self.out, local, handle, true, Some(&error));
        if let Some(session) = self.session(local) {
            session.forget_deliveries(handle);
            if let Some(link) = session.link_mut(handle) {
                link.phase = Phase::Detaching;
                link.partial = None;
                notify_link(link, Some(error));
                link.events = None;
            }
        }
        Ok(())
    }

    // ----- commands ------------------------------------------------------------------

    fn apply_commands(
        &mut self,
        first: Command,
        commands: &mut UnboundedReceiver<Command>,
    ) -> Step {
        self.apply(first)?;
        for _ in 0..COMMAND_BATCH {
            match commands.try_recv() {
                Ok(command) => self.apply(command)?,
                Err(_) => break,
            }
            if self.out.len() >= FLUSH_THRESHOLD {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn locate(&self, link_id: LinkId) -> Option<(u16, u32)> {
        self.links.get(&link_id).copied()
    }

    fn apply(&mut self, command: Command) -> Step {
        if self.close_sent_at.is_some() || !self.opened {
            if let Command::AcceptAttach { events, .. } = command {
                send_detached(&events, None);
            }
            return Ok(());
        }
        match command {
            Command::AcceptAttach {
                link_id,
                reply,
                events,
            } => self.accept_attach(link_id, *reply, events),
            Command::RefuseAttach { link_id, error } => {
                self.refuse_attach(link_id, error);
                Ok(())
            }
            Command::Transfer { link_id, delivery } => {
                self.send_transfer(link_id, *delivery);
                Ok(())
            }
            Command::SettleOutgoing {
                link_id,
                delivery_id,
                state,
            } => {
                let Some((local, handle)) = self.locate(link_id) else {
                    return Ok(());
                };
                let Some(session) = self.session(local) else {
                    return Ok(());
                };
                match session.unsettled_out.get(&delivery_id) {
                    Some(entry) if entry.handle == handle => {
                        session.unsettled_out.remove(&delivery_id);
                        self.write_disposition(local, Role::Sender, delivery_id, state);
                    }
                    _ => {}
                }
                Ok(())
            }
            Command::Drained { link_id } => {
                self.complete_drain(link_id);
                Ok(())
            }
            Command::SettleIncoming {
                link_id,
                delivery_id,
                state,
            } => {
                self.settle_incoming(link_id, delivery_id, state);
                Ok(())
            }
            Command::SetCredit { link_id, credit } => {
                let Some((local, handle)) = self.locate(link_id) else {
                    return Ok(());
                };
                if let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) {
                    if link.direction == LinkDirection::Incoming && link.phase == Phase::Attached {
                        link.credit_mode = CreditMode::Manual;
                        link.link_credit = credit;
                        self.write_link_flow(local, handle);
                    }
                }
                Ok(())
            }
            Command::Consumed { link_id, count } => {
                let Some((local, handle)) = self.locate(link_id) else {
                    return Ok(());
                };
                if let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) {
                    link.outstanding = link.outstanding.saturating_sub(count);
                }
                self.top_up_credit(local, handle);
                Ok(())
            }
            Command::Detach { link_id, error } => {
                let Some((local, handle)) = self.locate(link_id) else {
                    return Ok(());
                };
                let attached = self
                    .session(local)
                    .and_then(|s| s.link_mut(handle))
                    .map(|l| l.phase == Phase::Attached)
                    .unwrap_or(false);
                if attached {
                    self.before_write();
                    if encode::detach(&mut self.out, local, handle, true, error.as_ref()).is_err() {
                        let _ = encode::detach(&mut self.out, local, handle, true, None);
                    }
                    if let Some(session) = self.session(local) {
                        session.forget_deliveries(handle);
                        if let Some(link) = session.link_mut(handle) {
                            link.phase = Phase::Detaching;
                            link.partial = None;
                            link.outgoing.lock().detached = true;
                            link.events = None;
                        }
                    }
                }
                Ok(())
            }
            Command::EndSession { session, error } => {
                let local = session.0;
                if self.session(local).map(|s| !s.ending).unwrap_or(false) {
                    let error =
                        error.unwrap_or_else(|| Error::new(AmqpError::InternalError, None, None));
                    self.end_session_with_app_error(local, error);
                }
                Ok(())
            }
            Command::Close { error } => {
                self.write_close(error.as_ref());
                Ok(())
            }
        }
    }

    fn end_session_with_app_error(&mut self, local: u16, error: Error) {
        self.before_write();
        if encode::end(&mut self.out, local, Some(&error)).is_err() {
            let _ = encode::end(&mut self.out, local, None);
        }
        if let Some(session) = self.session(local) {
            session.ending = true;
            let links: Vec<LinkState> = session.links.iter_mut().filter_map(Option::take).collect();
            session.remote_handles.clear();
            session.unsettled_in.clear();
            session.unsettled_out.clear();
            session.pending.clear();
            for link in links {
                self.links.remove(&link.id);
                notify_link(&link, Some(error.clone()));
            }
        }
    }

    fn accept_attach(&mut self, link_id: LinkId, reply: AttachReply, events: LinkEvents) -> Step {
        let Some((local, handle)) = self.locate(link_id) else {
            send_detached(&events, None);
            return Ok(());
        };
        let default_max = self.config.max_message_size;
        let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) else {
            send_detached(&events, None);
            return Ok(());
        };
        if link.phase != Phase::Pending {
            send_detached(&events, None);
            return Ok(());
        }
        let direction = link.direction;
        let name = link.name.clone();
        let our_role = match direction {
            LinkDirection::Outgoing => Role::Sender,
            LinkDirection::Incoming => Role::Receiver,
        };
        let fields = encode::AttachFields {
            name: &name,
            handle,
            role: our_role,
            snd_settle_mode: reply.snd_settle_mode.clone(),
            rcv_settle_mode: reply.rcv_settle_mode.clone(),
            source: reply.source.as_ref(),
            target: reply.target.as_ref(),
            initial_delivery_count: (direction == LinkDirection::Outgoing).then_some(0),
            max_message_size: match direction {
                LinkDirection::Incoming => Some(reply.max_message_size.unwrap_or(default_max)),
                LinkDirection::Outgoing => reply.max_message_size,
            },
            offered_capabilities: &reply.offered_capabilities,
            desired_capabilities: &reply.desired_capabilities,
            properties: reply.properties.as_ref(),
        };
        self.before_write();
        if let Err(e) = encode::attach(&mut self.out, local, &fields) {
            tracing::warn!(error = %e, link = %name, "attach reply could not be encoded; refusing link");
            let error = error(
                AmqpError::InternalError,
                "attach reply could not be encoded",
            );
            send_detached(&events, Some(error.clone()));
            self.refuse_attach(link_id, error);
            return Ok(());
        }
        let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) else {
            return Ok(());
        };
        link.phase = Phase::Attached;
        match direction {
            LinkDirection::Outgoing => {
                let mut state = link.outgoing.lock();
                let notify = state.link_credit > 0 || state.drain;
                if notify {
                    state.flow_event_pending = true;
                }
                drop(state);
                if notify {
                    send_flow_event(&events);
                }
                link.events = Some(events);
            }
            LinkDirection::Incoming => {
                link.max_message_size = reply.max_message_size.unwrap_or(default_max);
                link.credit_mode = reply.credit;
                link.events = Some(events);
                if let CreditMode::Auto { window } = reply.credit {
                    link.link_credit = window;
                    self.write_link_flow(local, handle);
                }
            }
        }
        Ok(())
    }

    fn refuse_attach(&mut self, link_id: LinkId, error: Error) {
        let Some((local, handle)) = self.locate(link_id) else {
            return;
        };
        let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) else {
            return;
        };
        if link.phase != Phase::Pending {
            return;
        }
        link.phase = Phase::Detaching;
        let name = link.name.clone();
        let direction = link.direction;
        let stub = LinkStub { name, direction };
        self.write_attach_refusal_stub(local, handle, &stub);
        self.before_write();
        if encode::detach(&mut self.out, local, handle, true, Some(&error)).is_err() {
            let _ = encode::detach(&mut self.out, local, handle, true, None);
        }
    }

    /// An attach with null source and target: the spec's way to say "no such node".
    fn write_attach_refusal_stub(&mut self, local: u16, handle: u32, link: &LinkStub) {
        let none = None;
        let fields = encode::AttachFields {
            name: &link.name,
            handle,
            role: match link.direction {
                LinkDirection::Outgoing => Role::Sender,
                LinkDirection::Incoming => Role::Receiver,
            },
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: None,
            target: None,
            initial_delivery_count: (link.direction == LinkDirection::Outgoing).then_some(0),
            max_message_size: None,
            offered_capabilities: &none,
            desired_capabilities: &none,
            properties: None,
        };
        self.before_write();
        let _ = encode::attach(&mut self.out, local, &fields);
    }

    fn send_transfer(&mut self, link_id: LinkId, delivery: OutgoingDelivery) {
        let Some((local, handle)) = self.locate(link_id) else {
            return;
        };
        let Some(session) = self.session(local) else {
            return;
        };
        let attached = session
            .link_mut(handle)
            .map(|l| l.phase == Phase::Attached && l.direction == LinkDirection::Outgoing)
            .unwrap_or(false);
        if !attached {
            return;
        }
        let delivery_id = session.next_delivery_id;
        session.next_delivery_id = delivery_id.wrapping_add(1);
        if !delivery.settled {
            session.unsettled_out.insert(
                delivery_id,
                UnsettledOut {
                    handle,
                    tag: delivery.tag,
                    reported: false,
                },
            );
        }
        session.pending.push_back(PendingTransfer {
            handle,
            delivery_id,
            tag: delivery.tag,
            message_format: delivery.message_format,
            settled: delivery.settled,
            payload: delivery.payload,
            offset: 0,
        });
        self.pump(local);
    }

    /// Write queued transfer frames while the client's session window allows.
    fn pump(&mut self, local: u16) {
        self.flush_disposition();
        let max_frame = self.peer_max_frame;
        let Some(session) = self
            .sessions
            .get_mut(local as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let chunk_max = max_frame.saturating_sub(encode::TRANSFER_OVERHEAD).max(1);
        while session.remote_incoming_window > 0 {
            let Some(pending) = session.pending.front_mut() else {
                break;
            };
            let remaining = pending.payload.len() - pending.offset;
            let chunk = remaining.min(chunk_max);
            let more = chunk < remaining;
            let first = (pending.offset == 0).then_some((
                pending.delivery_id,
                &pending.tag[..],
                pending.message_format,
                pending.settled,
            ));
            let fields = encode::TransferFields {
                handle: pending.handle,
                first,
                more,
            };
            encode::transfer(
                &mut self.out,
                local,
                &fields,
                &pending.payload[pending.offset..pending.offset + chunk],
            );
            pending.offset += chunk;
            session.remote_incoming_window -= 1;
            session.next_outgoing_id = session.next_outgoing_id.wrapping_add(1);
            if !more {
                session.pending.pop_front();
            }
        }
    }

    fn complete_drain(&mut self, link_id: LinkId) {
        let Some((local, handle)) = self.locate(link_id) else {
            return;
        };
        let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) else {
            return;
        };
        if link.direction != LinkDirection::Outgoing || link.phase != Phase::Attached {
            return;
        }
        let (delivery_count, drain) = {
            let mut state = link.outgoing.lock();
            if !state.drain {
                return;
            }
            state.delivery_count = state.delivery_count.wrapping_add(state.link_credit);
            state.link_credit = 0;
            state.drain = false;
            (state.delivery_count, true)
        };
        let flow = self.session_flow_fields(local, Some((handle, delivery_count, 0, drain)));
        if let Some(flow) = flow {
            self.before_write();
            encode::flow(&mut self.out, local, &flow);
        }
    }

    fn settle_incoming(&mut self, link_id: LinkId, delivery_id: u32, state: DeliveryState) {
        let Some((local, handle)) = self.locate(link_id) else {
            return;
        };
        let Some(session) = self.session(local) else {
            return;
        };
        match session.unsettled_in.get(&delivery_id) {
            Some(owner) if *owner == handle => {
                session.unsettled_in.remove(&delivery_id);
            }
            // Pre-settled (credit returned through `Consumed`), settled by the client
            // already (returned then), or not this link's: nothing to do.
            _ => return,
        }
        if let Some(link) = session.link_mut(handle) {
            link.outstanding = link.outstanding.saturating_sub(1);
        }
        self.write_disposition(local, Role::Receiver, delivery_id, state);
        self.top_up_credit(local, handle);
    }

    /// Auto credit: keep credit + outstanding at the window, topping up in halves.
    fn top_up_credit(&mut self, local: u16, handle: u32) {
        let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) else {
            return;
        };
        let CreditMode::Auto { window } = link.credit_mode else {
            return;
        };
        if link.phase != Phase::Attached {
            return;
        }
        let target = window.saturating_sub(link.outstanding);
        let missing = target.saturating_sub(link.link_credit);
        if missing > 0 && (missing >= (window / 2).max(1) || link.link_credit == 0) {
            link.link_credit = target;
            self.write_link_flow(local, handle);
        }
    }

    // ----- output --------------------------------------------------------------------

    /// Every frame other than a mergeable disposition first flushes the merged range so
    /// frames keep their order.
    fn before_write(&mut self) {
        self.flush_disposition();
    }

    fn flush_disposition(&mut self) {
        if let Some(pending) = self.pending_disposition.take() {
            let _ = encode::disposition(
                &mut self.out,
                pending.channel,
                pending.role,
                pending.first,
                pending.last,
                true,
                &DeliveryState::Accepted(Accepted {}),
            );
        }
    }

    fn write_disposition(
        &mut self,
        local: u16,
        role: Role,
        delivery_id: u32,
        state: DeliveryState,
    ) {
        if matches!(state, DeliveryState::Accepted(_)) {
            if let Some(pending) = &mut self.pending_disposition {
                if pending.channel == local
                    && pending.role == role
                    && pending.last.wrapping_add(1) == delivery_id
                {
                    pending.last = delivery_id;
                    return;
                }
            }
            self.flush_disposition();
            self.pending_disposition = Some(PendingDisposition {
                channel: local,
                role,
                first: delivery_id,
                last: delivery_id,
            });
            return;
        }
        self.flush_disposition();
        if let Err(e) = encode::disposition(
            &mut self.out,
            local,
            role.clone(),
            delivery_id,
            delivery_id,
            true,
            &state,
        ) {
            tracing::warn!(error = %e, "disposition state could not be encoded; sending released");
            let _ = encode::disposition(
                &mut self.out,
                local,
                role,
                delivery_id,
                delivery_id,
                true,
                &DeliveryState::Released(Released {}),
            );
        }
    }

    fn session_flow_fields(
        &mut self,
        local: u16,
        link: Option<(u32, u32, u32, bool)>,
    ) -> Option<encode::FlowFields> {
        let session = self.session(local)?;
        Some(encode::FlowFields {
            next_incoming_id: Some(session.next_incoming_id),
            incoming_window: session.incoming_window,
            next_outgoing_id: session.next_outgoing_id,
            outgoing_window: OUTGOING_WINDOW,
            link,
        })
    }

    fn write_session_flow(&mut self, local: u16, link: Option<(u32, u32, u32, bool)>) {
        if let Some(flow) = self.session_flow_fields(local, link) {
            self.before_write();
            encode::flow(&mut self.out, local, &flow);
        }
    }

    /// Our view of a link's flow state.
    fn write_link_flow(&mut self, local: u16, handle: u32) {
        let Some(link) = self.session(local).and_then(|s| s.link_mut(handle)) else {
            return;
        };
        let state = match link.direction {
            LinkDirection::Incoming => (handle, link.delivery_count, link.link_credit, false),
            LinkDirection::Outgoing => {
                let s = link.outgoing.lock();
                (handle, s.delivery_count, s.link_credit, s.drain)
            }
        };
        self.write_session_flow(local, Some(state));
    }

    fn write_close(&mut self, error: Option<&Error>) {
        if self.close_sent_at.is_some() {
            return;
        }
        self.before_write();
        if encode::close(&mut self.out, error).is_err() {
            let _ = encode::close(&mut self.out, None);
        }
        self.close_sent_at = Some(Instant::now());
    }

    /// Hand buffered frames to the writer task.
    fn flush(&mut self) -> Step {
        self.flush_disposition();
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = self.out.split().freeze();
        self.output.add(chunk.len());
        if tracing::enabled!(tracing::Level::TRACE) {
            let mut rest = &chunk[..];
            while let Ok(Some(size)) = frame::peek_frame_size(rest, u32::MAX) {
                let Some(bytes) = rest.get(..size) else { break };
                match frame::decode_frame(bytes) {
                    Ok(f) => tracing::trace!(channel = f.channel, body = ?f.body, "frame out"),
                    Err(e) => tracing::error!(error = %e, "we wrote an undecodable frame"),
                }
                rest = &rest[size..];
            }
        }
        self.last_sent = Instant::now();
        self.writer.send(chunk).map_err(|_| {
            Stop::Done(Err(ConnectionError::Io(
                std::io::ErrorKind::BrokenPipe.into(),
            )))
        })
    }

    fn on_tick(&mut self) -> Step {
        let now = Instant::now();
        if let Some(sent) = self.close_sent_at {
            if now.duration_since(sent) >= CLOSE_GRACE {
                return Err(Stop::Done(Ok(())));
            }
            return Ok(());
        }
        if !self.opened && now >= self.handshake_deadline {
            return Err(Stop::Done(Err(ConnectionError::HandshakeTimeout)));
        }
        if let Some(ours) = self.config.idle_timeout {
            if now.duration_since(self.last_received) >= ours {
                self.write_close(Some(&error(
                    AmqpError::ResourceLimitExceeded,
                    "idle time-out expired",
                )));
                let _ = self.flush();
                return Err(Stop::Done(Err(ConnectionError::IdleTimeout)));
            }
        }
        if let Some(peer) = self.peer_idle {
            if self.out.is_empty() && now.duration_since(self.last_sent) >= peer / 2 {
                encode::empty_frame(&mut self.out);
            }
        }
        Ok(())
    }
}

/// Identity needed to write a refusal attach.
struct LinkStub {
    name: String,
    direction: LinkDirection,
}

fn frame_error(e: &FrameError) -> Error {
    Error::new(e.condition(), Some(e.to_string()), None)
}

fn send_flow_event(events: &LinkEvents) {
    if let LinkEvents::Outgoing(tx) = events {
        let _ = tx.send(OutgoingLinkEvent::Flow {
            credit: 0,
            drain: false,
        });
    }
}

fn send_detached(events: &LinkEvents, error: Option<Error>) {
    match events {
        LinkEvents::Outgoing(tx) => {
            let _ = tx.send(OutgoingLinkEvent::Detached { error });
        }
        LinkEvents::Incoming(tx) => {
            let _ = tx.send(IncomingLinkEvent::Detached { error });
        }
    }
}

fn notify_link(link: &LinkState, error: Option<Error>) {
    link.outgoing.lock().detached = true;
    if let Some(events) = &link.events {
        send_detached(events, error);
    }
}

fn notify_session_links(session: Session, error: Option<Error>) {
    for link in session.links.iter().flatten() {
        notify_link(link, error.clone());
    }
}
