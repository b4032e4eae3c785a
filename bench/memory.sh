#!/usr/bin/env bash
# Memory per key: kv against redis-server, side by side, for the same keys.
#   bench/memory.sh [keys] [runs]        (default 1,000,000 string keys, 1 run)
# Both in memory: kv with no --dir, redis-server --save '' --appendonly no (persistence
# would add the journal's and the AOF's buffers, not per-key cost). Each row starts a fresh
# pair (servers pinned to CPU 1, the loader to CPU 0), reads each server's resident memory
# (VmRSS in /proc/PID/status) at rest, loads the same keys into both with
# `redis-cli --pipe` (a generated command stream, so the keys and values are identical),
# reads VmRSS again and `INFO memory` used_memory, and prints the bytes per key of each
# (RSS growth / DBSIZE) and the ratio kv / redis. Rows:
#   strings  SET key:%012d <16-byte value>            (redis-benchmark -t set -d 16's shape)
#   hashes   HSET hash:%012d with 5 fields f1..f5 of 8-byte values   (keys / 5)
#   sets     SADD set:%012d with 5 members m:<8 chars>              (keys / 5)
# RSS is what the machine pays, allocator rounding and fragmentation included; used_memory
# is each server's own count (kv's is an estimate, see crates/kv/src/keyspace.rs).
. "$(dirname "$0")/lib.sh"
KEYS=${1:-1000000}
RUNS=${2:-1}
KV_PORT=7420
REDIS_PORT=7421

infralab_bin

# rss PID: resident bytes.
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# used PORT: INFO memory used_memory.
used() { redis-cli -p "$1" INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ { print $2 }'; }
# pid_of PORT: the server's process id, as it reports it.
pid_of() { redis-cli -p "$1" INFO server | tr -d '\r' | awk -F: '/^process_id:/ { print $2 }'; }

# commands ROW N: the RESP command stream of one row (awk writes the protocol itself, so
# nothing but the bytes differs between runs).
commands() {
  awk -v row="$1" -v n="$2" 'function cmd(k, line,   i, out) {
      out = sprintf("*%d\r\n", k)
      for (i = 1; i <= k; i++) out = out sprintf("$%d\r\n%s\r\n", length(line[i]), line[i])
      printf "%s", out
    }
    BEGIN {
      for (i = 0; i < n; i++) {
        if (row == "strings") {
          w[1] = "SET"; w[2] = sprintf("key:%012d", i); w[3] = sprintf("v%015d", i); cmd(3, w)
        } else if (row == "hashes") {
          w[1] = "HSET"; w[2] = sprintf("hash:%012d", i)
          for (f = 1; f <= 5; f++) { w[1 + 2 * f] = "f" f; w[2 + 2 * f] = sprintf("%08d", i + f) }
          cmd(12, w)
        } else {
          w[1] = "SADD"; w[2] = sprintf("set:%012d", i)
          for (f = 1; f <= 5; f++) w[2 + f] = sprintf("m:%06d%d", i, f)
          cmd(7, w)
        }
      }
    }'
}

# measure ROW N: one fresh pair, loaded with ROW; prints one line per server.
measure() {
  local row=$1 n=$2 port pid base after keys
  # This runs in a subshell (see below): stop its servers however it ends.
  trap cleanup EXIT
  PIDS=()
  taskset -c 1 "$BIN" kv --port "$KV_PORT" 2>/dev/null &
  PIDS+=($!)
  taskset -c 1 redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
  PIDS+=($!)
  for port in "$KV_PORT" "$REDIS_PORT"; do wait_port "$port"; done
  for port in "$KV_PORT" "$REDIS_PORT"; do
    pid=$(pid_of "$port")
    base=$(rss "$pid")
    commands "$row" "$n" | taskset -c 0 redis-cli -p "$port" --pipe >/dev/null
    keys=$(redis-cli -p "$port" DBSIZE)
    # Let each allocator settle (kv nudges mimalloc to purge once a second).
    sleep 2
    after=$(rss "$pid")
    echo "$port $keys $base $after $(used "$port")"
  done
  cleanup
  PIDS=()
  # Wait for both to exit, so the next pair gets the ports.
  for port in "$KV_PORT" "$REDIS_PORT"; do
    for _ in $(seq 1 100); do redis-cli -p "$port" PING >/dev/null 2>&1 || break; sleep 0.1; done
  done
}

echo "memory per key: kv (no --dir) vs redis-server $(redis-server --version | awk '{print $3}') (no persistence), median of $RUNS run(s)"
printf '%-8s %9s | %14s %14s %6s | %14s %14s\n' row keys "kv B/key" "redis B/key" ratio \
  "kv used/key" "redis used/key"
for row in strings hashes sets; do
  n=$KEYS
  [ "$row" = strings ] || n=$((KEYS / 5))
  kv_rss=() redis_rss=() kv_used=() redis_used=()
  for _ in $(seq 1 "$RUNS"); do
    while read -r port keys base after used_mem; do
      per=$(((after - base) / keys))
      per_used=$((used_mem / keys))
      if [ "$port" = "$KV_PORT" ]; then
        kv_rss+=("$per") kv_used+=("$per_used") kv_keys=$keys
      else
        redis_rss+=("$per") redis_used+=("$per_used") redis_keys=$keys
      fi
    done < <(measure "$row" "$n")
  done
  if [ "$kv_keys" != "$redis_keys" ]; then
    echo "$row: kv holds $kv_keys keys, redis $redis_keys" >&2
    exit 1
  fi
  a=$(median "${kv_rss[@]}") b=$(median "${redis_rss[@]}")
  printf '%-8s %9d | %14.0f %14.0f %6.2f | %14.0f %14.0f\n' "$row" "$kv_keys" "$a" "$b" \
    "$(awk -v x="$a" -v y="$b" 'BEGIN { print (y > 0) ? x / y : 0 }')" \
    "$(median "${kv_used[@]}")" "$(median "${redis_used[@]}")"
done
