#!/usr/bin/env bash
# stream's Kafka listener with kcat, next to the same load over RESP.
#   bench/kafka.sh [runs] [messages] [txn_messages]
# Kafka:  kcat -P of N 100-byte messages from a file (librdkafka batches them; acks=all,
#         no compression), then kcat -C -o beginning -e of them back (to /dev/null).
# RESP:   redis-benchmark, 50 connections: PRODUCE.BATCH t VALUES <100 B>x100 (one record batch
#         per request, like a producer's batch), then FETCH t 0 0 COUNT 1000 (1000 records
#         per request).
# Delivery guarantees (issue 27): the same kcat -P with enable.idempotence=true (producer
#         id + sequence numbers checked per batch), plain and idempotent alternating which
#         goes first; and confluent-kafka's Python producer plain vs idempotent vs transactional
#         (transactional.id, 100 records per transaction: AddPartitionsToTxn, the records,
#         EndTxn writing a commit marker), TXN_MESSAGES each, with one producer and with four
#         side by side (a transaction costs round trips, not server work: producers in
#         parallel overlap them). Then where one transaction's time goes: the server's CPU
#         time per transaction and per 100 plain records (/proc/PID/stat over those runs),
#         and, from librdkafka's debug log of 500 more transactions, the wait between the
#         first record of a transaction and its AddPartitionsToTxn (librdkafka registers
#         partitions from a 1 ms timer) and the round trip of each request. The server's CPU
#         time per 1000 records of the kcat -P runs, plain and idempotent, too.
#         Why idempotence costs a librdkafka producer throughput: its debug log (protocol)
#         of a TXN_MESSAGES run, plain and idempotent, gives the most Produce requests it
#         had in flight at once — librdkafka's idempotent producer keeps one per partition
#         (see crates/stream/README.md) — and the same kcat -P pair over a topic of four
#         partitions shows the window is per partition. Transactions with 16 producers
#         side by side, too (Kafka users run many; each waits on its own round trips).
# Both sides: the same server process, --fsync everysec, pinned to CPU 1; every client on
# CPU 0 (taskset). Prints medians of messages/s.
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
taskset -c 1 "$BIN" --port "$RESP" --kafka-port "$KAFKA" --dir "$DATA/stream" --fsync everysec 2>/dev/null &
SERVER=$!
PIDS+=("$SERVER")
wait_port "$RESP"

VALUE=$(head -c 100 /dev/zero | tr '\0' 'x')
awk -v n="$MESSAGES" -v v="$VALUE" 'BEGIN { for (i = 0; i < n; i++) print v }' >"$DATA/messages"
head -n "$TXN_MESSAGES" "$DATA/messages" >"$DATA/probe"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
# The server's CPU time so far (user + system), in clock ticks.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER/stat"; }
# Microseconds of server CPU per unit: ticks, units.
per_unit_us() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }
kcat_produce() { # topic [extra kcat args]
  local topic=$1
  shift
  taskset -c 0 kcat -b "127.0.0.1:$KAFKA" -P -t "$topic" -X acks=all -X linger.ms=5 "$@" -l "${FILE:-$DATA/messages}"
}
# The most Produce requests librdkafka had in flight at once while kcat -P sent the probe
# file (TXN_MESSAGES lines), read from its debug log: a request counts from "Sent" (its
# last byte written) to "Received" (its answer read).
kcat_in_flight() { # topic [extra kcat args]
  FILE="$DATA/probe" kcat_produce "$@" -X debug=protocol 2>"$DATA/in_flight.log"
  awk '/Sent ProduceRequest/ { if (++n > max) max = n } /Received ProduceResponse/ { n-- } END { print max + 0 }' "$DATA/in_flight.log"
}

# confluent-kafka, plain, idempotent or transactional (100 records per transaction),
# PRODUCERS processes side by side, each with its own transactional.id, TXN_MESSAGES in
# all: messages/s from the first producer's start to the last one's end (each prints its
# own start and end into a file of its own).
python_produce() {
  local mode=$1 topic=$2 n=$3 producers=$4 i
  for i in $(seq 1 "$producers"); do
    taskset -c 0 python3 - "$mode" "$topic" $((n / producers)) "127.0.0.1:$KAFKA" "$i" >"$DATA/times.$i" <<'PY' &
import sys, time
from confluent_kafka import Producer
mode, topic, n, broker, me = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
conf = {"bootstrap.servers": broker, "linger.ms": 5}
if mode == "txn":
    conf["transactional.id"] = f"bench-{topic}-{me}"
elif mode == "idempotent":
    conf["enable.idempotence"] = True
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
  done
  wait
  # Each producer's start and end in a file of its own (one pipe shared by 16 processes
  # once gave a line that was not two times); a producer that printed none fails the run.
  for i in $(seq 1 "$producers"); do cat "$DATA/times.$i"; done |
    awk -v n="$n" -v want="$producers" 'NF == 2 { k++; if (k == 1 || $1 < a) a = $1; if (k == 1 || $2 > b) b = $2 }
      END { if (k != want) { print "python_produce: " k " of " want " producers finished" > "/dev/stderr"; exit 1 }
            printf "%.0f", n / (b - a) }'
  rm -f "$DATA"/times.*
}

