#!/usr/bin/env bash
# Runs the official Engine.IO and Socket.IO protocol test suites (folder `test-suite` of the public
# repositories socketio/engine.io-protocol and socketio/socket.io-protocol) against a conformance
# server. Their code is never committed here: point this script at local copies.
#
# Usage:
#   scripts/official-suites.sh --server node|rust \
#       [--engine-io-protocol PATH] [--socket-io-protocol PATH] [--keep]
#
# PATH is a checkout of the repository (a directory holding test-suite/) or its git directory
# (bare or .git, e.g. the one the search tool's `fetch` returns); at least one is required, and
# only the suites given are run.
#
# --server node  runs scripts/official-suites/reference.js (Node engine.io / socket.io, as the
#                suites' READMEs configure them), which validates this runner.
# --server rust  runs $IGNIS_CONFORMANCE_BIN (default target/debug/examples/conformance from the
#                repository root) with `--suite engine.io|socket.io`; it must listen on port 3000.
#
# The suites hard-code http://localhost:3000, so port 3000 must be free. Needs node and npm, and
# the npm registry for the suites' own dev dependencies (mocha, chai, node-fetch, ws).
#
# At run time the suites' `waitFor` helper is replaced by a queued version
# (scripts/official-suites/queue-waitfor.mjs): upstream it registers its listener only after each
# await, so with a fast server the second of two back-to-back frames is lost inside the test
# itself. Nothing else in the suites is changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/.." && pwd)"

server=""
eio_src=""
sio_src=""
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --server) server="${2:-}"; shift 2 ;;
    --engine-io-protocol) eio_src="${2:-}"; shift 2 ;;
    --socket-io-protocol) sio_src="${2:-}"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [[ "$server" != "node" && "$server" != "rust" ]]; then
  echo "--server node|rust is required" >&2
  exit 2
fi
if [[ -z "$eio_src" && -z "$sio_src" ]]; then
  echo "give --engine-io-protocol PATH and/or --socket-io-protocol PATH" >&2
  exit 2
fi

if [[ "$server" == "node" ]]; then
  if [[ ! -d "$repo_root/tests/interop/node_modules/socket.io" ]]; then
    echo "installing tests/interop dependencies (npm ci) for the Node reference server" >&2
    (cd "$repo_root/tests/interop" && npm ci --no-audit --no-fund >/dev/null)
  fi
  server_cmd=(node "$here/official-suites/reference.js")
else
  bin="${IGNIS_CONFORMANCE_BIN:-target/debug/examples/conformance}"
  [[ "$bin" = /* ]] || bin="$repo_root/$bin"
  if [[ ! -x "$bin" ]]; then
    echo "conformance binary not found at $bin (build it, or set IGNIS_CONFORMANCE_BIN)" >&2
    exit 2
  fi
  server_cmd=("$bin")
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/official-suites.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "$keep" == 1 ]]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Copies test-suite/ of a checkout or git directory to $2.
extract_suite() {
  local src="$1" dest="$2"
  if [[ -d "$src/test-suite" ]]; then
    cp -R "$src/test-suite" "$dest"
  elif git --git-dir="$src" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    mkdir -p "$dest.tmp"
    git --git-dir="$src" archive HEAD test-suite | tar -x -C "$dest.tmp"
    mv "$dest.tmp/test-suite" "$dest"
    rmdir "$dest.tmp"
  else
    echo "$src holds neither test-suite/ nor a git repository" >&2
    return 1
  fi
}

port_in_use() {
  (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null
}

start_server() {
  local suite="$1" log="$2"
  if port_in_use; then
    echo "port 3000 is already in use" >&2
    return 1
  fi
  "${server_cmd[@]}" --suite "$suite" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if port_in_use; then return 0; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "conformance server exited:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "conformance server did not listen on 3000 within 10 s" >&2
  cat "$log" >&2
  return 1
}

stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

summary=()
status=0

run_suite() {
  local suite="$1" src="$2"
  local dir="$work/$suite"
  echo "== $suite protocol test suite ($src) against the $server server"
  extract_suite "$src" "$dir"
  (cd "$dir" && if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi) \
    >"$work/$suite-npm.log" 2>&1 || { cat "$work/$suite-npm.log" >&2; return 1; }
  node "$here/official-suites/queue-waitfor.mjs" "$dir/test-suite.js"
  start_server "$suite" "$work/$suite-server.log"
  local rc=0
  (cd "$dir" && timeout 600 npx mocha --reporter spec --exit test-suite.js) | tee "$work/$suite-mocha.log" || rc=$?
  stop_server
  local passing failing
  passing="$(grep -Eo '[0-9]+ passing' "$work/$suite-mocha.log" | grep -Eo '[0-9]+' || echo 0)"
  failing="$(grep -Eo '[0-9]+ failing' "$work/$suite-mocha.log" | grep -Eo '[0-9]+' || echo 0)"
  summary+=("$suite: $passing passed, $failing failed")
  if [[ "$rc" != 0 || "$failing" != 0 ]]; then status=1; fi
}

[[ -n "$eio_src" ]] && run_suite engine.io "$eio_src"
[[ -n "$sio_src" ]] && run_suite socket.io "$sio_src"

echo
echo "== summary ($server server)"
for line in "${summary[@]}"; do echo "$line"; done
exit "$status"
