#!/usr/bin/env bash
# kv against redis-server, side by side: SET, GET, INCR, MSET and the collection tests
# (LPUSH, RPUSH, LPOP, RPOP, SADD, HSET, SPOP, ZADD, ZPOPMIN, LRANGE_100) with
# redis-benchmark (-c 50, -P 1 and -P 16), first in memory, then persistent; then GEOADD
# and GEOSEARCH (custom command lines, in memory, pinned), and EVALSHA of a Lua script.
#   bench/kv.sh [runs] [requests]
#   in memory:  kv (no --dir)              vs redis-server --save '' --appendonly no
#   persistent: kv --dir D --fsync everysec vs redis-server --appendonly yes --appendfsync everysec
# Prints the median requests/s of each and the ratio kv / redis per command. Then, in
# memory, custom command lines: SETBIT, BITCOUNT, PFADD, PFCOUNT, SORT_RO, LMPOP
# (ONLY_CUSTOM=1 runs only those).
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
# TEST "-": the custom command line at the end of the arguments (geo, scripting, bitmaps...), with
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

# ONLY_CUSTOM=1 bench/kv.sh: skip to the custom command lines at the end.
ONLY_CUSTOM=${ONLY_CUSTOM:-0}
# The acceptance run: every test passes with no error replies, at both pipeline depths.
[ "$ONLY_CUSTOM" = 1 ] || for port in "$KV_MEM" "$KV_DISK"; do
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
[ "$ONLY_CUSTOM" = 1 ] || for mode in memory disk; do
  if [ "$mode" = memory ]; then ours=$KV_MEM peer=$REDIS_MEM; else ours=$KV_DISK peer=$REDIS_DISK; fi
  echo "-- $mode"
  for t in set get incr mset ${COLLECTIONS//,/ }; do
    compare "$mode ${t^^} -P 1" "$ours" "$peer" "$t" "$RUNS" -c 50 -n "$N" -P 1
    compare "$mode ${t^^} -P 16" "$ours" "$peer" "$t" "$RUNS" -c 50 -n "$((N * 5))" -P 16
  done
done

# Geo rows: GEOADD of random places, and GEOSEARCH BYRADIUS on a key holding 10,000
# places (about 80 within the 5 km searched, sorted by distance). redis-benchmark has no
# geo test, so these run custom command lines, against a fresh in-memory pair pinned to
# CPU 1 while the load generator runs on CPU 0.
KV_GEO=7414
REDIS_GEO=7415
taskset -c 1 "$BIN" kv --port "$KV_GEO" 2>/dev/null &
PIDS+=($!)
taskset -c 1 redis-server --port "$REDIS_GEO" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
PIDS+=($!)
for port in "$KV_GEO" "$REDIS_GEO"; do
  wait_port "$port"
  # The same 10,000 places on both, 100 per GEOADD.
  awk 'BEGIN { srand(7); for (c = 0; c < 100; c++) { line = "GEOADD geo:places"
    for (i = 0; i < 100; i++) line = line sprintf(" %.6f %.6f p%d", 13 + rand(), 38 + rand(), c * 100 + i)
    print line } }' | redis-cli -p "$port" >/dev/null
done
GEOADD=(GEOADD geo:bench "13.__rand_int__" "38.__rand_int__" "m:__rand_int__")
GEOSEARCH=(GEOSEARCH geo:places FROMLONLAT 13.5 38.5 BYRADIUS 5 km ASC)
for p in 1 16; do
  for cmd in GEOADD GEOSEARCH; do
    declare -n line=$cmd
    out=$(redis-benchmark -p "$KV_GEO" -c 50 -n 1000 -r 100000 -P "$p" -q "${line[@]}" 2>&1 | tr '\r' '\n')
    if grep -qiE 'error|ERR ' <<<"$out"; then
      echo "errors from kv on $cmd at -P $p:" >&2
      exit 1
    fi
  done
