# Shared helpers for the side-by-side benchmarks. Source it: `. "$(dirname "$0")/lib.sh"`.
# Everything runs on loopback; every server started here is stopped on exit.

set -euo pipefail
BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# wait_port PORT: until something answers PING there (at most ~10 s).
wait_port() {
  for _ in $(seq 1 100); do
    redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nothing answered on port $1" >&2
  return 1
}

# start_redis PORT: a throwaway redis-server with persistence off.
start_redis() {
  redis-server --port "$1" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
  PIDS+=($!)
  wait_port "$1"
}

# rps PORT TEST [redis-benchmark args...]: requests per second of one redis-benchmark test.
rps() {
  local port=$1 test=$2
  shift 2
  redis-benchmark -p "$port" -t "$test" -q "$@" 2>/dev/null | tr '\r' '\n' |
    awk '/requests per second/ { for (i = 2; i <= NF; i++) if ($i == "requests") rate = $(i - 1) } END { print rate }'
}

# median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# compare LABEL OURS_PORT PEER_PORT TEST RUNS [redis-benchmark args...]:
# runs the test RUNS times against each, alternating which goes first (ours, peer, peer,
# ours, ...: a drift in the machine's speed then favours neither), and prints medians and
# the ratio.
compare() {
  local label=$1 ours=$2 peer=$3 test=$4 runs=$5
  shift 5
  local a=() b=() i
  for i in $(seq 1 "$runs"); do
    if ((i % 2)); then
      a+=("$(rps "$ours" "$test" "$@")")
      b+=("$(rps "$peer" "$test" "$@")")
    else
      b+=("$(rps "$peer" "$test" "$@")")
      a+=("$(rps "$ours" "$test" "$@")")
    fi
  done
  local ma mb
  ma=$(median "${a[@]}")
  mb=$(median "${b[@]}")
  printf '%-28s infralab %12.0f rps   peer %12.0f rps   ratio %5.2f   (runs: %s | %s)\n' \
    "$label" "$ma" "$mb" "$(awk -v x="$ma" -v y="$mb" 'BEGIN { print (y > 0) ? x / y : 0 }')" \
    "${a[*]}" "${b[*]}"
}

# start_postgres PORT DIR: PostgreSQL (Debian's `postgresql` package, which .ci/run installs)
# initdb'd into DIR as the `postgres` user and started on loopback with fsync=on and
# synchronous_commit=on; waits until it accepts connections. Sets PGBIN.
start_postgres() {
  local port=$1 dir=$2
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$PGBIN" ] || ! command -v pgbench >/dev/null; then
    echo "PostgreSQL is not installed: run .ci/run" >&2
    exit 1
  fi
  mkdir -p "$dir/pg" "$dir/sock"
  chown postgres "$dir/pg" "$dir/sock"
  runuser -u postgres -- "$PGBIN/initdb" -D "$dir/pg" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PGBIN/postgres" -D "$dir/pg" -p "$port" -k "$dir/sock" \
    -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
    -c max_connections=50 >/dev/null 2>&1 &
  PIDS+=($!)
  wait_pg "$port"
}

# wait_pg PORT: until a PostgreSQL-protocol server accepts connections there (~10 s).
wait_pg() {
  for _ in $(seq 1 100); do
    pg_isready -h 127.0.0.1 -p "$1" -q && return 0
    sleep 0.1
  done
  echo "nothing accepted PostgreSQL connections on port $1" >&2
  return 1
}

# infralab_bin: the release binary (built unless BIN is set).
infralab_bin() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release -q --bin infralab --manifest-path "$BENCH_ROOT/Cargo.toml"
    BIN="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab"
  fi
}
