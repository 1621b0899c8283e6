"""Duplicate detection on queues and topics: with RequiresDuplicateDetection, a second
message with the same MessageId inside the window is accepted but not enqueued."""

from __future__ import annotations

from azure.servicebus import ServiceBusMessage

from helpers import assert_nothing_to_receive, body_of, receive_exactly


def test_same_message_id_is_enqueued_once(client, queue_of):
    queue = queue_of("dedup")
    with client.get_queue_sender(queue.name) as sender:
        sender.send_messages(ServiceBusMessage(b"first copy", message_id="dedup-1"))
        sender.send_messages(ServiceBusMessage(b"second copy", message_id="dedup-1"))
        sender.send_messages(ServiceBusMessage(b"other", message_id="dedup-2"))
    with client.get_queue_receiver(queue.name) as receiver:
        received = receive_exactly(receiver, 2)
        assert sorted((m.message_id, body_of(m)) for m in received) == [
            ("dedup-1", b"first copy"),
            ("dedup-2", b"other"),
        ]
        for message in received:
            receiver.complete_message(message)
        assert_nothing_to_receive(receiver, wait_s=3)


def test_a_topic_with_duplicate_detection_fans_out_a_message_id_once(client, settings):
    topic = settings.queue_prefix + "dedup-topic"
    with client.get_topic_sender(topic) as sender:
        sender.send_messages(ServiceBusMessage(b"first copy", message_id="topic-dedup-1"))
        sender.send_messages(ServiceBusMessage(b"second copy", message_id="topic-dedup-1"))
        sender.send_messages(ServiceBusMessage(b"other", message_id="topic-dedup-2"))
    with client.get_subscription_receiver(topic, "all") as receiver:
        received = receive_exactly(receiver, 2)
        assert sorted((m.message_id, body_of(m)) for m in received) == [
            ("topic-dedup-1", b"first copy"),
            ("topic-dedup-2", b"other"),
        ]
        for message in received:
            receiver.complete_message(message)
        assert_nothing_to_receive(receiver, wait_s=3)
