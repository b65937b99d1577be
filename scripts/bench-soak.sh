#!/usr/bin/env bash
# The long benchmarks of issue 14, not part of CI and not of scripts/bench.sh:
#   jitter: N clients receive a numbered stream of REST broadcasts while each connection is cut
#           (reset) around every CUT_EVERY_MS and reconnects; delivery per client, with
#           connection state recovery on (server flag --recovery-max-disconnection-ms, clients
#           reconnecting with {pid, offset}) and off;
#   soak:   clients that come and go under steady broadcasts and room sends for SOAK_MINUTES;
#           the server's RSS and open descriptors sampled every minute, and whether they stayed
#           flat.
# Each run is one JSON line in bench/results/soak-<date>.jsonl (servers' logs next to it under
# bench/results/logs/soak-<date>/); a Markdown table of the run is printed at the end, for the
# "Soak and jitter" section of docs/BENCHMARKS.md (the script does not edit the document).
#
# Knobs (environment): JITTER_CLIENTS ("1000 10000"), JITTER_SECONDS (300), CUT_EVERY_MS (15000),
# JITTER_RATE (10), RECOVERY_MS (120000), RECONNECT_AFTER_MS (0), SOAK_MINUTES (60; 0 skips the
# soak), SOAK_CLIENTS (1000), SOAK_LIFETIME_S (60), SOAK_RATE (20), SOAK_SAMPLE_S (60),
# JITTER=0 skips the jitter runs, LOADGEN_THREADS (2), SOURCE_IPS (8), PORT (3700),
# CARGO_TARGET_DIR (target/bench), SKIP_BUILD=1 to reuse the release binaries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

JITTER=${JITTER:-1}
JITTER_CLIENTS=${JITTER_CLIENTS:-1000 10000}
JITTER_SECONDS=${JITTER_SECONDS:-300}
CUT_EVERY_MS=${CUT_EVERY_MS:-15000}
JITTER_RATE=${JITTER_RATE:-10}
RECOVERY_MS=${RECOVERY_MS:-120000}
RECONNECT_AFTER_MS=${RECONNECT_AFTER_MS:-0}
SOAK_MINUTES=${SOAK_MINUTES:-60}
SOAK_CLIENTS=${SOAK_CLIENTS:-1000}
SOAK_LIFETIME_S=${SOAK_LIFETIME_S:-60}
SOAK_RATE=${SOAK_RATE:-20}
SOAK_SAMPLE_S=${SOAK_SAMPLE_S:-60}
LOADGEN_THREADS=${LOADGEN_THREADS:-2}
SOURCE_IPS=${SOURCE_IPS:-8}
PORT=${PORT:-3700}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
RESULTS=$ROOT/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS/soak-$STAMP.jsonl
LOGS=$RESULTS/logs/soak-$STAMP
mkdir -p "$RESULTS" "$LOGS"
: > "$OUT"

step() { printf '\n==> %s\n' "$*" >&2; }

# 10 000 clients are 10 000 descriptors on each side: both processes inherit this limit.
hard=$(ulimit -Hn)
want=20000
if [[ "$hard" != unlimited && "$hard" -lt "$want" ]]; then want=$hard; fi
ulimit -n "$want" || echo "warning: open-file limit stays at $(ulimit -n)" >&2

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  step "build (release): ignis-server, ignis-bench"
  cargo build --release -p ignis-server -p ignis-bench
fi
BENCH=$CARGO_TARGET_DIR/release/ignis-bench
IGNIS=$CARGO_TARGET_DIR/release/ignis-server

source scripts/bench-lib.sh

SERVER=
cleanup() {
  if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  SERVER=
}
trap cleanup EXIT

# start_server NAME [flags]: a fresh ignis-server on $PORT, its pid in SERVER.
start_server() {
  local name=$1; shift
  RUST_LOG=warn "$IGNIS" --port "$PORT" "$@" >"$LOGS/$name.log" 2>&1 &
  SERVER=$!
  wait_port "$PORT"
}

