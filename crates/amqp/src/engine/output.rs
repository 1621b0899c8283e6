//! Writing frames: merged dispositions, flows, close, and the hand-off to the writer.

use super::*;

impl Engine {
    /// Every frame other than a mergeable disposition first flushes the merged range so
    /// frames keep their order.
    pub(super) fn before_write(&mut self) {
        self.flush_disposition();
    }

    pub(super) fn flush_disposition(&mut self) {
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

    pub(super) fn write_disposition(
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

    pub(super) fn session_flow_fields(
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

    pub(super) fn write_session_flow(&mut self, local: u16, link: Option<(u32, u32, u32, bool)>) {
        if let Some(flow) = self.session_flow_fields(local, link) {
            self.before_write();
            encode::flow(&mut self.out, local, &flow);
        }
    }

    /// Our view of a link's flow state.
    pub(super) fn write_link_flow(&mut self, local: u16, handle: u32) {
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

    pub(super) fn write_close(&mut self, error: Option<&Error>) {
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
    pub(super) fn flush(&mut self) -> Step {
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

    pub(super) fn on_tick(&mut self) -> Step {
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
