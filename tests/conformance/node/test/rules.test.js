// Emulator part 2 (issue 4): subscription rules managed through $management
// (add-rule / remove-rule / enumerate-rules) with the SDK's rule manager
// (ServiceBusClient.createRuleManager: createRule / listRules / deleteRule).
//
// Each test owns one subscription of `<prefix>topic` (rules-manage, rules-sql,
// rules-correlation), so the topic tests' subscriptions keep their configured rules.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  assertNothingToReceive,
  newClient,
  receiveExactly,
  receiverOptions,
  settings,
  uniqueId,
} from "./helpers.js";

describe("rule management", () => {
  let client;
  const topic = () => settings().queuePrefix + "topic";
  before(() => {
    client = newClient(undefined, { retryOptions: { maxRetries: 0, timeoutInMs: 15000 } });
  });
  after(async () => {
    // Every subscription with a $Default rule got a copy of what these tests sent; leave the
    // topic as the other test files expect it.
    for (const subscription of ["all", "orders", "red", "rules-manage", "rules-sql", "rules-correlation"]) {
      await purge(subscription);
    }
    await client.close();
  });

  /** Receives and deletes whatever `subscription` holds. */
  async function purge(subscription) {
    const receiver = client.createReceiver(topic(), subscription, { receiveMode: "receiveAndDelete" });
    while ((await receiver.receiveMessages(100, { maxWaitTimeInMs: 500 })).length > 0);
    await receiver.close();
  }

  /**
   * The rules of a subscription, in the order the emulator lists them. An empty first page
   * makes @azure/core-paging yield one `undefined` (it only flattens array pages), so holes
   * are dropped here.
   */
  async function listRules(rules) {
    const found = [];
    for await (const rule of rules.listRules()) if (rule) found.push(rule);
    return found;
  }

  async function ruleNames(rules) {
    return (await listRules(rules)).map((r) => r.name).sort();
  }

  /** Replaces every rule of `subscription` with `rule` (name, filter, optional action). */
  async function onlyRule(rules, name, filter, action) {
    for (const existing of await ruleNames(rules)) await rules.deleteRule(existing);
    await rules.createRule(name, filter, action);
  }

  async function send(messages) {
    const sender = client.createSender(topic());
    await sender.sendMessages(messages);
    await sender.close();
  }

  /** Receives and completes `expected` messages, then checks nothing else arrives. */
  async function drainSubscription(subscription, expected) {
    const receiver = client.createReceiver(topic(), subscription, receiverOptions());
    const received = await receiveExactly(receiver, expected, 10000);
    for (const message of received) {
      await receiver.completeMessage(message);
    }
    await assertNothingToReceive(receiver, 1000);
    await receiver.close();
    return received;
  }

  it("rules are added, listed (with filter and action) and removed", async () => {
    const rules = client.createRuleManager(topic(), "rules-manage");
    for (const name of await ruleNames(rules)) await rules.deleteRule(name);
    assert.deepEqual(await ruleNames(rules), [], "an empty rule list pages to nothing");

    await rules.createRule("$Default", { sqlExpression: "1=1" });
    await rules.createRule("priced", { sqlExpression: "price > 10" }, { sqlExpression: "SET tag = 'big'" });
    await rules.createRule("by-label", {
      subject: "invoice",
      correlationId: "c-7",
      applicationProperties: { region: "eu", tier: 3 },
    });
    const listed = await listRules(rules);
    assert.deepEqual(listed.map((r) => r.name), ["$Default", "priced", "by-label"], "evaluation order");
    const byName = Object.fromEntries(listed.map((r) => [r.name, r]));
    assert.equal(byName["$Default"].filter.sqlExpression, "1=1");
    assert.equal(byName["priced"].filter.sqlExpression, "price > 10");
    assert.equal(byName["priced"].action.sqlExpression, "SET tag = 'big'");
    assert.equal(byName["by-label"].filter.subject, "invoice");
    assert.equal(byName["by-label"].filter.correlationId, "c-7");
    assert.deepEqual(byName["by-label"].filter.applicationProperties, { region: "eu", tier: 3 });
    assert.equal(byName["by-label"].action.sqlExpression, undefined);

    // Paging: the SDK's byPage({ maxPageSize }) becomes top/skip on enumerate-rules.
    const pages = [];
    for await (const page of rules.listRules().byPage({ maxPageSize: 2 })) {
      pages.push(page.map((r) => r.name));
    }
    assert.deepEqual(pages, [["$Default", "priced"], ["by-label"]]);

    await rules.deleteRule("priced");
    assert.deepEqual(await ruleNames(rules), ["$Default", "by-label"]);
    await rules.deleteRule("by-label");
    assert.deepEqual(await ruleNames(rules), ["$Default"]);
  });

  it("adding an existing rule name is refused with MessagingEntityAlreadyExists", async () => {
    const rules = client.createRuleManager(topic(), "rules-manage");
    await onlyRule(rules, "$Default", { sqlExpression: "1=1" });
    await assert.rejects(rules.createRule("$Default", { sqlExpression: "a = 1" }), (err) => {
      assert.equal(err.code, "MessagingEntityAlreadyExists", `${err.code}: ${err.message}`);
      return true;
    });
    // Names compare case-insensitively, as in Service Bus.
    await assert.rejects(rules.createRule("$DEFAULT", { sqlExpression: "a = 1" }), (err) => {
      assert.equal(err.code, "MessagingEntityAlreadyExists", `${err.code}: ${err.message}`);
      return true;
    });
    const [only] = await listRules(rules);
    assert.equal(only.filter.sqlExpression, "1=1", "the refused add changed nothing");
  });

  it("removing a missing rule is refused with MessagingEntityNotFound", async () => {
    const rules = client.createRuleManager(topic(), "rules-manage");
    await onlyRule(rules, "$Default", { sqlExpression: "1=1" });
    await assert.rejects(rules.deleteRule("no-such-rule"), (err) => {
      assert.equal(err.code, "MessagingEntityNotFound", `${err.code}: ${err.message}`);
      return true;
    });
    assert.deepEqual(await ruleNames(rules), ["$Default"]);
  });

  it("a malformed SQL filter or action is refused with its position and changes nothing", async () => {
    const rules = client.createRuleManager(topic(), "rules-manage");
    await onlyRule(rules, "$Default", { sqlExpression: "1=1" });
    await assert.rejects(rules.createRule("broken", { sqlExpression: "color = = 'red'" }), (err) => {
      assert.match(err.message, /position 9/, err.message);
      assert.match(err.message, /color = = 'red'/, err.message);
      return true;
    });
    await assert.rejects(
      rules.createRule("broken-action", { sqlExpression: "1=1" }, { sqlExpression: "SET = 1" }),
      (err) => {
        assert.match(err.message, /SQL action/, err.message);
        assert.match(err.message, /position 5/, err.message);
        return true;
      },
    );
    assert.deepEqual(await ruleNames(rules), ["$Default"], "nothing was added");
  });

  it("a SQL filter added at runtime routes, and its SET/REMOVE action shows on the message", async () => {
    const rules = client.createRuleManager(topic(), "rules-sql");
    await onlyRule(
      rules,
      "green-big",
      { sqlExpression: "color = 'green' AND quantity >= 5" },
      {
        sqlExpression:
          "SET quantity = quantity * 2; SET tag = 'doubled'; REMOVE secret; SET nulled = NULL; " +
          "SET sys.Label = 'relabelled'; SET sys.CorrelationId = 'corr-green'; SET sys.ContentType = 'text/plain'",
      },
    );
    await purge("rules-sql");
    const run = uniqueId("sql");
    await send([
      {
        body: "g",
        messageId: `${run}-green`,
        subject: "original",
        applicationProperties: { color: "green", quantity: 5, secret: "x", nulled: 1 },
      },
      { body: "s", messageId: `${run}-small`, applicationProperties: { color: "green", quantity: 4 } },
      { body: "b", messageId: `${run}-blue`, applicationProperties: { color: "blue", quantity: 50 } },
    ]);
    const [green] = await drainSubscription("rules-sql", 1);
    assert.equal(green?.messageId, `${run}-green`);
    assert.equal(green.applicationProperties.quantity, 10, "SET quantity = quantity * 2");
    assert.equal(green.applicationProperties.tag, "doubled", "SET of a new property");
    assert.equal("secret" in green.applicationProperties, false, "REMOVE secret");
    assert.equal(green.applicationProperties.color, "green", "untouched properties stay");
    assert.equal("nulled" in green.applicationProperties, true, "SET nulled = NULL keeps the property");
    assert.equal(green.applicationProperties.nulled, null, "SET nulled = NULL");
    assert.equal(green.applicationProperties.RuleName, "green-big", "a copy made by an action names its rule");
    assert.equal(green.subject, "relabelled", "SET sys.Label");
    assert.equal(green.correlationId, "corr-green", "SET sys.CorrelationId");
    assert.equal(green.contentType, "text/plain", "SET sys.ContentType");
    assert.equal(green.messageId, `${run}-green`, "unchanged system fields stay");
  });

  it("a correlation filter added at runtime matches system fields and custom properties", async () => {
    const rules = client.createRuleManager(topic(), "rules-correlation");
    await onlyRule(rules, "eu-orders", {
      subject: "shipment",
      correlationId: "batch-1",
      contentType: "application/json",
      applicationProperties: { region: "eu" },
    });
    await purge("rules-correlation");
    const run = uniqueId("corr");
    const base = { subject: "shipment", correlationId: "batch-1", contentType: "application/json" };
    await send([
      { ...base, body: "1", messageId: `${run}-match`, applicationProperties: { region: "eu", extra: 1 } },
      { ...base, body: "2", messageId: `${run}-us`, applicationProperties: { region: "us" } },
      { ...base, body: "3", messageId: `${run}-label`, subject: "invoice", applicationProperties: { region: "eu" } },
      { ...base, body: "4", messageId: `${run}-corr`, correlationId: "batch-2", applicationProperties: { region: "eu" } },
      { ...base, body: "5", messageId: `${run}-noprop` },
    ]);
    const received = await drainSubscription("rules-correlation", 1);
    assert.deepEqual(received.map((m) => m.messageId), [`${run}-match`]);
  });
});