# One transactional producer, 500 transactions of 100 records, with librdkafka's debug log
# (eos,protocol) on stderr; then the log read back: per transaction, the wait from the
# first record ("scheduling registration") to the AddPartitionsToTxn request
# ("Registering partitions", millisecond timestamps: a mean over 500), and each request's
# round trip as librdkafka measured it ("rtt", microseconds).
txn_anatomy() {
  local topic=$1
  taskset -c 0 python3 - "$topic" "127.0.0.1:$KAFKA" 2>"$DATA/anatomy.log" <<'PY'
import sys
from confluent_kafka import Producer
topic, broker = sys.argv[1], sys.argv[2]
p = Producer({"bootstrap.servers": broker, "linger.ms": 5, "debug": "eos,protocol",
              "transactional.id": f"anatomy-{topic}"})
p.init_transactions(30)
for _ in range(500):
    p.begin_transaction()
    for _ in range(100):
        p.produce(topic, b"x" * 100)
    p.commit_transaction(30)
p.flush(60)
PY
  python3 - "$DATA/anatomy.log" <<'PY'
import re, statistics, sys
waits, rtts, marked, begins = [], {}, None, []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"%7\|([0-9.]+)\|", line)
    if not m:
        continue
    t = float(m.group(1))
    if "Transactional API called: begin_transaction" in line:
        begins.append(t)
    elif "as part of transaction: scheduling registration" in line:
        marked = t
    elif "Registering partitions with transaction" in line and marked is not None:
        waits.append((t - marked) * 1000)
        marked = None
    r = re.search(r"Received (\w+)Response \(.*rtt ([0-9.]+)ms", line)
    if r:
        rtts.setdefault(r.group(1), []).append(float(r.group(2)))
# wall time per transaction, the registration wait, and the mean round trip of each request
wall = (begins[-1] - begins[0]) * 1000 / (len(begins) - 1)
print(f"{wall:.2f} {statistics.mean(waits):.2f}", end="")
for api in ("AddPartitionsToTxn", "Produce", "EndTxn"):
    print(f" {statistics.mean(rtts.get(api, [0])):.3f}", end="")
print()
PY
}

