#!/usr/bin/env python3
"""The drain a user would write by hand: azure-servicebus + cassandra-driver.

Receives JSON readings from a Service Bus queue in peek-lock mode, writes each batch to
Cassandra with a prepared INSERT through execute_concurrent_with_args, and completes the
messages only after their rows were written (the same at-least-once contract as busdrain).
Exits after --expect messages and prints one JSON line with its own timing and resources:

  {"messages": N, "seconds": S, "cpu_seconds": C, "peak_rss_mib": M}

`seconds` runs from the first message received to the last one completed, as busdrain's
figure does. Run by `busdrain bench`; by hand:

  .venv/bin/python bench/reference_drain.py --connection-string "$CS" --queue bench-reference \
      --cassandra 127.0.0.1:9042 --keyspace ks --table reference --expect 20000
"""

import argparse
import json
import resource
import sys
import time
from datetime import datetime, timezone

from azure.servicebus import ServiceBusClient
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--cassandra", default="127.0.0.1:9042")
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--batch", type=int, default=256, help="messages per receive call")
    parser.add_argument("--concurrency", type=int, default=100, help="writes in flight")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    return parser.parse_args()


def parse_ts(text):
    # "2026-11-28T05:00:00.123Z" -> aware datetime (Python 3.11 accepts the Z suffix).
    return datetime.fromisoformat(text)


def main():
    args = parse_args()
    host, _, port = args.cassandra.partition(":")
    cluster = Cluster(
        [host],
        port=int(port or 9042),
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="datacenter1")),
        protocol_version=5,
    )
    session = cluster.connect()
    insert = session.prepare(
        f"INSERT INTO {args.keyspace}.{args.table} (device_id, seq, ts, temperature, ingested) "
        "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )
    insert.consistency_level = ConsistencyLevel.LOCAL_QUORUM

    done = 0
    first_received = None
    last_message = time.monotonic()
    with ServiceBusClient.from_connection_string(args.connection_string) as client:
        with client.get_queue_receiver(args.queue, prefetch_count=args.batch) as receiver:
            while done < args.expect:
                messages = receiver.receive_messages(
                    max_message_count=args.batch, max_wait_time=1
                )
                if not messages:
                    if time.monotonic() - last_message > args.idle_seconds:
                        sys.exit(f"no message for {args.idle_seconds}s after {done} of {args.expect}")
                    continue
                if first_received is None:
                    first_received = time.monotonic()
                last_message = time.monotonic()
                now = datetime.now(timezone.utc)
                rows = []
                for message in messages:
                    body = json.loads(b"".join(message.body))
                    enqueued = message.enqueued_time_utc
                    writetime = int(enqueued.timestamp() * 1_000_000) if enqueued else None
                    rows.append(
                        (
                            body["device_id"],
                            body["seq"],
                            parse_ts(body["ts"]),
                            float(body["temperature"]),
                            now,
                            writetime,
                            0,
                        )
                    )
                results = execute_concurrent_with_args(
                    session, insert, rows, concurrency=args.concurrency, raise_on_first_error=True
                )
                for (success, _), message in zip(results, messages):
                    if success:
                        receiver.complete_message(message)
                done += len(messages)

    seconds = time.monotonic() - first_received if first_received else 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cluster.shutdown()
    print(
        json.dumps(
            {
                "messages": done,
                "seconds": seconds,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mib": usage.ru_maxrss / 1024.0,
            }
        )
    )


if __name__ == "__main__":
    main()