# bench NAME SCENARIO [args]: one scenario against the running server, its line appended to $OUT.
bench() {
  local name=$1; shift
  step "$name"
  if "$BENCH" --label ignis --threads "$LOADGEN_THREADS" --source-ips "$SOURCE_IPS" \
      --target "127.0.0.1:$PORT" --server-pid "$SERVER" --connect-timeout 120 "$@" \
      >"$LOGS/$name.json" 2>"$LOGS/$name.err"; then
    cat "$LOGS/$name.json" >> "$OUT"
  else
    echo "  failed: $(tail -n 3 "$LOGS/$name.err")" >&2
  fi
}

if [[ "$JITTER" == 1 ]]; then
  for clients in $JITTER_CLIENTS; do
    for mode in on off; do
      if [[ $mode == on ]]; then
        start_server "jitter-$clients-on" --recovery-max-disconnection-ms "$RECOVERY_MS"
        flag=(--recovery)
      else
        start_server "jitter-$clients-off"
        flag=()
      fi
      bench "jitter-$clients-$mode" jitter --clients "$clients" --cut-every-ms "$CUT_EVERY_MS" \
        --rate "$JITTER_RATE" --seconds "$JITTER_SECONDS" \
        --reconnect-after-ms "$RECONNECT_AFTER_MS" "${flag[@]}"
      cleanup
    done
  done
fi

if [[ "$SOAK_MINUTES" != 0 ]]; then
  start_server soak
  bench soak soak --minutes "$SOAK_MINUTES" --clients "$SOAK_CLIENTS" \
    --lifetime "$SOAK_LIFETIME_S" --rate "$SOAK_RATE" --sample-secs "$SOAK_SAMPLE_S"
  cleanup
fi

step "results: $OUT"
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
jitter = [r for r in rows if r["scenario"] == "jitter"]
if jitter:
    print("| clients | recovery | cuts | reconnects recovered | delivered | missing | duplicated | out of order | clients complete | worst client | server CPU µs/delivery | machine idle |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in jitter:
        print(f"| {r['clients']} | {'on' if r['recovery'] else 'off'} | {r['cuts']} "
              f"| {r['recovered']} of {r.get('reconnects', r['cuts'])} "
              f"| {r['delivery_pct']} % | {r['missing']} | {r['duplicated']} | {r['out_of_order']} "
              f"| {r['clients_complete']} | {r['worst_client_pct']} % "
              f"| {r['server_cpu_us_per_delivery']} | {r['machine_idle']} |")
for r in rows:
    if r["scenario"] != "soak":
        continue
    rss, fds = r["rss_kib"] or {}, r["fds"] or {}
    print()
    print(f"Soak, {r['minutes']} min, {r['clients']} clients (lifetime ~{r['lifetime_s']} s), "
          f"{r['rate']} posts/s: flat = {r['flat']}; {r['opened']} connections opened, "
          f"{r['deliveries']} deliveries, {r['acks']} echo acks, {r['lost']} lost, "
          f"{r['failed_connects']} failed connects, {r['posts_failed']} failed posts.")
    print()
    print("| | first steady | last | growth | slope per hour | allowed | flat |")
    print("|---|---|---|---|---|---|---|")
    for name, v in (("RSS (KiB)", rss), ("open fds", fds)):
        if v:
            print(f"| {name} | {v['first_steady']:.0f} | {v['last']:.0f} | {v['growth']:.0f} "
                  f"| {v['slope_per_hour']:.0f} | {v['allowed']:.0f} | {v['flat']} |")
    print()
    print("| minute | RSS KiB | fds | server CPU % | connections | opened | deliveries | acks | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in r["samples"]:
        print(f"| {s['t_min']} | {s['rss_kib']} | {s['fds']} | {s['server_cpu_pct']} | {s['connections']} "
              f"| {s['opened']} | {s['deliveries']} | {s['acks']} | {s['errors']} |")
PY
