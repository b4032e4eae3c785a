"""boto3 against a broker started with --requirepass: argv = sqs_url password.

Requests signed with the password as the secret key are served; others are refused.
"""
import sys

import boto3
from botocore.config import Config

endpoint, password = sys.argv[1], sys.argv[2]


def client(secret):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="any-key-id",
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


good = client(password)
url = good.create_queue(QueueName="signed")["QueueUrl"]
good.send_message(QueueUrl=url, MessageBody="hi")
assert good.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "hi"
try:
    client("wrong").list_queues()
    raise AssertionError("a wrong secret was accepted")
except client("wrong").exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
print("ok")
