// Message expiry: dead-lettered with TTLExpiredException when the queue has
// DeadLetteringOnMessageExpiration, else dropped. Effective TTL = min(message, queue default).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Long from "long";
import {
  assertNothingToReceive,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  sleep,
  uniqueId,
} from "./helpers.js";

const MESSAGE_TTL_MS = 2000;
const FROM_START = { fromSequenceNumber: Long.fromNumber(1) };

describe("expiry", () => {
  let client;
  before(() => {
    client = newClient();
  });
  after(async () => {
    await client.close();
  });

  async function sendAndConfirmEnqueued(queueName, message) {
    const sender = client.createSender(queueName);
    await sender.sendMessages(message);
    await sender.close();
    const receiver = client.createReceiver(queueName, receiverOptions());
    const peeked = await receiver.peekMessages(10, FROM_START);
    assert.deepEqual(
      peeked.map((m) => m.messageId),
      [message.messageId],
    );
    await receiver.close();
  }

  async function assertExpiredIntoDlq(queueName, messageId, body) {
    const receiver = client.createReceiver(queueName, receiverOptions());
    await assertNothingToReceive(receiver, 2000);
    await receiver.close();
    const dlq = client.createReceiver(queueName, receiverOptions({ subQueueType: "deadLetter" }));
    const [dead] = await receiveExactly(dlq, 1, 15000);
    assert.ok(dead, "expired message not in the dead-letter queue");
    assert.equal(dead.messageId, messageId);
    assert.deepEqual(dead.body, Buffer.from(body));
    assert.equal(dead.deadLetterReason, "TTLExpiredException");
    await dlq.completeMessage(dead);
    await assertNothingToReceive(dlq);
    await dlq.close();
  }

  it("an expired message is dead-lettered when the queue says so", async () => {
    const queue = queueOf("ttl-dlq");
    assert.equal(queue.deadLetterOnExpiration, true);
    const messageId = uniqueId("ttl-dlq");
    await sendAndConfirmEnqueued(queue.name, {
      body: Buffer.from("short-lived"),
      messageId,
      timeToLive: MESSAGE_TTL_MS,
    });
    await sleep(MESSAGE_TTL_MS + 2000);
    await assertExpiredIntoDlq(queue.name, messageId, "short-lived");
  });

  it("the queue's DefaultMessageTimeToLive applies to messages without their own", async () => {
    const queue = queueOf("ttl-default");
    assert.ok(queue.deadLetterOnExpiration && queue.defaultTtlMs <= 10000);
    const messageId = uniqueId("ttl-default");
    await sendAndConfirmEnqueued(queue.name, { body: Buffer.from("queue ttl"), messageId });
    await sleep(queue.defaultTtlMs + 2000);
    await assertExpiredIntoDlq(queue.name, messageId, "queue ttl");
  });

  it("an expired message is dropped when the queue does not dead-letter on expiry", async () => {
    const queue = queueOf("ttl-drop");
    assert.equal(queue.deadLetterOnExpiration, false);
    const messageId = uniqueId("ttl-drop");
    await sendAndConfirmEnqueued(queue.name, { body: Buffer.from("gone"), messageId, timeToLive: MESSAGE_TTL_MS });
    await sleep(MESSAGE_TTL_MS + 2000);
    const receiver = client.createReceiver(queue.name, receiverOptions());
    await assertNothingToReceive(receiver, 3000);
    assert.deepEqual(await receiver.peekMessages(10, FROM_START), []);
    await receiver.close();
    const dlq = client.createReceiver(queue.name, receiverOptions({ subQueueType: "deadLetter" }));
    await assertNothingToReceive(dlq, 3000);
    await dlq.close();
  });

  it("an unexpired message is delivered with its timeToLive", async () => {
    const queue = queueOf("ttl-live");
    const messageId = uniqueId("ttl-live");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("long-lived"), messageId, timeToLive: 5 * 60 * 1000 });
    await sender.close();
    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(receiver, 1);
    assert.ok(message, "no message received");
    assert.equal(message.messageId, messageId);
    assert.equal(message.timeToLive, 5 * 60 * 1000);
    assert.equal(message.expiresAtUtc.getTime(), message.enqueuedTimeUtc.getTime() + 5 * 60 * 1000);
    await receiver.completeMessage(message);
    await receiver.close();
  });
});
