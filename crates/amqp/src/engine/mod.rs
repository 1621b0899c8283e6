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

mod commands;
mod input;
mod output;
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
        let mut tick = self.tick_period();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut eof = false;
        loop {
            let step = self.process_input(&mut inbuf, eof);
            // The client's idle time-out is known once its open has arrived.
            if self.tick_period() != tick {
                tick = self.tick_period();
                ticker = tokio::time::interval(tick);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
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

    /// Timer resolution: a quarter of the shorter idle time-out (ours to detect a silent
    /// client, the client's to send heartbeats at half of it), between 100 ms and 1 s.
    fn tick_period(&self) -> Duration {
        let ours = self.config.idle_timeout;
        let shortest = match (ours, self.peer_idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let period = shortest.map(|d| d / 4).unwrap_or(Duration::from_secs(1));
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
