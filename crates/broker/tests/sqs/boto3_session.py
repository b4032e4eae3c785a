"""boto3 (PyPI) against the broker's SQS port, with greenstalk and redis-py beside it.

argv: sqs_url beanstalk_host beanstalk_port resp_port. Every step asserts on what the
server answered; the Rust test checks the final "ok".
"""
import hashlib
import sys
import threading
import time

import greenstalk
import redis
from sqs_client import client, code

endpoint, bhost, bport, rport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sqs = client(endpoint, "eu-west-1")


# Queues: a dead-letter queue, and a work queue whose poison messages go there after 2
# deliveries; leases of 1 s so redelivery is quick.
dead = sqs.create_queue(QueueName="dead")["QueueUrl"]
dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
    "Attributes"
]["QueueArn"]
assert dead_arn == "arn:aws:sqs:eu-west-1:000000000000:dead", dead_arn
policy = '{"deadLetterTargetArn": "%s", "maxReceiveCount": "2"}' % dead_arn
jobs = sqs.create_queue(
    QueueName="jobs", Attributes={"VisibilityTimeout": "1", "RedrivePolicy": policy}
)["QueueUrl"]
assert jobs.endswith("/000000000000/jobs"), jobs
assert sqs.get_queue_url(QueueName="jobs")["QueueUrl"] == jobs
# Creating it again with the same attributes is fine; with others it is not.
assert sqs.create_queue(
    QueueName="jobs", Attributes={"VisibilityTimeout": "1", "RedrivePolicy": policy}
)["QueueUrl"] == jobs
assert code(sqs.create_queue, QueueName="jobs", Attributes={"VisibilityTimeout": "9"}) == "QueueAlreadyExists"
assert sqs.list_queues(QueueNamePrefix="jo")["QueueUrls"] == [jobs]
assert set(sqs.list_queues()["QueueUrls"]) >= {dead, jobs}
page = sqs.list_queues(MaxResults=1)
assert page["QueueUrls"] == [dead] and "NextToken" in page, page
assert sqs.list_queues(MaxResults=1000, NextToken=page["NextToken"])["QueueUrls"] == [jobs]
assert sqs.list_dead_letter_source_queues(QueueUrl=dead)["queueUrls"] == [jobs]
attributes = sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["All"])["Attributes"]
assert attributes["VisibilityTimeout"] == "1", attributes
assert attributes["ApproximateNumberOfMessages"] == "0", attributes
assert '"maxReceiveCount":2' in attributes["RedrivePolicy"].replace(" ", ""), attributes

