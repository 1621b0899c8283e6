"""Subscription rules managed at runtime through `$management` (add-rule, remove-rule,
enumerate-rules), and their effect on routing.

azure-servicebus 7.x has no public AMQP rule API (its rule management goes through the HTTP
administration client, which the emulator does not serve), but the SDK knows these operations
(`REQUEST_RESPONSE_ADD_RULE_OPERATION` and friends in `_common.constants`) and sends any
management request through the receiver's `_mgmt_request_response_with_retry`: the same path,
link and error mapping its public `peek_messages` / `renew_message_lock` use. These tests drive
that private method, so an SDK upgrade that renames it breaks them loudly (AttributeError), never
silently. Request bodies follow Microsoft.Azure.ServiceBus's `AmqpRequestMessage` maps.

Each test owns one subscription of `<prefix>topic` (rules-manage, rules-sql, rules-correlation).
What the tests send also lands in `all` (its $Default rule); they empty it again, so
test_topics.py sees the topic as configured (`red` and `orders` select none of these messages).
"""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus._common import mgmt_handlers
from azure.servicebus._common.constants import (
    REQUEST_RESPONSE_ADD_RULE_OPERATION,
    REQUEST_RESPONSE_GET_RULES_OPERATION,
    REQUEST_RESPONSE_REMOVE_RULE_OPERATION,
)
from azure.servicebus.exceptions import (
    MessagingEntityAlreadyExistsError,
    MessagingEntityNotFoundError,
    ServiceBusError,
)

from helpers import assert_nothing_to_receive, receive_exactly, unique_id


@pytest.fixture
def topic(settings):
    return settings.queue_prefix + "topic"


@pytest.fixture
def client(settings):
    """Without retries: a refused rule operation fails at once instead of being retried."""
    with ServiceBusClient.from_connection_string(settings.connection, retry_total=0) as sb_client:
        yield sb_client


