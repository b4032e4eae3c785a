#!/usr/bin/env bash
# stream against redis-server Streams, side by side, and against the disk.
#   bench/stream.sh [runs] [messages]
# Same client (redis-benchmark, 50 connections) and the same batch sizes for both:
#   produce, pipelined:  PRODUCE t <value>                 vs  XADD s * v <value>            (-P 100)
#   produce, batched:    PRODUCE.BATCH t VALUES <value>x100                                   (-P 1)
#                        (Redis has no multi-entry XADD; its batching is the pipeline above)
#                        (reply: one [partition, base_offset, count] per partition written —
#                        since 2026-11-28; before, [partition, offset] per message, whose parsing
#                        cost redis-benchmark more CPU than the server's produce)
#   consume:             FETCH t 0 0 COUNT 100             vs  XREAD COUNT 100 STREAMS s 0
# for 100-byte and 1 KiB values. Durability is the same on both sides:
#   stream --fsync everysec   vs   redis-server --appendonly yes --appendfsync everysec
# and the disk's sequential write rate is measured in the same run (dd conv=fdatasync).
# Last, produce under stream --fsync always vs redis --appendfsync always (-P 1, 50 clients),
# with the number of fsyncs the group commit needed.
# Prints medians of messages/s and payload MB/s, and ratios.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
MESSAGES=${2:-500000}
OURS=7463
PEER=7464
DATA=$(mktemp -d)
trap 'cleanup; rm -rf "$DATA"' EXIT

cargo build --release -q -p stream --bin infralab-stream --manifest-path "$BENCH_ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab-stream"

# The disk, first, while nothing else writes.
dd if=/dev/zero of="$DATA/dd" bs=1M count=1024 conv=fdatasync 2>"$DATA/dd.out"
DISK_MBS=$(awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.,]+$/ && $(i + 1) ~ /[GM]B\/s/) { v = $i; sub(",", ".", v); print ($(i + 1) ~ /^GB/) ? v * 1000 : v } }' "$DATA/dd.out")
rm -f "$DATA/dd"

"$BIN" --port "$OURS" --kafka-port 0 --dir "$DATA/stream" --fsync everysec 2>/dev/null &
PIDS+=($!)
mkdir -p "$DATA/redis"
redis-server --port "$PEER" --save '' --appendonly yes --appendfsync everysec \
  --dir "$DATA/redis" --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$OURS"
wait_port "$PEER"
if ! redis-cli -p "$OURS" TOPIC.LIST >/dev/null 2>&1 || redis-cli -p "$OURS" TOPIC.LIST | grep -q ERR; then
  echo "port $OURS is not the stream server (taken by something else?)" >&2
  exit 1
fi

# rps_cmd PORT N PIPELINE COMMAND...: requests/s of one custom redis-benchmark command.
rps_cmd() {
  local port=$1 n=$2 p=$3
  shift 3
  local out
  out=$(redis-benchmark -p "$port" -c 50 -n "$n" -P "$p" -q "$@" 2>&1 | tr '\r' '\n')
  if grep -qi 'error' <<<"$out"; then
    echo "error replies from port $port for $1: $(head -3 <<<"$out")" >&2
    exit 1
  fi
  awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "requests") rate = $i } END { print rate }' <<<"$out"
}

