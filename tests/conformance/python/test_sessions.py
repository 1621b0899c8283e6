"""Sessions (emulator part 2, issue 4): a named session, next available session, in-order
delivery within a session, one receiver per session, session state, session lock renewal and
expiry, sessions on a subscription, listing sessions, peeking a session.

`py-session` and the subscription `py-session-topic/sessions` require sessions and have a 5 s
LockDuration (tests/conformance/config/Config.json). Each test completes what it sends, so a
next-available receiver in a later test finds only that test's sessions."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from helpers import body_of, receive_exactly, unique_id

TOPIC_SUFFIX = "session-topic"
SUBSCRIPTION = "sessions"


def _send(client, queue_name, session_id, bodies):
    with client.get_queue_sender(queue_name) as sender:
        sender.send_messages([ServiceBusMessage(body, session_id=session_id) for body in bodies])


def _drain_session(client, queue_name, session_id):
    with client.get_queue_receiver(queue_name, session_id=session_id, max_wait_time=2) as receiver:
        for message in receiver.receive_messages(max_message_count=500, max_wait_time=2):
            receiver.complete_message(message)


def test_named_and_next_available_sessions_deliver_in_order(client, queue_of):
    queue = queue_of("session")
    _send(client, queue.name, "alpha", [f"a{i}".encode() for i in range(5)])
    _send(client, queue.name, "beta", [b"b0", b"b1"])

    with client.get_queue_receiver(queue.name, session_id="alpha") as receiver:
        assert receiver.session.session_id == "alpha"
        assert receiver.session.locked_until_utc is not None
        received = receive_exactly(receiver, 5)
        assert [body_of(m) for m in received] == [f"a{i}".encode() for i in range(5)]
        assert all(m.session_id == "alpha" for m in received)
        for message in received:
            receiver.complete_message(message)

    with client.get_queue_receiver(queue.name, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as receiver:
        assert receiver.session.session_id == "beta"
        received = receive_exactly(receiver, 2)
        assert [body_of(m) for m in received] == [b"b0", b"b1"]
        for message in received:
            receiver.complete_message(message)


def test_a_locked_session_cannot_be_taken_by_another_receiver(client, queue_of, settings):
    queue = queue_of("session")
    session_id = unique_id("gamma")
    _send(client, queue.name, session_id, [b"g0"])
    # No retries: the SDK retries SessionCannotBeLockedError, and would get the session once
    # the holder's 5 s lock lapsed.
    with ServiceBusClient.from_connection_string(settings.connection, retry_total=0) as impatient:
        with client.get_queue_receiver(queue.name, session_id=session_id) as holder:
            [message] = receive_exactly(holder, 1)
            with pytest.raises(SessionCannotBeLockedError):
                with impatient.get_queue_receiver(queue.name, session_id=session_id, max_wait_time=3) as other:
                    other.receive_messages(max_message_count=1, max_wait_time=3)
            holder.complete_message(message)


def test_session_state_and_lock_renewal(client, queue_of):
    queue = queue_of("session")
    _send(client, queue.name, "delta", [b"d0"])
    with client.get_queue_receiver(queue.name, session_id="delta") as receiver:
        receiver.session.set_state(b"checkpoint-1")
        assert receiver.session.get_state() == b"checkpoint-1"
        before = receiver.session.locked_until_utc
        time.sleep(0.5)
        renewed = receiver.session.renew_lock()
        assert renewed > before
        [message] = receive_exactly(receiver, 1)
        receiver.complete_message(message)
        receiver.session.set_state(None)
        assert receiver.session.get_state() is None


def test_next_available_times_out_without_sessions(client, queue_of):
    queue = queue_of("session")
    started = time.monotonic()
    with pytest.raises(OperationTimeoutError):
        with client.get_queue_receiver(queue.name, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=3) as receiver:
            receiver.receive_messages(max_message_count=1, max_wait_time=3)
    # The emulator waited (for the client's com.microsoft:timeout) before refusing.
    assert time.monotonic() - started >= 2.5


def test_many_messages_arrive_in_order_within_a_session(client, queue_of):
    queue = queue_of("session")
    session_id = unique_id("many")
    bodies = [f"m{i:04d}".encode() for i in range(300)]
    # Interleave another session's messages to show they do not get in the way.
    other = unique_id("other")
    for start in range(0, len(bodies), 100):
        _send(client, queue.name, session_id, bodies[start : start + 100])
        _send(client, queue.name, other, [b"x"])
    with client.get_queue_receiver(queue.name, session_id=session_id, prefetch_count=50) as receiver:
        received = receive_exactly(receiver, len(bodies), deadline_s=60)
        assert [body_of(m) for m in received] == bodies
        sequence_numbers = [m.sequence_number for m in received]
        assert sequence_numbers == sorted(sequence_numbers)
        for message in received:
            receiver.complete_message(message)
    _drain_session(client, queue.name, other)


def test_an_expired_session_lock_frees_the_session(client, queue_of, settings):
    queue = queue_of("session")
    session_id = unique_id("expiry")
    _send(client, queue.name, session_id, [b"e0"])
    holder = client.get_queue_receiver(queue.name, session_id=session_id)
    with holder:
        [first] = receive_exactly(holder, 1)
        assert first.delivery_count == 0
        # Outlive the 5 s session lock without renewing it.
        time.sleep(queue.lock_duration.total_seconds() + 1.5)
        with ServiceBusClient.from_connection_string(settings.connection) as other_client:
            with other_client.get_queue_receiver(queue.name, session_id=session_id, max_wait_time=5) as taker:
                [again] = receive_exactly(taker, 1)
                assert body_of(again) == b"e0"
                assert again.delivery_count == 1
                with pytest.raises((SessionLockLostError, ServiceBusError)):
                    holder.complete_message(first)
                taker.complete_message(again)


def test_a_plain_receiver_and_a_send_without_session_are_refused(client, queue_of):
    queue = queue_of("session")
    with pytest.raises(ServiceBusError):
        with client.get_queue_sender(queue.name) as sender:
            sender.send_messages(ServiceBusMessage(b"no session"))
    with pytest.raises(ServiceBusError):
        with client.get_queue_receiver(queue.name, max_wait_time=2) as receiver:
            receiver.receive_messages(max_message_count=1, max_wait_time=2)


def test_peek_a_session_and_list_sessions(client, queue_of):
    queue = queue_of("session")
    first, second = unique_id("peek-a"), unique_id("peek-b")
    _send(client, queue.name, first, [b"p0", b"p1"])
    _send(client, queue.name, second, [b"q0"])

    listed = list(client.list_queue_sessions(queue.name))
    assert first in listed and second in listed

    with client.get_queue_receiver(queue.name, session_id=first) as receiver:
        peeked = receiver.peek_messages(max_message_count=10)
        assert [body_of(m) for m in peeked] == [b"p0", b"p1"]
        assert all(m.session_id == first for m in peeked)
        for message in receive_exactly(receiver, 2):
            receiver.complete_message(message)
    _drain_session(client, queue.name, second)

    listed = list(client.list_queue_sessions(queue.name))
    assert first not in listed and second not in listed


def test_sessions_on_a_subscription(client, settings):
    topic = settings.queue_prefix + TOPIC_SUFFIX
    with client.get_topic_sender(topic) as sender:
        sender.send_messages([ServiceBusMessage(f"s{i}".encode(), session_id="sub-a") for i in range(3)])
        sender.send_messages(ServiceBusMessage(b"t0", session_id="sub-b"))

    assert sorted(client.list_subscription_sessions(topic, SUBSCRIPTION)) == ["sub-a", "sub-b"]

    with client.get_subscription_receiver(topic, SUBSCRIPTION, session_id="sub-a") as receiver:
        assert receiver.session.session_id == "sub-a"
        received = receive_exactly(receiver, 3)
        assert [body_of(m) for m in received] == [b"s0", b"s1", b"s2"]
        receiver.session.set_state(b"sub-state")
        assert receiver.session.get_state() == b"sub-state"
        receiver.session.set_state(None)
        for message in received:
            receiver.complete_message(message)

    with client.get_subscription_receiver(
        topic, SUBSCRIPTION, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
    ) as receiver:
        assert receiver.session.session_id == "sub-b"
        [message] = receive_exactly(receiver, 1)
        assert body_of(message) == b"t0"
        receiver.complete_message(message)


def test_deferred_messages_of_a_session_are_fetched_and_settled_through_the_session(client, queue_of):
    queue = queue_of("session")
    session_id = unique_id("defer")
    _send(client, queue.name, session_id, [b"d0", b"d1"])
    with client.get_queue_receiver(queue.name, session_id=session_id) as receiver:
        first, second = receive_exactly(receiver, 2)
        receiver.defer_message(first)
        receiver.complete_message(second)
        # receive-by-sequence-number carries the session id; so does the settlement of a
        # message fetched that way (update-disposition).
        [deferred] = receiver.receive_deferred_messages([first.sequence_number])
        assert body_of(deferred) == b"d0"
        assert deferred.session_id == session_id
        receiver.complete_message(deferred)
        assert receiver.peek_messages(max_message_count=10) == []
    assert session_id not in list(client.list_queue_sessions(queue.name))


def test_list_sessions_updated_after_a_time_sees_only_state_changes(client, queue_of):
    queue = queue_of("session")
    quiet, changed = unique_id("quiet"), unique_id("changed")
    _send(client, queue.name, quiet, [b"x"])
    _send(client, queue.name, changed, [b"y"])
    time.sleep(1.0)
    cutoff = datetime.now(timezone.utc)
    time.sleep(0.2)
    with client.get_queue_receiver(queue.name, session_id=changed) as receiver:
        receiver.session.set_state(b"moved on")
        updated = list(client.list_queue_sessions(queue.name, state_updated_after=cutoff))
        assert changed in updated
        assert quiet not in updated
        # Without a time, every session with messages or state is listed.
        everything = list(client.list_queue_sessions(queue.name))
        assert changed in everything and quiet in everything
        [message] = receive_exactly(receiver, 1)
        receiver.complete_message(message)
        receiver.session.set_state(None)
    _drain_session(client, queue.name, quiet)
    listed = list(client.list_queue_sessions(queue.name))
    assert quiet not in listed and changed not in listed


def test_a_closed_session_receiver_releases_the_session_and_its_locks(client, queue_of):
    queue = queue_of("session")
    session_id = unique_id("release")
    _send(client, queue.name, session_id, [b"r0", b"r1"])
    with client.get_queue_receiver(queue.name, session_id=session_id) as receiver:
        [first] = receive_exactly(receiver, 1)
        assert body_of(first) == b"r0"
    # The link went away with r0 unsettled: the session is free at once (no 5 s wait) and r0
    # comes back first, in order, with its delivery counted.
    with client.get_queue_receiver(queue.name, session_id=session_id) as receiver:
        received = receive_exactly(receiver, 2)
        assert [body_of(m) for m in received] == [b"r0", b"r1"]
        assert received[0].delivery_count == 1
        for message in received:
            receiver.complete_message(message)


def test_receive_and_delete_on_a_session(client, queue_of):
    queue = queue_of("session")
    session_id = unique_id("rad")
    _send(client, queue.name, session_id, [b"k0", b"k1", b"k2"])
    with client.get_queue_receiver(
        queue.name, session_id=session_id, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        received = receive_exactly(receiver, 3)
        assert [body_of(m) for m in received] == [b"k0", b"k1", b"k2"]
    # Removed on delivery: the session has nothing left.
    with client.get_queue_receiver(queue.name, session_id=session_id) as receiver:
        assert receiver.peek_messages(max_message_count=10) == []
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []
