#!/usr/bin/env bash
# The scale benchmark of issue 17, not part of CI nor of scripts/bench.sh: NODES ignis-server
# processes on one Redis hold CLIENTS authenticated WebSocket clients (JWT in the CONNECT),
# opened by several ignis-bench processes ("holders"), each client in one room of ROOM_SIZE;
# one more ignis-bench process posts a numbered broadcast to everyone BROADCAST_RATE times a
# second and room sends at ROOM_RATE (going round the rooms) for SECONDS. For each run: RSS per
# node and per connection, server CPU time per delivery (all nodes, from /proc/PID/stat), Redis
# CPU (INFO cpu), delivery latency, missing / duplicated / out-of-order deliveries, connect time.
#
# Why six nodes for 100 000 clients: the hard open-file limit is 20 000 per process, and a node
# also holds its listener, its Redis connections and its log files, so five nodes top out just
# under 100 000; NODES is a knob. Each holder keeps at most PER_HOLDER (16 000) sockets for the
# same reason, and clients are spread over SOURCE_IPS source addresses (127.0.0.x), each with
# its own ephemeral port range towards each node.
#
# Every run is one JSON line in bench/results/scale-<date>.jsonl (logs and the processes' own
# reports under bench/results/logs/scale-<date>/); a Markdown table of the runs and the 100k
# against 10k comparison are printed at the end, for docs/BENCHMARKS.md (the script does not
# edit the document).
#
# Knobs (environment): CLIENTS ("10000 100000": a list, each run in turn), MODE ("classic
# streams": a list), NODES (6), SECONDS (60), BROADCAST_RATE (1), ROOM_RATE (10), ROOM_SIZE
# (1000), PER_HOLDER (16000), LOADGEN_THREADS (1 per holder), SOURCE_IPS (16), PORT (3800),
# REDIS_URL (default: a Redis of its own started on REDIS_PORT, 6391, so that its CPU is this
# benchmark's alone), SERVER_BIN and BENCH_BIN (default: built into CARGO_TARGET_DIR/release,
# CARGO_TARGET_DIR defaulting to target/bench as in bench.sh), SKIP_BUILD=1 to use them as they
# are.
set -euo pipefail
# Read before anything else: bash counts SECONDS up from the value it was started with.
RUN_SECONDS=$SECONDS
[[ $RUN_SECONDS -gt 0 ]] || RUN_SECONDS=60
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

CLIENTS=${CLIENTS:-10000 100000}
MODE=${MODE:-classic streams}
NODES=${NODES:-6}
BROADCAST_RATE=${BROADCAST_RATE:-1}
ROOM_RATE=${ROOM_RATE:-10}
ROOM_SIZE=${ROOM_SIZE:-1000}
PER_HOLDER=${PER_HOLDER:-16000}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
SOURCE_IPS=${SOURCE_IPS:-16}
PORT=${PORT:-3800}
REDIS_PORT=${REDIS_PORT:-6391}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
SERVER_BIN=${SERVER_BIN:-$CARGO_TARGET_DIR/release/ignis-server}
BENCH_BIN=${BENCH_BIN:-$CARGO_TARGET_DIR/release/ignis-bench}
RESULTS=$ROOT/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS/scale-$STAMP.jsonl
LOGS=$RESULTS/logs/scale-$STAMP
mkdir -p "$RESULTS" "$LOGS"
: > "$OUT"

step() { printf '\n==> %s\n' "$*" >&2; }

hard=$(ulimit -Hn)
[[ $hard != unlimited ]] || hard=1048576
ulimit -n "$hard" || echo "warning: open-file limit stays at $(ulimit -n)" >&2

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  step "build (release): ignis-server, ignis-bench into $CARGO_TARGET_DIR"
  cargo build --release -p ignis-server -p ignis-bench
fi

source scripts/bench-lib.sh