done
echo "-- geo (in memory, pinned: servers CPU 1, load CPU 0)"
compare "GEOADD -P 1" "$KV_GEO" "$REDIS_GEO" - "$RUNS" -c 50 -n "$N" -r 100000 -P 1 "${GEOADD[@]}"
compare "GEOADD -P 16" "$KV_GEO" "$REDIS_GEO" - "$RUNS" -c 50 -n "$((N * 5))" -r 100000 -P 16 "${GEOADD[@]}"
compare "GEOSEARCH 5km -P 1" "$KV_GEO" "$REDIS_GEO" - "$RUNS" -c 50 -n "$((N / 4))" -P 1 "${GEOSEARCH[@]}"
compare "GEOSEARCH 5km -P 16" "$KV_GEO" "$REDIS_GEO" - "$RUNS" -c 50 -n "$N" -P 16 "${GEOSEARCH[@]}"

# Commands redis-benchmark has no test for, as custom command lines (`__rand_int__` is
# replaced per request by a zero-padded number, `-r` sets its range; Redis refuses one
# as a bit offset, so SETBIT varies its key): bitmaps, HyperLogLog, SORT_RO and LMPOP
# (on empty lists: what a poller of several queues mostly sees). Pinned: the servers on
# CPU 1, redis-benchmark on CPU 0.
for port in "$KV_MEM" "$REDIS_MEM"; do
  taskset -acp 1 "$(redis-cli -p "$port" INFO server | tr -d '\r' | awk -F: '/^process_id/ { print $2 }')" >/dev/null
  redis-cli -p "$port" FLUSHALL >/dev/null
  redis-cli -p "$port" RPUSH sortme $(seq 100 -1 1) >/dev/null
  redis-cli -p "$port" PFADD sketch $(seq 1 1000) >/dev/null
  redis-cli -p "$port" SETBIT bits 8000 1 >/dev/null
done
echo "-- memory, custom commands (servers on CPU 1, redis-benchmark on CPU 0)"
for p in 1 16; do
  n=$N
  [ "$p" = 16 ] && n=$((N * 5))
  compare "SETBIT -P $p" "$KV_MEM" "$REDIS_MEM" - "$RUNS" -c 50 -n "$n" -P "$p" -r 1000 SETBIT bits:__rand_int__ 1001 1
  compare "BITCOUNT -P $p" "$KV_MEM" "$REDIS_MEM" - "$RUNS" -c 50 -n "$n" -P "$p" BITCOUNT bits 0 1000
  compare "PFADD -P $p" "$KV_MEM" "$REDIS_MEM" - "$RUNS" -c 50 -n "$n" -P "$p" -r 1000000 PFADD hll __rand_int__
  compare "PFCOUNT -P $p" "$KV_MEM" "$REDIS_MEM" - "$RUNS" -c 50 -n "$n" -P "$p" PFCOUNT sketch
  compare "SORT_RO 100 -P $p" "$KV_MEM" "$REDIS_MEM" - "$RUNS" -c 50 -n "$((n / 10))" -P "$p" SORT_RO sortme LIMIT 0 10
  compare "LMPOP (empty) -P $p" "$KV_MEM" "$REDIS_MEM" - "$RUNS" -c 50 -n "$n" -P "$p" LMPOP 2 none1 none2 LEFT
done

# Scripting: EVALSHA of a small script (INCR, then GET) from redis-benchmark's custom
# command line, on the geo rows' pinned pair.
KV_LUA=$KV_GEO
REDIS_LUA=$REDIS_GEO
LUA="redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])"
for port in "$KV_LUA" "$REDIS_LUA"; do
  wait_port "$port"
  SHA=$(redis-cli -p "$port" SCRIPT LOAD "$LUA")
done
echo "-- scripting (servers on CPU 1, redis-benchmark on CPU 0)"
compare "EVALSHA -P 1" "$KV_LUA" "$REDIS_LUA" - "$RUNS" -c 50 -n "$N" -P 1 EVALSHA "$SHA" 1 counter
compare "EVALSHA -P 16" "$KV_LUA" "$REDIS_LUA" - "$RUNS" -c 50 -n "$((N * 5))" -P 16 EVALSHA "$SHA" 1 counter
