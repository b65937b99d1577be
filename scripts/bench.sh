#!/usr/bin/env bash
# Regenerates every benchmark figure: builds the load generator, the Ignis server and the peers
# (bench/peers/*, installed from the registries here and never part of the workspace), runs each
# scenario against each peer, and writes
#   bench/results/latest.jsonl       one JSON line per scenario and peer (also kept by date),
#   docs/bench/*.png                 the charts,
#   docs/BENCHMARKS.md               the generated section (machine, table, budgets).
# Every scenario is short and bounded; all traffic stays on 127.0.0.0/8.
#
# Knobs (environment): CONNECT_CLIENTS (10000), CONNECT_MAX (19000), ECHO_CLIENTS (100),
# BCAST_CLIENTS (1000), SECONDS_PER_RUN (3), SWEEP_RATES, SWEEP_SECONDS (2), PEERS
# ("ignis floor socketioxide node"), CLUSTER (1), REDIS_URL (redis://127.0.0.1:6379),
# LOADGEN_THREADS (2), CARGO_TARGET_DIR (target/bench), PEER_TARGET ($CARGO_TARGET_DIR/peers),
# BUDGET_ROUNDS (2), QUICK=1 for a smoke-sized run.
#
# The scenarios the budgets rest on (connect, echo, broadcast at 50/s and 200/s) also run
# BUDGET_ROUNDS more times for ignis and the floor, alternating between the two on fresh servers
# before the main pass: the tables take the median run of each, so that one disturbed run (these
# machines drift 10-20 % from minute to minute) does not decide a verdict.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if [[ "${QUICK:-0}" == 1 ]]; then
  : "${CONNECT_CLIENTS:=1000}" "${CONNECT_MAX:=0}" "${ECHO_CLIENTS:=50}" "${BCAST_CLIENTS:=200}"
  : "${SECONDS_PER_RUN:=1}" "${SWEEP_RATES:=50,100,200}" "${SWEEP_SECONDS:=1}" "${BUDGET_ROUNDS:=0}"
fi
BUDGET_ROUNDS=${BUDGET_ROUNDS:-2}
CONNECT_CLIENTS=${CONNECT_CLIENTS:-10000}
CONNECT_MAX=${CONNECT_MAX:-19000}
ECHO_CLIENTS=${ECHO_CLIENTS:-100}
BCAST_CLIENTS=${BCAST_CLIENTS:-1000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
SWEEP_RATES=${SWEEP_RATES:-25,50,100,200,400,800,1200,1600,2400,3200,4800,6400,9600,12800}
SWEEP_SECONDS=${SWEEP_SECONDS:-2}
PEERS=${PEERS:-ignis floor socketioxide node}
CLUSTER=${CLUSTER:-1}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
LOADGEN_THREADS=${LOADGEN_THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
PEER_TARGET=${PEER_TARGET:-$CARGO_TARGET_DIR/peers}
RESULTS=$ROOT/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS/$STAMP.jsonl
LOGS=$RESULTS/logs/$STAMP
mkdir -p "$RESULTS" "$LOGS"
: > "$OUT"

step() { printf '\n==> %s\n' "$*" >&2; }

step "build (release): ignis-server, ignis-bench"
cargo build --release -p ignis-server -p ignis-bench
BENCH=$CARGO_TARGET_DIR/release/ignis-bench
IGNIS=$CARGO_TARGET_DIR/release/ignis-server

step "peers: floor and socketioxide (cargo, own workspaces), node (npm ci)"
cargo build --release --manifest-path bench/peers/floor/Cargo.toml --target-dir "$PEER_TARGET"
[[ " $PEERS " == *" socketioxide "* ]] &&
  cargo build --release --manifest-path bench/peers/socketioxide/Cargo.toml --target-dir "$PEER_TARGET"
if [[ " $PEERS " == *" node "* ]]; then
  (cd bench/peers/node && npm ci --no-audit --no-fund --silent)
fi

if [[ "$CLUSTER" == 1 ]] && ! redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  step "redis: starting one on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# Servers started by this script, stopped on exit whatever happens.
STARTED=()
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED=()
}
trap cleanup EXIT

source scripts/bench-lib.sh

# start_peer NAME PORT [extra args]: starts a server, sets PID.
start_peer() {
  local name=$1 port=$2
  shift 2
  local log=$LOGS/$name-$port.log
  case $name in
    ignis) RUST_LOG=warn APP_ENV_SOCKETIO_EVENT_RATE=0 "$IGNIS" --port "$port" "$@" >"$log" 2>&1 & ;;
    floor) "$PEER_TARGET/release/bench-floor" "$port" /io/ >"$log" 2>&1 & ;;
    socketioxide) "$PEER_TARGET/release/bench-socketioxide" "$port" >"$log" 2>&1 & ;;
    node) node bench/peers/node/server.js "$port" "$@" >"$log" 2>&1 & ;;
  esac
  PID=$!
  STARTED+=("$PID")
  wait_port "$port"
}

