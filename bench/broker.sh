#!/usr/bin/env bash
# Work-queue throughput: infralab's broker against beanstalkd, side by side.
#   bench/broker.sh [runs] [messages] [messages-with-fsync-always]
# One harness (crates/broker/examples/queue_load.rs) moves N messages through each broker,
# a producer process and a consumer process of 4 connections each, one message per request:
#   - beanstalkd:                      put, reserve-with-timeout, delete
#   - infralab over beanstalkd's protocol (--beanstalk-port): the very same requests
#   - infralab over RESP:              QSEND, QRECV BLOCK, QACK
# The figure is end-to-end messages/s (a message counts once its delete/ack is confirmed).
#
# Durability is the same on both sides, row by row:
#   everysec | -f 1000: every change written to the kernel (write(2)) before its reply,
#                       fsync at most once a second (infralab --fsync everysec, its default;
#                       beanstalkd with its binlog, -b DIR -f 1000). A killed process loses
#                       nothing acknowledged; a machine crash up to a second.
#   always   | -f 0:    fsync before the reply (infralab --fsync always; beanstalkd -f 0).
# (beanstalkd's own default is no binlog at all, i.e. nothing survives a restart, so it is
# not a like-for-like row; with -b and no -f it fsyncs at most every 50 ms.)
#
# The machine is shared: servers are pinned to CPU 1 and the load generator to CPU 0
# (taskset), the brokers are run in alternating order (a drift in the machine's speed then
# favours neither), and the median of RUNS runs is printed with every run's figure. The
# ratio is infralab / beanstalkd. Beside the rate, the server's CPU time per message (user +
# system, from /proc/PID/stat, over the run): under load the rate swings with what else the
# machine runs, the CPU a message costs much less.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
N=${2:-50000}
N_ALWAYS=${3:-5000}
OURS=7410
PEER=7411
OURS_BEANSTALK=7412
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
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

# cpu_ticks PID: the process's user + system CPU time, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# one_run PROTOCOL PORT MESSAGES SIZE SERVER_PID: "messages/s µs-of-server-CPU-per-message",
# the rate measured by the consumer.
one_run() {
  local protocol=$1 port=$2 n=$3 size=$4 server=$5
  local load=(taskset -c "$LOAD_CPU" "$LOAD" --protocol "$protocol" --addr "127.0.0.1:$port" --messages "$n" --size "$size")
  local before rate after
  before=$(cpu_ticks "$server")
  "${load[@]}" --role produce >/dev/null &
  local producer=$!
  rate=$("${load[@]}" --role consume | awk '{ print $4 }')
  wait "$producer"
  after=$(cpu_ticks "$server")
  echo "$rate $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
}

# first and second of "a b" pairs: the rates and the CPU figures of a list of runs.
rates() { printf '%s\n' "$@" | awk '{ print $1 }'; }
cpus() { printf '%s\n' "$@" | awk '{ print $2 }'; }

# ratio X Y: X / Y with two decimals.
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0) ? x / y : 0 }'; }

# scenario LABEL FSYNC BEANSTALK_F MESSAGES: fresh servers, both payload sizes.
scenario() {
  local label=$1 fsync=$2 f=$3 n=$4
  rm -rf "$DATA/ours" "$DATA/peer"
  mkdir -p "$DATA/peer"
  taskset -c "$SERVER_CPU" "$TARGET/release/infralab-broker" --port "$OURS" \
    --beanstalk-port "$OURS_BEANSTALK" --sqs-port 0 --dir "$DATA/ours" --fsync "$fsync" 2>/dev/null &
  local ours=$!
  taskset -c "$SERVER_CPU" beanstalkd -l 127.0.0.1 -p "$PEER" -b "$DATA/peer" -f "$f" -z 2048 &
  local peer=$!
  PIDS+=("$ours" "$peer")
  wait_tcp "$OURS"
  wait_tcp "$PEER"
  for size in 16 1024; do
    local resp=() peer_runs=() ours_runs=() i
    for i in $(seq 1 "$RUNS"); do
      if ((i % 2)); then
        peer_runs+=("$(one_run beanstalk "$PEER" "$n" "$size" "$peer")")
        ours_runs+=("$(one_run beanstalk "$OURS_BEANSTALK" "$n" "$size" "$ours")")
        resp+=("$(one_run resp "$OURS" "$n" "$size" "$ours")")
      else
        resp+=("$(one_run resp "$OURS" "$n" "$size" "$ours")")
        ours_runs+=("$(one_run beanstalk "$OURS_BEANSTALK" "$n" "$size" "$ours")")
        peer_runs+=("$(one_run beanstalk "$PEER" "$n" "$size" "$peer")")
      fi
    done
    local mp mo mr cp co cr
    mp=$(median $(rates "${peer_runs[@]}"))
    mo=$(median $(rates "${ours_runs[@]}"))
    mr=$(median $(rates "${resp[@]}"))
    cp=$(median $(cpus "${peer_runs[@]}"))
    co=$(median $(cpus "${ours_runs[@]}"))
    cr=$(median $(cpus "${resp[@]}"))
    printf '%-30s beanstalkd %8.0f msg/s | infralab, beanstalkd protocol %8.0f msg/s  ratio %s | infralab, RESP %8.0f msg/s  ratio %s\n' \
      "$label, $size B" "$mp" "$mo" "$(ratio "$mo" "$mp")" "$mr" "$(ratio "$mr" "$mp")"
    printf '%-30s server CPU per message: beanstalkd %s µs | beanstalkd protocol %s µs | RESP %s µs\n' \
      "" "$cp" "$co" "$cr"
    printf '%-30s   runs (msg/s): beanstalkd %s | beanstalkd protocol %s | RESP %s\n' \
      "" "$(rates "${peer_runs[@]}" | xargs)" "$(rates "${ours_runs[@]}" | xargs)" "$(rates "${resp[@]}" | xargs)"
  done
  kill "$ours" "$peer" 2>/dev/null || true
  wait "$ours" "$peer" 2>/dev/null || true
}

echo "put/send + reserve/receive + delete/ack, 4 producer + 4 consumer connections, median of $RUNS runs"
echo "($(beanstalkd -v); servers on CPU $SERVER_CPU, load generator on CPU $LOAD_CPU)"
scenario "everysec | -f 1000, $N msgs" everysec 1000 "$N"
scenario "always | -f 0, $N_ALWAYS msgs" always 0 "$N_ALWAYS"
