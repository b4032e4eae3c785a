#!/usr/bin/env bash
# bench/router.sh: the shard router side by side with twemproxy (nutcracker).
#
# Three redis-server backends; redis-benchmark GET, SET and MSET (10 random keys, so MSET
# is split across shards) at -P 1 and -P 16, against: one backend directly, infralab's
# router (ketama) and nutcracker (ketama) over the same three backends. Prints requests/s
# (medians of RUNS runs) and the ratio infralab / nutcracker, then the strategies'
# distribution table.
#
#   RUNS=5 N=200000 bench/router.sh
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
N=${N:-100000}
CLIENTS=${CLIENTS:-50}
BASE=${BASE:-17400}
B1=$((BASE + 1)) B2=$((BASE + 2)) B3=$((BASE + 3))
ROUTER=$((BASE + 10)) TWEM=$((BASE + 11))
WORK=$(mktemp -d)

cd "$BENCH_ROOT"
cargo build --release -q --bin infralab
BIN=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab

cd "$WORK" # redis-server loads ./dump.rdb at startup: start them in an empty directory
for port in $B1 $B2 $B3; do start_redis "$port"; done
cd "$BENCH_ROOT"

cat >"$WORK/router.toml" <<TOML
strategy = "ketama"
[[shards]]
name = "s0"
primary = "127.0.0.1:$B1"
[[shards]]
name = "s1"
primary = "127.0.0.1:$B2"
[[shards]]
name = "s2"
primary = "127.0.0.1:$B3"
TOML
"$BIN" router --config "$WORK/router.toml" --port "$ROUTER" >/dev/null 2>&1 &
PIDS+=($!)

cat >"$WORK/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$TWEM
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  timeout: 1000
  servers:
   - 127.0.0.1:$B1:1 s0
   - 127.0.0.1:$B2:1 s1
   - 127.0.0.1:$B3:1 s2
YML
nutcracker -c "$WORK/nutcracker.yml" -o "$WORK/nutcracker.log" &
PIDS+=($!)
wait_port "$ROUTER"
for _ in $(seq 1 50); do redis-cli -p "$TWEM" SET probe 1 >/dev/null 2>&1 && break; sleep 0.1; done

echo "redis-benchmark -n $N -c $CLIENTS -r 100000, medians of $RUNS runs; 3 redis-server backends"
for pipeline in 1 16; do
  for test in get set mset; do
    args=(-n "$N" -c "$CLIENTS" -r 100000 -P "$pipeline")
    direct=()
    for _ in $(seq 1 "$RUNS"); do direct+=("$(rps "$B1" "$test" "${args[@]}")"); done
    printf '%-28s direct to one backend %12.0f rps\n' "$test -P $pipeline" "$(median "${direct[@]}")"
    compare "$test -P $pipeline (router/twem)" "$ROUTER" "$TWEM" "$test" "$RUNS" "${args[@]}"
  done
done
echo
cargo run --release -q -p shard-router --example distribution
rm -rf "$WORK"
