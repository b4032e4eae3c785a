#!/usr/bin/env bash
# stream's Kafka listener with kcat, next to the same load over RESP.
#   bench/kafka.sh [runs] [messages]
# Kafka:  kcat -P of N 100-byte messages from a file (librdkafka batches them; acks=all,
#         no compression), then kcat -C -o beginning -e of them back (to /dev/null).
# RESP:   redis-benchmark, 50 connections: PRODUCE.BATCH t VALUES <100 B>x100 (one record batch
#         per request, like a producer's batch), then FETCH t 0 0 COUNT 1000 (1000 records
#         per request).
# Both sides: the same server process, --fsync everysec. Prints medians of messages/s.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
MESSAGES=${2:-1000000}
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

kp=() kc=() rp=() rc=()
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
