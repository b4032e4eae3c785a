#!/usr/bin/env bash
# Isolation levels: throughput and abort/deadlock rates per level, infralab sql against
# PostgreSQL 15 in the same run, with pgbench as the client for both.
#   bench/isolation.sh [runs] [seconds]
# Two workloads over 100 accounts, 8 clients (-c 8 -j 2), each transaction beginning with
# BEGIN ISOLATION LEVEL <level>:
#   contended:   read both balances, then move 1..10 from one to the other (a transfer)
#   read-mostly: 9 of 10 transactions read one balance and the sum of all; 1 is a transfer
# pgbench runs with --max-tries=1 --failures-detailed: a transaction refused with 40001
# (serialization failure) or 40P01 (deadlock) is counted, not retried, and the client goes
# on. Reported: committed transactions per second (median of RUNS), and the share of
# transactions refused with each code. Equal durability as bench/sql.sh: --fsync always vs
# fsync=on, synchronous_commit=on. PostgreSQL runs read uncommitted as read committed.
# BIN=path/to/infralab skips the release build.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
SECONDS_PER_RUN=${2:-10}
OURS=7534
PEER=7535
DATA=$(mktemp -d)
chmod 755 "$DATA"
trap 'cleanup; rm -rf "$DATA"' EXIT

infralab_bin
"$BIN" sql --port "$OURS" --dir "$DATA/sql" --fsync always 2>/dev/null &
PIDS+=($!)
start_postgres "$PEER" "$DATA"
wait_pg "$OURS"

psql_at() { psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 -c "$2" >/dev/null; }
setup() {
  psql_at "$1" "DROP TABLE IF EXISTS accounts" 2>/dev/null
  psql_at "$1" "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)"
  psql_at "$1" "INSERT INTO accounts SELECT i, 1000 FROM generate_series(1, 100) AS g(i)"
}

# The scripts, one pair per level.
for level in "READ UNCOMMITTED" "READ COMMITTED" "REPEATABLE READ" "SERIALIZABLE"; do
  name=${level// /_}
  cat >"$DATA/transfer_$name.sql" <<EOF
\set a random(1, 100)
\set b random(1, 100)
\set amount random(1, 10)
BEGIN ISOLATION LEVEL $level;
SELECT balance FROM accounts WHERE id = :a;
SELECT balance FROM accounts WHERE id = :b;
UPDATE accounts SET balance = balance - :amount WHERE id = :a;
UPDATE accounts SET balance = balance + :amount WHERE id = :b;
END;
EOF
  cat >"$DATA/read_$name.sql" <<EOF
\set a random(1, 100)
BEGIN ISOLATION LEVEL $level;
SELECT balance FROM accounts WHERE id = :a;
SELECT sum(balance) FROM accounts;
END;
EOF
done

# run PORT SCRIPTS...: "tps serialization% deadlock%" of one timed run.
run() {
  local port=$1
  shift
  pgbench -h 127.0.0.1 -p "$port" -U postgres -n -c 8 -j 2 -T "$SECONDS_PER_RUN" -M simple \
    --max-tries=1 --failures-detailed "$@" postgres 2>/dev/null |
    awk '/^number of transactions actually processed/ { split($6, n, "/"); done = n[1] }
         /^number of serialization failures/ { ser = $5 }
         /^number of deadlock failures/ { dead = $5 }
         /^tps/ { tps = $3 }
         END { total = done + ser + dead; if (total == 0) total = 1
               printf "%s %.1f %.1f\n", tps, 100 * ser / total, 100 * dead / total }'
}

printf '%-28s %-18s %12s %12s %7s   %-22s %-22s\n' "$RUNS runs of ${SECONDS_PER_RUN}s, medians" \
  "level" "infralab tps" "PG tps" "ratio" "infralab 40001/40P01 %" "PG 40001/40P01 %"
for workload in contended read-mostly; do
  for level in "READ UNCOMMITTED" "READ COMMITTED" "REPEATABLE READ" "SERIALIZABLE"; do
    name=${level// /_}
    if [ "$workload" = contended ]; then
      scripts=(-f "$DATA/transfer_$name.sql")
    else
      scripts=(-f "$DATA/read_$name.sql@9" -f "$DATA/transfer_$name.sql@1")
    fi
    ta=() tb=() sa=() sb=() da=() db=()
    for i in $(seq 1 "$RUNS"); do
      # Alternate who goes first, so a drift in the machine's speed favours neither.
      for port in $( ((i % 2)) && echo "$OURS $PEER" || echo "$PEER $OURS"); do
        setup "$port"
        read -r t s d < <(run "$port" "${scripts[@]}")
        if [ "$port" = "$OURS" ]; then ta+=("$t") sa+=("$s") da+=("$d"); else tb+=("$t") sb+=("$s") db+=("$d"); fi
      done
    done
    mta=$(median "${ta[@]}") mtb=$(median "${tb[@]}")
    ratio=$(awk -v a="$mta" -v b="$mtb" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
    printf '%-28s %-18s %12.0f %12.0f %7s   %-22s %-22s\n' "$workload" "${level,,}" "$mta" "$mtb" "$ratio" \
      "$(median "${sa[@]}") / $(median "${da[@]}")" "$(median "${sb[@]}") / $(median "${db[@]}")"
  done
done
