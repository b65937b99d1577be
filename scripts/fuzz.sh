#!/usr/bin/env bash
# The fuzz campaign (not part of CI): every libFuzzer target under fuzz/ for FUZZ_SECONDS each
# (default 300), then schemathesis against the REST API's own OpenAPI document for
# SCHEMATHESIS_SECONDS (default 300). Prints each target's run count and whether it crashed;
# docs/FUZZING.md records the last campaign.
#   ./scripts/fuzz.sh                 # everything
#   ./scripts/fuzz.sh server_entry    # one libFuzzer target
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz
# (cargo install cargo-fuzz); schemathesis is installed from PyPI into target/fuzz-venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
SCHEMATHESIS_SECONDS=${SCHEMATHESIS_SECONDS:-300}
mkdir -p target/fuzz-logs

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
  targets+=(rest)
fi

status=0
for t in "${targets[@]}"; do
  if [ "$t" = rest ]; then
    [ -x target/fuzz-venv/bin/schemathesis ] || {
      python3 -m venv target/fuzz-venv
      target/fuzz-venv/bin/pip install -q schemathesis
    }
    cargo build -q -p ignis-server
    port=39871
    target/debug/ignis-server --port "$port" --api-key fuzz-key > target/fuzz-logs/rest-server.log 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/api/health-check" >/dev/null && break; sleep 0.1; done
    # Every check schemathesis has, with and without the key; a 5xx anywhere fails the run.
    if target/fuzz-venv/bin/schemathesis run "http://127.0.0.1:$port/api/doc/openapi.json" \
        --checks all -H "X-API-Key: fuzz-key" --max-time "$SCHEMATHESIS_SECONDS" -w 2 \
        > target/fuzz-logs/rest.log 2>&1; then
      verdict=ok
    else
      verdict=FAILED; status=1
    fi
    kill "$server" 2>/dev/null || true
    trap - EXIT
    cases=$(grep -Eo '[0-9]+ generated' target/fuzz-logs/rest.log | tail -1 || true)
    printf '%-20s %-8s %s (log: target/fuzz-logs/rest.log)\n' rest "$verdict" "$cases"
    continue
  fi
  log=target/fuzz-logs/$t.log
  # New inputs go to fuzz/corpus/<target> (kept between runs, not committed); the committed
  # seeds under fuzz/seeds/<target>, where there are some, start it off.
  corpora=("corpus/$t")
  [ -d "fuzz/seeds/$t" ] && corpora+=("seeds/$t")
  mkdir -p "fuzz/corpus/$t"
  if (cd fuzz && cargo +nightly fuzz run "$t" "${corpora[@]}" -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=4096) > "$log" 2>&1; then
    verdict=ok
  else
    verdict=CRASHED; status=1
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 || true)
  printf '%-20s %-8s %s (log: %s)\n' "$t" "$verdict" "${runs:-no summary}" "$log"
done
exit $status