# Processes started by this script, stopped on exit whatever happens.
STARTED=()
REDIS_PID=
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED=()
}
cleanup_all() {
  cleanup
  if [[ -n "$REDIS_PID" ]]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup_all EXIT

if [[ -z "${REDIS_URL:-}" ]]; then
  step "redis: one of its own on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    >"$LOGS/redis.log" 2>&1 &
  REDIS_PID=$!
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
  wait_port "$REDIS_PORT"
fi

# A secret and an API key for this run only; one token for every client (each connection
# still verifies it).
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
API_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
TOKEN=$(APP_ENV_JWT_SECRET=$SECRET "$SERVER_BIN" mint-token --sub bench-scale --ttl 6h)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
redis_cpu() {
  redis-cli -u "$REDIS_URL" INFO cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f\n", s}'
}
machine_ticks() { awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
join() { local IFS=,; echo "$*"; }

# run CLIENTS MODE: one run, one JSON line appended to $OUT.
run() {
  local clients=$1 mode=$2 name="$2-$1"
  local per_node=$(((clients + NODES - 1) / NODES))
  if ((per_node + 100 > hard)); then
    echo "$clients clients on $NODES nodes is $per_node per node: over the open-file limit ($hard)" >&2
    return 1
  fi
  local holders=$(((clients + PER_HOLDER - 1) / PER_HOLDER))
  local rooms=$(((clients + ROOM_SIZE - 1) / ROOM_SIZE))
  local ctl=$LOGS/$name.control
  mkdir -p "$ctl"
  step "$name: $NODES nodes ($mode), $holders holders, $rooms rooms"
  local key="ignis-scale-$STAMP-$name"
  local pids=() targets=() ports=()
  for n in $(seq 0 $((NODES - 1))); do
    local port=$((PORT + n))
    RUST_LOG=warn APP_ENV_JWT_SECRET=$SECRET APP_ENV_API_KEY=$API_KEY \
      "$SERVER_BIN" --port "$port" --redis-url "$REDIS_URL" --redis-key "$key" \
      --redis-mode "$mode" --drain-seconds 0 >"$LOGS/$name-node$n.log" 2>&1 &
    pids+=("$!")
    STARTED+=("$!")
    ports+=("$port")
    targets+=(--target "127.0.0.1:$port" --server-pid "$!")
  done
  for port in "${ports[@]}"; do wait_port "$port"; done
  # Let every node subscribe and settle before its idle RSS is read.
  sleep 2
  local rss_before=() rss_after=()
  for pid in "${pids[@]}"; do rss_before+=("$(rss_kib "$pid")"); done

  local connect_start holder_pids=()
  connect_start=$(date +%s.%N)
  for h in $(seq 0 $((holders - 1))); do
    local first=$((h * clients / holders)) next=$(((h + 1) * clients / holders))
    IGNIS_BENCH_TOKEN=$TOKEN "$BENCH_BIN" --label ignis --threads "$LOADGEN_THREADS" \
      --source-ips "$SOURCE_IPS" "${targets[@]}" --connect-timeout 900 \
      scale-hold --total "$clients" --first "$first" --count $((next - first)) \
      --room-size "$ROOM_SIZE" --control "$ctl" --drain 30 \
      >"$LOGS/$name-hold$h.json" 2>"$LOGS/$name-hold$h.err" &
    holder_pids+=("$!")
    STARTED+=("$!")
  done
  # All clients authenticated and in their rooms: every holder wrote its ready file.
  local deadline=$((SECONDS + 900))
  while (($(find "$ctl" -name 'ready-*.json' | wc -l) < holders)); do
    for pid in "${holder_pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "a holder exited before it was ready:" >&2
        tail -n 3 "$LOGS/$name"-hold*.err >&2
        cleanup
        return 1
      fi
    done
    if ((SECONDS > deadline)); then
      echo "holders not ready after 900 s" >&2
      cleanup
      return 1
    fi
    sleep 0.2
  done
  local connect_s
  connect_s=$(awk "BEGIN {print $(date +%s.%N) - $connect_start}")
  # Idle: allocators settle before RSS is read.
  sleep 3
  for pid in "${pids[@]}"; do rss_after+=("$(rss_kib "$pid")"); done

  local cpu_before=() cpu_after=() redis_before redis_after machine_before machine_after
  for pid in "${pids[@]}"; do cpu_before+=("$(cpu_ticks "$pid")"); done
  redis_before=$(redis_cpu)
  machine_before=$(machine_ticks)
  local window_start
  window_start=$(date +%s.%N)
  "$BENCH_BIN" --label ignis "${targets[@]}" --rest "127.0.0.1:${ports[0]}" --api-key "$API_KEY" \
    scale-post --seconds "$RUN_SECONDS" --broadcast-rate "$BROADCAST_RATE" \
    --room-rate "$ROOM_RATE" --rooms "$rooms" --control "$ctl" \
    >"$LOGS/$name-post.json" 2>"$LOGS/$name-post.err" || true
  # The holders report once every delivery arrived (or their drain ran out).
  local failed=0
  for pid in "${holder_pids[@]}"; do wait "$pid" || failed=1; done
  local window_s
  window_s=$(awk "BEGIN {print $(date +%s.%N) - $window_start}")
  for pid in "${pids[@]}"; do cpu_after+=("$(cpu_ticks "$pid")"); done
  redis_after=$(redis_cpu)
  machine_after=$(machine_ticks)
  ((failed == 0)) || echo "  a holder failed: $(tail -qn 2 "$LOGS/$name"-hold*.err)" >&2

  python3 - "$OUT" "$LOGS" "$name" "$clients" "$mode" "$NODES" "$holders" "$(getconf CLK_TCK)" \
    "$connect_s" "$window_s" "$(join "${rss_before[@]}")" "$(join "${rss_after[@]}")" \
    "$(join "${cpu_before[@]}")" "$(join "${cpu_after[@]}")" "$redis_before" "$redis_after" \
    "$machine_before" "$machine_after" "$(git rev-parse --short HEAD)" <<'PY'
import glob, json, sys
(out, logs, name, clients, mode, nodes, holders, hz, connect_s, window_s, rss_b, rss_a,
 cpu_b, cpu_a, redis_b, redis_a, mach_b, mach_a, commit) = sys.argv[1:]
clients, nodes, holders, hz = int(clients), int(nodes), int(holders), int(hz)
ints = lambda s: [int(x) for x in s.split(",")]
rss_b, rss_a, cpu_b, cpu_a = ints(rss_b), ints(rss_a), ints(cpu_b), ints(cpu_a)
holds = []
for path in sorted(glob.glob(f"{logs}/{name}-hold*.json")):
    text = open(path).read().strip()
    if text:
        holds.append(json.loads(text))
post = json.loads(open(f"{logs}/{name}-post.json").read() or "{}")
buckets = {}
for h in holds:
    for value, count in h["latency_buckets"]:
        buckets[value] = buckets.get(value, 0) + count
total = sum(buckets.values())
def quantile(q):
    rank, seen = max(1, -(-q * total // 1)), 0
    for value in sorted(buckets):
        seen += buckets[value]
        if seen >= rank:
            return value
    return 0
s = lambda key: sum(h[key] for h in holds)
deliveries = s("deliveries")
server_us = [(a - b) * 1e6 / hz for a, b in zip(cpu_a, cpu_b)]
per_node = [clients // nodes + (1 if i < clients % nodes else 0) for i in range(nodes)]
growth = [a - b for a, b in zip(rss_a, rss_b)]
per_conn = [g / n for g, n in zip(growth, per_node)]
mb, ma = [int(x) for x in mach_b.split()], [int(x) for x in mach_a.split()]
idle = (ma[0] - mb[0]) / max(1, ma[1] - mb[1])
redis_s = float(redis_a) - float(redis_b)
row = {
    "scenario": "scale", "commit": commit, "mode": mode, "clients": clients, "nodes": nodes,
    "holders": len(holds), "holders_started": holders,
    "ready": s("ready"), "connect_s": round(float(connect_s), 1),
    "seconds": post.get("seconds"), "window_s": round(float(window_s), 1),
    "broadcasts": post.get("broadcasts"), "room_sends": post.get("room_sends"),
    "posts_failed": post.get("broadcast_posts", {}).get("failed", 0)
        + post.get("room_posts", {}).get("failed", 0),
    "expected": s("expected"), "deliveries": deliveries, "missing": s("missing"),
    "duplicated": s("duplicated"), "out_of_order": s("out_of_order"),
    "unexpected": s("unexpected"), "lost": s("lost"),
    "p50_ms": round(quantile(0.5) / 1000, 1), "p99_ms": round(quantile(0.99) / 1000, 1),
    "max_ms": round(max((h["latency"]["max_us"] for h in holds), default=0) / 1000, 1),
    "rss_before_kib": rss_b, "rss_after_kib": rss_a,
    "rss_kib_per_conn": [round(x, 2) for x in per_conn],
    "rss_kib_per_conn_mean": round(sum(growth) / max(1, sum(per_node)), 2),
    "server_cpu_s": [round(x / 1e6, 2) for x in server_us],
    "server_cpu_us_per_delivery": round(sum(server_us) / max(1, deliveries), 3),
    "redis_cpu_s": round(redis_s, 2),
    "redis_cpu_us_per_post": round(redis_s * 1e6 / max(1, (post.get("broadcasts") or 0) + (post.get("room_sends") or 0)), 1),
    "loadgen_cpu_us_per_delivery": round(s("loadgen_cpu_us") / max(1, deliveries), 3),
    "machine_idle": round(idle, 3),
    "client_errors": sorted({e for h in holds for e in h["client_errors"]})[:8],
}
with open(out, "a") as f:
    f.write(json.dumps(row) + "\n")
print(json.dumps(row), file=sys.stderr)
PY
  cleanup
}

i=0
for clients in $CLIENTS; do
  for mode in $MODE; do
    # Fresh ports each run: the last run's sockets may still be in TIME_WAIT.
    PORT=$((PORT + 10 * i)) run "$clients" "$mode" || echo "  run $mode $clients failed" >&2
    i=$((i + 1))
  done
done

step "results: $OUT"
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| mode | clients | nodes | connect s | RSS per node after (MiB) | RSS KiB/conn (mean; min-max node) "
      "| server CPU µs/delivery | Redis CPU s (µs/post) | p50 ms | p99 ms | max ms | deliveries "
      "| missing | dup | out of order | lost | machine idle |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    rss = ", ".join(f"{x / 1024:.0f}" for x in r["rss_after_kib"])
    pc = r["rss_kib_per_conn"]
    print(f"| {r['mode']} | {r['clients']} | {r['nodes']} | {r['connect_s']} | {rss} "
          f"| {r['rss_kib_per_conn_mean']} ({min(pc)}-{max(pc)}) | {r['server_cpu_us_per_delivery']} "
          f"| {r['redis_cpu_s']} ({r['redis_cpu_us_per_post']}) | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} "
          f"| {r['deliveries']} of {r['expected']} | {r['missing']} | {r['duplicated']} "
          f"| {r['out_of_order']} | {r['lost']} | {r['machine_idle']} |")
by = {(r["mode"], r["clients"]): r for r in rows}
for mode in sorted({r["mode"] for r in rows}):
    small, big = by.get((mode, 10000)), by.get((mode, 100000))
    if not (small and big):
        continue
    mem = big["rss_kib_per_conn_mean"] / small["rss_kib_per_conn_mean"] - 1
    cpu = big["server_cpu_us_per_delivery"] / small["server_cpu_us_per_delivery"] - 1
    ok = lambda x: "within 10 %" if abs(x) <= 0.10 else "NOT within 10 %"
    print(f"\n{mode}: 100k against 10k: memory per connection {mem:+.1%} ({ok(mem)}), "
          f"server CPU per delivery {cpu:+.1%} ({ok(cpu)})")
PY
