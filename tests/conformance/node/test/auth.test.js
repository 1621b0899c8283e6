// SAS authorization through $cbs: a wrong key is refused, rights are enforced per
// operation (Listen-only cannot send, Send-only cannot receive). The runner starts the
// emulator with a Listen-only and a Send-only policy (see ../../README.md).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Long from "long";
import {
  assertServiceBusError,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  settings,
  uniqueId,
  withKey,
} from "./helpers.js";

// An auth failure is final: no retries, so the test fails fast.
const NO_RETRY = { retryOptions: { maxRetries: 0, timeoutInMs: 15000 } };
const FROM_START = { fromSequenceNumber: Long.fromNumber(1) };

function policyConnection(name, variable) {
  const value = settings()[name];
  assert.ok(value, `${variable} is not set`);
  return value;
}

describe("authorization", () => {
  let client;
  before(() => {
    client = newClient();
  });
  after(async () => {
    await client.close();
  });

  async function assertQueueEmpty(queueName) {
    const receiver = client.createReceiver(queueName, receiverOptions());
    assert.deepEqual(await receiver.peekMessages(10, FROM_START), []);
    await receiver.close();
  }

  it("a wrong key is refused", async () => {
    const queue = queueOf("auth");
    const bad = newClient(withKey(settings().connection, "bm90IHRoZSByaWdodCBrZXk="), NO_RETRY);
    const sender = bad.createSender(queue.name);
    await assertServiceBusError(sender.sendMessages({ body: Buffer.from("must not arrive") }), "UnauthorizedAccess");
    await bad.close();
    await assertQueueEmpty(queue.name);
  });

  it("a Listen-only policy cannot send but can receive", async () => {
    const queue = queueOf("auth");
    const listen = newClient(policyConnection("listenConnection", "BUSDRAIN_SB_LISTEN_CONNECTION"), NO_RETRY);
    const sender = listen.createSender(queue.name);
    await assertServiceBusError(sender.sendMessages({ body: Buffer.from("must not arrive") }), "UnauthorizedAccess");
    await assertQueueEmpty(queue.name);

    const messageId = uniqueId("listen");
    const rootSender = client.createSender(queue.name);
    await rootSender.sendMessages({ body: Buffer.from("for the listener"), messageId });
    await rootSender.close();
    const receiver = listen.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(receiver, 1);
    assert.ok(message, "Listen policy received nothing");
    assert.equal(message.messageId, messageId);
    await receiver.completeMessage(message);
    await listen.close();
  });

  it("a Send-only policy cannot receive but can send", async () => {
    const queue = queueOf("auth");
    const sendOnly = newClient(policyConnection("sendConnection", "BUSDRAIN_SB_SEND_CONNECTION"), NO_RETRY);
    const messageId = uniqueId("send-only");
    const sender = sendOnly.createSender(queue.name);
    await sender.sendMessages({ body: Buffer.from("from the sender"), messageId });
    const receiver = sendOnly.createReceiver(queue.name, receiverOptions());
    await assertServiceBusError(receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 }), "UnauthorizedAccess");
    await sendOnly.close();

    const rootReceiver = client.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(rootReceiver, 1);
    assert.ok(message, "the Send policy's message did not arrive");
    assert.equal(message.messageId, messageId);
    assert.equal(message.deliveryCount, 0);
    await rootReceiver.completeMessage(message);
    await rootReceiver.close();
  });
});
