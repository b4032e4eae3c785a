#!/usr/bin/env bash
# Work-queue throughput: infralab's broker against beanstalkd, side by side.
#   bench/broker.sh [runs] [messages] [messages-with-fsync-always]
# A producer process and a consumer process (4 connections each, one message per request)
# move N messages through each broker: send/QSEND, receive/QRECV BLOCK, ack/QACK for
# infralab; put, reserve-with-timeout, delete for beanstalkd. Both persist every message:
# infralab with --fsync everysec / always, beanstalkd with its binlog (-b) and -f 1000 / -f 0.
# Prints the median end-to-end messages/s (a message counts once its ack is confirmed) of
# each, for 16-byte and 1 KiB payloads, and the ratio infralab / beanstalkd; a third column
# drives infralab over its beanstalkd listener with beanstalkd's own harness (its ratio second).
. "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
N=${2:-20000}
N_ALWAYS=${3:-5000}
OURS=7410
PEER=7411
OURS_BEANSTALK=7412
TARGET=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}
DATA=$(mktemp -d)
trap 'cleanup; rm -rf "$DATA"' EXIT

command -v beanstalkd >/dev/null || { echo "beanstalkd is not installed (Debian: apt-get install beanstalkd)" >&2; exit 1; }
cargo build --release -q -p broker --bin infralab-broker --example queue_load \
  --manifest-path "$BENCH_ROOT/Cargo.toml"
LOAD="$TARGET/release/examples/queue_load"

# wait_tcp PORT: until something accepts connections there.
wait_tcp() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on port $1" >&2
  return 1
}

# one_run PROTOCOL PORT MESSAGES SIZE: messages/s measured by the consumer.
one_run() {
  local protocol=$1 port=$2 n=$3 size=$4
  "$LOAD" --protocol "$protocol" --addr "127.0.0.1:$port" --role produce --messages "$n" --size "$size" >/dev/null &
  local producer=$!
  "$LOAD" --protocol "$protocol" --addr "127.0.0.1:$port" --role consume --messages "$n" --size "$size" | awk '{ print $4 }'
  wait "$producer"
}

# scenario LABEL FSYNC BEANSTALK_F MESSAGES: fresh servers, both payload sizes.
scenario() {
  local label=$1 fsync=$2 f=$3 n=$4
  rm -rf "$DATA/ours" "$DATA/peer"
  mkdir -p "$DATA/peer"
  "$TARGET/release/infralab-broker" --port "$OURS" --beanstalk-port "$OURS_BEANSTALK" --sqs-port 0 \
    --dir "$DATA/ours" --fsync "$fsync" 2>/dev/null &
  local ours=$!
  beanstalkd -l 127.0.0.1 -p "$PEER" -b "$DATA/peer" -f "$f" -z 2048 &
  local peer=$!
  PIDS+=("$ours" "$peer")
  wait_tcp "$OURS"
  wait_tcp "$PEER"
  for size in 16 1024; do
    local a=() b=() c=()
    for _ in $(seq 1 "$RUNS"); do
      a+=("$(one_run resp "$OURS" "$n" "$size")")
      b+=("$(one_run beanstalk "$PEER" "$n" "$size")")
      c+=("$(one_run beanstalk "$OURS_BEANSTALK" "$n" "$size")")
    done
    local ma mb mc
    ma=$(median "${a[@]}")
    mb=$(median "${b[@]}")
    mc=$(median "${c[@]}")
    printf '%-34s infralab %9.0f msg/s   beanstalkd %9.0f msg/s   ratio %5.2f   (runs: %s | %s)\n' \
      "$label, $size B" "$ma" "$mb" "$(awk -v x="$ma" -v y="$mb" 'BEGIN { print (y > 0) ? x / y : 0 }')" \
      "${a[*]}" "${b[*]}"
    printf '%-34s infralab over beanstalkd protocol %9.0f msg/s   ratio %5.2f   (runs: %s)\n' \
      "$label, $size B" "$mc" "$(awk -v x="$mc" -v y="$mb" 'BEGIN { print (y > 0) ? x / y : 0 }')" "${c[*]}"
  done
  kill "$ours" "$peer" 2>/dev/null || true
  wait "$ours" "$peer" 2>/dev/null || true
}

echo "send+receive+ack, 4 producer + 4 consumer connections, median of $RUNS runs ($(beanstalkd -v))"
scenario "everysec | -f 1000, $N msgs" everysec 1000 "$N"
scenario "always | -f 0, $N_ALWAYS msgs" always 0 "$N_ALWAYS"