# Send with attributes; the MD5s are the body's and the attributes'.
sent = sqs.send_message(
    QueueUrl=jobs,
    MessageBody="resize cat.jpg",
    MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "image"},
        "width": {"DataType": "Number", "StringValue": "640"},
        "thumb": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    },
)
assert sent["MD5OfMessageBody"] == hashlib.md5(b"resize cat.jpg").hexdigest(), sent
got = sqs.receive_message(
    QueueUrl=jobs,
    MaxNumberOfMessages=10,
    MessageSystemAttributeNames=["All"],
    MessageAttributeNames=["All"],
)["Messages"]
assert len(got) == 1, got
m = got[0]
assert (m["MessageId"], m["Body"]) == (sent["MessageId"], "resize cat.jpg"), m
assert m["MD5OfBody"] == sent["MD5OfMessageBody"]
assert m["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"], (m, sent)
assert m["MessageAttributes"]["thumb"]["BinaryValue"] == b"\x00\xff", m
assert m["MessageAttributes"]["width"] == {"DataType": "Number", "StringValue": "640"}, m
assert m["Attributes"]["ApproximateReceiveCount"] == "1", m
assert abs(int(m["Attributes"]["SentTimestamp"]) - time.time() * 1000) < 60_000, m
# Given back at once (visibility 0), then received again: a second delivery.
sqs.change_message_visibility(QueueUrl=jobs, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
again = sqs.receive_message(QueueUrl=jobs, AttributeNames=["ApproximateReceiveCount"], VisibilityTimeout=30)["Messages"][0]
assert again["MessageId"] == m["MessageId"]
assert again["Attributes"]["ApproximateReceiveCount"] == "2", again
# The first delivery's receipt is stale now.
assert code(sqs.change_message_visibility, QueueUrl=jobs, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=5) == "AWS.SimpleQueueService.MessageNotInflight"
sqs.delete_message(QueueUrl=jobs, ReceiptHandle=again["ReceiptHandle"])
assert "Messages" not in sqs.receive_message(QueueUrl=jobs) or not sqs.receive_message(QueueUrl=jobs)["Messages"]
assert code(sqs.delete_message, QueueUrl=jobs, ReceiptHandle="not-a-receipt") == "ReceiptHandleIsInvalid"

# Batches: one entry fails, the others go through.
batch = sqs.send_message_batch(
    QueueUrl=jobs,
    Entries=[{"Id": f"m{i}", "MessageBody": f"job {i}"} for i in range(3)]
    + [{"Id": "empty", "MessageBody": ""}],
)
assert sorted(e["Id"] for e in batch["Successful"]) == ["m0", "m1", "m2"], batch
assert [e["Id"] for e in batch["Failed"]] == ["empty"], batch
got = sqs.receive_message(QueueUrl=jobs, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
assert sorted(g["Body"] for g in got) == ["job 0", "job 1", "job 2"], got
handles = [{"Id": f"d{i}", "ReceiptHandle": g["ReceiptHandle"]} for i, g in enumerate(got)]
changed = sqs.change_message_visibility_batch(
    QueueUrl=jobs, Entries=[dict(h, VisibilityTimeout=60) for h in handles]
)
assert len(changed["Successful"]) == 3, changed
deleted = sqs.delete_message_batch(
    QueueUrl=jobs, Entries=handles + [{"Id": "bad", "ReceiptHandle": "garbage"}]
)
assert len(deleted["Successful"]) == 3 and deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid", deleted
assert code(sqs.delete_message_batch, QueueUrl=jobs, Entries=[]) == "AWS.SimpleQueueService.EmptyBatchRequest"

# A worker that takes a job and dies: after the visibility timeout (1 s) the job is
# delivered again. Then it fails again: its second delivery was its last, so it moves to
# the dead-letter queue (maxReceiveCount 2), and a redrive brings it back.
sqs.send_message(QueueUrl=jobs, MessageBody="poison")
first = sqs.receive_message(QueueUrl=jobs)["Messages"][0]
redelivered = sqs.receive_message(QueueUrl=jobs, WaitTimeSeconds=10, AttributeNames=["All"])["Messages"][0]
assert redelivered["Body"] == "poison" and redelivered["Attributes"]["ApproximateReceiveCount"] == "2", redelivered
assert redelivered["ReceiptHandle"] != first["ReceiptHandle"]
letter = sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=10, VisibilityTimeout=0)["Messages"][0]
assert letter["MessageId"] == first["MessageId"], letter
sqs.start_message_move_task(SourceArn=dead_arn)
back = sqs.receive_message(QueueUrl=jobs, WaitTimeSeconds=10, VisibilityTimeout=30)["Messages"][0]
assert back["MessageId"] == first["MessageId"], back
sqs.delete_message(QueueUrl=jobs, ReceiptHandle=back["ReceiptHandle"])

# A redrive to another queue (DestinationArn): given back twice, the job is a dead letter;
# the move task sends it to "retry" instead of where it came from.
retry = sqs.create_queue(QueueName="retry")["QueueUrl"]
retry_arn = sqs.get_queue_attributes(QueueUrl=retry, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sqs.send_message(QueueUrl=jobs, MessageBody="poison again")
for _ in range(2):
    got = sqs.receive_message(QueueUrl=jobs, WaitTimeSeconds=10)["Messages"][0]
    sqs.change_message_visibility(QueueUrl=jobs, ReceiptHandle=got["ReceiptHandle"], VisibilityTimeout=0)
assert code(sqs.start_message_move_task, SourceArn=dead_arn, DestinationArn=dead_arn + "-nope") == "AWS.SimpleQueueService.NonExistentQueue"
sqs.start_message_move_task(SourceArn=dead_arn, DestinationArn=retry_arn, MaxNumberOfMessagesPerSecond=10)
moved = sqs.receive_message(QueueUrl=retry, WaitTimeSeconds=10)["Messages"][0]
assert moved["MessageId"] == got["MessageId"] and moved["Body"] == "poison again", moved
sqs.delete_message(QueueUrl=retry, ReceiptHandle=moved["ReceiptHandle"])

# Long polling wakes on a send: a receive waiting up to 20 s returns with the message
# sent while it waits, not when its wait runs out.
waited = {}


def wait_for_one():
    start = time.monotonic()
    waited["got"] = sqs.receive_message(QueueUrl=jobs, WaitTimeSeconds=20, VisibilityTimeout=30).get("Messages", [])
    waited["seconds"] = time.monotonic() - start


waiter = threading.Thread(target=wait_for_one)
waiter.start()
time.sleep(0.5)  # (not synchronisation: a send before the wait starts is received too)
sqs.send_message(QueueUrl=jobs, MessageBody="wake up")
waiter.join()
assert [g["Body"] for g in waited["got"]] == ["wake up"], waited
assert waited["seconds"] < 15, f"the wait ran out instead of waking: {waited}"
sqs.delete_message(QueueUrl=jobs, ReceiptHandle=waited["got"][0]["ReceiptHandle"])

# One engine, three protocols: a job put over beanstalkd is received over SQS and
# acknowledged over RESP; a message sent over SQS is reserved and deleted over beanstalkd.
resp = redis.Redis(host=bhost, port=rport)
with greenstalk.Client((bhost, bport), use="cross", watch="cross") as beanstalk:
    job_id = beanstalk.put("from beanstalkd", ttr=60)
    cross = sqs.get_queue_url(QueueName="cross")["QueueUrl"]
    m = sqs.receive_message(QueueUrl=cross, VisibilityTimeout=30)["Messages"][0]
    assert (m["MessageId"], m["Body"]) == (str(job_id), "from beanstalkd"), m
    assert resp.execute_command("QACK", "cross", m["ReceiptHandle"]) == b"OK"
    counts = sqs.get_queue_attributes(QueueUrl=cross, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, counts
    sent = sqs.send_message(QueueUrl=cross, MessageBody="from sqs")
    job = beanstalk.reserve(timeout=5)
    assert (str(job.id), job.body) == (sent["MessageId"], "from sqs"), job
    beanstalk.delete(job)

# Queue attributes, purge, delete, and the errors of a queue that is gone.
sqs.set_queue_attributes(QueueUrl=jobs, Attributes={"VisibilityTimeout": "45", "DelaySeconds": "0"})
assert sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["VisibilityTimeout"])["Attributes"] == {"VisibilityTimeout": "45"}
assert code(sqs.set_queue_attributes, QueueUrl=jobs, Attributes={"VisibilityTimeout": "99999"}) == "InvalidAttributeValue"
assert code(sqs.get_queue_attributes, QueueUrl=jobs, AttributeNames=["Colour"]) == "InvalidAttributeName"
sqs.send_message(QueueUrl=jobs, MessageBody="to purge", DelaySeconds=60)
assert sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"] == {"ApproximateNumberOfMessagesDelayed": "1"}
sqs.purge_queue(QueueUrl=jobs)
assert sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"] == {"ApproximateNumberOfMessagesDelayed": "0"}
sqs.delete_queue(QueueUrl=jobs)
try:
    sqs.get_queue_url(QueueName="jobs")
    raise AssertionError("a deleted queue still has a URL")
except sqs.exceptions.QueueDoesNotExist:
    pass
assert code(sqs.send_message, QueueUrl=jobs, MessageBody="x") == "AWS.SimpleQueueService.NonExistentQueue"
assert code(sqs.create_queue, QueueName="bad name!") == "InvalidParameterValue"
assert code(sqs.create_queue, QueueName="orders.fifo") == "InvalidParameterValue"  # no FifoQueue
assert code(sqs.send_message, QueueUrl=dead, MessageBody="x" * (256 * 1024 + 1)) == "InvalidParameterValue"
print("ok")
