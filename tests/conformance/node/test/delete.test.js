// Emulator part 2 (issue 4): $management batch-delete-messages, through the receiver's
// deleteMessages / purgeMessages.
//
// The stable SDK (7.9.5) has no delete API; it first appears in 7.10.0-beta.2, installed
// under the alias "@azure/service-bus-beta" (package.json) for this file only, so every other
// test keeps running on the stable release.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ServiceBusClient } from "@azure/service-bus-beta";
import Long from "long";
import { settings, sleep, uniqueId } from "./helpers.js";

describe("batch delete (deleteMessages / purgeMessages, @azure/service-bus 7.10.0-beta.2)", () => {
  let client;
  const queue = () => settings().queuePrefix + "delete";
  // Each run uses new session ids, so leftovers from earlier runs do not matter.
  const sessionQueue = () => settings().queuePrefix + "delete-session";
  before(() => {
    client = new ServiceBusClient(settings().connection, {
      retryOptions: { maxRetries: 0, timeoutInMs: 15000 },
    });
  });
  after(async () => {
    await client.close();
  });

  async function send(entity, messages) {
    const sender = client.createSender(entity);
    await sender.sendMessages(messages);
    await sender.close();
  }

  /** Empties `entity` by receive-and-delete, so a test starts from nothing. */
  async function drain(entity) {
    const receiver = client.createReceiver(entity, { receiveMode: "receiveAndDelete" });
    while ((await receiver.receiveMessages(100, { maxWaitTimeInMs: 500 })).length > 0);
    await receiver.close();
  }

  /** Message ids still in the receiver's entity, oldest first, without locking them. */
  async function remaining(receiver) {
    // From the start each time: without it the SDK continues after the last peeked message.
    const peeked = await receiver.peekMessages(100, { fromSequenceNumber: Long.fromNumber(1) });
    return peeked.map((m) => m.messageId);
  }

  it("deleteMessages removes the oldest messages up to the count; purgeMessages the rest", async () => {
    await drain(queue());
    const run = uniqueId("del");
    const ids = [1, 2, 3, 4, 5].map((n) => `${run}-${n}`);
    await send(queue(), ids.map((messageId) => ({ body: messageId, messageId })));

    const receiver = client.createReceiver(queue());
    assert.equal(await receiver.deleteMessages({ maxMessageCount: 3 }), 3);
    assert.deepEqual(await remaining(receiver), ids.slice(3), "the three oldest went");
    assert.equal(await receiver.purgeMessages(), 2);
    assert.deepEqual(await remaining(receiver), []);
    assert.equal(await receiver.deleteMessages({ maxMessageCount: 10 }), 0, "nothing left to delete");
    assert.deepEqual(await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 }), []);
    await receiver.close();
  });

  it("beforeEnqueueTime keeps messages enqueued after it", async () => {
    await drain(queue());
    const run = uniqueId("before");
    await send(queue(), [{ body: "old", messageId: `${run}-old` }]);
    await sleep(1200);
    const cutoff = new Date();
    await sleep(1200);
    await send(queue(), [{ body: "new", messageId: `${run}-new` }]);

    const receiver = client.createReceiver(queue());
    assert.equal(await receiver.purgeMessages({ beforeEnqueueTime: cutoff }), 1);
    assert.deepEqual(await remaining(receiver), [`${run}-new`]);
    assert.equal(await receiver.purgeMessages(), 1);
    await receiver.close();
  });

  it("a session receiver deletes only its own session's messages", async () => {
    const run = uniqueId("sess");
    const a = `${run}-a`;
    const b = `${run}-b`;
    await send(sessionQueue(), [
      { body: "a1", messageId: `${a}-1`, sessionId: a },
      { body: "b1", messageId: `${b}-1`, sessionId: b },
      { body: "a2", messageId: `${a}-2`, sessionId: a },
      { body: "b2", messageId: `${b}-2`, sessionId: b },
    ]);
    const sessionA = await client.acceptSession(sessionQueue(), a);
    assert.equal(await sessionA.deleteMessages({ maxMessageCount: 10 }), 2);
    assert.deepEqual(await sessionA.receiveMessages(1, { maxWaitTimeInMs: 1000 }), []);
    await sessionA.close();

    const sessionB = await client.acceptSession(sessionQueue(), b, { receiveMode: "receiveAndDelete" });
    const left = await sessionB.receiveMessages(10, { maxWaitTimeInMs: 2000 });
    assert.deepEqual(left.map((m) => m.messageId), [`${b}-1`, `${b}-2`], "the other session is untouched");
    await sessionB.close();
  });

  it("a message count outside 1..4000 is refused", async () => {
    const receiver = client.createReceiver(queue());
    // The SDK itself refuses counts below 1; above Service Bus's limit the emulator refuses.
    await assert.rejects(receiver.deleteMessages({ maxMessageCount: 0 }), TypeError);
    await assert.rejects(receiver.deleteMessages({ maxMessageCount: 4001 }), (err) => {
      assert.match(err.message, /4000/, err.message);
      return true;
    });
    await receiver.close();
  });
});
