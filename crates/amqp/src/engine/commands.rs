//! Commands from the application's handles.

use super::*;

impl Engine {
    pub(super) fn apply_commands(
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

    pub(super) fn locate(&self, link_id: LinkId) -> Option<(u16, u32)> {
        self.links.get(&link_id).copied()
    }

    pub(super) fn apply(&mut self, command: Command) -> Step {
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
                    self.end_session(local, error);
                }
                Ok(())
            }
            Command::Close { error } => {
                self.write_close(error.as_ref());
                Ok(())
            }
        }
    }

    pub(super) fn accept_attach(
        &mut self,
        link_id: LinkId,
        reply: AttachReply,
        events: LinkEvents,
    ) -> Step {
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

    pub(super) fn refuse_attach(&mut self, link_id: LinkId, error: Error) {
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
        self.write_refusal_attach(local, handle, &name, direction);
        self.before_write();
        if encode::detach(&mut self.out, local, handle, true, Some(&error)).is_err() {
            let _ = encode::detach(&mut self.out, local, handle, true, None);
        }
    }

    /// An attach with null source and target: the spec's way to say "no such node".
    pub(super) fn write_refusal_attach(
        &mut self,
        local: u16,
        handle: u32,
        name: &str,
        direction: LinkDirection,
    ) {
        let none = None;
        let fields = encode::AttachFields {
            name,
            handle,
            role: match direction {
                LinkDirection::Outgoing => Role::Sender,
                LinkDirection::Incoming => Role::Receiver,
            },
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: None,
            target: None,
            initial_delivery_count: (direction == LinkDirection::Outgoing).then_some(0),
            max_message_size: None,
            offered_capabilities: &none,
            desired_capabilities: &none,
            properties: None,
        };
        self.before_write();
        let _ = encode::attach(&mut self.out, local, &fields);
    }

    pub(super) fn send_transfer(&mut self, link_id: LinkId, delivery: OutgoingDelivery) {
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
    pub(super) fn pump(&mut self, local: u16) {
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

    pub(super) fn complete_drain(&mut self, link_id: LinkId) {
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

    pub(super) fn settle_incoming(
        &mut self,
        link_id: LinkId,
        delivery_id: u32,
        state: DeliveryState,
    ) {
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
    pub(super) fn top_up_credit(&mut self, local: u16, handle: u32) {
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
}
