#!/usr/bin/env python3
"""Throughput of one `azure-servicebus` client against the emulator: messages/s sending in
batches, then messages/s receiving (peek-lock) and completing.

Against a running emulator:  BUSDRAIN_SB_CONNECTION=... throughput.py [--count 20000]
Or let it start one:          throughput.py --busdrain target/release/busdrain --config ../config/Config.json

The queue (default `throughput`) must be empty and configured in the emulator's Config.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulator_process import Emulator


def measure(connection: str, queue: str, count: int, body_size: int, batch_count: int, prefetch: int) -> None:
    body = b"x" * body_size
    with ServiceBusClient.from_connection_string(connection) as client:
        with client.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage(b"warm-up"))
            started = time.perf_counter()
            sent = 0
            while sent < count:
                batch = sender.create_message_batch()
                while sent < count and len(batch) < batch_count:
                    batch.add_message(ServiceBusMessage(body))
                    sent += 1
                sender.send_messages(batch)
            send_seconds = time.perf_counter() - started

        with client.get_queue_receiver(queue, prefetch_count=prefetch) as receiver:
            warm = receiver.receive_messages(max_message_count=1, max_wait_time=10)
            for message in warm:
                receiver.complete_message(message)
            started = time.perf_counter()
            done = 0
            while done < count:
                messages = receiver.receive_messages(max_message_count=min(batch_count, count - done), max_wait_time=10)
                if not messages:
                    raise RuntimeError(f"receive stalled after {done} of {count} messages")
                for message in messages:
                    receiver.complete_message(message)
                done += len(messages)
            receive_seconds = time.perf_counter() - started

    print(f"azure-servicebus throughput, one client, {count} messages of {body_size} B, queue {queue}")
    print(f"  send (batches of {batch_count}):        {count / send_seconds:10.0f} msg/s  ({send_seconds:.2f} s)")
    print(f"  receive + complete (peek-lock): {count / receive_seconds:10.0f} msg/s  ({receive_seconds:.2f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--body-size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=500, help="messages per send batch and per receive call")
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument("--queue", default="throughput")
    parser.add_argument("--busdrain", type=Path, help="start this emulator binary on a temp data dir")
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent.parent / "config" / "Config.json")
    args = parser.parse_args()

    if args.busdrain is None:
        connection = os.environ.get("BUSDRAIN_SB_CONNECTION")
        if not connection:
            parser.error("set BUSDRAIN_SB_CONNECTION or pass --busdrain")
        measure(connection, args.queue, args.count, args.body_size, args.batch, args.prefetch)
        return 0

    with tempfile.TemporaryDirectory(prefix="busdrain-throughput-") as tmp:
        emulator = Emulator(binary=args.busdrain, config=args.config, data_dir=Path(tmp) / "data", log_path=Path(tmp) / "emulator.log")
        emulator.start()
        try:
            measure(emulator.connection, args.queue, args.count, args.body_size, args.batch, args.prefetch)
        finally:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
