#!/usr/bin/env python3
"""Durability of `busdrain emulator` under `kill -9`, driven by Microsoft's Python SDK.

1. Start the emulator on a fresh data dir; send N messages in batches (each send is
   acknowledged by the broker before the SDK call returns).
2. `kill -9`, restart on the same data dir: exactly those N messages are delivered
   (no loss, no duplicate). Complete half of them (the SDK waits for the broker's
   settlement outcome); leave the other half locked.
3. `kill -9`, restart: exactly the other half is delivered (locks lapse on restart; a
   completed message never comes back). Complete them.
4. `kill -9`, restart: nothing is left.

Then, on a second fresh data dir, state other than plain messages: a scheduled message and a
session's state, set before a `kill -9`, are still there after the restart; the scheduled
message is still `Scheduled` to peek and is delivered at its time.

Usage: durability.py --busdrain target/debug/busdrain --config config/Config.json [--count 10000]
Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "python"))

from datetime import datetime, timedelta, timezone  # noqa: E402

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusMessageState  # noqa: E402
from azure.servicebus.exceptions import MessageSizeExceededError  # noqa: E402

from emulator_process import Emulator  # noqa: E402

QUEUE = "durability"
MAX_PER_BATCH = 500
SCHEDULED_QUEUE = "py-scheduled"
SESSION_QUEUE = "py-session"
# How late after its time a scheduled message may arrive (the emulator aims for 1 s; this
# leaves room for a loaded CI machine) and how far ahead it is scheduled.
SCHEDULED_SLACK_S = 3.0
SCHEDULED_AHEAD_S = 8.0


class DurabilityFailure(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DurabilityFailure(what)
    print(f"  ok: {what}", flush=True)


def message_id(index: int) -> str:
    return f"durable-{index:06d}"


def body(index: int) -> bytes:
    return f"durable body {index} ".encode() * 4


def send_all(connection: str, count: int) -> None:
    with ServiceBusClient.from_connection_string(connection) as client, client.get_queue_sender(QUEUE) as sender:
        index = 0
        while index < count:
            batch = sender.create_message_batch()
            while index < count and len(batch) < MAX_PER_BATCH:
                try:
                    batch.add_message(ServiceBusMessage(body(index), message_id=message_id(index)))
                except MessageSizeExceededError:
                    break
                index += 1
            sender.send_messages(batch)


def receive_all(client: ServiceBusClient, expected: int, deadline_s: float):
    """Peek-lock receive until `expected` messages arrived or the deadline passed, then keep
    listening briefly so that any extra (duplicate) delivery is caught too."""
    receiver = client.get_queue_receiver(QUEUE, prefetch_count=0)
    receiver.__enter__()
    received = []
    deadline = time.monotonic() + deadline_s
    while len(received) < expected and time.monotonic() < deadline:
        received += receiver.receive_messages(max_message_count=min(MAX_PER_BATCH, expected - len(received)), max_wait_time=5)
    received += receiver.receive_messages(max_message_count=50, max_wait_time=3)
    return receiver, received


def check_exact(received, expected_indices: set[int], phase: str) -> None:
    ids = [m.message_id for m in received]
    expected_ids = {message_id(i) for i in expected_indices}
    duplicates = len(ids) - len(set(ids))
    missing = expected_ids - set(ids)
    unexpected = set(ids) - expected_ids
    check(duplicates == 0, f"{phase}: no duplicate delivery ({duplicates} duplicates)")
    check(not missing, f"{phase}: no message lost ({len(missing)} missing, e.g. {sorted(missing)[:3]})")
    check(not unexpected, f"{phase}: no unexpected message ({len(unexpected)}, e.g. {sorted(unexpected)[:3]})")
    wrong_bodies = [m.message_id for m in received if b"".join(m.body) != body(int(m.message_id.split("-")[1]))]
    check(not wrong_bodies, f"{phase}: every body intact ({len(wrong_bodies)} differ)")


def run(binary: Path, config: Path, count: int, workdir: Path) -> None:
    emulator = Emulator(binary=binary, config=config, data_dir=workdir / "data", log_path=workdir / "emulator.log")
    print(f"durability: {count} messages, data dir {emulator.data_dir}, log {emulator.log_path}", flush=True)
    try:
        emulator.start()
        started = time.monotonic()
        send_all(emulator.connection, count)
        print(f"  sent {count} in {time.monotonic() - started:.1f}s", flush=True)

        emulator.kill_hard()
        emulator.start()
        print("phase 1: after kill -9 and restart", flush=True)
        with ServiceBusClient.from_connection_string(emulator.connection) as client:
            receiver, received = receive_all(client, count, deadline_s=max(60.0, count / 50))
            check(len(received) == count, f"phase 1: received exactly {count} (got {len(received)})")
            check_exact(received, set(range(count)), "phase 1")
            completed = [m for m in received if int(m.message_id.split("-")[1]) % 2 == 0]
            for message in completed:
                receiver.complete_message(message)
            print(f"  completed {len(completed)} (even indices), left {count - len(completed)} locked", flush=True)
            # No close: the kill leaves the remaining locks held, as a crash would.
            emulator.kill_hard()
            receiver_closed_quietly(receiver)

        remaining = {i for i in range(count) if i % 2 == 1}
        emulator.start()
        print("phase 2: after second kill -9 and restart", flush=True)
        with ServiceBusClient.from_connection_string(emulator.connection) as client:
            receiver, received = receive_all(client, len(remaining), deadline_s=max(60.0, count / 50))
            check(len(received) == len(remaining), f"phase 2: received exactly {len(remaining)} (got {len(received)})")
            check_exact(received, remaining, "phase 2")
            for message in received:
                receiver.complete_message(message)
            receiver.__exit__(None, None, None)
        emulator.kill_hard()

        emulator.start()
        print("phase 3: after third kill -9 and restart", flush=True)
        with ServiceBusClient.from_connection_string(emulator.connection) as client:
            with client.get_queue_receiver(QUEUE) as receiver:
                leftovers = receiver.receive_messages(max_message_count=10, max_wait_time=5)
                check(leftovers == [], f"phase 3: nothing left to receive (got {len(leftovers)})")
                check(
                    receiver.peek_messages(max_message_count=10, sequence_number=1) == [],
                    "phase 3: nothing left to peek",
                )
    finally:
        emulator.stop()


def run_state(binary: Path, config: Path, workdir: Path) -> None:
    """A scheduled message and a session's state survive `kill -9`."""
    emulator = Emulator(binary=binary, config=config, data_dir=workdir / "state-data", log_path=workdir / "emulator-state.log")
    print(f"durability of scheduled messages and session state: data dir {emulator.data_dir}", flush=True)
    try:
        emulator.start()
        due = datetime.now(timezone.utc) + timedelta(seconds=SCHEDULED_AHEAD_S)
        with ServiceBusClient.from_connection_string(emulator.connection) as client:
            with client.get_queue_sender(SCHEDULED_QUEUE) as sender:
                [scheduled] = sender.schedule_messages(ServiceBusMessage(b"due later", message_id="scheduled-durable"), due)
            with client.get_queue_sender(SESSION_QUEUE) as sender:
                sender.send_messages(ServiceBusMessage(b"in session", session_id="durable-session"))
            with client.get_queue_receiver(SESSION_QUEUE, session_id="durable-session") as receiver:
                receiver.session.set_state(b"checkpoint-42")
        emulator.kill_hard()
        emulator.start()
        print("after kill -9 and restart", flush=True)
        with ServiceBusClient.from_connection_string(emulator.connection) as client:
            with client.get_queue_receiver(SCHEDULED_QUEUE) as receiver:
                peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
                check(
                    [(m.sequence_number, m.state) for m in peeked] == [(scheduled, ServiceBusMessageState.SCHEDULED)],
                    f"the scheduled message (sequence number {scheduled}) is still Scheduled to peek",
                )
                early = receiver.receive_messages(max_message_count=1, max_wait_time=1)
                check(early == [], "the scheduled message is not delivered before its time")
                received = []
                deadline = due + timedelta(seconds=SCHEDULED_SLACK_S + 5)
                while not received and datetime.now(timezone.utc) < deadline:
                    received = receiver.receive_messages(max_message_count=1, max_wait_time=1)
                arrived = datetime.now(timezone.utc)
                check(
                    [m.message_id for m in received] == ["scheduled-durable"],
                    "the scheduled message is delivered after the restart",
                )
                late_s = (arrived - due).total_seconds()
                check(late_s <= SCHEDULED_SLACK_S, f"delivered {late_s:.2f} s after its time (limit {SCHEDULED_SLACK_S} s)")
                receiver.complete_message(received[0])
            with client.get_queue_receiver(SESSION_QUEUE, session_id="durable-session") as receiver:
                check(receiver.session.get_state() == b"checkpoint-42", "the session state survived")
                messages = receiver.receive_messages(max_message_count=1, max_wait_time=5)
                check([b"".join(m.body) for m in messages] == [b"in session"], "the session's message survived")
                receiver.complete_message(messages[0])
                receiver.session.set_state(None)
    finally:
        emulator.stop()


