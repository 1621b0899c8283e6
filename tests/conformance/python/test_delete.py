"""`$management` batch-delete-messages (.NET `ServiceBusReceiver.DeleteMessagesAsync`, JS
`receiver.deleteMessages` in 7.10.0-beta).

azure-servicebus 7.15.0 has no delete or purge API, so these tests send the operation through
the receiver's `_mgmt_request_response_with_retry`, the private path its public
`peek_messages` uses (same management link, same error mapping); an SDK release that renames
it breaks them loudly. The request is the one the JS SDK sends: `message-count` (int),
`enqueued-time-utc` (timestamp: only messages enqueued before it), optional `session-id`; the
answer carries `message-count`, or is 204 with `com.microsoft:message-not-found` for none.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus._common import mgmt_handlers
from azure.servicebus.exceptions import ServiceBusError

from helpers import unique_id

BATCH_DELETE_OPERATION = b"com.microsoft:batch-delete-messages"


@pytest.fixture
def client(settings):
    """Without retries: a refused request fails at once."""
    with ServiceBusClient.from_connection_string(settings.connection, retry_total=0) as sb_client:
        yield sb_client


def _delete(receiver, count, before=None, session_id=None):
    def answer(status_code, message, description, amqp_transport):
        if status_code == 204:
            return 0
        body = mgmt_handlers.default(status_code, message, description, amqp_transport)
        return body[b"message-count"]

    body = {"message-count": count, "enqueued-time-utc": before or datetime.now(timezone.utc)}
    if session_id is not None:
        body["session-id"] = session_id
    return receiver._mgmt_request_response_with_retry(  # noqa: SLF001 (see module doc)
        BATCH_DELETE_OPERATION, body, answer, timeout=15
    )


def _send(client, queue, messages):
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(messages)


def _drain(client, queue):
    with client.get_queue_receiver(queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        while receiver.receive_messages(max_message_count=100, max_wait_time=0.5):
            pass


def _remaining(receiver):
    # From the first sequence number each time: the SDK otherwise continues after the last peek.
    return [m.message_id for m in receiver.peek_messages(max_message_count=100, sequence_number=1)]


def test_delete_removes_the_oldest_messages_up_to_the_count(client, queue_of):
    queue = queue_of("delete").name
    _drain(client, queue)
    run = unique_id("del")
    ids = [f"{run}-{n}" for n in range(5)]
    _send(client, queue, [ServiceBusMessage(i.encode(), message_id=i) for i in ids])
    with client.get_queue_receiver(queue) as receiver:
        assert _delete(receiver, 3) == 3
        assert _remaining(receiver) == ids[3:], "the three oldest went"
        assert _delete(receiver, 10) == 2
        assert _remaining(receiver) == []
        assert _delete(receiver, 10) == 0, "nothing left"
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []


def test_delete_keeps_messages_enqueued_after_the_cutoff(client, queue_of):
    queue = queue_of("delete").name
    _drain(client, queue)
    run = unique_id("before")
    _send(client, queue, [ServiceBusMessage(b"old", message_id=f"{run}-old")])
    time.sleep(1.2)
    cutoff = datetime.now(timezone.utc)
    time.sleep(1.2)
    _send(client, queue, [ServiceBusMessage(b"new", message_id=f"{run}-new")])
    with client.get_queue_receiver(queue) as receiver:
        assert _delete(receiver, 100, before=cutoff) == 1
        assert _remaining(receiver) == [f"{run}-new"]
        assert _delete(receiver, 100) == 1


def test_delete_with_a_session_id_keeps_other_sessions(client, queue_of):
    queue = queue_of("delete-session").name
    run = unique_id("sess")
    a, b = f"{run}-a", f"{run}-b"
    _send(
        client,
        queue,
        [ServiceBusMessage(f"{s}{n}".encode(), message_id=f"{s}-{n}", session_id=s) for n in (1, 2) for s in (a, b)],
    )
    with client.get_queue_receiver(queue, session_id=a) as receiver:
        assert _delete(receiver, 10, session_id=a) == 2
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []
    with client.get_queue_receiver(
        queue, session_id=b, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=2
    ) as receiver:
        left = []
        for message in receiver:
            left.append(message.message_id)
            if len(left) == 2:
                break
    assert left == [f"{b}-1", f"{b}-2"], "the other session is untouched"


def test_a_count_outside_the_limit_is_refused(client, queue_of):
    queue = queue_of("delete").name
    with client.get_queue_receiver(queue) as receiver:
        for count in (0, 4001):
            with pytest.raises(ServiceBusError) as refused:
                _delete(receiver, count)
            assert "4000" in str(refused.value), str(refused.value)
