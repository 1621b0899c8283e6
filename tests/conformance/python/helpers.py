"""Shared helpers for the conformance tests: settings from the environment, the entity
config the emulator was started with, and receive loops with explicit deadlines.

Only the public API of `azure-servicebus` is used here and in the tests.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from azure.servicebus import ServiceBusReceivedMessage, ServiceBusReceiver

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE.parent / "config" / "Config.json"


@dataclass(frozen=True)
class Settings:
    """What the runner (`tests/conformance/run`) hands the suite, see README.md."""

    connection: str
    listen_connection: str | None
    send_connection: str | None
    queue_prefix: str
    config_path: Path


def settings_from_env() -> Settings:
    connection = os.environ.get("BUSDRAIN_SB_CONNECTION")
    if not connection:
        raise RuntimeError(
            "BUSDRAIN_SB_CONNECTION is not set: start the emulator with tests/conformance/config/Config.json "
            "and export its connection string (tests/conformance/run does both)"
        )
    return Settings(
        connection=connection,
        listen_connection=os.environ.get("BUSDRAIN_SB_LISTEN_CONNECTION") or None,
        send_connection=os.environ.get("BUSDRAIN_SB_SEND_CONNECTION") or None,
        queue_prefix=os.environ.get("BUSDRAIN_SB_QUEUE_PREFIX", "py-"),
        config_path=Path(os.environ.get("BUSDRAIN_SB_CONFIG", str(DEFAULT_CONFIG))),
    )


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> timedelta:
    """The ISO-8601 durations our Config.json uses (PnDTnHnMnS)."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT"):
        raise ValueError(f"unsupported ISO-8601 duration {text!r}")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class QueueProperties:
    name: str
    lock_duration: timedelta
    max_delivery_count: int
    default_ttl: timedelta
    dead_letter_on_expiration: bool


def load_queues(config_path: Path) -> dict[str, QueueProperties]:
    """Queue properties keyed by name, read from the same Config.json the emulator serves,
    so a test's expectations (lock duration, max delivery count) follow the config."""
    document = json.loads(config_path.read_text(encoding="utf-8"))
    queues = {}
    for entry in document["UserConfig"]["Namespaces"][0]["Queues"]:
        props = entry.get("Properties", {})
        queues[entry["Name"]] = QueueProperties(
            name=entry["Name"],
            lock_duration=parse_duration(props.get("LockDuration", "PT1M")),
            max_delivery_count=int(props.get("MaxDeliveryCount", 10)),
            default_ttl=parse_duration(props.get("DefaultMessageTimeToLive", "PT1H")),
            dead_letter_on_expiration=bool(props.get("DeadLetteringOnMessageExpiration", False)),
        )
    return queues


def with_key(connection: str, key: str) -> str:
    """The same connection string with another SharedAccessKey."""
    parts = [p for p in connection.strip().rstrip(";").split(";") if p]
    replaced = [f"SharedAccessKey={key}" if p.lower().startswith("sharedaccesskey=") else p for p in parts]
    if replaced == parts:
        raise ValueError("connection string has no SharedAccessKey")
    return ";".join(replaced) + ";"


def unique_id(label: str) -> str:
    return f"{label}-{uuid.uuid4()}"


def body_of(message: ServiceBusReceivedMessage) -> bytes:
    """The data-section body as one bytes value (the SDK yields it as chunks)."""
    body = message.body
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return b"".join(body)


def receive_exactly(receiver: ServiceBusReceiver, count: int, deadline_s: float = 20.0) -> list[ServiceBusReceivedMessage]:
    """Receives until `count` messages arrived or the deadline passed; returns what arrived
    (the caller asserts the number, so a short delivery fails with a clear count)."""
    received: list[ServiceBusReceivedMessage] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        batch = receiver.receive_messages(
            max_message_count=min(count - len(received), 500), max_wait_time=min(remaining, 5.0)
        )
        received.extend(batch)
    return received


def assert_nothing_to_receive(receiver: ServiceBusReceiver, wait_s: float = 2.0) -> None:
    """Fails if a message can still be received within `wait_s` seconds (and settles nothing)."""
    leftovers = receiver.receive_messages(max_message_count=10, max_wait_time=wait_s)
    described = [(m.message_id, m.sequence_number, m.delivery_count) for m in leftovers]
    assert leftovers == [], f"expected no message, received {described}"
