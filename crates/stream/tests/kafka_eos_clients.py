"""Kafka clients on their defaults against the stream server, for tests/kafka_eos.rs.

    python3 kafka_eos_clients.py COMMAND BROKER ARGS...

Commands print what they saw as lines `KEY ITEM ITEM ...` (items have no spaces); exit 3: a
client library is missing.

  produce CLIENT TOPIC N       N records "v0".."v{N-1}" with the client's default producer
                               (kafka-python 3: idempotent; confluent-kafka: as configured by
                               CLIENT = confluent-kafka | confluent-idempotent), acknowledged one
                               by one: `acked P:O P:O ...` (or `errors ...`)
  read TOPIC ISOLATION         every record of every partition (confluent-kafka consumer,
                               isolation.level = read_committed | read_uncommitted), until the
                               partitions' high watermarks: `values V V ...`
  etl INPUT OUTPUT GROUP TXID [DIE_AFTER]
                               the exactly-once consume-transform-produce loop (confluent-kafka
                               transactional producer, read_committed consumer): each input
                               value v becomes "v!" in OUTPUT, ten records per transaction,
                               offsets committed in the transaction. With DIE_AFTER, after that
                               many commits it starts one more transaction, writes half of it,
                               prints `mid_transaction` and waits to be killed.
                               Otherwise it ends once it has consumed all of INPUT:
                               `committed_transactions N`
  configs TOPIC                kafka-python admin: describe, alter retention, describe again:
                               `before K=V ...`, `after K=V ...`, `bad ERROR-NAME`; then
                               confluent-kafka's incremental_alter_configs: `incremental ok K=V
                               ...`, and of an unknown key `incremental_bad ERROR-NAME`
  admin TXID TOPIC GROUP       kafka-python's admin views after a transactional run: `txn_state S`,
                               `listed TXID...`, `producers N` (of TOPIC partition 0), `brokers N`;
                               then DeleteRecords below offset 10 of TOPIC (`low_watermark N`) and
                               OffsetDelete of GROUP's offset for TOPIC 0 (`offset_delete ERROR`)
  grow TOPIC GROUP             a kafka-python consumer group member subscribed to TOPIC (1
                               partition); the topic grows to 3 partitions with create_partitions;
                               the member must get all 3 and read a record produced to partition
                               2: `assignment P P P`, `value V`
  fencing INPUT OUTPUT GROUP TXID
                               kafka-python 3's transactional producer (KIP-447: it sends the
                               consumer's group metadata with its offsets) next to a kafka-python
                               group member of GROUP reading INPUT (1 partition): a transaction
                               committing offset 1 as the current member (`current RESULT`), then
                               one as a zombie of the previous generation (`zombie RESULT`,
                               aborted), then one with a bare group id (`bare RESULT`); the
                               group's committed offset after each (`committed N N N`), and what a
                               read_committed kafka-python consumer finds in OUTPUT (`values V
                               ...`)
"""

import sys
import time

command, broker = sys.argv[1], sys.argv[2]
args = sys.argv[3:]


def need(module):
    try:
        return __import__(module)
    except ImportError:
        print(f"{module} is not installed: run .ci/run", file=sys.stderr)
        sys.exit(3)


def out(key, *items):
    print(key, *items, flush=True)


def produce(client, topic, n):
    acked = []
    if client == "kafka-python":
        need("kafka")
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=broker)  # every default: idempotent
        for i in range(n):
            md = producer.send(topic, value=f"v{i}".encode()).get(timeout=30)
            acked.append([md.partition, md.offset])
        producer.close()
    else:
        need("confluent_kafka")
        from confluent_kafka import Producer

        conf = {"bootstrap.servers": broker}
        if client == "confluent-idempotent":
            conf["enable.idempotence"] = True
        producer = Producer(conf)
        errors = []

        def report(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                acked.append([msg.partition(), msg.offset()])

        for i in range(n):
            producer.produce(topic, value=f"v{i}".encode(), on_delivery=report)
            producer.flush(30)  # one by one: a request per record
        if errors:
            out("errors", *(e.replace(" ", "_") for e in errors))
            return
    out("acked", *(f"{p}:{o}" for p, o in acked))


def read(topic, isolation):
    need("confluent_kafka")
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = sorted(metadata.topics[topic].partitions)
    ends = {}
    for p in partitions:
        # read_committed: the last stable offset; read_uncommitted: the log end.
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    values = []
    deadline = time.time() + 30
    while time.time() < deadline:
        positions = consumer.position([TopicPartition(topic, p) for p in partitions])
        if all(tp.offset >= ends[tp.partition] for tp in positions):
            break
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        values.append(msg.value().decode())
    consumer.close()
    out("values", *values)


def etl(input_topic, output_topic, group, txid, die_after=None):
    need("confluent_kafka")
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = Producer({"bootstrap.servers": broker, "transactional.id": txid})
    producer.init_transactions(30)
    consumer.subscribe([input_topic])
    committed = 0
    idle_since = time.time()
    while True:
        batch = consumer.consume(num_messages=10, timeout=0.5)
        batch = [m for m in batch if not m.error()]
        if not batch:
            assignment = consumer.assignment()
            if assignment and time.time() - idle_since > 2:
                positions = consumer.position(assignment)
                done = all(
                    tp.offset >= 0
                    and tp.offset >= consumer.get_watermark_offsets(tp, timeout=10)[1]
                    for tp in positions
                )
                if done:
                    break
            continue
        idle_since = time.time()
        producer.begin_transaction()
        dying = die_after is not None and committed == die_after
        for i, m in enumerate(batch):
            producer.produce(output_topic, key=m.key(), value=m.value() + b"!")
            if dying and i == len(batch) // 2:
                producer.flush(30)
                out("mid_transaction")
                time.sleep(3600)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
        committed += 1
    consumer.close()
    out("committed_transactions", committed)


def configs(topic):
    need("kafka")
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker)
    resource = lambda **kw: ConfigResource(ConfigResourceType.TOPIC, topic, **kw)

    def describe():
        got = admin.describe_configs([resource()], config_filter="all")
        return {k: v["value"] for k, v in got["topic"][topic].items()}

    before = describe()
    admin.alter_configs([resource(configs={"retention.ms": "200", "segment.bytes": "1024"})])
    after = describe()
    try:
        admin.alter_configs([resource(configs={"no.such.config": "1"})])
        bad = None
    except Exception as e:  # the client refuses, or the broker does
        bad = type(e).__name__
    # confluent-kafka's IncrementalAlterConfigs: SET one key, and an unknown key, which
    # this client leaves to the broker to refuse.
    need("confluent_kafka")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry
    from confluent_kafka.admin import ConfigResource as CResource

    ca = AdminClient({"bootstrap.servers": broker})

    def incremental(key, value):
        entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        futures = ca.incremental_alter_configs([CResource("topic", topic, incremental_configs=[entry])])
        try:
            list(futures.values())[0].result()
            return "ok"
        except KafkaException as e:
            return e.args[0].name()

    set_result = incremental("retention.bytes", "1000000")
    incremental_after = describe()
    out("before", *(f"{k}={v}" for k, v in sorted(before.items())))
    out("after", *(f"{k}={v}" for k, v in sorted(after.items())))
    out("bad", bad)
    out("incremental", set_result, *(f"{k}={v}" for k, v in sorted(incremental_after.items())))
    out("incremental_bad", incremental("no.such.config", "1"))


