"""The boto3 client the SQS test scripts share, and how they read an error's code."""
import boto3
from botocore.config import Config


def client(endpoint, region):
    """boto3's SQS client against `endpoint`, with any credentials and no retries."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="anything",
        aws_secret_access_key="anything",
        config=Config(retries={"max_attempts": 1}),
    )


def code(call, *args, **kwargs):
    """The error code a call fails with."""
    try:
        call(*args, **kwargs)
    except call.__self__.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} succeeded")
