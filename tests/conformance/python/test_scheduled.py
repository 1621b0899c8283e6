"""Scheduled messages: schedule_messages, cancel, and
ScheduledEnqueueTimeUtc on an ordinary send; visible to peek as Scheduled."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageState

from helpers import assert_nothing_to_receive, body_of, receive_exactly

pytestmark = pytest.mark.slow

DELAY = timedelta(seconds=4)


def test_scheduled_message_appears_at_its_time(client, queue_of):
    queue = queue_of("scheduled")
    due = datetime.now(timezone.utc) + DELAY
    with client.get_queue_sender(queue.name) as sender:
        [sequence_number] = sender.schedule_messages(ServiceBusMessage(b"later", message_id="sched-1"), due)
    with client.get_queue_receiver(queue.name) as receiver:
        [peeked] = receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert peeked.sequence_number == sequence_number
        assert peeked.state == ServiceBusMessageState.SCHEDULED
        assert_nothing_to_receive(receiver, wait_s=1)
        [message] = receive_exactly(receiver, 1, deadline_s=DELAY.total_seconds() + 10)
        assert datetime.now(timezone.utc) >= due - timedelta(seconds=1)
        assert message.message_id == "sched-1" and body_of(message) == b"later"
        receiver.complete_message(message)


def test_cancelled_scheduled_message_never_appears(client, queue_of):
    queue = queue_of("scheduled")
    with client.get_queue_sender(queue.name) as sender:
        sequence_numbers = sender.schedule_messages(
            [ServiceBusMessage(b"cancel me"), ServiceBusMessage(b"me too")], datetime.now(timezone.utc) + DELAY
        )
        assert len(sequence_numbers) == 2
        sender.cancel_scheduled_messages(sequence_numbers)
    time.sleep(DELAY.total_seconds() + 1)
    with client.get_queue_receiver(queue.name) as receiver:
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []
        assert_nothing_to_receive(receiver)


def test_scheduled_enqueue_time_on_send(client, queue_of):
    queue = queue_of("scheduled")
    due = datetime.now(timezone.utc) + DELAY
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"send later", scheduled_enqueue_time_utc=due))
    with client.get_queue_receiver(queue.name) as receiver:
        assert_nothing_to_receive(receiver, wait_s=1)
        [message] = receive_exactly(receiver, 1, deadline_s=DELAY.total_seconds() + 10)
        assert body_of(message) == b"send later"
        assert message.scheduled_enqueue_time_utc is not None
        receiver.complete_message(message)