kp=() kc=() rp=() rc=() ki=() pp=() pi=() pt=() pp4=() pt4=() pp16=() pt16=()
kp4=() ki4=() flight_plain=() flight_idem=()
cpu_plain=() cpu_txn=() anatomy=() cpu_kp=() cpu_ki=()
for run in $(seq 1 "$RUNS"); do
  # Plain and idempotent kcat -P, alternating which goes first (a drift in the machine's
  # speed then favours neither).
  redis-cli -p "$RESP" TOPIC.CREATE "k$run" PARTITIONS 1 >/dev/null
  redis-cli -p "$RESP" TOPIC.CREATE "i$run" PARTITIONS 1 >/dev/null
  for mode in $( ((run % 2)) && echo plain idempotent || echo idempotent plain); do
    t0=$(now)
    c0=$(server_ticks)
    if [ "$mode" = plain ]; then
      kcat_produce "k$run"
      kp+=("$(rate "$MESSAGES" "$t0" "$(now)")")
      cpu_kp+=("$(per_unit_us $(($(server_ticks) - c0)) $((MESSAGES / 1000)))")
    else
      kcat_produce "i$run" -X enable.idempotence=true
      ki+=("$(rate "$MESSAGES" "$t0" "$(now)")")
      cpu_ki+=("$(per_unit_us $(($(server_ticks) - c0)) $((MESSAGES / 1000)))")
    fi
  done
  # The same over four partitions: librdkafka's idempotent window is per partition.
  redis-cli -p "$RESP" TOPIC.CREATE "k4p$run" PARTITIONS 4 >/dev/null
  redis-cli -p "$RESP" TOPIC.CREATE "i4p$run" PARTITIONS 4 >/dev/null
  for mode in $( ((run % 2)) && echo idempotent plain || echo plain idempotent); do
    t0=$(now)
    if [ "$mode" = plain ]; then
      kcat_produce "k4p$run"
      kp4+=("$(rate "$MESSAGES" "$t0" "$(now)")")
    else
      kcat_produce "i4p$run" -X enable.idempotence=true
      ki4+=("$(rate "$MESSAGES" "$t0" "$(now)")")
    fi
  done
  redis-cli -p "$RESP" TOPIC.CREATE "fp$run" PARTITIONS 1 >/dev/null
  redis-cli -p "$RESP" TOPIC.CREATE "fi$run" PARTITIONS 1 >/dev/null
  flight_plain+=("$(kcat_in_flight "fp$run")")
  flight_idem+=("$(kcat_in_flight "fi$run" -X enable.idempotence=true)")

  t1=$(now)
  got=$(taskset -c 0 kcat -b "127.0.0.1:$KAFKA" -C -t "k$run" -o beginning -e -q -f '\n' | wc -l)
  t2=$(now)
  [ "$got" -eq "$MESSAGES" ] || { echo "kcat read $got of $MESSAGES" >&2; exit 1; }
  kc+=("$(rate "$MESSAGES" "$t1" "$t2")")

  for mode in plain idempotent txn; do
    redis-cli -p "$RESP" TOPIC.CREATE "$mode$run" PARTITIONS 1 >/dev/null
  done
  pi+=("$(python_produce idempotent "idempotent$run" "$TXN_MESSAGES" 1)")
  c0=$(server_ticks)
  pp+=("$(python_produce plain "plain$run" "$TXN_MESSAGES" 1)")
  c1=$(server_ticks)
  pt+=("$(python_produce txn "txn$run" "$TXN_MESSAGES" 1)")
  c2=$(server_ticks)
  cpu_plain+=("$(per_unit_us $((c1 - c0)) $((TXN_MESSAGES / 100)))")
  cpu_txn+=("$(per_unit_us $((c2 - c1)) $((TXN_MESSAGES / 100)))")
  pp4+=("$(python_produce plain "plain$run" "$TXN_MESSAGES" 4)")
  pt4+=("$(python_produce txn "txn$run" "$TXN_MESSAGES" 4)")
  pp16+=("$(python_produce plain "plain$run" "$TXN_MESSAGES" 16)")
  pt16+=("$(python_produce txn "txn$run" "$TXN_MESSAGES" 16)")
  anatomy+=("$(txn_anatomy "txn$run")")

  topic="r$run"
  redis-cli -p "$RESP" TOPIC.CREATE "$topic" PARTITIONS 1 >/dev/null
  batch=()
  for _ in $(seq 1 100); do batch+=("$VALUE"); done
  out=$(taskset -c 0 redis-benchmark -p "$RESP" -c 50 -n $((MESSAGES / 100)) -q PRODUCE.BATCH "$topic" VALUES "${batch[@]}" | tr '\r' '\n')
  rp+=("$(awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "requests") r = $i } END { print r * 100 }' <<<"$out")")
  out=$(taskset -c 0 redis-benchmark -p "$RESP" -c 50 -n $((MESSAGES / 1000)) -q FETCH "$topic" 0 0 COUNT 1000 | tr '\r' '\n')
  rc+=("$(awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "requests") r = $i } END { print r * 1000 }' <<<"$out")")
done

printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, Kafka (kcat -P, $MESSAGES x 100 B)" "$(median "${kp[@]}")" "${kp[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, RESP (PRODUCE.BATCH x100, 50 conns)" "$(median "${rp[@]}")" "${rp[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "consume, Kafka (kcat -C -e)" "$(median "${kc[@]}")" "${kc[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "consume, RESP (FETCH COUNT 1000, 50 conns)" "$(median "${rc[@]}")" "${rc[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, Kafka idempotent (kcat -P)" "$(median "${ki[@]}")" "${ki[*]}"
printf '%-44s %10.1f us   (idempotent: %.1f us; runs: %s / %s)\n' "  server CPU per 1000 records, plain (kcat)" \
  "$(median "${cpu_kp[@]}")" "$(median "${cpu_ki[@]}")" "${cpu_kp[*]}" "${cpu_ki[*]}"
printf '%-44s %10.2f   (target >= 0.90)\n' "  idempotent / plain (kcat)" "$(awk -v a="$(median "${ki[@]}")" -v b="$(median "${kp[@]}")" 'BEGIN { print a / b }')"
printf '%-44s %10s   (idempotent: %s; runs: %s / %s)\n' "  Produce requests in flight at most, plain" "$(median "${flight_plain[@]}")" "$(median "${flight_idem[@]}")" "${flight_plain[*]}" "${flight_idem[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, Kafka 4 partitions (kcat -P)" "$(median "${kp4[@]}")" "${kp4[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, Kafka 4 partitions idempotent" "$(median "${ki4[@]}")" "${ki4[*]}"
printf '%-44s %10.2f\n' "  idempotent / plain, 4 partitions (kcat)" "$(awk -v a="$(median "${ki4[@]}")" -v b="$(median "${kp4[@]}")" 'BEGIN { print a / b }')"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka plain ($TXN_MESSAGES)" "$(median "${pp[@]}")" "${pp[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka idempotent" "$(median "${pi[@]}")" "${pi[*]}"
printf '%-44s %10.2f   (target >= 0.90)\n' "  idempotent / plain (confluent-kafka)" "$(awk -v a="$(median "${pi[@]}")" -v b="$(median "${pp[@]}")" 'BEGIN { print a / b }')"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka 100/transaction" "$(median "${pt[@]}")" "${pt[*]}"
printf '%-44s %10.2f   (target >= 0.50)\n' "  transactional / plain (confluent-kafka)" "$(awk -v a="$(median "${pt[@]}")" -v b="$(median "${pp[@]}")" 'BEGIN { print a / b }')"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka plain, 4 producers" "$(median "${pp4[@]}")" "${pp4[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, 100/transaction, 4 producers" "$(median "${pt4[@]}")" "${pt4[*]}"
printf '%-44s %10.2f\n' "  transactional / plain, 4 producers" "$(awk -v a="$(median "${pt4[@]}")" -v b="$(median "${pp4[@]}")" 'BEGIN { print a / b }')"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, confluent-kafka plain, 16 producers" "$(median "${pp16[@]}")" "${pp16[*]}"
printf '%-44s %10.0f msg/s   (runs: %s)\n' "produce, 100/transaction, 16 producers" "$(median "${pt16[@]}")" "${pt16[*]}"
printf '%-44s %10.2f\n' "  transactional / plain, 16 producers" "$(awk -v a="$(median "${pt16[@]}")" -v b="$(median "${pp16[@]}")" 'BEGIN { print a / b }')"
echo "where one transaction's time goes (medians of the runs' figures):"
col() { local i=$1 a; shift; for a in "$@"; do echo "$a" | awk -v i="$i" '{ print $i }'; done; }
printf '%-44s %10.2f ms   (100 plain records: %.2f ms)\n' "  wall time per transaction, one producer" \
  "$(awk -v r="$(median "${pt[@]}")" 'BEGIN { print 100 / r * 1000 }')" "$(awk -v r="$(median "${pp[@]}")" 'BEGIN { print 100 / r * 1000 }')"
printf '%-44s %10.3f ms   (runs: %s)\n' "  server CPU per transaction" "$(awk -v u="$(median "${cpu_txn[@]}")" 'BEGIN { print u / 1000 }')" "${cpu_txn[*]/%/us}"
printf '%-44s %10.3f ms   (runs: %s)\n' "  server CPU per 100 plain records" "$(awk -v u="$(median "${cpu_plain[@]}")" 'BEGIN { print u / 1000 }')" "${cpu_plain[*]/%/us}"
echo "  librdkafka's debug log, 500 transactions (means; medians of the runs):"
wall=$(median $(col 1 "${anatomy[@]}"))
timer=$(median $(col 2 "${anatomy[@]}"))
add=$(median $(col 3 "${anatomy[@]}"))
prod=$(median $(col 4 "${anatomy[@]}"))
end=$(median $(col 5 "${anatomy[@]}"))
printf '%-44s %10.2f ms\n' "    wall time per transaction" "$wall"
printf '%-44s %10.2f ms   (runs: %s)\n' "    client: first record -> AddPartitionsToTxn" "$timer" "$(col 2 "${anatomy[@]}" | tr '\n' ' ')"
printf '%-44s %10.3f ms\n' "    round trip AddPartitionsToTxn" "$add"
printf '%-44s %10.3f ms\n' "    round trip Produce (100 records)" "$prod"
printf '%-44s %10.3f ms\n' "    round trip EndTxn (marker, commit)" "$end"
printf '%-44s %10.2f ms\n' "    the rest: Python, librdkafka's threads" "$(awk -v w="$wall" -v t="$timer" -v a="$add" -v p="$prod" -v e="$end" 'BEGIN { print w - t - a - p - e }')"
