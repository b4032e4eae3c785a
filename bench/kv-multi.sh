#!/usr/bin/env bash
# Transactions, kv against redis-server side by side: MULTI, 10 SETs, EXEC.
# redis-benchmark repeats one command and cannot send a MULTI...EXEC block, so the client
# here is `redis-cli --pipe`: CLIENTS connections, each sending a file of pre-encoded
# transactions as fast as the server takes them (pipelined, like redis-py's
# pipeline(transaction=True) sent back to back). Both servers in memory, each pinned to
# the same CPU (SERVER_CPU: all of kv's threads and Redis's event loop share it), the clients
# to another (CLIENT_CPU).
#   [BIN=path/to/infralab] bench/kv-multi.sh [runs] [transactions per client] [clients]
# Prints the median transactions/s of each and the ratio kv / redis.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
TX=${2:-20000}
CLIENTS=${3:-4}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
KV_PORT=7414
REDIS_PORT=7415
DATA=$(mktemp -d)
trap 'cleanup; rm -rf "$DATA"' EXIT

infralab_bin
taskset -c "$SERVER_CPU" "$BIN" kv --port "$KV_PORT" 2>/dev/null &
PIDS+=($!)
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --save '' --appendonly no >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"
wait_port "$KV_PORT"

# One file per client: TX transactions of MULTI, SET k:<client>:<i>:<j> v (j < 10), EXEC.
for c in $(seq 1 "$CLIENTS"); do
  python3 - "$c" "$TX" >"$DATA/tx$c.resp" <<'PY'
import sys
c, tx = sys.argv[1], int(sys.argv[2])
def cmd(*words):
    out = [f"*{len(words)}\r\n"]
    for w in words:
        out.append(f"${len(w)}\r\n{w}\r\n")
    return "".join(out)
value = "v" * 16
parts = []
for i in range(tx):
    parts.append(cmd("MULTI"))
    for j in range(10):
        parts.append(cmd("SET", f"k:{c}:{i % 1000}:{j}", value))
    parts.append(cmd("EXEC"))
sys.stdout.write("".join(parts))
PY
done

# Transactions per second of one run against PORT (all clients at once), after checking
# that every reply was accepted (redis-cli --pipe reports errors).
run() {
  local port=$1 start end pipes=() c
  redis-cli -p "$port" FLUSHALL >/dev/null
  start=$(date +%s.%N)
  for c in $(seq 1 "$CLIENTS"); do
    taskset -c "$CLIENT_CPU" redis-cli -p "$port" --pipe <"$DATA/tx$c.resp" >"$DATA/out$c" 2>&1 &
    pipes+=($!)
  done
  wait "${pipes[@]}"
  end=$(date +%s.%N)
  # Every client must have had all its replies (MULTI, 10 QUEUED, EXEC per transaction)
  # and no error: a client that could not connect prints neither, and would otherwise
  # count as a run finished in no time.
  if grep -L "errors: 0, replies: $((TX * 12))\$" "$DATA"/out* | grep -q .; then
    echo "errors or missing replies from port $port:" >&2
    cat "$DATA"/out* >&2
    exit 1
  fi
  awk -v n="$((TX * CLIENTS))" -v s="$start" -v e="$end" 'BEGIN { printf "%d\n", n / (e - s) }'
}

ours=() theirs=()
for i in $(seq 1 "$RUNS"); do
  # Alternating which goes first: a drift in the machine's speed then favours neither.
  if ((i % 2)); then
    ours+=("$(run "$KV_PORT")")
    theirs+=("$(run "$REDIS_PORT")")
  else
    theirs+=("$(run "$REDIS_PORT")")
    ours+=("$(run "$KV_PORT")")
  fi
  # Each run's pair: other load on the machine moves both, so a ratio is read per run.
  echo "run $i: kv ${ours[-1]} tx/s, redis ${theirs[-1]} tx/s" >&2
done
k=$(median "${ours[@]}")
r=$(median "${theirs[@]}")
echo "MULTI + 10 SET + EXEC, $CLIENTS clients x $TX transactions (redis-cli --pipe on CPU $CLIENT_CPU, servers on CPU $SERVER_CPU), median of $RUNS runs"
printf '%-28s kv %10s tx/s   redis %10s tx/s   ratio %s\n' "MULTI/EXEC of 10 SETs" "$k" "$r" \
  "$(awk -v a="$k" -v b="$r" 'BEGIN { printf "%.2f", a / b }')"