rest_args() { # name
  if [[ $1 == ignis ]]; then
    echo "--broadcast-path /api/socket/broadcast --room-path /api/socket/room/{room}/send"
  else
    echo "--broadcast-path /broadcast --room-path /room/{room}/send"
  fi
}

# run NAME SCENARIO-ARGS...: one scenario, one JSON line (an error line if it fails).
run() {
  local label=$1
  shift
  printf '    %-14s %s\n' "$label" "$*" >&2
  local line
  if line=$(timeout 300 "$BENCH" --label "$label" --threads "$LOADGEN_THREADS" "$@" 2>>"$LOGS/bench-errors.log"); then
    echo "$line" >>"$OUT"
  else
    local scenario
    scenario=$(printf '%s\n' "$@" | grep -E '^(connect|echo|broadcast|rooms|sweep)$' | head -1)
    printf '{"peer":"%s","scenario":"%s","error":"%s"}\n' "$label" "$scenario" \
      "$(tail -1 "$LOGS/bench-errors.log" | tr -d '"\\' | cut -c1-300)" >>"$OUT"
  fi
}

# budget_scenarios NAME: starts a fresh server and runs the scenarios the budgets rest on; the
# server stays up for more (its address and pid in `common`).
budget_scenarios() {
  local peer=$1
  PORT=$((PORT + 1))
  start_peer "$peer" "$PORT"
  common=(--target "127.0.0.1:$PORT" --server-pid "$PID" $(rest_args "$peer"))
  run "$peer" "${common[@]}" connect --clients "$CONNECT_CLIENTS"
  run "$peer" "${common[@]}" echo --clients "$ECHO_CLIENTS" --seconds "$SECONDS_PER_RUN"
  run "$peer" "${common[@]}" broadcast --clients "$BCAST_CLIENTS" --rate 50 --seconds "$SECONDS_PER_RUN"
  run "$peer" "${common[@]}" broadcast --clients "$BCAST_CLIENTS" --rate 200 --seconds "$SECONDS_PER_RUN"
}

PORT=3600
for round in $(seq 1 "$BUDGET_ROUNDS"); do
  for peer in ignis floor; do
    [[ " $PEERS " == *" $peer "* ]] || continue
    step "budget round $round: $peer"
    budget_scenarios "$peer"
    cleanup
  done
done

for peer in $PEERS; do
  step "peer $peer"
  budget_scenarios "$peer"
  run "$peer" "${common[@]}" rooms --clients "$BCAST_CLIENTS" --sizes 10,25,50,100 --rate 500 --seconds "$SECONDS_PER_RUN"
  run "$peer" "${common[@]}" sweep --clients "$BCAST_CLIENTS" --rates "$SWEEP_RATES" --seconds "$SWEEP_SECONDS"
  cleanup
  if [[ "$CONNECT_MAX" -gt 0 && ( $peer == ignis || $peer == floor ) ]]; then
    # Close to the per-process open-file limit (20 000), on a fresh server.
    PORT=$((PORT + 1))
    start_peer "$peer" "$PORT"
    run "$peer" --target "127.0.0.1:$PORT" --server-pid "$PID" --source-ips 4 connect --clients "$CONNECT_MAX"
    cleanup
  fi
done

if [[ "$CLUSTER" == 1 ]]; then
  for peer in ignis node; do
    [[ " $PEERS " == *" $peer "* ]] || continue
    step "cluster of two $peer servers over Redis"
    key="ignis-bench-$STAMP-$peer"
    a=$((PORT + 1)) b=$((PORT + 2))
    PORT=$b
    start_peer "$peer" "$a" --redis-url "$REDIS_URL" --redis-key "$key"
    pid_a=$PID
    start_peer "$peer" "$b" --redis-url "$REDIS_URL" --redis-key "$key"
    pid_b=$PID
    # Let both nodes subscribe before the first broadcast.
    sleep 1
    run "$peer" --target "127.0.0.1:$a" --target "127.0.0.1:$b" --server-pid "$pid_a" --server-pid "$pid_b" \
      $(rest_args "$peer") broadcast --clients "$BCAST_CLIENTS" --rate 50 --seconds "$SECONDS_PER_RUN"
    cleanup
  done
fi

cp "$OUT" "$RESULTS/latest.jsonl"
step "charts and docs/BENCHMARKS.md"
if [[ ! -x "$CARGO_TARGET_DIR/chart-venv/bin/python" ]]; then
  python3 -m venv "$CARGO_TARGET_DIR/chart-venv"
fi
"$CARGO_TARGET_DIR/chart-venv/bin/python" -c 'import matplotlib' 2>/dev/null ||
  "$CARGO_TARGET_DIR/chart-venv/bin/pip" install --quiet matplotlib
"$CARGO_TARGET_DIR/chart-venv/bin/python" scripts/bench-charts.py "$RESULTS/latest.jsonl" docs/bench docs/BENCHMARKS.md \
  --command "${BENCH_COMMAND:-./scripts/bench.sh}"
echo "results: $OUT" >&2
