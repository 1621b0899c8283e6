"""Large messages: a 1 MB body round-trips, an oversized one is refused with the SDK's
MessageSizeExceededError, and a batch filled to the size the SDK derives from the link is
accepted whole."""

from __future__ import annotations

import os

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessageSizeExceededError

from helpers import assert_nothing_to_receive, body_of, receive_exactly, unique_id

ONE_MB_BODY = 1000 * 1024
OVERSIZED_BODY = 4 * 1024 * 1024


def test_one_megabyte_message_round_trips(client, queue_of):
    queue = queue_of("large")
    body = os.urandom(ONE_MB_BODY)
    message_id = unique_id("large")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(body, message_id=message_id))
    with client.get_queue_receiver(queue.name) as receiver:
        [message] = receive_exactly(receiver, 1, deadline_s=30)
        assert message.message_id == message_id
        assert body_of(message) == body
        receiver.complete_message(message)


def test_oversized_message_is_refused(client, queue_of):
    queue = queue_of("oversize")
    with client.get_queue_sender(queue.name) as sender:
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * OVERSIZED_BODY, message_id=unique_id("too-big")))
    # The refusal stored nothing, and the entity still serves.
    with client.get_queue_receiver(queue.name) as receiver:
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"small after big"))
    with client.get_queue_receiver(queue.name) as receiver:
        [message] = receive_exactly(receiver, 1)
        assert body_of(message) == b"small after big"
        receiver.complete_message(message)


def test_full_batch_is_accepted(client, queue_of):
    queue = queue_of("fullbatch")
    chunk = os.urandom(16 * 1024)
    with client.get_queue_sender(queue.name) as sender:
        batch = sender.create_message_batch()
        count = 0
        with pytest.raises(MessageSizeExceededError):
            while True:
                batch.add_message(ServiceBusMessage(chunk, application_properties={"n": count}))
                count += 1
        assert count == len(batch) and count >= 10, (count, batch.max_size_in_bytes)
        sender.send_messages(batch)
    with client.get_queue_receiver(queue.name) as receiver:
        received = receive_exactly(receiver, count, deadline_s=60)
        assert len(received) == count
        assert sorted(m.application_properties[b"n"] for m in received) == list(range(count))
        assert all(body_of(m) == chunk for m in received)
        for message in received:
            receiver.complete_message(message)
        assert_nothing_to_receive(receiver)
