//! Frames from the client: connection, session and link performatives.

use super::*;

impl Engine {
    pub(super) fn process_input(&mut self, inbuf: &mut BytesMut, eof: bool) -> Step {
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

    pub(super) fn on_frame(&mut self, channel: u16, body: FrameBody) -> Step {
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

    pub(super) fn on_open(&mut self, open: Open) -> Step {
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

    pub(super) fn on_close(&mut self, close: Close) -> Step {
        self.write_close(None);
        let _ = self.flush();
        Err(Stop::Done(match close.error {
            None => Ok(()),
            Some(error) => Err(ConnectionError::ClosedByPeer(error)),
        }))
    }

    pub(super) fn on_begin(&mut self, remote_channel: u16, begin: Begin) -> Step {
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

    pub(super) fn session(&mut self, local: u16) -> Option<&mut Session> {
        self.sessions
            .get_mut(local as usize)
            .and_then(Option::as_mut)
    }

    pub(super) fn on_session_frame(
        &mut self,
        local: u16,
        performative: Performative,
        payload: Bytes,
    ) -> Step {
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
    pub(super) fn remove_session(&mut self, local: u16, error: Option<Error>, notify_app: bool) {
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

    /// End a session because the client broke a session rule; the application hears of
    /// it through `SessionEnded`.
    pub(super) fn end_session_with(&mut self, local: u16, error: Error) -> Step {
        tracing::debug!(channel = local, condition = ?error.condition, "ending session on protocol error");
        self.end_session(local, error.clone());
        let _ = self.events.send(ConnectionEvent::SessionEnded {
            session: SessionId(local),
            error: Some(error),
        });
        Ok(())
    }

    /// Send `end` with `error`, detach every link of the session towards the application,
    /// and wait for the client's `end`.
    pub(super) fn end_session(&mut self, local: u16, error: Error) {
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

    pub(super) fn on_attach(&mut self, local: u16, mut attach: Attach) -> Step {
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

    pub(super) fn on_flow(&mut self, local: u16, flow: Flow) -> Step {
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
                    // Spec 2.6.7: credit = receiver's delivery-count + link-credit - ours,
                    // i.e. its credit minus the deliveries still in flight towards it
                    // (serial numbers: the difference is taken modulo 2^32).
                    let rcv_count = flow.delivery_count.unwrap_or(0);
                    let rcv_credit = flow.link_credit.unwrap_or(0);
                    let in_flight = state.delivery_count.wrapping_sub(rcv_count);
                    // A receiver count ahead of ours (negative in-flight) is a client error;
                    // treat it as nothing in flight.
                    let in_flight = if (in_flight as i32) < 0 { 0 } else { in_flight };
                    state.link_credit = rcv_credit.saturating_sub(in_flight);
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

    pub(super) fn on_transfer(&mut self, local: u16, transfer: Transfer, payload: Bytes) -> Step {
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

    pub(super) fn on_disposition(&mut self, local: u16, disposition: Disposition) -> Step {
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

    pub(super) fn on_detach(&mut self, local: u16, detach: Detach) -> Step {
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
                self.write_refusal_attach(local, handle, &link.name, link.direction);
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
    pub(super) fn detach_with_error(&mut self, local: u16, handle: u32, error: Error) -> Step {
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
}
