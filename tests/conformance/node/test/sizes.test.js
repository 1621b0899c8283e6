// Large messages: 1 MB round-trips, an oversized one is refused (code MessageSizeExceeded),
// a batch filled to the link's max message size is accepted whole.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
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

const ONE_MB_BODY = 1000 * 1024;
const OVERSIZED_BODY = 4 * 1024 * 1024;

describe("message sizes", () => {
  let client;
  before(() => {
    client = newClient();
  });
  after(async () => {
    await client.close();
  });

  it("a 1 MB message round-trips", async () => {
    const queue = queueOf("large");
    const body = randomBytes(ONE_MB_BODY);
    const messageId = uniqueId("large");
    const sender = client.createSender(queue.name);
    await sender.sendMessages({ body, messageId });
    await sender.close();
    const receiver = client.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(receiver, 1, 30000);
    assert.ok(message, "no message received");
    assert.equal(message.messageId, messageId);
    assert.ok(Buffer.compare(message.body, body) === 0, "body differs");
    await receiver.completeMessage(message);
    await receiver.close();
  });

  it("an oversized message is refused and nothing is stored", async () => {
    const queue = queueOf("oversize");
    const sender = client.createSender(queue.name);
    await assertServiceBusError(
      sender.sendMessages({ body: Buffer.alloc(OVERSIZED_BODY, 120), messageId: uniqueId("too-big") }),
      "MessageSizeExceeded",
    );
    await sender.close();
    const receiver = client.createReceiver(queue.name, receiverOptions());
    assert.deepEqual(await receiver.peekMessages(10, { fromSequenceNumber: Long.fromNumber(1) }), []);
    await receiver.close();

    const again = client.createSender(queue.name);
    await again.sendMessages({ body: Buffer.from("small after big") });
    await again.close();
    const check = client.createReceiver(queue.name, receiverOptions());
    const [message] = await receiveExactly(check, 1);
    assert.ok(message, "no message received");
    assert.deepEqual(message.body, Buffer.from("small after big"));
    await check.completeMessage(message);
    await check.close();
  });

  it("a batch filled to the advertised size is accepted whole", async () => {
    const queue = queueOf("fullbatch");
    const chunk = randomBytes(16 * 1024);
    const sender = client.createSender(queue.name);
    const batch = await sender.createMessageBatch();
    let count = 0;
    while (batch.tryAddMessage({ body: chunk, applicationProperties: { n: count } })) {
      count++;
    }
    assert.ok(count >= 10 && batch.count === count, `count ${count}, max ${batch.maxSizeInBytes}`);
    await sender.sendMessages(batch);
    await sender.close();

    const receiver = client.createReceiver(queue.name, receiverOptions());
    const received = await receiveExactly(receiver, count, 60000);
    assert.equal(received.length, count);
    assert.deepEqual(
      received.map((m) => m.applicationProperties.n).sort((a, b) => a - b),
      Array.from({ length: count }, (_, i) => i),
    );
    assert.ok(received.every((m) => Buffer.compare(m.body, chunk) === 0));
    for (const message of received) {
      await receiver.completeMessage(message);
    }
    await assertNothingToReceive(receiver);
    await receiver.close();
  });
});
