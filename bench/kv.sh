#!/usr/bin/env bash
# kv against redis-server, side by side: SET, GET, INCR, MSET and the collection tests
# (LPUSH, RPUSH, LPOP, RPOP, SADD, HSET, SPOP, ZADD, ZPOPMIN, LRANGE_100) with
# redis-benchmark (-c 50, -P 1 and -P 16), first in memory, then persistent; then EVALSHA
# of a Lua script (in memory).
#   bench/kv.sh [runs] [requests]
#   in memory:  kv (no --dir)              vs redis-server --save '' --appendonly no
#   persistent: kv --dir D --fsync everysec vs redis-server --appendonly yes --appendfsync everysec
# Prints the median requests/s of each and the ratio kv / redis per command.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
N=${2:-200000}
KV_MEM=7410
REDIS_MEM=7411
KV_DISK=7412
REDIS_DISK=7413
DATA=$(mktemp -d)
COLLECTIONS=lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100

# rps PORT TEST [args...]: like lib.sh's, but also reads "MSET (10 keys): N requests per second".
# TEST "-": the custom command line at the end of the arguments (the scripting rows), with
# redis-benchmark pinned to CPU 0 (the servers it measures are on CPU 1).
rps() {
  local port=$1 test=$2
  shift 2
  if [ "$test" = - ]; then
    set -- taskset -c 0 redis-benchmark -p "$port" -q "$@"
  else
    set -- redis-benchmark -p "$port" -t "$test" -q "$@"
  fi
  "$@" 2>/dev/null | tr '\r' '\n' |
    awk '/requests per second/ { for (i = 1; i < NF; i++) if ($(i + 1) == "requests") rate = $i } END { print rate + 0 }'
}
trap 'cleanup; rm -rf "$DATA"' EXIT

cargo build --release -q -p infralab --manifest-path "$BENCH_ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab"

"$BIN" kv --port "$KV_MEM" 2>/dev/null &
PIDS+=($!)
"$BIN" kv --port "$KV_DISK" --dir "$DATA/kv" --fsync everysec 2>/dev/null &
PIDS+=($!)
start_redis "$REDIS_MEM"
mkdir -p "$DATA/redis"
redis-server --port "$REDIS_DISK" --save '' --appendonly yes --appendfsync everysec \
  --dir "$DATA/redis" --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
for port in "$KV_MEM" "$KV_DISK" "$REDIS_DISK"; do wait_port "$port"; done

# The acceptance run: every test passes with no error replies, at both pipeline depths.
for port in "$KV_MEM" "$KV_DISK"; do
  for p in 1 16; do
    out=$(redis-benchmark -p "$port" -t "set,get,incr,mset,$COLLECTIONS" -c 50 -n "$N" -P "$p" -q 2>&1 | tr '\r' '\n')
    if grep -qiE 'error|ERR ' <<<"$out"; then
      echo "errors from kv on port $port at -P $p:" >&2
      grep -iE 'error|ERR ' <<<"$out" | head -5 >&2
      exit 1
    fi
  done
done

echo "kv vs redis-server $(redis-server --version | awk '{print $3}'): $N requests, 50 clients, median of $RUNS runs"
for mode in memory disk; do
  if [ "$mode" = memory ]; then ours=$KV_MEM peer=$REDIS_MEM; else ours=$KV_DISK peer=$REDIS_DISK; fi
  echo "-- $mode"
  for t in set get incr mset ${COLLECTIONS//,/ }; do
    compare "$mode ${t^^} -P 1" "$ours" "$peer" "$t" "$RUNS" -c 50 -n "$N" -P 1
    compare "$mode ${t^^} -P 16" "$ours" "$peer" "$t" "$RUNS" -c 50 -n "$((N * 5))" -P 16
  done
done

# Scripting: EVALSHA of a small script (INCR, then GET) from redis-benchmark's custom
# command line; a kv and a redis-server of their own, pinned to CPU 1.
KV_LUA=7414
REDIS_LUA=7415
taskset -c 1 "$BIN" kv --port "$KV_LUA" 2>/dev/null &
PIDS+=($!)
taskset -c 1 redis-server --port "$REDIS_LUA" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
LUA="redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])"
for port in "$KV_LUA" "$REDIS_LUA"; do
  wait_port "$port"
  SHA=$(redis-cli -p "$port" SCRIPT LOAD "$LUA")
done
echo "-- scripting (servers on CPU 1, redis-benchmark on CPU 0)"
compare "EVALSHA -P 1" "$KV_LUA" "$REDIS_LUA" - "$RUNS" -c 50 -n "$N" -P 1 EVALSHA "$SHA" 1 counter
compare "EVALSHA -P 16" "$KV_LUA" "$REDIS_LUA" - "$RUNS" -c 50 -n "$((N * 5))" -P 16 EVALSHA "$SHA" 1 counter
