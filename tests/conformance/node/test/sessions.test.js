// Emulator part 2 (issue 4): session receivers (named and next available), in-order delivery,
// one receiver per session, session state, session lock renewal and expiry, sessions on a
// subscription, peeking a session, and what a session-enabled entity refuses.
//
// `js-session` and the subscription `js-session-topic/sessions` require sessions and have a
// 5 s LockDuration (tests/conformance/config/Config.json). Every test completes what it sends,
// so a next-available receiver in a later test finds only that test's sessions.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  assertNothingToReceive,
  assertServiceBusError,
  newClient,
  queueOf,
  receiveExactly,
  receiverOptions,
  settings,
  sleep,
  uniqueId,
} from "./helpers.js";

const SUBSCRIPTION = "sessions";

describe("sessions", () => {
  let client;
  const topic = () => settings().queuePrefix + "session-topic";
  before(() => {
    // No retries: the SDK retries SessionCannotBeLocked and timeouts, which would hide them.
    client = newClient(undefined, { retryOptions: { maxRetries: 0, timeoutInMs: 15000 } });
  });
  after(async () => {
    await client.close();
  });

  async function send(entity, sessionId, bodies) {
    const sender = client.createSender(entity);
    await sender.sendMessages(bodies.map((b) => ({ body: Buffer.from(b), sessionId })));
    await sender.close();
  }

  /** Receives and completes `count` messages of `sessionId`, returning their bodies. */
  async function drainSession(queueName, sessionId, count) {
    const receiver = await client.acceptSession(queueName, sessionId, receiverOptions());
    const received = await receiveExactly(receiver, count);
    for (const message of received) await receiver.completeMessage(message);
    await receiver.close();
    return received.map((m) => m.body.toString());
  }

  it("named and next-available sessions deliver in order, with state and lock renewal", async () => {
    const queue = queueOf("session");
    await send(queue.name, "alpha", ["a0", "a1", "a2"]);
    await send(queue.name, "beta", ["b0"]);

    const alpha = await client.acceptSession(queue.name, "alpha", receiverOptions());
    assert.equal(alpha.sessionId, "alpha");
    assert.ok(alpha.sessionLockedUntilUtc instanceof Date);
    assert.ok(Math.abs(alpha.sessionLockedUntilUtc.getTime() - (Date.now() + queue.lockDurationMs)) < 2000);
    const received = await receiveExactly(alpha, 3);
    assert.deepEqual(received.map((m) => m.body.toString()), ["a0", "a1", "a2"]);
    assert.ok(received.every((m) => m.sessionId === "alpha"));
    for (const message of received) await alpha.completeMessage(message);
    await alpha.setSessionState("checkpoint");
    assert.equal(await alpha.getSessionState(), "checkpoint");
    const before = alpha.sessionLockedUntilUtc.getTime();
    await sleep(300);
    const renewed = await alpha.renewSessionLock();
    assert.ok(renewed instanceof Date);
    assert.ok(renewed.getTime() > before, `renewed ${renewed.toISOString()}`);
    await alpha.setSessionState(null);
    // Cleared: the SDK hands back whatever empty value the answer carries (null here).
    assert.equal((await alpha.getSessionState()) ?? null, null);
    await alpha.close();

    const next = await client.acceptNextSession(queue.name, receiverOptions());
    assert.equal(next.sessionId, "beta");
    const [beta] = await receiveExactly(next, 1);
    assert.equal(beta?.body.toString(), "b0");
    await next.completeMessage(beta);
    await next.close();
  });

  it("a locked session cannot be accepted by another receiver", async () => {
    const queue = queueOf("session");
    const sessionId = uniqueId("gamma");
    await send(queue.name, sessionId, ["g0"]);
    const holder = await client.acceptSession(queue.name, sessionId, receiverOptions());
    await assertServiceBusError(
      client.acceptSession(queue.name, sessionId, receiverOptions()),
      "SessionCannotBeLocked",
    );
    const [message] = await receiveExactly(holder, 1);
    await holder.completeMessage(message);
    await holder.close();
    // Closing the holder released the session.
    const again = await client.acceptSession(queue.name, sessionId, receiverOptions());
    await assertNothingToReceive(again, 1000);
    await again.close();
  });

  it("acceptNextSession times out when no session has messages", async () => {
    const queue = queueOf("session");
    const impatient = newClient(undefined, { retryOptions: { maxRetries: 0, timeoutInMs: 3000 } });
    try {
      const started = Date.now();
      await assertServiceBusError(impatient.acceptNextSession(queue.name, receiverOptions()), "ServiceTimeout");
      // The emulator waited for the com.microsoft:timeout the SDK sent before refusing.
      assert.ok(Date.now() - started >= 2500, `refused after ${Date.now() - started} ms`);
    } finally {
      await impatient.close();
    }
  });

  it("many messages arrive in order within a session, with another session interleaved", async () => {
    const queue = queueOf("session");
    const sessionId = uniqueId("many");
    const other = uniqueId("other");
    const bodies = Array.from({ length: 300 }, (_, i) => `m${String(i).padStart(4, "0")}`);
    for (let start = 0; start < bodies.length; start += 100) {
      await send(queue.name, sessionId, bodies.slice(start, start + 100));
      await send(queue.name, other, ["x"]);
    }
    // The SDK renews the 5 s session lock while this receiver works.
    const receiver = await client.acceptSession(
      queue.name,
      sessionId,
      receiverOptions({ maxAutoLockRenewalDurationInMs: 120000 }),
    );
    const received = await receiveExactly(receiver, bodies.length, 60000);
    assert.deepEqual(received.map((m) => m.body.toString()), bodies);
    const sequenceNumbers = received.map((m) => BigInt(m.sequenceNumber.toString()));
    assert.deepEqual(sequenceNumbers, [...sequenceNumbers].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    for (const message of received) await receiver.completeMessage(message);
    await receiver.close();
    assert.deepEqual(await drainSession(queue.name, other, 3), ["x", "x", "x"]);
  });

  it("an expired session lock frees the session for another receiver", async () => {
    const queue = queueOf("session");
    const sessionId = uniqueId("expiry");
    await send(queue.name, sessionId, ["e0"]);
    const holder = await client.acceptSession(queue.name, sessionId, receiverOptions());
    const [first] = await receiveExactly(holder, 1);
    assert.equal(first.deliveryCount, 0);
    // Outlive the 5 s session lock without renewing it.
    await sleep(queue.lockDurationMs + 1500);

    const otherClient = newClient(undefined, { retryOptions: { maxRetries: 0, timeoutInMs: 15000 } });
    try {
      const taker = await otherClient.acceptSession(queue.name, sessionId, receiverOptions());
      const [again] = await receiveExactly(taker, 1);
      assert.equal(again?.body.toString(), "e0");
      assert.equal(again.deliveryCount, 1);
      await assert.rejects(holder.completeMessage(first), (err) => {
        assert.equal(err.name, "ServiceBusError", `${err.name}: ${err.message}`);
        assert.ok(["SessionLockLost", "MessageLockLost"].includes(err.code), `code ${err.code}: ${err.message}`);
        return true;
      });
      await taker.completeMessage(again);
      await taker.close();
    } finally {
      await holder.close().catch(() => {});
      await otherClient.close();
    }
  });

  it("a plain receiver and a send without a session id are refused", async () => {
    const queue = queueOf("session");
    const sender = client.createSender(queue.name);
    await assert.rejects(sender.sendMessages({ body: Buffer.from("no session") }), (err) => {
      assert.equal(err.name, "ServiceBusError", `${err.name}: ${err.message}`);
      return true;
    });
    await sender.close();
    const receiver = client.createReceiver(queue.name, receiverOptions());
    await assert.rejects(receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 }), (err) => {
      assert.equal(err.name, "ServiceBusError", `${err.name}: ${err.message}`);
      assert.match(err.message, /session/i);
      return true;
    });
    await receiver.close();
  });

  it("peekMessages on a session receiver sees only that session", async () => {
    const queue = queueOf("session");
    const first = uniqueId("peek-a");
    const second = uniqueId("peek-b");
    await send(queue.name, first, ["p0", "p1"]);
    await send(queue.name, second, ["q0"]);

    const receiver = await client.acceptSession(queue.name, first, receiverOptions());
    const peeked = await receiver.peekMessages(10);
    assert.deepEqual(peeked.map((m) => m.body.toString()), ["p0", "p1"]);
    assert.ok(peeked.every((m) => m.sessionId === first));
    // Peeking locks nothing: both are still delivered.
    const received = await receiveExactly(receiver, 2);
    assert.deepEqual(received.map((m) => m.body.toString()), ["p0", "p1"]);
    for (const message of received) await receiver.completeMessage(message);
    await receiver.close();
    assert.deepEqual(await drainSession(queue.name, second, 1), ["q0"]);
  });

  it("deferred messages of a session are fetched and settled through the session", async () => {
    const queue = queueOf("session");
    const sessionId = uniqueId("defer");
    await send(queue.name, sessionId, ["d0", "d1"]);
    const receiver = await client.acceptSession(queue.name, sessionId, receiverOptions());
    const [first, second] = await receiveExactly(receiver, 2);
    await receiver.deferMessage(first);
    await receiver.completeMessage(second);
    // receive-by-sequence-number and the settlement that follows (update-disposition) carry
    // the session id.
    const [deferred] = await receiver.receiveDeferredMessages([first.sequenceNumber]);
    assert.equal(deferred?.body.toString(), "d0");
    assert.equal(deferred.sessionId, sessionId);
    await receiver.completeMessage(deferred);
    assert.deepEqual(await receiver.peekMessages(10), []);
    await receiver.close();
  });

  it("closing a session receiver frees the session and returns its unsettled message first", async () => {
    const queue = queueOf("session");
    const sessionId = uniqueId("release");
    await send(queue.name, sessionId, ["r0", "r1"]);
    const first = await client.acceptSession(queue.name, sessionId, receiverOptions());
    const [r0] = await receiveExactly(first, 1);
    assert.equal(r0?.body.toString(), "r0");
    await first.close();
    // No wait for the 5 s session lock: the session is free as soon as the link is gone.
    const second = await client.acceptSession(queue.name, sessionId, receiverOptions());
    const received = await receiveExactly(second, 2);
    assert.deepEqual(received.map((m) => m.body.toString()), ["r0", "r1"]);
    assert.equal(received[0].deliveryCount, 1);
    for (const message of received) await second.completeMessage(message);
    await second.close();
  });

  it("sessions on a subscription: named, state, next available", async () => {
    const sender = client.createSender(topic());
    await sender.sendMessages(["s0", "s1", "s2"].map((b) => ({ body: Buffer.from(b), sessionId: "sub-a" })));
    await sender.sendMessages({ body: Buffer.from("t0"), sessionId: "sub-b" });
    await sender.close();

    const named = await client.acceptSession(topic(), SUBSCRIPTION, "sub-a", receiverOptions());
    assert.equal(named.sessionId, "sub-a");
    const received = await receiveExactly(named, 3);
    assert.deepEqual(received.map((m) => m.body.toString()), ["s0", "s1", "s2"]);
    await named.setSessionState("sub-state");
    assert.equal(await named.getSessionState(), "sub-state");
    await named.setSessionState(null);
    assert.equal((await named.getSessionState()) ?? null, null);
    for (const message of received) await named.completeMessage(message);
    await named.close();

    const next = await client.acceptNextSession(topic(), SUBSCRIPTION, receiverOptions());
    assert.equal(next.sessionId, "sub-b");
    const [message] = await receiveExactly(next, 1);
    assert.equal(message?.body.toString(), "t0");
    await next.completeMessage(message);
    await next.close();
  });
});
