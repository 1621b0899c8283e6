"""SAS authorization through $cbs: a wrong key is refused, and a policy's rights are
enforced per operation (Listen-only cannot send, Send-only cannot receive).

The runner starts the emulator with a Listen-only and a Send-only policy besides the
default RootManageSharedAccessKey (see README.md)."""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusAuthenticationError, ServiceBusAuthorizationError

from helpers import body_of, receive_exactly, unique_id, with_key

# No retries: an auth failure is final, and retrying only slows the suite down.
NO_RETRY = {"retry_total": 0}


def _policy_connection(settings, attribute: str) -> str:
    value = getattr(settings, attribute)
    if not value:
        pytest.fail(
            f"{attribute} is not configured: export BUSDRAIN_SB_{attribute.split('_')[0].upper()}_CONNECTION",
            pytrace=False,
        )
    return value


def _assert_queue_empty(client, queue_name):
    with client.get_queue_receiver(queue_name) as receiver:
        assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []


def test_wrong_key_is_refused(settings, client, queue_of):
    queue = queue_of("auth")
    wrong = with_key(settings.connection, "bm90IHRoZSByaWdodCBrZXk=")
    with ServiceBusClient.from_connection_string(wrong, **NO_RETRY) as bad_client:
        # Opening the sender (entering the block) already puts the token on $cbs.
        with pytest.raises(ServiceBusAuthenticationError):
            with bad_client.get_queue_sender(queue.name) as sender:
                sender.send_messages(ServiceBusMessage(b"must not arrive"))
    _assert_queue_empty(client, queue.name)


def test_listen_only_policy_cannot_send_but_can_receive(settings, client, queue_of):
    queue = queue_of("auth")
    listen = _policy_connection(settings, "listen_connection")
    with ServiceBusClient.from_connection_string(listen, **NO_RETRY) as listen_client:
        # The token is valid, the attach of a sending link is refused (amqp:unauthorized-access).
        with pytest.raises(ServiceBusAuthorizationError):
            with listen_client.get_queue_sender(queue.name) as sender:
                sender.send_messages(ServiceBusMessage(b"must not arrive"))
        _assert_queue_empty(client, queue.name)

        # Positive control: the same policy may receive what the root policy sent.
        message_id = unique_id("listen")
        with client.get_queue_sender(queue.name) as sender:
            sender.send_messages(ServiceBusMessage(b"for the listener", message_id=message_id))
        with listen_client.get_queue_receiver(queue.name) as receiver:
            [message] = receive_exactly(receiver, 1)
            assert message.message_id == message_id
            assert body_of(message) == b"for the listener"
            receiver.complete_message(message)


def test_send_only_policy_cannot_receive_but_can_send(settings, client, queue_of):
    queue = queue_of("auth")
    send = _policy_connection(settings, "send_connection")
    message_id = unique_id("send-only")
    with ServiceBusClient.from_connection_string(send, **NO_RETRY) as send_client:
        with send_client.get_queue_sender(queue.name) as sender:
            sender.send_messages(ServiceBusMessage(b"from the sender", message_id=message_id))
        with pytest.raises(ServiceBusAuthorizationError):
            with send_client.get_queue_receiver(queue.name, max_wait_time=5) as receiver:
                receiver.receive_messages(max_message_count=1, max_wait_time=5)

    # The refused receiver took nothing: the root policy receives the message untouched.
    with client.get_queue_receiver(queue.name) as receiver:
        [message] = receive_exactly(receiver, 1)
        assert message.message_id == message_id
        assert message.delivery_count == 0
        receiver.complete_message(message)
