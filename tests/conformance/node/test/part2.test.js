// Emulator part 2 (issue 4): topics and subscriptions with config rules, scheduled messages,
// duplicate detection. Rule management is in rules.test.js, sessions in sessions.test.js.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Long from "long";
import {
  assertNothingToReceive,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  settings,
  sleep,
} from "./helpers.js";

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

  it(
    "duplicate detection on a topic fans a MessageId out once",
    async () => {
      const dedupTopic = settings().queuePrefix + "dedup-topic";
      const sender = client.createSender(dedupTopic);
      await sender.sendMessages({ body: Buffer.from("first"), messageId: "topic-dup" });
      await sender.sendMessages({ body: Buffer.from("second"), messageId: "topic-dup" });
      await sender.sendMessages({ body: Buffer.from("other"), messageId: "topic-other" });
      await sender.close();
      const receiver = client.createReceiver(dedupTopic, "all", receiverOptions());
      const received = await receiveExactly(receiver, 2);
      assert.deepEqual(
        received.map((m) => [m.messageId, m.body.toString()]).sort(),
        [["topic-dup", "first"], ["topic-other", "other"]],
      );
      for (const message of received) await receiver.completeMessage(message);
      await assertNothingToReceive(receiver, 3000);
      await receiver.close();
    },
  );
});
