"""Peek-lock locks: renew-lock, lock expiry -> redelivery, MaxDeliveryCount -> dead letter.

These queues have a short LockDuration in Config.json (PT5S), so the tests wait a few
seconds for a lock to lapse."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

from helpers import assert_nothing_to_receive, body_of, receive_exactly, unique_id

pytestmark = pytest.mark.slow


def test_renew_lock_moves_locked_until_forward_and_keeps_the_message_locked(client, queue_of):
    queue = queue_of("renew")
    lock = queue.lock_duration.total_seconds()
    message_id = unique_id("renew")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"renew me", message_id=message_id))

    with client.get_queue_receiver(queue.name) as receiver:
        [message] = receive_exactly(receiver, 1)
        first_until = message.locked_until_utc
        assert first_until is not None
        # Renew late in the lock, so the renewed lock leaves a margin past the original one.
        time.sleep(lock * 0.7)

        renewed_until = receiver.renew_message_lock(message)
        assert renewed_until > first_until + timedelta(seconds=lock * 0.5), (first_until, renewed_until)
        assert message.locked_until_utc == renewed_until
        expected = datetime.now(timezone.utc) + queue.lock_duration
        assert abs((renewed_until - expected).total_seconds()) < 2.0

        # Past the original lock, within the renewed one: nobody else gets the message ...
        time.sleep(max(0.0, (first_until - datetime.now(timezone.utc)).total_seconds()) + 0.3)
        with client.get_queue_receiver(queue.name) as other:
            assert_nothing_to_receive(other, wait_s=1.0)
        # ... and the holder can still complete it.
        assert datetime.now(timezone.utc) < renewed_until, "test too slow: the renewed lock lapsed"
        receiver.complete_message(message)

    with client.get_queue_receiver(queue.name) as receiver:
        assert_nothing_to_receive(receiver, wait_s=lock + 1.0)


def test_expired_lock_redelivers_with_delivery_count_incremented(client, queue_of):
    queue = queue_of("lockexpiry")
    lock = queue.lock_duration.total_seconds()
    message_id = unique_id("expiry")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"let my lock lapse", message_id=message_id))

    with client.get_queue_receiver(queue.name) as receiver:
        [first] = receive_exactly(receiver, 1)
        assert first.delivery_count == 0
        sequence_number = first.sequence_number
        received_at = time.monotonic()

        # While locked, the message is not handed to another receiver.
        with client.get_queue_receiver(queue.name) as other:
            assert_nothing_to_receive(other, wait_s=min(2.0, lock / 2))

        # After the lock lapses it comes back, counted as a failed delivery.
        [second] = receive_exactly(receiver, 1, deadline_s=lock + 10)
        assert time.monotonic() - received_at >= lock - 0.5, "redelivered before the lock expired"
        assert second.message_id == message_id
        assert second.sequence_number == sequence_number
        assert body_of(second) == b"let my lock lapse"
        assert second.delivery_count == 1
        assert second.lock_token != first.lock_token
        receiver.complete_message(second)
        assert_nothing_to_receive(receiver)


def _assert_dead_lettered_for_max_delivery(client, queue_name, message_id, body):
    with client.get_queue_receiver(queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_exactly(dlq, 1)
        assert dead.message_id == message_id
        assert body_of(dead) == body
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead.dead_letter_error_description, "Service Bus sets a description too"
        dlq.complete_message(dead)
        assert_nothing_to_receive(dlq)


def test_max_delivery_count_by_abandon_dead_letters_the_message(client, queue_of):
    queue = queue_of("maxdelivery")
    message_id = unique_id("maxdel-abandon")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"abandoned too often", message_id=message_id))

    with client.get_queue_receiver(queue.name) as receiver:
        for attempt in range(queue.max_delivery_count):
            [message] = receive_exactly(receiver, 1)
            assert message.message_id == message_id
            assert message.delivery_count == attempt
            receiver.abandon_message(message)
        assert_nothing_to_receive(receiver, wait_s=3)

    _assert_dead_lettered_for_max_delivery(client, queue.name, message_id, b"abandoned too often")


def test_max_delivery_count_by_lock_expiry_dead_letters_the_message(client, queue_of):
    queue = queue_of("maxdelivery-expiry")
    lock = queue.lock_duration.total_seconds()
    message_id = unique_id("maxdel-expiry")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"never settled", message_id=message_id))

    with client.get_queue_receiver(queue.name) as receiver:
        for attempt in range(queue.max_delivery_count):
            [message] = receive_exactly(receiver, 1, deadline_s=lock + 10)
            assert message.message_id == message_id
            assert message.delivery_count == attempt
            # Not settled: the lock lapses and counts as a delivery attempt.
        assert_nothing_to_receive(receiver, wait_s=lock + 3)

    _assert_dead_lettered_for_max_delivery(client, queue.name, message_id, b"never settled")
