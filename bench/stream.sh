#!/usr/bin/env bash
# stream against redis-server Streams, side by side, and against the disk.
#   bench/stream.sh [runs] [messages] [disk MiB per batched run]
# Same client (redis-benchmark, 50 connections) and the same batch sizes for both:
#   produce, pipelined:  PRODUCE t <value>                 vs  XADD s * v <value>            (-P 100)
#   produce, batched:    PRODUCE.BATCH t VALUES <value>xB  vs  XADD s * v <value>            (-P B)
#                        B = 1000 at 100 B, 100 at 1 KiB: ~100 KB per request, the batch.size
#                        Confluent's "optimize for throughput" recipe sets (100,000-200,000
#                        bytes; Kafka's default, 16 KB, is tuned for latency). Redis has no
#                        multi-entry XADD: its batch is a pipeline of B XADDs.
#                        (reply: one [partition, base_offset, count] per partition written)
#   consume:             FETCH t 0 0 COUNT 100             vs  XREAD COUNT 100 STREAMS s 0
# for 100-byte and 1 KiB values. Durability is the same on both sides:
#   stream --fsync everysec   vs   redis-server --appendonly yes --appendfsync everysec
#
# The client must not be the bottleneck. Each figure compared with Redis is the server's
# best of redis-benchmark --threads 1 and --threads 2 (both are printed): replies of 100
# records cost the client more to parse than either server spends producing them (one
# client thread at 100% of a core while stream used 45% and redis-server 85%, 2026-11-28),
# and on two cores a second client thread helps only a server that has CPU to spare — so
# both are tried, for both servers, and each keeps its better one. Our batched produce,
# which interleaves with dd, runs with one client thread: there the server is the busy
# side (87% of a core against the client's 60% at batches of 100).
#
# The disk: the batched produce runs are each preceded by a dd of the same volume
# (bs=1M conv=fdatasync), so both see the disk in the same state. A single 1 GiB dd is not
# the disk's rate on a VM: six back-to-back 1 GiB dd's ran at 710, 258, 227, 258, 267 and
# 240 MB/s (2026-11-28) — the first fills the host's write cache, the rest are the disk.
# Interleaving gives each side the same share of that cache.
# Last, produce under stream --fsync always vs redis --appendfsync always (-P 1, 50 clients),
# with the number of fsyncs the group commit needed.
# Prints medians of messages/s and payload MB/s, and ratios.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
MESSAGES=${2:-500000}
DISK_MIB=${3:-1024}
OURS=7463
PEER=7464
DATA=$(mktemp -d)
trap 'cleanup; rm -rf "$DATA"' EXIT

cargo build --release -q -p stream --bin infralab-stream --manifest-path "$BENCH_ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab-stream"

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

# rps_cmd PORT N PIPELINE COMMAND...: requests/s of one custom redis-benchmark command
# ($THREADS client threads, default 1).
rps_cmd() {
  local port=$1 n=$2 p=$3
  shift 3
  local out
  out=$(redis-benchmark -p "$port" -c 50 -n "$n" -P "$p" --threads "${THREADS:-1}" -q "$@" 2>&1 | tr '\r' '\n')
  if grep -qi 'error' <<<"$out"; then
    echo "error replies from port $port for $1: $(head -3 <<<"$out" | cut -c1-200)" >&2
    exit 1
  fi
  awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "requests") rate = $i } END { print rate }' <<<"$out"
}

# best_rps PORT N PIPELINE COMMAND...: "best one two" — requests/s with the better of one
# and two client threads, then each. (Called inside $(...), where bash drops `set -e`:
# a failed run is returned, so the caller's assignment stops the script.)
best_rps() {
  local one two
  one=$(THREADS=1 rps_cmd "$@") || return 1
  two=$(THREADS=2 rps_cmd "$@") || return 1
  awk -v a="$one" -v b="$two" 'BEGIN { print ((a > b) ? a : b), a, b }'
}

# msgs REQUESTS_PER_S MSGS_PER_REQUEST: messages/s.
msgs() { awk -v r="$1" -v k="$2" 'BEGIN { printf "%.0f", r * k }'; }

# mbs MSGS_PER_S SIZE: payload MB/s.
mbs() { awk -v m="$1" -v s="$2" 'BEGIN { print m * s / 1e6 }'; }

# report LABEL SIZE OURS_MSGS PEER_MSGS: one line, stream vs redis.
report() {
  printf '%-36s stream %10.0f msg/s %8.1f MB/s   redis %10.0f msg/s %8.1f MB/s   ratio %5.2f\n' \
    "$1" "$3" "$(mbs "$3" "$2")" "$4" "$(mbs "$4" "$2")" \
    "$(awk -v x="$3" -v y="$4" 'BEGIN { print (y > 0) ? x / y : 0 }')"
}