# row LABEL SIZE MSGS_PER_REQUEST OURS_N OURS_P OURS_CMD -- PEER_N PEER_P PEER_CMD
row() {
  local label=$1 size=$2 per=$3 on=$4 op=$5
  shift 5
  local ours=() peer=()
  while [ "$1" != "--" ]; do ours+=("$1"); shift; done
  shift
  local pn=$1 pp=$2
  shift 2
  local a=() b=()
  for _ in $(seq 1 "$RUNS"); do
    a+=("$(rps_cmd "$OURS" "$on" "$op" "${ours[@]}")")
    if [ "$pn" -gt 0 ]; then b+=("$(rps_cmd "$PEER" "$pn" "$pp" "$@")"); else b+=(0); fi
  done
  local ma mb
  ma=$(awk -v r="$(median "${a[@]}")" -v k="$per" 'BEGIN { print r * k }')
  mb=$(awk -v r="$(median "${b[@]}")" -v k="$PEER_PER" 'BEGIN { print r * k }')
  printf '%-34s stream %10.0f msg/s %8.1f MB/s   redis %10.0f msg/s %8.1f MB/s   ratio %5.2f\n' \
    "$label" "$ma" "$(awk -v m="$ma" -v s="$size" 'BEGIN { print m * s / 1e6 }')" \
    "$mb" "$(awk -v m="$mb" -v s="$size" 'BEGIN { print m * s / 1e6 }')" \
    "$(awk -v x="$ma" -v y="$mb" 'BEGIN { print (y > 0) ? x / y : 0 }')"
  LAST_MBS=$(awk -v m="$ma" -v s="$size" 'BEGIN { print m * s / 1e6 }')
}

echo "stream vs redis-server $(redis-server --version | awk '{print $3}') Streams, both fsync everysec;"
echo "redis-benchmark -c 50, $MESSAGES messages per produce run, median of $RUNS runs"
echo "disk sequential write (dd bs=1M conv=fdatasync): ${DISK_MBS} MB/s"
for size in 100 1024; do
  value=$(head -c "$size" /dev/zero | tr '\0' 'x')
  batch=()
  for _ in $(seq 1 100); do batch+=("$value"); done
  redis-cli -p "$OURS" TOPIC.CREATE "t$size" >/dev/null
  PEER_PER=1
  row "produce $size B, pipeline 100" "$size" 1 "$MESSAGES" 100 PRODUCE "t$size" "$value" \
    -- "$MESSAGES" 100 XADD "s$size" '*' v "$value"
  PEER_PER=1
  row "produce $size B, PRODUCE.BATCH 100" "$size" 100 "$((MESSAGES / 100))" 1 PRODUCE.BATCH "t$size" VALUES "${batch[@]}" \
    -- "$MESSAGES" 100 XADD "s$size" '*' v "$value"
  echo "  -> produce.batch at $LAST_MBS MB/s = $(awk -v a="$LAST_MBS" -v d="$DISK_MBS" 'BEGIN { printf "%.0f", 100 * a / d }')% of the disk's sequential write rate"
  PEER_PER=100
  row "consume $size B, 100 per request" "$size" 100 "$((MESSAGES / 100))" 1 FETCH "t$size" 0 0 COUNT 100 \
    -- "$((MESSAGES / 100))" 1 XREAD COUNT 100 STREAMS "s$size" 0
done

# fsync always: every produce acknowledged only after an fsync; 50 producers share fsyncs
# (group commit). Redis's appendfsync always also fsyncs once per event-loop iteration.
# (Not a disk-throughput test: fsync latency decides it.)
ALWAYS=7465
PEER_ALWAYS=7466
"$BIN" --port "$ALWAYS" --kafka-port 0 --dir "$DATA/stream-always" --fsync always 2>/dev/null &
PIDS+=($!)
mkdir -p "$DATA/redis-always"
redis-server --port "$PEER_ALWAYS" --save '' --appendonly yes --appendfsync always \
  --dir "$DATA/redis-always" --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$ALWAYS"
wait_port "$PEER_ALWAYS"
redis-cli -p "$ALWAYS" TOPIC.CREATE ta >/dev/null
value=$(head -c 100 /dev/zero | tr '\0' 'x')
PEER_PER=1
OURS=$ALWAYS
PEER=$PEER_ALWAYS
row "produce 100 B, fsync always, -P 1" 100 1 20000 1 PRODUCE ta "$value" \
  -- 20000 1 XADD sa '*' v "$value"
rounds=$(redis-cli -p "$ALWAYS" INFO stream | tr -d '\r' | awk -F: '/^fsync_rounds/ { print $2 }')
echo "  -> $((RUNS * 20000)) acknowledged produces in $rounds fsyncs (group commit)"
