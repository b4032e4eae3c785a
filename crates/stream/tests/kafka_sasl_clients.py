"""Produce and consume through a Python Kafka client, for tests/kafka_sasl.rs.

    python3 kafka_sasl_clients.py CLIENT BROKER TOPIC MECHANISM USER PASSWORD

CLIENT is `kafka-python` or `confluent-kafka`; MECHANISM is PLAIN, SCRAM-SHA-256, or `none`
(no SASL at all). Prints one JSON line: {"ok": [values read back]} after producing ten
records and reading them back, or {"refused": "<what the client raised>"} when the broker
would not serve it. Exits 3 when the client library is missing.
"""

import json
import sys

client, broker, topic, mechanism, user, password = sys.argv[1:7]
VALUES = [f"value-{i}" for i in range(10)]


def kafka_python():
    try:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    except ImportError:
        print("kafka-python is not installed: run .ci/run", file=sys.stderr)
        sys.exit(3)
    conf = {"bootstrap_servers": broker, "request_timeout_ms": 5000}
    if mechanism != "none":
        conf.update(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,
            sasl_plain_username=user,
            sasl_plain_password=password,
        )
    try:
        # kafka-python 3's defaults: an idempotent producer (InitProducerId first).
        producer = KafkaProducer(max_block_ms=5000, **conf)
        for v in VALUES:
            producer.send(topic, key=b"k", value=v.encode()).get(timeout=10)
        producer.close()
        consumer = KafkaConsumer(consumer_timeout_ms=5000, **conf)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        for message in consumer:
            got.append(message.value.decode())
            if len(got) == len(VALUES):
                break
        consumer.close()
        return got
    except Exception as e:  # what the client raises is the answer
        print(json.dumps({"refused": f"{type(e).__name__}: {e}"}))
        sys.exit(0)


def confluent():
    try:
        from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    except ImportError:
        print("confluent-kafka is not installed: run .ci/run", file=sys.stderr)
        sys.exit(3)
    conf = {"bootstrap.servers": broker}
    if mechanism != "none":
        conf.update(
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": mechanism,
                "sasl.username": user,
                "sasl.password": password,
            }
        )
    errors = []
    conf["error_cb"] = lambda e: errors.append(str(e))
    producer = Producer({**conf, "message.timeout.ms": 5000})
    try:
        producer.list_topics(topic, timeout=5)
    except KafkaException as e:
        print(json.dumps({"refused": f"{e} {errors}"}))
        sys.exit(0)
    delivered = []
    for v in VALUES:
        producer.produce(topic, key=b"k", value=v.encode(), partition=0,
                         on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(10)
    if len(delivered) != len(VALUES) or any(delivered):
        print(json.dumps({"refused": f"delivery: {delivered} {errors}"}))
        sys.exit(0)
    consumer = Consumer({**conf, "group.id": "sasl-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    for _ in range(100):
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            got.append(message.value().decode())
        if len(got) == len(VALUES):
            break
    consumer.close()
    return got


got = kafka_python() if client == "kafka-python" else confluent()
print(json.dumps({"ok": got}))
