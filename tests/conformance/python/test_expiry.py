"""Message expiry: a message past its time-to-live is dead-lettered with reason
TTLExpiredException when the queue has DeadLetteringOnMessageExpiration, else dropped.
The effective TTL is the smaller of the message's and the queue's DefaultMessageTimeToLive."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

from helpers import assert_nothing_to_receive, body_of, receive_exactly, unique_id

pytestmark = pytest.mark.slow

MESSAGE_TTL = timedelta(seconds=2)


def _send_and_confirm_enqueued(client, queue_name, message):
    with client.get_queue_sender(queue_name) as sender:
        sender.send_messages(message)
    # Proves the message was enqueued, so its absence later is expiry and not a lost send.
    with client.get_queue_receiver(queue_name) as receiver:
        peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert [m.message_id for m in peeked] == [message.message_id]


def _assert_expired_into_dlq(client, queue_name, message_id, body):
    with client.get_queue_receiver(queue_name) as receiver:
        assert_nothing_to_receive(receiver, wait_s=2)
    with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_exactly(dlq, 1, deadline_s=15)
        assert dead.message_id == message_id
        assert body_of(dead) == body
        assert dead.dead_letter_reason == "TTLExpiredException"
        dlq.complete_message(dead)
        assert_nothing_to_receive(dlq)


def test_expired_message_is_dead_lettered_when_configured(client, queue_of):
    queue = queue_of("ttl-dlq")
    assert queue.dead_letter_on_expiration
    message_id = unique_id("ttl-dlq")
    _send_and_confirm_enqueued(
        client, queue.name, ServiceBusMessage(b"short-lived", message_id=message_id, time_to_live=MESSAGE_TTL)
    )
    time.sleep(MESSAGE_TTL.total_seconds() + 2)
    _assert_expired_into_dlq(client, queue.name, message_id, b"short-lived")


def test_queue_default_ttl_applies_to_messages_without_their_own(client, queue_of):
    queue = queue_of("ttl-default")
    assert queue.dead_letter_on_expiration and queue.default_ttl <= timedelta(seconds=10)
    message_id = unique_id("ttl-default")
    _send_and_confirm_enqueued(client, queue.name, ServiceBusMessage(b"queue ttl", message_id=message_id))
    time.sleep(queue.default_ttl.total_seconds() + 2)
    _assert_expired_into_dlq(client, queue.name, message_id, b"queue ttl")


def test_expired_message_is_dropped_without_dead_lettering(client, queue_of):
    queue = queue_of("ttl-drop")
    assert not queue.dead_letter_on_expiration
    message_id = unique_id("ttl-drop")
    _send_and_confirm_enqueued(
        client, queue.name, ServiceBusMessage(b"gone", message_id=message_id, time_to_live=MESSAGE_TTL)
    )
    time.sleep(MESSAGE_TTL.total_seconds() + 2)
    with client.get_queue_receiver(queue.name) as receiver:
        assert_nothing_to_receive(receiver, wait_s=3)
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []
    with client.get_queue_receiver(queue.name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        assert_nothing_to_receive(dlq, wait_s=3)


def test_unexpired_message_is_delivered_with_its_ttl(client, queue_of):
    queue = queue_of("ttl-live")
    message_id = unique_id("ttl-live")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"long-lived", message_id=message_id, time_to_live=timedelta(minutes=5)))
    with client.get_queue_receiver(queue.name) as receiver:
        [message] = receive_exactly(receiver, 1)
        assert message.message_id == message_id
        assert message.time_to_live == timedelta(minutes=5)
        assert message.expires_at_utc == message.enqueued_time_utc + timedelta(minutes=5)
        receiver.complete_message(message)
