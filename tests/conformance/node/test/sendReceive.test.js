// Send (single, array, ServiceBusMessageBatch), peek-lock receive + complete, message
// properties and broker-stamped properties.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Long from "long";
import {
  assertNothingToReceive,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  uniqueId,
} from "./helpers.js";

describe("send and receive", () => {
  let client;
  before(() => {
    client = newClient();
  });
  after(async () => {
    await client.close();
  });

  it("delivers a single message with its body and removes it on complete", async () => {
    const queue = queueOf("basic");
    const messageId = uniqueId("single");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("hello busdrain"), messageId });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [received, ...extra] = await receiveExactly(receiver, 1);
    assert.equal(extra.length, 0);
    assert.ok(received, "no message received");
    assert.deepEqual(received.body, Buffer.from("hello busdrain"));
    assert.equal(received.messageId, messageId);
    assert.equal(received.deliveryCount, 0);
    assert.match(received.lockToken, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    await receiver.completeMessage(received);
    await receiver.close();

    const again = client.createReceiver(queue.name, receiverOptions());
    await assertNothingToReceive(again, 3000);
    assert.deepEqual(await again.peekMessages(10, { fromSequenceNumber: Long.fromNumber(1) }), []);
    await again.close();
  });

  it("delivers a message batch whole and in order", async () => {
    const queue = queueOf("batch");
    const bodies = Array.from({ length: 100 }, (_, i) => `batch-${String(i).padStart(3, "0")}`);
    const listBodies = Array.from({ length: 10 }, (_, i) => `list-${i}`);
    const sender = client.createSender(queue.name);
    const batch = await sender.createMessageBatch();
    assert.ok(batch.maxSizeInBytes > 0);
    for (const body of bodies) {
      assert.equal(batch.tryAddMessage({ body: Buffer.from(body) }), true, `batch refused ${body}`);
    }
    assert.equal(batch.count, 100);
    await sender.sendMessages(batch);
    // An array is sent as one batch too.
    await sender.sendMessages(listBodies.map((b) => ({ body: Buffer.from(b) })));
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const received = await receiveExactly(receiver, 110, 30000);
    assert.equal(received.length, 110);
    const bySequence = [...received].sort((a, b) => a.sequenceNumber.compare(b.sequenceNumber));
    assert.deepEqual(
      bySequence.map((m) => m.body.toString()),
      [...bodies, ...listBodies],
    );
    assert.equal(new Set(received.map((m) => m.sequenceNumber.toString())).size, 110);
    for (const message of received) {
      await receiver.completeMessage(message);
    }
    await assertNothingToReceive(receiver);
    await receiver.close();
  });

  it("round-trips message and application properties", async () => {
    const queue = queueOf("props");
    const everyByte = Buffer.alloc(1024, 0).map((_, i) => i % 256);
    const sender = client.createSender(queue.name);
    await sender.sendMessages({
      body: everyByte,
      messageId: "props-message-id",
      correlationId: "props-correlation",
      subject: "props-subject",
      contentType: "application/octet-stream",
      replyTo: "reply-queue",
      to: "somewhere",
      applicationProperties: { text: "value", count: 42, ratio: 1.5, flag: true },
    });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [received] = await receiveExactly(receiver, 1);
    assert.ok(received, "no message received");
    assert.deepEqual(Buffer.from(received.body), everyByte);
    assert.equal(received.messageId, "props-message-id");
    assert.equal(received.correlationId, "props-correlation");
    assert.equal(received.subject, "props-subject");
    assert.equal(received.contentType, "application/octet-stream");
    assert.equal(received.replyTo, "reply-queue");
    assert.equal(received.to, "somewhere");
    assert.deepEqual(received.applicationProperties, { text: "value", count: 42, ratio: 1.5, flag: true });
    await receiver.completeMessage(received);
    await receiver.close();
  });

  it("stamps broker properties: sequence number, enqueued time, locked until", async () => {
    const queue = queueOf("broker");
    const before = Date.now();
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("first"), messageId: "first" });
    await sender.sendMessages({ body: Buffer.from("second"), messageId: "second" });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const received = await receiveExactly(receiver, 2);
    assert.deepEqual(
      received.map((m) => m.messageId),
      ["first", "second"],
    );
    const [first, second] = received;
    assert.ok(Long.isLong(first.sequenceNumber) && first.sequenceNumber.greaterThan(0));
    assert.ok(second.sequenceNumber.greaterThan(first.sequenceNumber));
    const slackMs = 5000;
    for (const message of received) {
      assert.equal(message.state, "active");
      const enqueued = message.enqueuedTimeUtc.getTime();
      assert.ok(enqueued >= before - slackMs && enqueued <= Date.now() + slackMs, `enqueued ${enqueued}`);
      const lockLeft = message.lockedUntilUtc.getTime() - Date.now();
      assert.ok(
        lockLeft >= queue.lockDurationMs - slackMs && lockLeft <= queue.lockDurationMs + slackMs,
        `lock left ${lockLeft} ms`,
      );
      await receiver.completeMessage(message);
    }
    await assertNothingToReceive(receiver);
    await receiver.close();
  });
});
