#!/usr/bin/env bash
# bench/edge.sh: infralab edge side by side with nginx's proxy_cache, in one run.
#
# One origin (`infralab web`); in front of it `infralab edge` and nginx with a proxy_cache
# that honours the origin's Cache-Control and collapses misses (proxy_cache_lock). Then:
#   1. cache hits of a 1 KiB and a 100 KiB object, wrk with 50 connections: requests/s and
#      p99 latency of each (medians of RUNS runs, alternating which goes first), and the ratio;
#   2. 1,000 concurrent requests for one cold object (curl --parallel): origin requests each
#      caused (the origin counts them; the edge must make exactly one).
#
# Equal cores: both caches are pinned to the same CPU (SERVER_CPU) and the load generator
# and the origin to another (CLIENT_CPU), so neither side's load steals the other's time.
# Both get one CPU's time: nginx runs `worker_processes 1`; the edge's threads (tokio sizes
# its pool from the CPUs it may use) all share CPU SERVER_CPU.
#
#   RUNS=3 DURATION=10 bench/edge.sh        (needs nginx and wrk: apt-get install nginx wrk)
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
BASE=${BASE:-18500}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
ORIGIN=$((BASE + 1)) EDGE=$((BASE + 2)) NGINX=$((BASE + 3))
WORK=$(mktemp -d)
trap 'cleanup; rm -rf "$WORK"' EXIT
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench/edge.sh needs $tool (apt-get install nginx wrk curl)" >&2; exit 1; }
done

cd "$BENCH_ROOT"
if [ -z "${BIN:-}" ]; then
  cargo build --release -q --bin infralab
  BIN=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/infralab
fi

taskset -c "$CLIENT_CPU" "$BIN" web --port "$ORIGIN" >/dev/null 2>&1 &
PIDS+=($!)
taskset -c "$SERVER_CPU" "$BIN" edge --port "$EDGE" --origin "127.0.0.1:$ORIGIN" --max-memory 256mb >/dev/null 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/cache" "$WORK/logs"
# nginx run as root hands the cache to its workers' user (nobody): let them write it.
chmod 755 "$WORK" && chmod 777 "$WORK/cache"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
error_log $WORK/logs/error.log warn;
pid $WORK/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path $WORK/cache keys_zone=edge:64m max_size=256m inactive=1h;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 30s;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
CONF
taskset -c "$SERVER_CPU" nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

wait_http() {
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1$2" >/dev/null && return 0; sleep 0.1; done
  echo "nothing answered on port $1" >&2
  return 1
}
wait_http "$ORIGIN" /health
wait_http "$EDGE" /_edge/stats
wait_http "$NGINX" /health

# wrk_run PORT PATH -> "requests/s p99_ms"
wrk_run() {
  taskset -c "$CLIENT_CPU" wrk -t1 -c50 -d"${DURATION}s" --latency "http://127.0.0.1:$1$2" |
    awk '/Requests\/sec/ { rps = $2 }
         /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } p99 = v }
         END { print rps, p99 }'
}

hits() {
  local label=$1 path=$2 a=() b=() ap=() bp=() i r
  curl -s "http://127.0.0.1:$EDGE$path" >/dev/null
  curl -s "http://127.0.0.1:$NGINX$path" >/dev/null
  curl -s "http://127.0.0.1:$NGINX$path" >/dev/null
  for i in $(seq 1 "$RUNS"); do
    if ((i % 2)); then
      r=$(wrk_run "$EDGE" "$path"); a+=("${r% *}"); ap+=("${r#* }")
      r=$(wrk_run "$NGINX" "$path"); b+=("${r% *}"); bp+=("${r#* }")
    else
      r=$(wrk_run "$NGINX" "$path"); b+=("${r% *}"); bp+=("${r#* }")
      r=$(wrk_run "$EDGE" "$path"); a+=("${r% *}"); ap+=("${r#* }")
    fi
  done
  local ma mb
  ma=$(median "${a[@]}")
  mb=$(median "${b[@]}")
  printf '%-22s infralab %10.0f rps p99 %7.2f ms   nginx %10.0f rps p99 %7.2f ms   ratio %5.2f\n' \
    "$label" "$ma" "$(median "${ap[@]}")" "$mb" "$(median "${bp[@]}")" \
    "$(awk -v x="$ma" -v y="$mb" 'BEGIN { print (y > 0) ? x / y : 0 }')"
}

echo "cache hits, wrk -t1 -c50 -d${DURATION}s (on CPU $CLIENT_CPU; each cache on CPU $SERVER_CPU, nginx worker_processes 1), medians of $RUNS runs"
hits "1 KiB object" "/test?cc=max-age=3600&size=1024&o=1k"
hits "100 KiB object" "/test?cc=max-age=3600&size=102400&o=100k"

# 1,000 concurrent requests for one cold object (the origin takes 200 ms to answer).
cold() {
  local port=$1 path=$2
  for _ in $(seq 1 1000); do printf 'url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\n' "$port" "$path"; done >"$WORK/urls"
  curl -s --parallel --parallel-immediate --parallel-max 1000 -K "$WORK/urls" >/dev/null 2>&1 || true
  curl -s "http://127.0.0.1:$ORIGIN/_web/stats" | awk -v p="$path" '$2 == p { print $1 } END {}' | head -1
}
echo "1000 concurrent requests for one cold object: origin requests"
echo "  infralab edge: $(cold "$EDGE" "/test?cc=max-age=3600&delay=200&o=cold-edge")"
echo "  nginx:         $(cold "$NGINX" "/test?cc=max-age=3600&delay=200&o=cold-nginx")"
