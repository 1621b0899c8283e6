// Shared helpers for the @azure/service-bus conformance tests: settings from the
// environment (see ../../README.md), the entity config the emulator serves, receive loops
// with explicit deadlines. Only the SDK's public API is used.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServiceBusClient } from "@azure/service-bus";

const here = dirname(fileURLToPath(import.meta.url));

export function settings() {
  const connection = process.env.BUSDRAIN_SB_CONNECTION;
  if (!connection) {
    throw new Error(
      "BUSDRAIN_SB_CONNECTION is not set: start the emulator with tests/conformance/config/Config.json " +
        "and export its connection string (tests/conformance/run does both)",
    );
  }
  return {
    connection,
    listenConnection: process.env.BUSDRAIN_SB_LISTEN_CONNECTION || undefined,
    sendConnection: process.env.BUSDRAIN_SB_SEND_CONNECTION || undefined,
    queuePrefix: process.env.BUSDRAIN_SB_QUEUE_PREFIX ?? "js-",
    configPath: process.env.BUSDRAIN_SB_CONFIG ?? join(here, "..", "..", "config", "Config.json"),
  };
}

const durationPattern = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** ISO-8601 PnDTnHnMnS -> milliseconds. */
export function parseDurationMs(text) {
  const match = durationPattern.exec(text);
  if (!match || text === "P" || text === "PT") {
    throw new Error(`unsupported ISO-8601 duration ${JSON.stringify(text)}`);
  }
  const [days, hours, minutes, seconds] = match.slice(1).map((g) => (g ? Number(g) : 0));
  return (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000;
}

/** The properties of `<prefix><group>` from the Config.json the emulator was started with. */
export function queueOf(group) {
  const { queuePrefix, configPath } = settings();
  const name = queuePrefix + group;
  const document = JSON.parse(readFileSync(configPath, "utf8"));
  const entry = document.UserConfig.Namespaces[0].Queues.find((q) => q.Name === name);
  if (!entry) {
    throw new Error(`queue ${name} is missing from ${configPath}`);
  }
  const props = entry.Properties ?? {};
  return {
    name,
    lockDurationMs: parseDurationMs(props.LockDuration ?? "PT1M"),
    maxDeliveryCount: props.MaxDeliveryCount ?? 10,
    defaultTtlMs: parseDurationMs(props.DefaultMessageTimeToLive ?? "PT1H"),
    deadLetterOnExpiration: props.DeadLetteringOnMessageExpiration ?? false,
  };
}

export function newClient(connection = settings().connection, options = {}) {
  return new ServiceBusClient(connection, options);
}

/** The same connection string with another SharedAccessKey. */
export function withKey(connection, key) {
  const parts = connection.trim().replace(/;$/, "").split(";").filter(Boolean);
  const replaced = parts.map((p) => (p.toLowerCase().startsWith("sharedaccesskey=") ? `SharedAccessKey=${key}` : p));
  assert.notDeepEqual(replaced, parts, "connection string has no SharedAccessKey");
  return replaced.join(";") + ";";
}

export function uniqueId(label) {
  return `${label}-${randomUUID()}`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Peek-lock receivers for these tests: bodies as raw Buffers, and no automatic lock renewal
 * (the SDK renews for 5 minutes by default, which would hide lock expiry).
 */
export function receiverOptions(extra = {}) {
  return { skipParsingBodyAsJson: true, maxAutoLockRenewalDurationInMs: 0, ...extra };
}

/** Receives until `count` messages arrived or the deadline passed; returns what arrived. */
export async function receiveExactly(receiver, count, deadlineMs = 20000) {
  const received = [];
  const deadline = Date.now() + deadlineMs;
  while (received.length < count) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const batch = await receiver.receiveMessages(Math.min(count - received.length, 500), {
      maxWaitTimeInMs: Math.min(remaining, 5000),
    });
    received.push(...batch);
  }
  return received;
}

/** Fails if a message can still be received within `waitMs`. */
export async function assertNothingToReceive(receiver, waitMs = 2000) {
  const leftovers = await receiver.receiveMessages(10, { maxWaitTimeInMs: waitMs });
  assert.deepEqual(
    leftovers.map((m) => [m.messageId, String(m.sequenceNumber), m.deliveryCount]),
    [],
    "expected no message",
  );
}

/** Asserts `promise` rejects with a ServiceBusError whose `code` is `code`. */
export async function assertServiceBusError(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.name, "ServiceBusError", `expected a ServiceBusError, got ${err.name}: ${err.message}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    return true;
  });
}

/**
 * A strict expected failure for a feature the emulator does not have yet: the body must
 * fail (its error is reported as a diagnostic); if it passes, the test fails so that the
 * marker, whose `reason` names the missing feature, gets removed.
 */
export function expectedFailure(reason, body) {
  return async (t) => {
    try {
      await body(t);
    } catch (err) {
      t.diagnostic(`expected failure (${reason}): ${err?.message ?? err}`);
      return;
    }
    throw new Error(`unexpectedly passed, remove the expected-failure marker: ${reason}`);
  };
}
