// Emulator part 2 (issue 4): topics and subscriptions with rules (also managed through the
// $management rule operations), sessions, scheduled messages, duplicate detection.
// Rule operations and sessions are strict expected failures naming the missing feature until
// served; topics with config rules, scheduling and duplicate detection must pass.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Long from "long";
import {
  assertNothingToReceive,
  expectedFailure,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  settings,
  sleep,
} from "./helpers.js";

const RULE_OPERATIONS = "emulator part 2 (issue 4): $management add-rule / remove-rule / enumerate-rules not implemented yet";
const SESSIONS = "emulator part 2 (issue 4): sessions not implemented yet";
const FROM_START = { fromSequenceNumber: Long.fromNumber(1) };

describe("emulator part 2", () => {
  let client;
  const topic = () => settings().queuePrefix + "topic";
  before(() => {
    client = newClient(undefined, { retryOptions: { maxRetries: 0, timeoutInMs: 15000 } });
  });
  after(async () => {
    await client.close();
    // An expected failure can leave SDK internals waiting (e.g. a session link the emulator
    // half-opened), which would keep this file's process alive until the runner's timeout.
    // The results are already reported; exit with the code the runner has set.
    setTimeout(() => process.exit(), 2000).unref();
  });

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

  it(
    "topics fan out to subscriptions whose config rules match",
    async () => {
      const sender = client.createSender(topic());
      await sender.sendMessages([
        { body: Buffer.from("red-big"), messageId: "red-big", applicationProperties: { color: "red", quantity: 20 } },
        { body: Buffer.from("red-small"), messageId: "red-small", applicationProperties: { color: "red", quantity: 5 } },
        { body: Buffer.from("eu-order"), messageId: "eu-order", subject: "order", applicationProperties: { region: "eu" } },
      ]);
      await sender.close();
      const all = await drainSubscription("all", 3);
      assert.deepEqual(all.map((m) => m.messageId).sort(), ["eu-order", "red-big", "red-small"]);
      const [red] = await drainSubscription("red", 1);
      assert.equal(red?.messageId, "red-big");
      assert.equal(red?.applicationProperties?.routed, "red");
      const [order] = await drainSubscription("orders", 1);
      assert.equal(order?.messageId, "eu-order");
    },
  );

  it(
    "rules are added, listed and removed through the rule manager",
    expectedFailure(RULE_OPERATIONS, async () => {
      const rules = client.createRuleManager(topic(), "all");
      const names = async () => {
        const found = [];
        for await (const rule of rules.listRules()) found.push(rule.name);
        return found.sort();
      };
      assert.deepEqual(await names(), ["$Default"]);
      await rules.createRule("only-green", { sqlExpression: "color = 'green'" });
      await rules.deleteRule("$Default");
      assert.deepEqual(await names(), ["only-green"]);
      const sender = client.createSender(topic());
      await sender.sendMessages([
        { body: Buffer.from("g"), messageId: "green", applicationProperties: { color: "green" } },
        { body: Buffer.from("b"), messageId: "blue", applicationProperties: { color: "blue" } },
      ]);
      await sender.close();
      const [green] = await drainSubscription("all", 1);
      assert.equal(green?.messageId, "green");
      await rules.createRule("$Default", { sqlExpression: "1=1" });
      await rules.deleteRule("only-green");
      assert.deepEqual(await names(), ["$Default"]);
    }),
  );

  it(
    "sessions: named and next-available, in order, with state and lock renewal",
    expectedFailure(SESSIONS, async () => {
      const queue = queueOf("session");
      const sender = client.createSender(queue.name);
      await sender.sendMessages(["a0", "a1", "a2"].map((b) => ({ body: Buffer.from(b), sessionId: "alpha" })));
      await sender.sendMessages({ body: Buffer.from("b0"), sessionId: "beta" });
      await sender.close();

      const alpha = await client.acceptSession(queue.name, "alpha", receiverOptions());
      assert.equal(alpha.sessionId, "alpha");
      assert.ok(alpha.sessionLockedUntilUtc instanceof Date);
      const received = await receiveExactly(alpha, 3);
      assert.deepEqual(received.map((m) => m.body.toString()), ["a0", "a1", "a2"]);
      for (const message of received) await alpha.completeMessage(message);
      await alpha.setSessionState("checkpoint");
      assert.equal(await alpha.getSessionState(), "checkpoint");
      const renewed = await alpha.renewSessionLock();
      assert.ok(renewed instanceof Date);
      await alpha.close();

      const next = await client.acceptNextSession(queue.name, receiverOptions());
      assert.equal(next.sessionId, "beta");
      const [beta] = await receiveExactly(next, 1);
      assert.equal(beta?.body.toString(), "b0");
      await next.completeMessage(beta);
      await next.close();
    }),
  );

  it(
    "scheduled messages appear at their time; cancelled ones never",
    async () => {
      const queue = queueOf("scheduled");
      const sender = client.createSender(queue.name);
      const due = new Date(Date.now() + 4000);
      const [kept] = await sender.scheduleMessages({ body: Buffer.from("later"), messageId: "sched" }, due);
      const cancelled = await sender.scheduleMessages({ body: Buffer.from("never") }, due);
      await sender.cancelScheduledMessages(cancelled);
      await sender.close();
      const receiver = client.createReceiver(queue.name, receiverOptions());
      const peeked = await receiver.peekMessages(10, FROM_START);
      assert.deepEqual(peeked.map((m) => [m.sequenceNumber.toString(), m.state]), [[kept.toString(), "scheduled"]]);
      await assertNothingToReceive(receiver, 1000);
      await sleep(Math.max(0, due.getTime() - Date.now()));
      const [message] = await receiveExactly(receiver, 1, 10000);
      assert.equal(message?.messageId, "sched");
      await receiver.completeMessage(message);
      await assertNothingToReceive(receiver, 2000);
      await receiver.close();
    },
  );

  it(
    "duplicate detection enqueues a MessageId once within the window",
    async () => {
      const queue = queueOf("dedup");
      const sender = client.createSender(queue.name);
      await sender.sendMessages({ body: Buffer.from("first"), messageId: "dup" });
      await sender.sendMessages({ body: Buffer.from("second"), messageId: "dup" });
      await sender.close();
      const receiver = client.createReceiver(queue.name, receiverOptions());
      const received = await receiveExactly(receiver, 1);
      assert.equal(received[0]?.body.toString(), "first");
      await receiver.completeMessage(received[0]);
      await assertNothingToReceive(receiver, 3000);
      await receiver.close();
    },
  );
});
