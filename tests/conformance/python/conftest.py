"""Fixtures: one `ServiceBusClient` per test on the emulator under test, and the test's own
queue (each test group has a queue in Config.json, so tests never see each other's messages)."""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusClient

import helpers


@pytest.fixture(scope="session")
def settings() -> helpers.Settings:
    try:
        return helpers.settings_from_env()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def queues(settings) -> dict[str, helpers.QueueProperties]:
    return helpers.load_queues(settings.config_path)


@pytest.fixture
def queue_of(settings, queues):
    """`queue_of("abandon")` -> the properties of `<prefix>abandon`, which must be configured."""

    def lookup(group: str) -> helpers.QueueProperties:
        name = settings.queue_prefix + group
        if name not in queues:
            pytest.fail(f"queue {name!r} is missing from {settings.config_path}", pytrace=False)
        return queues[name]

    return lookup


@pytest.fixture
def client(settings):
    with ServiceBusClient.from_connection_string(settings.connection) as sb_client:
        yield sb_client
