#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: Rust unit, doc and integration tests, the
# lints, and the interop suite that drives our server with the official socket.io-client (and,
# to prove the suite itself, the real Node socket.io server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Where cargo builds: the Node suites start the binaries built there.
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export IGNIS_SERVER_BIN=${IGNIS_SERVER_BIN:-$TARGET/debug/ignis-server}
export IGNIS_COMPONENT_BIN=${IGNIS_COMPONENT_BIN:-$TARGET/debug/examples/component}
export IGNIS_INTEROP_BIN=${IGNIS_INTEROP_BIN:-$TARGET/debug/examples/interop}
export IGNIS_CLUSTER_NODE_BIN=${IGNIS_CLUSTER_NODE_BIN:-$TARGET/debug/examples/cluster-node}
export IGNIS_CHAT_BIN=${IGNIS_CHAT_BIN:-$TARGET/debug/ignis-chat}

step() { printf '\n==> %s\n' "$*"; }

step "services"
# Tests that need Redis read REDIS_URL (default redis://127.0.0.1:6379); start it if it is down.
command -v redis-server >/dev/null || { apt-get update && apt-get install -y redis-server; }
# `promtool check metrics` checks the server's /metrics exposition (crates/ignis-server tests).
command -v promtool >/dev/null || { apt-get update && apt-get install -y --no-install-recommends prometheus; }
export IGNIS_REQUIRE_PROMTOOL=1
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping
# The chat application's tests need PostgreSQL on 127.0.0.1:5432 with trust auth (each test makes
# a database of its own and drops it); this machine kind starts it, and this starts it if it is
# down.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  for cluster in /etc/postgresql/*/main; do
    [ -d "$cluster" ] || continue
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$cluster")")" main start || true
  done
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
# The chat suite breaks a SQLite database on purpose (failing triggers) with the sqlite3 tool.
command -v sqlite3 >/dev/null || { apt-get update && apt-get install -y sqlite3; }
# The drain suite puts two ignis-server nodes behind HAProxy (tests/interop/deploy/haproxy.cfg).
command -v haproxy >/dev/null || { apt-get update && apt-get install -y haproxy; }
# Tests that need a Redis Cluster read REDIS_CLUSTER_URLS (default the three masters on
# 127.0.0.1:7101-7103, which this starts unless they already form a healthy cluster).
scripts/redis-cluster.sh ensure

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (examples used by the interop suite)"
cargo build --workspace --all-targets

step "npm ci (tests/interop: socket.io-client and the Node reference server, used by cargo tests too)"
(cd tests/interop && npm ci --no-audit --no-fund)

step "cargo test"
# Tests that drive the real Node socket.io server must run here, never skip.
IGNIS_REQUIRE_NODE=1 cargo test --workspace

step "interop suite against the Node reference server (proves the assertions)"
(cd tests/interop && npm run --silent test:node > /tmp/ignis-interop-node.log 2>&1) || {
  cat /tmp/ignis-interop-node.log
  exit 1
}
grep -E '^# (tests|pass|fail|skipped)' /tmp/ignis-interop-node.log

step "interop suite against the Ignis server"
(cd tests/interop && npm test)

step "the Ignis component and the standalone server (spec §14.1 flow, §14.3 checks)"
(cd tests/interop && npm run --silent test:server)

step "deploy suite: three nodes on Redis Streams behind HAProxy; drains, Redis faults, a killed node (tests/interop/deploy)"
(cd tests/interop && npm run --silent test:deploy)

step "abuse suite: each attack of issue 14 against the real server (tests/interop/abuse)"
(cd tests/interop && npm run --silent test:abuse)

step "chat suite: the real socket.io-client against ignis-chat, one node and two (tests/interop/chat)"
(cd tests/interop && npm run --silent test:chat)

step "real browser: the API explorer and Socket.IO from another origin (tests/browser)"
tests/browser/run.sh

step "mixed Node + Ignis cluster over Redis (tests/redis-interop)"
(cd tests/redis-interop && npm ci --no-audit --no-fund && npm test)
