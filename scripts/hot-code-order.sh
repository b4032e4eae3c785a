#!/usr/bin/env bash
# Renews hot-code.order (see build.rs): the functions kv's pipelined requests run through,
# hottest first, as callgrind counts them in a release build.
#   scripts/hot-code-order.sh [port]      (default port 7499; needs valgrind, redis-benchmark)
# For each row (SETBIT, PFADD, PFCOUNT, LMPOP, SPOP, SET, GET, INCR, SADD, HSET, and bench/kv.sh's
# EVALSHA script, at -c 50 -P 16)
# the server runs under callgrind with symbol names left mangled (the ordering file names
# symbols as the linker sees them); after a warm-up its counters are zeroed, 20,000 requests
# are profiled, and every function of the binary that ran 1,000 instructions or more over
# all rows is listed, by instructions, hottest first.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-7499}
BIN="${CARGO_TARGET_DIR:-target}/release/infralab"
cargo build --release -q -p infralab
# bench/kv.sh's script: its row lays out mlua's glue and the Lua VM's hot functions too.
LUA="redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])"
SHA=$(printf '%s' "$LUA" | sha1sum | cut -d' ' -f1)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
rows=(
  "-r 1000 SETBIT bits:__rand_int__ 1001 1"
  "-r 1000000 PFADD hll __rand_int__"
  "PFCOUNT sketch"
  "LMPOP 2 none1 none2 LEFT"
  "SPOP myset"
  "-r 100000 SET key:__rand_int__ xxxxxxxxxxxxxxxx"
  "-r 100000 GET key:__rand_int__"
  "INCR counter"
  "-r 100000 SADD s __rand_int__"
  "-r 100000 HSET h __rand_int__ v"
  "EVALSHA $SHA 1 counter"
)
for i in "${!rows[@]}"; do
  read -ra cmd <<<"${rows[$i]}"
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$OUT/row$i.out" \
    "$BIN" kv --port "$PORT" >/dev/null 2>&1 &
  vg=$!
  until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.5; done
  redis-cli -p "$PORT" PFADD sketch $(seq 1 1000) >/dev/null
  redis-cli -p "$PORT" SCRIPT LOAD "$LUA" >/dev/null
  redis-benchmark -p "$PORT" -c 50 -n 5000 -P 16 -q "${cmd[@]}" >/dev/null 2>&1
  callgrind_control -z "$vg" >/dev/null
  redis-benchmark -p "$PORT" -c 50 -n 20000 -P 16 -q "${cmd[@]}" >/dev/null 2>&1
  callgrind_control -d "$vg" >/dev/null
  sleep 1
  kill "$vg"
  wait "$vg" 2>/dev/null || true
done
bin_name=$(basename "$BIN")
for f in "$OUT"/row*.out.1; do
  callgrind_annotate --inclusive=no --threshold=100 "$f" | grep "\[.*$bin_name\]" || true
done | awk '{ ir = $1; gsub(",", "", ir); f = $0; sub(/^.*:/, "", f); sub(/ \[.*$/, "", f); n[f] += ir }
  END { for (f in n) if (n[f] >= 1000) print n[f], f }' | sort -rn | awk '{ print $2 }' >hot-code.order
wc -l hot-code.order
