"""The asyncio flavour of the SDK (its own AMQP transport code path): batch send,
receive, complete, peek."""

from __future__ import annotations

import asyncio

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from helpers import body_of


async def _round_trip(connection: str, queue_name: str) -> None:
    bodies = [f"async-{i}".encode() for i in range(20)]
    async with ServiceBusClient.from_connection_string(connection) as client:
        async with client.get_queue_sender(queue_name) as sender:
            batch = await sender.create_message_batch()
            for body in bodies:
                batch.add_message(ServiceBusMessage(body))
            await sender.send_messages(batch)

        async with client.get_queue_receiver(queue_name) as receiver:
            received = []
            for _ in range(10):
                received += await receiver.receive_messages(max_message_count=20 - len(received), max_wait_time=3)
                if len(received) >= 20:
                    break
            assert sorted(body_of(m) for m in received) == sorted(bodies)
            assert all(m.delivery_count == 0 for m in received)
            for message in received:
                await receiver.complete_message(message)
            assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []
            assert await receiver.receive_messages(max_message_count=1, max_wait_time=2) == []


def test_async_client_round_trip(settings, queue_of):
    asyncio.run(_round_trip(settings.connection, queue_of("async").name))
