// Drive the echo broker with Microsoft's @azure/service-bus SDK (rhea underneath): send
// single and batched messages, receive in peek-lock and complete, receive-and-delete.
// Exits non-zero on any mismatch. Messages carry a messageId: the JS SDK refuses to
// complete a received message without one, and the echo broker assigns none.
const { ServiceBusClient } = require("@azure/service-bus");

const port = process.argv[2];
const connectionString =
  `Endpoint=sb://localhost:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
  "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

async function receiveAll(receiver, expectedCount) {
  const bodies = [];
  while (bodies.length < expectedCount) {
    const messages = await receiver.receiveMessages(10, { maxWaitTimeInMs: 5000 });
    if (messages.length === 0) break;
    for (const message of messages) {
      bodies.push(message.body);
      if (receiver.receiveMode === "peekLock") await receiver.completeMessage(message);
    }
  }
  return bodies;
}

async function main() {
  const client = new ServiceBusClient(connectionString);
  const sender = client.createSender("queue1");
  for (let i = 0; i < 5; i++) await sender.sendMessages({ body: `single-${i}`, messageId: `s${i}` });
  const batch = await sender.createMessageBatch();
  for (let i = 0; i < 3; i++) batch.tryAddMessage({ body: `batch-${i}`, messageId: `b${i}` });
  await sender.sendMessages(batch);
  await sender.sendMessages({ body: "x".repeat(200000), messageId: "big" });
  await sender.close();

  const expected = [0, 1, 2, 3, 4].map((i) => `single-${i}`)
    .concat([0, 1, 2].map((i) => `batch-${i}`))
    .concat(["x".repeat(200000)]);
  const receiver = client.createReceiver("queue1");
  const got = await receiveAll(receiver, expected.length);
  await receiver.close();
  if (JSON.stringify(got) !== JSON.stringify(expected)) {
    console.error("peek-lock mismatch:", got.map((b) => String(b).slice(0, 20)));
    process.exit(1);
  }

  const sender2 = client.createSender("queue2");
  await sender2.sendMessages([0, 1, 2, 3].map((i) => ({ body: `rd-${i}` })));
  await sender2.close();
  const receiver2 = client.createReceiver("queue2", { receiveMode: "receiveAndDelete" });
  const got2 = await receiveAll(receiver2, 4);
  await receiver2.close();
  if (JSON.stringify(got2) !== JSON.stringify(["rd-0", "rd-1", "rd-2", "rd-3"])) {
    console.error("receive-and-delete mismatch:", got2);
    process.exit(1);
  }
  await client.close();
  console.log("node sdk roundtrip ok");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
