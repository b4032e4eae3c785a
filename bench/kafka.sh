#!/usr/bin/env bash
# stream's Kafka listener with kcat, next to the same load over RESP.
#   bench/kafka.sh [runs] [messages]
# Kafka:  kcat -P of N 100-byte messages from a file (librdkafka batches them; acks=all,
#         no compression), then kcat -C -o beginning -e of them back (to /dev/null).
# RESP:   redis-benchmark, 50 connections: PRODUCE.BATCH t VALUES <100 B>x100 (one record batch
#         per request, like a producer's batch), then FETCH t 0 0 COUNT 1000 (1000 records
#         per request).
# Delivery guarantees (issue 27): the same kcat -P with enable.idempotence=true (producer
#         id + sequence numbers checked per batch), and confluent-kafka's Python producer
#         plain vs transactional (transactional.id, 100 records per transaction:
#         AddPartitionsToTxn, the records, EndTxn writing a commit marker), TXN_MESSAGES each,
#         with one producer and with four side by side (a transaction costs round trips, not
#         server work: producers in parallel overlap them).
# Both sides: the same server process, --fsync everysec. Prints medians of messages/s.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
MESSAGES=${2:-1000000}
TXN_MESSAGES=${3:-200000}
RESP=7465
KAFKA=19465
DATA=$(mktemp -d)
trap 'cleanup; rm -rf "$DATA"' EXIT

cargo build --release -q -p stream --bin infralab-stream --manifest-path "$BENCH_ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab-stream"
"$BIN" --port "$RESP" --kafka-port "$KAFKA" --dir "$DATA/stream" --fsync everysec 2>/dev/null &
PIDS+=($!)
wait_port "$RESP"

VALUE=$(head -c 100 /dev/zero | tr '\0' 'x')
awk -v n="$MESSAGES" -v v="$VALUE" 'BEGIN { for (i = 0; i < n; i++) print v }' >"$DATA/messages"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

# confluent-kafka, plain or transactional (100 records per transaction), PRODUCERS processes
# side by side, each with its own transactional.id, TXN_MESSAGES in all: messages/s from the
# first producer's start to the last one's end (each prints its own start and end).
python_produce() {
  local mode=$1 topic=$2 n=$3 producers=$4 i
  for i in $(seq 1 "$producers"); do
    python3 - "$mode" "$topic" $((n / producers)) "127.0.0.1:$KAFKA" "$i" <<'PY' &
import sys, time
from confluent_kafka import Producer
mode, topic, n, broker, me = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
conf = {"bootstrap.servers": broker, "linger.ms": 5}
if mode == "txn":
    conf["transactional.id"] = f"bench-{topic}-{me}"
p = Producer(conf)
value = b"x" * 100
if mode == "txn":
    p.init_transactions(30)
else:
    p.list_topics(topic, timeout=10)
t0 = time.time()
for start in range(0, n, 100):
    if mode == "txn":
        p.begin_transaction()
    for _ in range(min(100, n - start)):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.01)
    if mode == "txn":
        p.commit_transaction(30)
    else:
        p.poll(0)
p.flush(60)
print(t0, time.time())
PY
  done | awk -v n="$n" 'NR == 1 || $1 < a { a = $1 } NR == 1 || $2 > b { b = $2 } END { printf "%.0f", n / (b - a) }'
  wait
}

kp=() kc=() rp=() rc=() ki=() pp=() pt=() pp4=() pt4=()
for run in $(seq 1 "$RUNS"); do
  topic="k$run"
  redis-cli -p "$RESP" TOPIC.CREATE "$topic" PARTITIONS 1 >/dev/null
  t0=$(now)
  kcat -b "127.0.0.1:$KAFKA" -P -t "$topic" -X acks=all -X linger.ms=5 -l "$DATA/messages"
  t1=$(now)
  got=$(kcat -b "127.0.0.1:$KAFKA" -C -t "$topic" -o beginning -e -q -f '\n' | wc -l)
  t2=$(now)
  [ "$got" -eq "$MESSAGES" ] || { echo "kcat read $got of $MESSAGES" >&2; exit 1; }
  kp+=("$(rate "$MESSAGES" "$t0" "$t1")")
  kc+=("$(rate "$MESSAGES" "$t1" "$t2")")

  topic="i$run"
  redis-cli -p "$RESP" TOPIC.CREATE "$topic" PARTITIONS 1 >/dev/null
  t0=$(now)
  kcat -b "127.0.0.1:$KAFKA" -P -t "$topic" -X acks=all -X linger.ms=5 -X enable.idempotence=true -l "$DATA/messages"
  t1=$(now)
  ki+=("$(rate "$MESSAGES" "$t0" "$t1")")
  for mode in plain txn; do
    redis-cli -p "$RESP" TOPIC.CREATE "$mode$run" PARTITIONS 1 >/dev/null
  done
  pp+=("$(python_produce plain "plain$run" "$TXN_MESSAGES" 1)")
  pt+=("$(python_produce txn "txn$run" "$TXN_MESSAGES" 1)")
  pp4+=("$(python_produce plain "plain$run" "$TXN_MESSAGES" 4)")
  pt4+=("$(python_produce txn "txn$run" "$TXN_MESSAGES" 4)")

  topic="r$run"
  redis-cli -p "$RESP" TOPIC.CREATE "$topic" PARTITIONS 1 >/dev/null
  batch=()
  for _ in $(seq 1 100); do batch+=("$VALUE"); done
  out=$(redis-benchmark -p "$RESP" -c 50 -n $((MESSAGES / 100)) -q PRODUCE.BATCH "$topic" VALUES "${batch[@]}" | tr '\r' '\n')
  rp+=("$(awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "requests") r = $i } END { print r * 100 }' <<<"$out")")
  out=$(redis-benchmark -p "$RESP" -c 50 -n $((MESSAGES / 1000)) -q FETCH "$topic" 0 0 COUNT 1000 | tr '\r' '\n')
  rc+=("$(awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "requests") r = $i } END { print r * 1000 }' <<<"$out")")
done

printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, Kafka (kcat -P, $MESSAGES x 100 B)" "$(median "${kp[@]}")" "${kp[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, RESP (PRODUCE.BATCH x100, 50 conns)" "$(median "${rp[@]}")" "${rp[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "consume, Kafka (kcat -C -e)" "$(median "${kc[@]}")" "${kc[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "consume, RESP (FETCH COUNT 1000, 50 conns)" "$(median "${rc[@]}")" "${rc[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, Kafka idempotent (kcat -P)" "$(median "${ki[@]}")" "${ki[*]}"
printf '%-44s %10.2f\n' "  idempotent / plain (kcat)" "$(awk -v a="$(median "${ki[@]}")" -v b="$(median "${kp[@]}")" 'BEGIN { print a / b }')"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka plain ($TXN_MESSAGES)" "$(median "${pp[@]}")" "${pp[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka 100/transaction" "$(median "${pt[@]}")" "${pt[*]}"
printf '%-44s %10.2f\n' "  transactional / plain (confluent-kafka)" "$(awk -v a="$(median "${pt[@]}")" -v b="$(median "${pp[@]}")" 'BEGIN { print a / b }')"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka plain, 4 producers" "$(median "${pp4[@]}")" "${pp4[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, 100/transaction, 4 producers" "$(median "${pt4[@]}")" "${pt4[*]}"
printf '%-44s %10.2f\n' "  transactional / plain, 4 producers" "$(awk -v a="$(median "${pt4[@]}")" -v b="$(median "${pp4[@]}")" 'BEGIN { print a / b }')"
