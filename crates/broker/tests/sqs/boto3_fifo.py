"""boto3 (PyPI) against the broker's SQS port: FIFO queues.

argv: sqs_url. Message groups (one in-flight message blocks its group, order kept when a
message comes back), the five-minute deduplication window (explicit ids and
ContentBasedDeduplication), SequenceNumber, and AWS's error codes for misuse. Every step
asserts on what the server answered; the Rust test checks the final "ok".
"""
import hashlib
import sys

from sqs_client import client, code

sqs = client(sys.argv[1], "us-east-1")


def receive(url, n=10):
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=n, MessageSystemAttributeNames=["All"]
    )
    return got.get("Messages", [])


# A FIFO queue is asked for by name *and* attribute.
assert code(sqs.create_queue, QueueName="orders.fifo") == "InvalidParameterValue"
assert code(sqs.create_queue, QueueName="orders", Attributes={"FifoQueue": "true"}) == "InvalidParameterValue"
orders = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
assert orders.endswith("/000000000000/orders.fifo"), orders
attributes = sqs.get_queue_attributes(QueueUrl=orders, AttributeNames=["All"])["Attributes"]
assert attributes["FifoQueue"] == "true", attributes
assert attributes["ContentBasedDeduplication"] == "false", attributes
assert code(sqs.set_queue_attributes, QueueUrl=orders, Attributes={"FifoQueue": "false"}) == "InvalidAttributeValue"

# Misuse, with AWS's codes.
assert code(sqs.send_message, QueueUrl=orders, MessageBody="x", MessageDeduplicationId="d") == "MissingParameter"
assert code(sqs.send_message, QueueUrl=orders, MessageBody="x", MessageGroupId="g") == "InvalidParameterValue"
assert code(
    sqs.send_message, QueueUrl=orders, MessageBody="x", MessageGroupId="g",
    MessageDeduplicationId="d", DelaySeconds=5,
) == "InvalidParameterValue"
assert code(
    sqs.send_message, QueueUrl=orders, MessageBody="x", MessageGroupId="g" * 129,
    MessageDeduplicationId="d",
) == "InvalidParameterValue"


def send(body, group, dedup):
    return sqs.send_message(
        QueueUrl=orders, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup
    )


a1 = send("a1", "customer-a", "a1")
a2 = send("a2", "customer-a", "a2")
b1 = send("b1", "customer-b", "b1")
sequence = [int(r["SequenceNumber"]) for r in (a1, a2, b1)]
assert sequence == sorted(sequence) and len(set(sequence)) == 3, sequence
assert len(a1["SequenceNumber"]) == 20, a1

# The same deduplication id within five minutes: accepted, answered as the first, not added.
again = send("a1, retried", "customer-a", "a1")
assert again["MessageId"] == a1["MessageId"], (again, a1)
assert again["SequenceNumber"] == a1["SequenceNumber"], again
count = sqs.get_queue_attributes(QueueUrl=orders, AttributeNames=["ApproximateNumberOfMessages"])
assert count["Attributes"]["ApproximateNumberOfMessages"] == "3", count

# One message of group a in flight blocks group a: the next receive gets group b only.
first = receive(orders, 1)
assert [m["Body"] for m in first] == ["a1"], first
system = first[0]["Attributes"]
assert system["MessageGroupId"] == "customer-a", system
assert system["MessageDeduplicationId"] == "a1", system
assert system["SequenceNumber"] == a1["SequenceNumber"], system
second = receive(orders)
assert [m["Body"] for m in second] == ["b1"], second
assert receive(orders) == []

# a1 comes back (its visibility ended): it is received again first, before a2.
sqs.change_message_visibility(
    QueueUrl=orders, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=0
)
third = receive(orders)
assert [m["Body"] for m in third] == ["a1", "a2"], third
assert third[0]["Attributes"]["ApproximateReceiveCount"] == "2", third
assert receive(orders) == [], "group a is in flight, group b too"
for m in third + second:
    sqs.delete_message(QueueUrl=orders, ReceiptHandle=m["ReceiptHandle"])
assert receive(orders) == []

# ContentBasedDeduplication: the body's SHA-256 is the deduplication id.
sqs.set_queue_attributes(QueueUrl=orders, Attributes={"ContentBasedDeduplication": "true"})
c1 = sqs.send_message(QueueUrl=orders, MessageBody="same body", MessageGroupId="g")
c2 = sqs.send_message(QueueUrl=orders, MessageBody="same body", MessageGroupId="g")
c3 = sqs.send_message(QueueUrl=orders, MessageBody="other body", MessageGroupId="g")
assert c1["MessageId"] == c2["MessageId"] != c3["MessageId"], (c1, c2, c3)
got = receive(orders)
assert [m["Body"] for m in got] == ["same body", "other body"], got
assert got[0]["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"same body").hexdigest()

# Batches: each entry is checked on its own.
batch = sqs.send_message_batch(
    QueueUrl=orders,
    Entries=[
        {"Id": "ok", "MessageBody": "batched", "MessageGroupId": "h"},
        {"Id": "nogroup", "MessageBody": "batched too"},
    ],
)
assert [e["Id"] for e in batch["Successful"]] == ["ok"], batch
assert "SequenceNumber" in batch["Successful"][0], batch
assert [(e["Id"], e["Code"]) for e in batch["Failed"]] == [("nogroup", "MissingParameter")], batch

# A standard queue: no deduplication ids, no FIFO attributes; a FIFO queue's dead letters
# go to a FIFO queue.
plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
assert code(
    sqs.send_message, QueueUrl=plain, MessageBody="x", MessageDeduplicationId="d"
) == "InvalidParameterValue"
assert code(
    sqs.set_queue_attributes, QueueUrl=plain, Attributes={"ContentBasedDeduplication": "true"}
) == "InvalidAttributeName"
assert "FifoQueue" not in sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["All"])["Attributes"]
plain_arn = sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
policy = '{"deadLetterTargetArn": "%s", "maxReceiveCount": "2"}' % plain_arn
assert code(
    sqs.set_queue_attributes, QueueUrl=orders, Attributes={"RedrivePolicy": policy}
) == "InvalidAttributeValue"
print("ok")
