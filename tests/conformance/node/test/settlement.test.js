// Abandon, defer (+ receiveDeferredMessages), dead-letter (+ read and complete from the
// DLQ), receiveAndDelete, peek.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Long from "long";
import {
  assertNothingToReceive,
  assertServiceBusError,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  uniqueId,
} from "./helpers.js";

const FROM_START = { fromSequenceNumber: Long.fromNumber(1) };

describe("settlement", () => {
  let client;
  before(() => {
    client = newClient();
  });
  after(async () => {
    await client.close();
  });

  it("abandon redelivers with deliveryCount incremented", async () => {
    const queue = queueOf("abandon");
    const messageId = uniqueId("abandon");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("abandon me"), messageId });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [first] = await receiveExactly(receiver, 1);
    assert.ok(first, "no message received");
    assert.equal(first.deliveryCount, 0);
    await receiver.abandonMessage(first);

    const [second] = await receiveExactly(receiver, 1);
    assert.ok(second, "abandoned message not redelivered");
    assert.equal(second.messageId, messageId);
    assert.deepEqual(second.body, Buffer.from("abandon me"));
    assert.ok(second.sequenceNumber.equals(first.sequenceNumber));
    assert.equal(second.deliveryCount, 1);
    // Abandon may modify application properties.
    await receiver.abandonMessage(second, { retried: "yes" });

    const [third] = await receiveExactly(receiver, 1);
    assert.ok(third, "abandoned message not redelivered");
    assert.equal(third.deliveryCount, 2);
    assert.equal(third.applicationProperties?.retried, "yes");
    await receiver.completeMessage(third);
    await assertNothingToReceive(receiver);
    await receiver.close();
  });

  it("a deferred message is only received by its sequence number", async () => {
    const queue = queueOf("defer");
    const messageId = uniqueId("defer");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("defer me"), messageId });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(receiver, 1);
    assert.ok(message, "no message received");
    const sequenceNumber = message.sequenceNumber;
    await receiver.deferMessage(message);

    await assertNothingToReceive(receiver, 3000);
    const peeked = await receiver.peekMessages(10, FROM_START);
    assert.equal(peeked.length, 1);
    assert.ok(peeked[0].sequenceNumber.equals(sequenceNumber));
    assert.equal(peeked[0].state, "deferred");

    const [deferred] = await receiver.receiveDeferredMessages(sequenceNumber);
    assert.ok(deferred, "deferred message not returned");
    assert.equal(deferred.messageId, messageId);
    assert.deepEqual(deferred.body, Buffer.from("defer me"));
    assert.equal(deferred.state, "deferred");
    assert.equal(deferred.deliveryCount, 1);
    assert.ok(deferred.lockedUntilUtc instanceof Date);
    // Settling a deferred message goes through $management update-disposition: abandon it
    // (with a property to modify), it stays deferred with one more delivery counted.
    await receiver.abandonMessage(deferred, { step: "abandoned-while-deferred" });
    const [redeferred] = await receiver.receiveDeferredMessages(sequenceNumber);
    assert.ok(redeferred, "abandoned deferred message not returned");
    assert.equal(redeferred.deliveryCount, 2);
    assert.equal(redeferred.applicationProperties?.step, "abandoned-while-deferred");
    await receiver.completeMessage(redeferred);

    await assertServiceBusError(receiver.receiveDeferredMessages([sequenceNumber]), "MessageNotFound");
    assert.deepEqual(await receiver.peekMessages(10, FROM_START), []);
    await receiver.close();
  });

  it("dead-letter keeps reason and description; the DLQ message is settleable", async () => {
    const queue = queueOf("deadletter");
    const messageId = uniqueId("dead");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("poison"), messageId, applicationProperties: { origin: "test" } });
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(receiver, 1);
    assert.ok(message, "no message received");
    await receiver.deadLetterMessage(message, {
      deadLetterReason: "BadPayload",
      deadLetterErrorDescription: "field $.id is missing",
      handledBy: "conformance",
    });
    await assertNothingToReceive(receiver);
    await receiver.close();

    const dlq = client.createReceiver(queue.name, receiverOptions({ subQueueType: "deadLetter" }));
    const [dead] = await receiveExactly(dlq, 1);
    assert.ok(dead, "nothing in the dead-letter queue");
    assert.equal(dead.messageId, messageId);
    assert.deepEqual(dead.body, Buffer.from("poison"));
    assert.equal(dead.deadLetterReason, "BadPayload");
    assert.equal(dead.deadLetterErrorDescription, "field $.id is missing");
    assert.equal(dead.applicationProperties?.origin, "test");
    assert.equal(dead.applicationProperties?.handledBy, "conformance");
    assert.equal(dead.deliveryCount, 0);
    await dlq.abandonMessage(dead);
    const [again] = await receiveExactly(dlq, 1);
    assert.ok(again, "abandoned DLQ message not redelivered");
    assert.equal(again.messageId, messageId);
    await dlq.completeMessage(again);
    await assertNothingToReceive(dlq);
    await dlq.close();
  });

  it("receiveAndDelete removes messages on delivery", async () => {
    const queue = queueOf("receivedelete");
    const bodies = Array.from({ length: 5 }, (_, i) => `rad-${i}`);
    const sender = client.createSender(queue.name);
    await sender.sendMessages(bodies.map((b) => ({ body: Buffer.from(b) })));
    await sender.close();

    const receiver = client.createReceiver(queue.name, { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true });
    const received = await receiveExactly(receiver, 5);
    assert.deepEqual(received.map((m) => m.body.toString()).sort(), bodies);
    assert.ok(received.every((m) => m.lockToken === undefined));
    await receiver.close();

    const check = client.createReceiver(queue.name, receiverOptions());
    assert.deepEqual(await check.peekMessages(10, FROM_START), []);
    await assertNothingToReceive(check, 3000);
    await check.close();
  });

  it("peek browses without locking, in sequence order", async () => {
    const queue = queueOf("peek");
    const bodies = Array.from({ length: 5 }, (_, i) => `peek-${i}`);
    const sender = client.createSender(queue.name);
    for (const body of bodies) {
      await sender.sendMessages({ body: Buffer.from(body) });
    }
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const peeked = await receiver.peekMessages(10, FROM_START);
    assert.deepEqual(
      peeked.map((m) => m.body.toString()),
      bodies,
    );
    const sequenceNumbers = peeked.map((m) => m.sequenceNumber);
    for (let i = 1; i < sequenceNumbers.length; i++) {
      assert.ok(sequenceNumbers[i].greaterThan(sequenceNumbers[i - 1]), "sequence numbers must ascend");
    }
    assert.ok(peeked.every((m) => m.deliveryCount === 0 && !m.lockToken));

    const tail = await receiver.peekMessages(2, { fromSequenceNumber: sequenceNumbers[2] });
    assert.deepEqual(
      tail.map((m) => m.sequenceNumber.toString()),
      sequenceNumbers.slice(2, 4).map(String),
    );

    const received = await receiveExactly(receiver, 5);
    assert.deepEqual(
      received.map((m) => m.sequenceNumber.toString()).sort(),
      sequenceNumbers.map(String).sort(),
    );
    assert.ok(received.every((m) => m.deliveryCount === 0));
    assert.equal((await receiver.peekMessages(10, FROM_START)).length, 5);
    for (const message of received) {
      await receiver.completeMessage(message);
    }
    assert.deepEqual(await receiver.peekMessages(10, FROM_START), []);
    await receiver.close();
  });
});
