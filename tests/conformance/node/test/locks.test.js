// Peek-lock locks: renewMessageLock, lock expiry -> redelivery, MaxDeliveryCount -> dead
// letter. These queues have LockDuration PT5S in Config.json.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  assertNothingToReceive,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  sleep,
  uniqueId,
} from "./helpers.js";

describe("locks", () => {
  let client;
  before(() => {
    client = newClient();
  });
  after(async () => {
    await client.close();
  });

  it("renewMessageLock moves lockedUntilUtc forward and keeps the message locked", async () => {
    const queue = queueOf("renew");
    const lockMs = queue.lockDurationMs;
    const messageId = uniqueId("renew");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("renew me"), messageId });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(receiver, 1);
    assert.ok(message, "no message received");
    const firstUntil = message.lockedUntilUtc.getTime();
    // Renew late in the lock, so the renewed lock leaves a margin past the original one.
    await sleep(lockMs * 0.7);

    const renewed = await receiver.renewMessageLock(message);
    assert.ok(renewed.getTime() > firstUntil + lockMs * 0.5, `renewed ${renewed.toISOString()}`);
    assert.equal(message.lockedUntilUtc.getTime(), renewed.getTime());
    assert.ok(Math.abs(renewed.getTime() - (Date.now() + lockMs)) < 2000);

    // Past the original lock, within the renewed one: nobody else gets the message ...
    await sleep(Math.max(0, firstUntil - Date.now()) + 300);
    const other = client.createReceiver(queue.name, receiverOptions());
    await assertNothingToReceive(other, 1000);
    await other.close();
    // ... and the holder can still complete it.
    assert.ok(Date.now() < renewed.getTime(), "test too slow: the renewed lock lapsed");
    await receiver.completeMessage(message);
    await receiver.close();

    const check = client.createReceiver(queue.name, receiverOptions());
    await assertNothingToReceive(check, lockMs + 1000);
    await check.close();
  });

  it("an expired lock redelivers with deliveryCount incremented", async () => {
    const queue = queueOf("lockexpiry");
    const lockMs = queue.lockDurationMs;
    const messageId = uniqueId("expiry");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("let my lock lapse"), messageId });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [first] = await receiveExactly(receiver, 1);
    assert.ok(first, "no message received");
    assert.equal(first.deliveryCount, 0);
    const receivedAt = Date.now();

    const other = client.createReceiver(queue.name, receiverOptions());
    await assertNothingToReceive(other, Math.min(2000, lockMs / 2));
    await other.close();

    const [second] = await receiveExactly(receiver, 1, lockMs + 10000);
    assert.ok(second, "message not redelivered after its lock expired");
    assert.ok(Date.now() - receivedAt >= lockMs - 500, "redelivered before the lock expired");
    assert.equal(second.messageId, messageId);
    assert.ok(second.sequenceNumber.equals(first.sequenceNumber));
    assert.deepEqual(second.body, Buffer.from("let my lock lapse"));
    assert.equal(second.deliveryCount, 1);
    assert.notEqual(second.lockToken, first.lockToken);
    await receiver.completeMessage(second);
    await assertNothingToReceive(receiver);
    await receiver.close();
  });

  async function assertDeadLetteredForMaxDelivery(queueName, messageId, body) {
    const dlq = client.createReceiver(queueName, receiverOptions({ subQueueType: "deadLetter" }));
    const [dead] = await receiveExactly(dlq, 1);
    assert.ok(dead, "nothing in the dead-letter queue");
    assert.equal(dead.messageId, messageId);
    assert.deepEqual(dead.body, Buffer.from(body));
    assert.equal(dead.deadLetterReason, "MaxDeliveryCountExceeded");
    assert.ok(dead.deadLetterErrorDescription, "Service Bus sets a description too");
    await dlq.completeMessage(dead);
    await assertNothingToReceive(dlq);
    await dlq.close();
  }

  it("MaxDeliveryCount reached by abandon dead-letters the message", async () => {
    const queue = queueOf("maxdelivery");
    const messageId = uniqueId("maxdel-abandon");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("abandoned too often"), messageId });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    for (let attempt = 0; attempt < queue.maxDeliveryCount; attempt++) {
      const [message] = await receiveExactly(receiver, 1);
      assert.ok(message, `attempt ${attempt}: no message`);
      assert.equal(message.messageId, messageId);
      assert.equal(message.deliveryCount, attempt);
      await receiver.abandonMessage(message);
    }
    await assertNothingToReceive(receiver, 3000);
    await receiver.close();
    await assertDeadLetteredForMaxDelivery(queue.name, messageId, "abandoned too often");
  });

  it("MaxDeliveryCount reached by lock expiry dead-letters the message", async () => {
    const queue = queueOf("maxdelivery-expiry");
    const lockMs = queue.lockDurationMs;
    const messageId = uniqueId("maxdel-expiry");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("never settled"), messageId });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    for (let attempt = 0; attempt < queue.maxDeliveryCount; attempt++) {
      const [message] = await receiveExactly(receiver, 1, lockMs + 10000);
      assert.ok(message, `attempt ${attempt}: no message`);
      assert.equal(message.messageId, messageId);
      assert.equal(message.deliveryCount, attempt);
    }
    await assertNothingToReceive(receiver, lockMs + 3000);
    await receiver.close();
    await assertDeadLetteredForMaxDelivery(queue.name, messageId, "never settled");
  });
});