def _purge(client, topic, subscription):
    with client.get_subscription_receiver(
        topic, subscription, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        while receiver.receive_messages(max_message_count=100, max_wait_time=0.5):
            pass


class RuleManager:
    """add / remove / list rules of one subscription over the SDK's management link."""

    def __init__(self, client, topic, subscription):
        self._receiver = client.get_subscription_receiver(topic, subscription)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._receiver.close()

    def _request(self, operation, body, callback=mgmt_handlers.default):
        return self._receiver._mgmt_request_response_with_retry(  # noqa: SLF001 (see module doc)
            operation, body, callback, timeout=15
        )

    def add(self, name, sql_filter=None, correlation=None, action=None):
        description = {}
        if sql_filter is not None:
            description["sql-filter"] = {"expression": sql_filter}
        if correlation is not None:
            description["correlation-filter"] = correlation
        if action is not None:
            description["sql-rule-action"] = {"expression": action}
        self._request(REQUEST_RESPONSE_ADD_RULE_OPERATION, {"rule-name": name, "rule-description": description})

    def remove(self, name):
        self._request(REQUEST_RESPONSE_REMOVE_RULE_OPERATION, {"rule-name": name})

    def list(self, top=100, skip=0):
        """[(name, filter fields, action fields)], in evaluation order. pyamqp drops the
        descriptors of the described rule, filter and action, leaving their field lists."""

        def answer(status_code, message, description, amqp_transport):
            if status_code == 204:  # Service Bus's "no rules on this page"
                return []
            body = mgmt_handlers.default(status_code, message, description, amqp_transport)
            return body[b"rules"]

        rules = self._request(REQUEST_RESPONSE_GET_RULES_OPERATION, {"top": top, "skip": skip}, answer)
        listed = []
        for entry in rules:
            rule_filter, action, name = _text(entry[b"rule-description"][:3])
            listed.append((name, rule_filter, action))
        return listed

    def names(self):
        return [name for name, _, _ in self.list()]

    def only(self, name, **rule):
        """Replaces every rule with this one."""
        for existing in self.names():
            self.remove(existing)
        self.add(name, **rule)


def _text(value):
    """pyamqp yields AMQP strings as bytes; decoded here, recursively."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return value


def _send(client, topic, messages):
    with client.get_topic_sender(topic) as sender:
        sender.send_messages(messages)


def _drain_all(client, topic, sent):
    """Empties `all`, which received a copy of every message sent (its rule is $Default)."""
    with client.get_subscription_receiver(
        topic, "all", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        received = receive_exactly(receiver, sent, deadline_s=10)
    assert len(received) == sent


def _drain(client, topic, subscription, expected):
    with client.get_subscription_receiver(topic, subscription) as receiver:
        received = receive_exactly(receiver, expected, deadline_s=10)
        for message in received:
            receiver.complete_message(message)
        assert_nothing_to_receive(receiver, wait_s=1)
    return received


def test_rules_are_added_listed_paged_and_removed(client, topic):
    with RuleManager(client, topic, "rules-manage") as rules:
        for name in rules.names():
            rules.remove(name)
        assert rules.list() == [], "no rules: the SDK gets 204 No Content"

        rules.add("$Default", sql_filter="1=1")
        rules.add("priced", sql_filter="price > 10", action="SET tag = 'big'")
        rules.add(
            "by-label",
            correlation={"label": "invoice", "correlation-id": "c-7", "properties": {"region": "eu", "tier": 3}},
        )
        listed = rules.list()
        assert [name for name, _, _ in listed] == ["$Default", "priced", "by-label"], "evaluation order"
        by_name = {name: (rule_filter, action) for name, rule_filter, action in listed}
        assert by_name["$Default"][0][0] == "1=1"
        assert by_name["priced"][0][0] == "price > 10"
        assert by_name["priced"][1][0] == "SET tag = 'big'"
        # Correlation filter fields: correlation-id, message-id, to, reply-to, label, session-id,
        # reply-to-session-id, content-type, properties.
        correlation = by_name["by-label"][0]
        assert correlation[0] == "c-7"
        assert correlation[4] == "invoice"
        assert correlation[8] == {"region": "eu", "tier": 3}
        assert by_name["by-label"][1] == [], "no action: the empty rule action"

        assert [n for n, _, _ in rules.list(top=2, skip=0)] == ["$Default", "priced"]
        assert [n for n, _, _ in rules.list(top=2, skip=2)] == ["by-label"]
        assert rules.list(top=2, skip=3) == []

        rules.remove("priced")
        rules.remove("by-label")
        assert rules.names() == ["$Default"]


def test_adding_an_existing_name_is_refused(client, topic):
    with RuleManager(client, topic, "rules-manage") as rules:
        rules.only("$Default", sql_filter="1=1")
        with pytest.raises(MessagingEntityAlreadyExistsError):
            rules.add("$Default", sql_filter="a = 1")
        with pytest.raises(MessagingEntityAlreadyExistsError):
            rules.add("$DEFAULT", sql_filter="a = 1")  # names compare case-insensitively
        [(_, rule_filter, _)] = rules.list()
        assert rule_filter[0] == "1=1", "the refused add changed nothing"


def test_removing_a_missing_rule_is_refused(client, topic):
    with RuleManager(client, topic, "rules-manage") as rules:
        rules.only("$Default", sql_filter="1=1")
        with pytest.raises(MessagingEntityNotFoundError):
            rules.remove("no-such-rule")
        assert rules.names() == ["$Default"]


def test_a_malformed_filter_or_action_is_refused_with_its_position(client, topic):
    with RuleManager(client, topic, "rules-manage") as rules:
        rules.only("$Default", sql_filter="1=1")
        with pytest.raises(ServiceBusError) as refused:
            rules.add("broken", sql_filter="color = = 'red'")
        assert "position 9" in str(refused.value), str(refused.value)
        with pytest.raises(ServiceBusError) as refused:
            rules.add("broken-action", sql_filter="1=1", action="SET = 1")
        assert "position 5" in str(refused.value), str(refused.value)
        assert rules.names() == ["$Default"], "nothing was added"


def test_a_runtime_sql_rule_routes_and_its_action_shows_on_the_message(client, topic):
    with RuleManager(client, topic, "rules-sql") as rules:
        rules.only(
            "green-big",
            sql_filter="color = 'green' AND quantity >= 5",
            action="SET quantity = quantity * 2; SET tag = 'doubled'; REMOVE secret; SET nulled = NULL; "
            "SET sys.Label = 'relabelled'; SET sys.To = 'dest'",
        )
    _purge(client, topic, "rules-sql")
    run = unique_id("sql")
    _send(
        client,
        topic,
        [
            ServiceBusMessage(
                b"g",
                message_id=f"{run}-green",
                subject="original",
                application_properties={"color": "green", "quantity": 5, "secret": "x", "nulled": 1},
            ),
            ServiceBusMessage(b"s", message_id=f"{run}-small", application_properties={"color": "green", "quantity": 4}),
            ServiceBusMessage(b"b", message_id=f"{run}-blue", application_properties={"color": "blue", "quantity": 50}),
        ],
    )
    [green] = _drain(client, topic, "rules-sql", 1)
    _drain_all(client, topic, 3)
    assert green.message_id == f"{run}-green"
    props = green.application_properties
    assert props[b"quantity"] == 10, "SET quantity = quantity * 2"
    assert props[b"tag"] == b"doubled"
    assert b"secret" not in props, "REMOVE secret"
    assert b"nulled" in props and props[b"nulled"] is None, "SET nulled = NULL keeps the property"
    assert props[b"color"] == b"green", "untouched properties stay"
    assert props[b"RuleName"] == b"green-big", "a copy made by an action names its rule"
    assert green.subject == "relabelled", "SET sys.Label"
    assert green.to == "dest", "SET sys.To"


def test_a_runtime_correlation_rule_matches_system_fields_and_properties(client, topic):
    with RuleManager(client, topic, "rules-correlation") as rules:
        rules.only(
            "eu-shipments",
            correlation={
                "label": "shipment",
                "correlation-id": "batch-1",
                "content-type": "application/json",
                "properties": {"region": "eu"},
            },
        )
    _purge(client, topic, "rules-correlation")
    run = unique_id("corr")

    def message(suffix, subject="shipment", correlation_id="batch-1", **props):
        return ServiceBusMessage(
            suffix.encode(),
            message_id=f"{run}-{suffix}",
            subject=subject,
            correlation_id=correlation_id,
            content_type="application/json",
            application_properties=props or None,
        )

    _send(
        client,
        topic,
        [
            message("match", region="eu", extra=1),
            message("us", region="us"),
            message("label", subject="invoice", region="eu"),
            message("corr", correlation_id="batch-2", region="eu"),
            message("noprop"),
        ],
    )
    received = _drain(client, topic, "rules-correlation", 1)
    _drain_all(client, topic, 5)
    assert [m.message_id for m in received] == [f"{run}-match"]
