#!/usr/bin/env bash
# sql against PostgreSQL 15, side by side, with pgbench as the client for both.
#   bench/sql.sh [runs] [seconds] [scale]
# Equal durability: infralab sql --fsync always (COMMIT after fsync, group commit) vs
# PostgreSQL with fsync=on and synchronous_commit=on. PostgreSQL is Debian's `postgresql`
# package (.ci/run installs it), initdb'd into a temporary directory as the `postgres`
# user and started on its own port; both listen on loopback.
#   load:        pgbench -i -s SCALE (client-side COPY), and -I dtGp (server-side generate)
#   TPC-B:       pgbench -n -c 8 -j 2 -T SECONDS, -M simple and -M prepared
#   select-only: pgbench -n -S -c 8 -j 2 -T SECONDS -M prepared
# Prints medians of RUNS runs (tps, p50/p99 latency from pgbench's per-transaction log)
# and the ratio ours/PostgreSQL. BIN=path/to/infralab skips the release build.
# ONLY=load runs only the two load rows (ONLY=tps only the timed runs); OURS_PORT and
# PEER_PORT move the two servers off 7532/7533.
# Pinned: both servers on CPU 1 (PostgreSQL's postmaster and every process it forks),
# pgbench on CPU 0, so the two servers get the same core and neither competes with the
# load generator; each run alternates which server goes first.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
SECONDS_PER_RUN=${2:-20}
SCALE=${3:-10}
OURS=${OURS_PORT:-7532}
PEER=${PEER_PORT:-7533}
DATA=$(mktemp -d)
chmod 755 "$DATA"
trap 'cleanup; wait; rm -rf "$DATA"' EXIT
infralab_bin
# read committed on both sides: PostgreSQL's default, and pgbench does not retry 40001.
taskset -c 1 "$BIN" sql --port "$OURS" --dir "$DATA/sql" --fsync always --default-isolation read-committed 2>/dev/null &
PIDS+=($!)
start_postgres "$PEER" "$DATA"
# The postmaster and its background processes; backends forked later inherit the CPU.
for pid in $(pgrep -f "postgres -D $DATA/pg"); do
  taskset -a -p -c 1 "$pid" >/dev/null
  for child in $(pgrep -P "$pid"); do taskset -a -p -c 1 "$child" >/dev/null; done
done
wait_pg "$OURS"

pgb() { local port=$1; shift; taskset -c 0 pgbench -h 127.0.0.1 -p "$port" -U postgres "$@" postgres; }

# load_seconds PORT [init steps]: seconds pgbench -i reports ("done in X s").
load_seconds() {
  local port=$1
  shift
  pgb "$port" -i -s "$SCALE" -q "$@" 2>&1 | awk '/done in/ { for (i = 1; i <= NF; i++) if ($i == "in") { sub("s", "", $(i + 1)); print $(i + 1) } }'
}

# run PORT LABEL [pgbench args]: "tps p50_ms p99_ms" of one timed run.
run() {
  local port=$1 label=$2
  shift 2
  rm -f "$DATA"/log.*
  local tps
  tps=$(pgb "$port" -n -c 8 -j 2 -T "$SECONDS_PER_RUN" -l --log-prefix="$DATA/log" "$@" 2>/dev/null |
    awk '/^tps/ { print $3 }')
  cat "$DATA"/log.* | awk '{ print $3 / 1000 }' | sort -g |
    awk -v tps="$tps" '{ v[NR] = $1 } END { if (NR == 0) { print tps, "n/a", "n/a"; exit }
      printf "%s %.2f %.2f\n", tps, v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1] }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2fx", a / b; else print "n/a" }'; }

printf '%-34s %14s %14s %8s\n' "scale $SCALE, $RUNS runs, medians" "infralab sql" "PostgreSQL" "ratio"
ONLY=${ONLY:-}
for steps in "" "-I dtGp"; do
  [ "$ONLY" = tps ] && break
  a=() b=()
  for i in $(seq 1 "$RUNS"); do
    for port in $( ((i % 2)) && echo "$OURS $PEER" || echo "$PEER $OURS"); do
      x=$(load_seconds "$port" $steps || true)
      [ -z "$x" ] && continue
      if [ "$port" = "$OURS" ]; then a+=("$x"); else b+=("$x"); fi
    done
  done
  ma=n/a mb=n/a
  [ ${#a[@]} -gt 0 ] && ma=$(median "${a[@]}")
  [ ${#b[@]} -gt 0 ] && mb=$(median "${b[@]}")
  # A load is better when shorter: the ratio is PostgreSQL's time over ours.
  printf '%-34s %14s %14s %8s\n' "pgbench -i ${steps:-(client COPY)} s" "$ma" "$mb" "$(ratio "$mb" "$ma")"
done
[ "$ONLY" = load ] && exit 0
pgb "$OURS" -i -s "$SCALE" -q >/dev/null 2>&1
pgb "$PEER" -i -s "$SCALE" -q >/dev/null 2>&1

for mode in "TPC-B -M simple:-M simple" "TPC-B -M prepared:-M prepared" "select-only -M prepared:-S -M prepared"; do
  label=${mode%%:*}
  args=${mode#*:}
  ta=() tb=() pa=() pb=() qa=() qb=()
  for i in $(seq 1 "$RUNS"); do
    for port in $( ((i % 2)) && echo "$OURS $PEER" || echo "$PEER $OURS"); do
      read -r t p q < <(run "$port" "$label" $args)
      if [ "$port" = "$OURS" ]; then
        ta+=("$t") pa+=("$p") qa+=("$q")
      else
        tb+=("$t") pb+=("$p") qb+=("$q")
      fi
    done
  done
  mta=$(median "${ta[@]}") mtb=$(median "${tb[@]}")
  printf '%-34s %14s %14s %8s\n' "$label tps" "$mta" "$mtb" "$(ratio "$mta" "$mtb")"
  printf '%-34s %14s %14s\n' "  latency p50 / p99 (ms)" "$(median "${pa[@]}") / $(median "${qa[@]}")" "$(median "${pb[@]}") / $(median "${qb[@]}")"
done
