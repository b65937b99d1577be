#!/usr/bin/env bash
# User-space instructions of one server for one load-generator scenario, under callgrind: the
# repeatable part of the server's cost, whatever else the machine is doing.
#
#   scripts/bench-callgrind.sh SERVER_BIN SCENARIO [ARGS...]
#   e.g. scripts/bench-callgrind.sh target/bench/release/ignis-server echo --clients 20 --seconds 3
#
# Prints the scenario's JSON line and the program total. Run the same server with
# `connect --clients N` (the same N) to get the start-up and connection share, and subtract it
# to get instructions per ack or per delivery. Needs valgrind and a release ignis-bench
# (CARGO_TARGET_DIR, default target/bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
server=$1
shift
bench=${CARGO_TARGET_DIR:-target/bench}/release/ignis-bench
out=$(mktemp -d)
port=$((4700 + RANDOM % 200))
RUST_LOG=warn APP_ENV_SOCKETIO_EVENT_RATE=0 valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
  "$server" --port "$port" >/dev/null 2>"$out/valgrind.log" &
pid=$!
for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$bench" --label callgrind --threads 1 --target "127.0.0.1:$port" --server-pid "$pid" \
  --broadcast-path /api/socket/broadcast --room-path '/api/socket/room/{room}/send' "$@" 2>/dev/null
kill -INT "$pid"
wait "$pid" || true
callgrind_annotate "$out/callgrind.out" 2>/dev/null | grep -m1 'PROGRAM TOTALS'
rm -rf "$out"
