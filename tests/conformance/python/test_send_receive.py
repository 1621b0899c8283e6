"""Send (single, list, ServiceBusMessageBatch), peek-lock receive + complete, message
properties and broker-stamped properties."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, ServiceBusMessageState

from helpers import assert_nothing_to_receive, body_of, receive_exactly, unique_id


def test_single_message_is_received_with_its_body_and_completed(client, queue_of):
    queue = queue_of("basic")
    message_id = unique_id("single")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"hello busdrain", message_id=message_id))

    with client.get_queue_receiver(queue.name) as receiver:
        [received] = receive_exactly(receiver, 1)
        assert body_of(received) == b"hello busdrain"
        assert received.message_id == message_id
        assert received.delivery_count == 0
        assert isinstance(received.lock_token, uuid.UUID)
        receiver.complete_message(received)

    # A completed message is gone for good: a new receiver gets nothing.
    with client.get_queue_receiver(queue.name) as receiver:
        assert_nothing_to_receive(receiver, wait_s=3)
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []


def test_message_batch_is_delivered_whole_and_in_order(client, queue_of):
    queue = queue_of("batch")
    bodies = [f"batch-{i:03d}".encode() for i in range(100)]
    with client.get_queue_sender(queue.name) as sender:
        batch = sender.create_message_batch()
        assert isinstance(batch, ServiceBusMessageBatch)
        assert batch.max_size_in_bytes > 0
        for body in bodies:
            batch.add_message(ServiceBusMessage(body))
        assert len(batch) == 100
        sender.send_messages(batch)
        # A plain list is sent as one batch too.
        sender.send_messages([ServiceBusMessage(f"list-{i}".encode()) for i in range(10)])

    with client.get_queue_receiver(queue.name) as receiver:
        received = receive_exactly(receiver, 110, deadline_s=30)
        assert len(received) == 110
        by_sequence = sorted(received, key=lambda m: m.sequence_number)
        assert [body_of(m) for m in by_sequence] == bodies + [f"list-{i}".encode() for i in range(10)]
        assert len({m.sequence_number for m in received}) == 110, "sequence numbers must be unique"
        for message in received:
            receiver.complete_message(message)
        assert_nothing_to_receive(receiver)


def test_properties_round_trip(client, queue_of):
    queue = queue_of("props")
    every_byte = bytes(range(256)) * 4
    outgoing = ServiceBusMessage(
        every_byte,
        message_id="props-message-id",
        correlation_id="props-correlation",
        subject="props-subject",
        content_type="application/octet-stream",
        reply_to="reply-queue",
        to="somewhere",
        application_properties={"text": "value", "count": 42, "ratio": 1.5, "flag": True},
    )
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(outgoing)

    with client.get_queue_receiver(queue.name) as receiver:
        [received] = receive_exactly(receiver, 1)
        assert body_of(received) == every_byte
        assert received.message_id == "props-message-id"
        assert received.correlation_id == "props-correlation"
        assert received.subject == "props-subject"
        assert received.content_type == "application/octet-stream"
        assert received.reply_to == "reply-queue"
        assert received.to == "somewhere"
        props = received.application_properties
        # Received keys and string values are bytes (documented SDK behaviour).
        assert props[b"text"] == b"value"
        assert props[b"count"] == 42
        assert props[b"ratio"] == 1.5
        assert props[b"flag"] is True
        receiver.complete_message(received)


def test_broker_properties_are_stamped(client, queue_of):
    queue = queue_of("broker")
    before = datetime.now(timezone.utc)
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"first", message_id="first"))
        sender.send_messages(ServiceBusMessage(b"second", message_id="second"))

    with client.get_queue_receiver(queue.name) as receiver:
        received = receive_exactly(receiver, 2)
        assert [m.message_id for m in received] == ["first", "second"]
        first, second = received
        assert isinstance(first.sequence_number, int) and first.sequence_number > 0
        assert second.sequence_number > first.sequence_number
        slack = timedelta(seconds=5)
        for message in received:
            assert message.state == ServiceBusMessageState.ACTIVE
            assert message.enqueued_time_utc is not None
            assert before - slack <= message.enqueued_time_utc <= datetime.now(timezone.utc) + slack
            # Locked for the queue's LockDuration from the moment of delivery.
            assert message.locked_until_utc is not None
            lock_left = message.locked_until_utc - datetime.now(timezone.utc)
            assert queue.lock_duration - slack <= lock_left <= queue.lock_duration + slack, lock_left
            receiver.complete_message(message)
        assert_nothing_to_receive(receiver)
