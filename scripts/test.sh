#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: Rust unit, doc and integration tests, the
# lints, and the interop suite that drives our server with the official socket.io-client (and,
# to prove the suite itself, the real Node socket.io server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (examples used by the interop suite)"
cargo build --workspace --all-targets

step "cargo test"
cargo test --workspace

step "npm ci (tests/interop)"
(cd tests/interop && npm ci --no-audit --no-fund)

step "interop suite against the Node reference server (proves the assertions)"
(cd tests/interop && npm run --silent test:node > /tmp/ignis-interop-node.log 2>&1) || {
  cat /tmp/ignis-interop-node.log
  exit 1
}
grep -E '^# (tests|pass|fail|skipped)' /tmp/ignis-interop-node.log

step "interop suite against the Ignis server"
(cd tests/interop && IGNIS_INTEROP_BIN="$PWD/../../target/debug/examples/interop" npm test)