def receiver_closed_quietly(receiver) -> None:
    """The emulator under the receiver is gone; closing only releases client resources."""
    try:
        receiver.__exit__(None, None, None)
    except Exception as err:  # noqa: BLE001 - the peer is dead, any close error is expected
        print(f"  (receiver close after kill: {type(err).__name__})", flush=True)


def run_reporting(binary: Path, config: Path, count: int, workdir: Path) -> int:
    try:
        run(binary, config, count, workdir)
        run_state(binary, config, workdir)
    except DurabilityFailure as failure:
        print(f"DURABILITY FAILED: {failure}", flush=True)
    except Exception as err:  # noqa: BLE001 - any SDK/emulator error is a failure of this test
        print(f"DURABILITY FAILED: {type(err).__name__}: {err}", flush=True)
    else:
        print("DURABILITY PASSED", flush=True)
        return 0
    for log in (workdir / "emulator.log", workdir / "emulator-state.log"):
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-40:]
            print(f"--- last lines of {log.name} ---", *tail, sep="\n", flush=True)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busdrain", type=Path, required=True, help="path to the busdrain binary")
    parser.add_argument("--config", type=Path, required=True, help="Config.json with the `durability`, `py-scheduled` and `py-session` queues")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, help="keep data dir and log here (default: a temp dir)")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run_reporting(args.busdrain, args.config, args.count, args.workdir)
    with tempfile.TemporaryDirectory(prefix="busdrain-durability-") as tmp:
        return run_reporting(args.busdrain, args.config, args.count, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
