#!/usr/bin/env bash
# Interleaved comparison of servers on one scenario: round after round, each server is started
# fresh, measured, and stopped, so that the machine's drift (10-20 % between runs on these hosts)
# falls on every server alike. Prints each run's line and then the median of each figure per
# server, with its ratio to the first server named.
#
#   scripts/bench-compare.sh ROUNDS SCENARIO [ARGS...]
#   e.g. SERVERS="floor ignis" scripts/bench-compare.sh 5 echo --clients 100 --seconds 4
#
# SERVERS lists "name" (ignis, floor, socketioxide) or "label:binary:kind" entries to compare two
# builds of one server, e.g. "old:/tmp/ignis-old:ignis new:target/bench/release/ignis-server:ignis".
# Binaries come from CARGO_TARGET_DIR (target/bench) and PEER_TARGET ($CARGO_TARGET_DIR/peers),
# built as scripts/bench.sh builds them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=$1
shift
target=${CARGO_TARGET_DIR:-target/bench}
peers=${PEER_TARGET:-$target/peers}
bench=$target/release/ignis-bench
threads=${LOADGEN_THREADS:-2}
servers=${SERVERS:-floor ignis}
out=$(mktemp)
trap 'rm -f "$out"; [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null || true' EXIT

source scripts/bench-lib.sh

port=$((4100 + RANDOM % 400))
for round in $(seq 1 "$rounds"); do
  for entry in $servers; do
    IFS=: read -r label bin kind <<<"$entry"
    kind=${kind:-$label}
    case $kind in
      ignis) bin=${bin:-$target/release/ignis-server} ;;
      floor) bin=${bin:-$peers/release/bench-floor} ;;
      socketioxide) bin=${bin:-$peers/release/bench-socketioxide} ;;
      *) echo "unknown server kind $kind" >&2; exit 2 ;;
    esac
    port=$((port + 1))
    if [[ $kind == ignis ]]; then
      RUST_LOG=warn APP_ENV_SOCKETIO_EVENT_RATE=0 "$bin" --port "$port" >/dev/null 2>&1 &
      rest=(--broadcast-path /api/socket/broadcast --room-path '/api/socket/room/{room}/send')
    else
      "$bin" "$port" >/dev/null 2>&1 &
      rest=(--broadcast-path /broadcast --room-path '/room/{room}/send')
    fi
    pid=$!
    wait_port "$port"
    line=$("$bench" --label "$label" --threads "$threads" --target "127.0.0.1:$port" \
      --server-pid "$pid" "${rest[@]}" "$@" 2>/dev/null || echo '{"error":"run failed"}')
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
    echo "$line" | tee -a "$out" | cut -c1-220 >&2
    echo "round $round $label done" >&2
  done
done

python3 - "$out" "$servers" <<'PY'
import json, statistics, sys
path, servers = sys.argv[1], sys.argv[2].split()
labels = [s.split(":")[0] for s in servers]
runs = {l: [] for l in labels}
for line in open(path):
    d = json.loads(line)
    if "peer" in d:
        runs.setdefault(d["peer"], []).append(d)
keys = ["server_cpu_us_per_ack", "server_cpu_us_per_delivery", "server_cpu_us_per_connection",
        "rss_kib_per_connection", "acks_per_s", "deliveries_per_s", "missing", "max_sustained_rate"]
def fig(d, k):
    if k in d: return d[k]
    if k.startswith("p") and "latency" in d: return d["latency"].get(k)
    return None
keys += ["p50_us", "p99_us"]
base = labels[0]
for k in keys:
    med = {}
    for l in labels:
        vals = [fig(d, k) for d in runs[l] if fig(d, k) is not None]
        if vals: med[l] = (statistics.median(vals), vals)
    if not med: continue
    for l, (m, vals) in med.items():
        ratio = f"{m / med[base][0]:.3f}x" if base in med and med[base][0] else ""
        print(f"{k:32} {l:14} median {m:10.3f} {ratio:8} runs {', '.join(f'{v:g}' for v in vals)}")
PY