def admin(txid, topic, group):
    need("kafka")
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=broker)
    state = a.describe_transactions([txid])[txid].state
    out("txn_state", getattr(state, "name", state))
    listed = a.list_transactions()
    out("listed", *sorted(t.transactional_id for ts in listed.values() for t in ts))
    tp = TopicPartition(topic, 0)
    producers = a.describe_producers([tp])[tp].active_producers
    out("producers", len(producers))
    out("brokers", len(a.describe_cluster()["brokers"]))
    deleted = a.delete_records({tp: 10})[tp]
    out("low_watermark", deleted["low_watermark"])
    result = a.delete_group_offsets(group, [tp])[tp]
    out("offset_delete", result.__name__)


def grow(topic, group):
    need("kafka")
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewPartitions

    consumer = KafkaConsumer(topic, bootstrap_servers=broker, group_id=group)
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(timeout_ms=200)
    KafkaAdminClient(bootstrap_servers=broker).create_partitions({topic: NewPartitions(3)})
    want = {TopicPartition(topic, p) for p in range(3)}
    while consumer.assignment() != want and time.time() < deadline:
        consumer.poll(timeout_ms=200)
    assignment = sorted(tp.partition for tp in consumer.assignment())
    # Wait until the member has a position on partition 2 (auto.offset.reset=latest), then
    # produce there: the running member reads it.
    while time.time() < deadline:
        try:
            consumer.position(TopicPartition(topic, 2), timeout_ms=1000)
            break
        except Exception:
            consumer.poll(timeout_ms=200)
    producer = KafkaProducer(bootstrap_servers=broker)
    producer.send(topic, value=b"on-new-partition", partition=2).get(timeout=30)
    producer.close()
    value = None
    while value is None and time.time() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                value = r.value.decode()
    consumer.close()
    out("assignment", *assignment)
    out("value", value)


def fencing(input_topic, output_topic, group, txid):
    need("kafka")
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(
        input_topic, bootstrap_servers=broker, group_id=group, enable_auto_commit=False
    )
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(timeout_ms=200)
    member = consumer.group_metadata()
    producer = KafkaProducer(bootstrap_servers=broker, transactional_id=txid)
    producer.init_transactions()
    tp = TopicPartition(input_topic, 0)
    committed = []

    def transaction(name, value, offset, metadata):
        producer.begin_transaction()
        producer.send(output_topic, value=value)
        try:
            producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(offset, "", -1)}, metadata
            )
            producer.commit_transaction()
            out(name, "committed")
        except Exception as e:
            out(name, type(e).__name__)
            producer.abort_transaction()
        committed.append(consumer.committed(tp))

    transaction("current", b"current", 1, member)
    stale = member._replace(generation_id=member.generation_id - 1)
    transaction("zombie", b"zombie", 2, stale)
    transaction("bare", b"bare", 3, group)
    producer.close()
    consumer.close()
    out("committed", *committed)

    reader = KafkaConsumer(
        output_topic,
        bootstrap_servers=broker,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    out("values", *(r.value.decode() for r in reader))
    reader.close()


if command == "produce":
    produce(args[0], args[1], int(args[2]))
elif command == "read":
    read(args[0], args[1])
elif command == "etl":
    etl(args[0], args[1], args[2], args[3], int(args[4]) if len(args) > 4 else None)
elif command == "configs":
    configs(args[0])
elif command == "admin":
    admin(args[0], args[1], args[2])
elif command == "grow":
    grow(args[0], args[1])
elif command == "fencing":
    fencing(args[0], args[1], args[2], args[3])
else:
    sys.exit(f"unknown command {command}")