# row LABEL SIZE MSGS_PER_REQUEST OURS_N OURS_P OURS_CMD -- PEER_MSGS_PER_REQUEST PEER_N PEER_P PEER_CMD
# (best of one and two client threads for each server, medians of RUNS, interleaved;
# the second line: the medians with one and with two client threads)
row() {
  local label=$1 size=$2 per=$3 on=$4 op=$5
  shift 5
  local ours=()
  while [ "$1" != "--" ]; do ours+=("$1"); shift; done
  shift
  local pper=$1 pn=$2 pp=$3
  shift 3
  local a=() a1=() a2=() b=() b1=() b2=() out x y z
  for _ in $(seq 1 "$RUNS"); do
    out=$(best_rps "$OURS" "$on" "$op" "${ours[@]}")
    read -r x y z <<<"$out"
    a+=("$x") a1+=("$y") a2+=("$z")
    out=$(best_rps "$PEER" "$pn" "$pp" "$@")
    read -r x y z <<<"$out"
    b+=("$x") b1+=("$y") b2+=("$z")
  done
  report "$label" "$size" "$(msgs "$(median "${a[@]}")" "$per")" "$(msgs "$(median "${b[@]}")" "$pper")"
  printf '  -> msg/s with one / two client threads: stream %s / %s, redis %s / %s\n' \
    "$(msgs "$(median "${a1[@]}")" "$per")" "$(msgs "$(median "${a2[@]}")" "$per")" \
    "$(msgs "$(median "${b1[@]}")" "$pper")" "$(msgs "$(median "${b2[@]}")" "$pper")"
}

# dd_mbs MIB: the disk's rate writing MIB MiB sequentially, on disk when dd returns.
dd_mbs() {
  dd if=/dev/zero of="$DATA/dd" bs=1M count="$1" conv=fdatasync 2>"$DATA/dd.out"
  rm -f "$DATA/dd"
  awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.,]+$/ && $(i + 1) ~ /[GM]B\/s/) { v = $i; sub(",", ".", v); print ($(i + 1) ~ /^GB/) ? v * 1000 : v } }' "$DATA/dd.out"
}

echo "stream vs redis-server $(redis-server --version | awk '{print $3}') Streams, both fsync everysec;"
echo "redis-benchmark -c 50, best of --threads 1 and 2; $MESSAGES messages per produce run; median of $RUNS runs"
for size in 100 1024; do
  per=$((size == 100 ? 1000 : 100))
  value=$(head -c "$size" /dev/zero | tr '\0' 'x')
  batch=()
  for _ in $(seq 1 "$per"); do batch+=("$value"); done
  redis-cli -p "$OURS" TOPIC.CREATE "t$size" >/dev/null
  row "produce $size B, pipeline 100" "$size" 1 "$MESSAGES" 100 PRODUCE "t$size" "$value" \
    -- 1 "$MESSAGES" 100 XADD "s$size" '*' v "$value"

  # Batched produce: each run writes DISK_MIB MiB of payload right after dd wrote as much.
  requests=$((DISK_MIB * 1048576 / size / per))
  ours=() disk=() share=() peer=()
  for _ in $(seq 1 "$RUNS"); do
    d=$(dd_mbs "$DISK_MIB")
    r=$(rps_cmd "$OURS" "$requests" 1 PRODUCE.BATCH "t$size" VALUES "${batch[@]}")
    m=$(msgs "$r" "$per")
    ours+=("$m")
    disk+=("$d")
    share+=("$(awk -v a="$(mbs "$m" "$size")" -v d="$d" 'BEGIN { print 100 * a / d }')")
    peer+=("$(best_rps "$PEER" "$MESSAGES" "$per" XADD "s$size" '*' v "$value" | awk '{ print $1 }')")
  done
  report "produce $size B, batches of $per" "$size" "$(median "${ours[@]}")" "$(median "${peer[@]}")"
  printf '  -> %.0f%% of the disk (median of runs; each run %s MiB, dd of as much just before it: %s MB/s)\n' \
    "$(median "${share[@]}")" "$DISK_MIB" "${disk[*]}"

  row "consume $size B, 100 per request" "$size" 100 "$((MESSAGES / 10))" 1 FETCH "t$size" 0 0 COUNT 100 \
    -- 100 "$((MESSAGES / 10))" 1 XREAD COUNT 100 STREAMS "s$size" 0
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
OURS=$ALWAYS
PEER=$PEER_ALWAYS
a=() b=()
for _ in $(seq 1 "$RUNS"); do
  a+=("$(rps_cmd "$OURS" 20000 1 PRODUCE ta "$value")")
  b+=("$(rps_cmd "$PEER" 20000 1 XADD sa '*' v "$value")")
done
report "produce 100 B, fsync always, -P 1" 100 "$(median "${a[@]}")" "$(median "${b[@]}")"
rounds=$(redis-cli -p "$ALWAYS" INFO stream | tr -d '\r' | awk -F: '/^fsync_rounds/ { print $2 }')
echo "  -> $((RUNS * 20000)) acknowledged produces in $rounds fsyncs (group commit)"
