"""Topics and subscriptions: fan-out to every subscription whose
rule matches; SQL filter with a SET action; correlation filter on a system property and a
custom property; per-subscription dead-letter queue. Rules come from Config.json (the
Python SDK manages rules only through the HTTP administration client)."""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

from helpers import assert_nothing_to_receive, body_of, receive_exactly

MESSAGES = {
    "red-big": {"color": "red", "quantity": 20},
    "blue-big": {"color": "blue", "quantity": 50},
    "red-small": {"color": "red", "quantity": 5},
    "eu-order": {"region": "eu"},
    "us-order": {"region": "us"},
}


@pytest.fixture
def topic(settings):
    return settings.queue_prefix + "topic"


def _receive_ids(client, topic, subscription, expected_count):
    with client.get_subscription_receiver(topic, subscription) as receiver:
        received = receive_exactly(receiver, expected_count)
        for message in received:
            receiver.complete_message(message)
        assert_nothing_to_receive(receiver)
    return received


def test_messages_fan_out_to_matching_subscriptions(client, topic):
    with client.get_topic_sender(topic) as sender:
        for message_id, props in MESSAGES.items():
            subject = "order" if message_id.endswith("order") else "item"
            sender.send_messages(
                ServiceBusMessage(message_id.encode(), message_id=message_id, subject=subject, application_properties=props)
            )

    everything = _receive_ids(client, topic, "all", len(MESSAGES))
    assert sorted(m.message_id for m in everything) == sorted(MESSAGES)
    assert all(body_of(m) == m.message_id.encode() for m in everything)

    [red] = _receive_ids(client, topic, "red", 1)
    assert red.message_id == "red-big"
    # The rule's action: SET routed = 'red'.
    assert red.application_properties[b"routed"] == b"red"

    [order] = _receive_ids(client, topic, "orders", 1)
    assert order.message_id == "eu-order"


def test_subscription_dead_letter_queue(client, topic):
    with client.get_topic_sender(topic) as sender:
        sender.send_messages(ServiceBusMessage(b"to the sub dlq", message_id="sub-dead"))
    with client.get_subscription_receiver(topic, "all") as receiver:
        [message] = receive_exactly(receiver, 1)
        receiver.dead_letter_message(message, reason="SubReason", error_description="sub description")
    with client.get_subscription_receiver(topic, "all", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = receive_exactly(dlq, 1)
        assert dead.message_id == "sub-dead"
        assert dead.dead_letter_reason == "SubReason"
        dlq.complete_message(dead)
    # The other subscriptions filtered it out (no color / region).
    for subscription in ("red", "orders"):
        with client.get_subscription_receiver(topic, subscription) as receiver:
            assert_nothing_to_receive(receiver, wait_s=1)
