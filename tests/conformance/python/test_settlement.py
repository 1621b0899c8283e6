"""Abandon, defer (+ receive deferred), dead-letter (+ read and complete from the DLQ),
receive-and-delete, peek."""

from __future__ import annotations

import pytest
from azure.servicebus import (
    ServiceBusMessage,
    ServiceBusMessageState,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import MessageNotFoundError

from helpers import assert_nothing_to_receive, body_of, receive_exactly, unique_id


def test_abandoned_message_is_redelivered_with_delivery_count_incremented(client, queue_of):
    queue = queue_of("abandon")
    message_id = unique_id("abandon")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"abandon me", message_id=message_id))

    with client.get_queue_receiver(queue.name) as receiver:
        [first] = receive_exactly(receiver, 1)
        assert first.delivery_count == 0
        sequence_number = first.sequence_number
        receiver.abandon_message(first)

        [second] = receive_exactly(receiver, 1)
        assert second.message_id == message_id
        assert body_of(second) == b"abandon me"
        assert second.sequence_number == sequence_number
        assert second.delivery_count == 1
        receiver.abandon_message(second)

        [third] = receive_exactly(receiver, 1)
        assert third.delivery_count == 2
        receiver.complete_message(third)
        assert_nothing_to_receive(receiver)


def test_deferred_message_is_only_received_by_sequence_number(client, queue_of):
    queue = queue_of("defer")
    message_id = unique_id("defer")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"defer me", message_id=message_id))

    with client.get_queue_receiver(queue.name) as receiver:
        [message] = receive_exactly(receiver, 1)
        sequence_number = message.sequence_number
        receiver.defer_message(message)

        # Deferred messages are not handed out by an ordinary receive ...
        assert_nothing_to_receive(receiver, wait_s=3)
        # ... but stay visible to peek, in state Deferred.
        [peeked] = receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert peeked.sequence_number == sequence_number
        assert peeked.state == ServiceBusMessageState.DEFERRED

        [deferred] = receiver.receive_deferred_messages([sequence_number])
        assert deferred.message_id == message_id
        assert body_of(deferred) == b"defer me"
        assert deferred.sequence_number == sequence_number
        assert deferred.state == ServiceBusMessageState.DEFERRED
        # The first delivery ended by deferring, so this is the second (Service Bus counts it).
        assert deferred.delivery_count == 1
        assert deferred.locked_until_utc is not None
        receiver.complete_message(deferred)

        # Completed: it can no longer be received by its sequence number
        # (Service Bus answers com.microsoft:message-not-found).
        with pytest.raises(MessageNotFoundError):
            receiver.receive_deferred_messages([sequence_number])
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []


def test_dead_lettered_message_carries_reason_and_is_settleable_in_the_dlq(client, queue_of):
    queue = queue_of("deadletter")
    message_id = unique_id("dead")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(
            ServiceBusMessage(b"poison", message_id=message_id, application_properties={"origin": "test"})
        )

    with client.get_queue_receiver(queue.name) as receiver:
        [message] = receive_exactly(receiver, 1)
        receiver.dead_letter_message(message, reason="BadPayload", error_description="field $.id is missing")
        assert_nothing_to_receive(receiver)

    with client.get_queue_receiver(queue.name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_exactly(dlq, 1)
        assert dead.message_id == message_id
        assert body_of(dead) == b"poison"
        assert dead.dead_letter_reason == "BadPayload"
        assert dead.dead_letter_error_description == "field $.id is missing"
        assert dead.application_properties[b"origin"] == b"test"
        assert dead.application_properties[b"DeadLetterReason"] == b"BadPayload"
        assert dead.delivery_count == 0
        # Abandon in the DLQ keeps it there; complete removes it.
        dlq.abandon_message(dead)
        [again] = receive_exactly(dlq, 1)
        assert again.message_id == message_id
        dlq.complete_message(again)
        assert_nothing_to_receive(dlq)


def test_receive_and_delete_removes_messages_on_delivery(client, queue_of):
    queue = queue_of("receivedelete")
    bodies = [f"rad-{i}".encode() for i in range(5)]
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages([ServiceBusMessage(b) for b in bodies])

    with client.get_queue_receiver(queue.name, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        received = receive_exactly(receiver, 5)
        assert sorted(body_of(m) for m in received) == bodies
        # Settled on the wire already: there is no lock to settle.
        assert all(m.lock_token is None for m in received)

    with client.get_queue_receiver(queue.name) as receiver:
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []
        assert_nothing_to_receive(receiver, wait_s=3)


def test_peek_browses_without_locking_in_sequence_order(client, queue_of):
    queue = queue_of("peek")
    bodies = [f"peek-{i}".encode() for i in range(5)]
    with client.get_queue_sender(queue.name) as sender:
        for body in bodies:
            sender.send_messages(ServiceBusMessage(body))

    with client.get_queue_receiver(queue.name) as receiver:
        peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert [body_of(m) for m in peeked] == bodies
        sequence_numbers = [m.sequence_number for m in peeked]
        assert sequence_numbers == sorted(sequence_numbers) and len(set(sequence_numbers)) == 5
        assert all(m.delivery_count == 0 for m in peeked)

        # From a given sequence number, at most max_message_count.
        tail = receiver.peek_messages(max_message_count=2, sequence_number=sequence_numbers[2])
        assert [m.sequence_number for m in tail] == sequence_numbers[2:4]

        # Peeking locked nothing and counted no delivery.
        received = receive_exactly(receiver, 5)
        assert sorted(m.sequence_number for m in received) == sequence_numbers
        assert all(m.delivery_count == 0 for m in received)
        # Locked messages are still visible to peek.
        assert len(receiver.peek_messages(max_message_count=10, sequence_number=1)) == 5
        for message in received:
            receiver.complete_message(message)
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []
