"""Drive the echo broker with Microsoft's azure-servicebus SDK: send single and batched
messages, receive them in peek-lock and complete them, then receive-and-delete.
Exits non-zero on any mismatch."""
import sys

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode

port = int(sys.argv[1])
conn_str = (
    f"Endpoint=sb://localhost:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)

with ServiceBusClient.from_connection_string(conn_str) as client:
    with client.get_queue_sender("queue1") as sender:
        for i in range(5):
            sender.send_messages(ServiceBusMessage(f"single-{i}"))
        batch = sender.create_message_batch()
        for i in range(3):
            batch.add_message(ServiceBusMessage(f"batch-{i}"))
        sender.send_messages(batch)
        sender.send_messages(ServiceBusMessage("x" * 300_000))

    expected = [f"single-{i}" for i in range(5)] + [f"batch-{i}" for i in range(3)] + ["x" * 300_000]
    got = []
    with client.get_queue_receiver("queue1", max_wait_time=5) as receiver:
        while len(got) < len(expected):
            messages = receiver.receive_messages(max_message_count=10, max_wait_time=5)
            if not messages:
                break
            for m in messages:
                got.append(str(m))
                receiver.complete_message(m)
    if got != expected:
        print(f"peek-lock mismatch: got {[g[:20] for g in got]}", file=sys.stderr)
        sys.exit(1)

    with client.get_queue_sender("queue2") as sender:
        sender.send_messages([ServiceBusMessage(f"rd-{i}") for i in range(4)])
    got = []
    with client.get_queue_receiver(
        "queue2", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=5
    ) as receiver:
        while len(got) < 4:
            messages = receiver.receive_messages(max_message_count=10, max_wait_time=5)
            if not messages:
                break
            got.extend(str(m) for m in messages)
    if got != [f"rd-{i}" for i in range(4)]:
        print(f"receive-and-delete mismatch: got {got}", file=sys.stderr)
        sys.exit(1)

print("python sdk roundtrip ok")
