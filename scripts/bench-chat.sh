#!/usr/bin/env bash
# The chat benchmarks (issue 15): builds the release `ignis-chat` and `ignis-bench`, then on each
# database (SQLite in a fresh data directory, PostgreSQL in a fresh database dropped afterwards):
#   chat-users       signs USERS users up through the REST API (once; every scenario reuses them),
#   chat-throughput  a room of 100 members, 99 of them sending at rising rates: the highest rate
#                    with every message stored and delivered exactly once, in order, on time,
#   chat-latency     a room of 1 000 members, 100 messages/s: message:send -> message:new p99,
#   chat-idle        1 000 users connected, authenticated and in rooms of 100: RSS per user,
# each scenario on a freshly started chat. Writes one JSON line per scenario (with the machine's
# load average) to bench/results/chat-<date>.jsonl, the chats' logs under
# bench/results/logs/chat-<date>/, and prints the tables of docs/BENCHMARKS.md ("Chat").
#
# Knobs (environment): DATABASES ("sqlite postgres"), PG_ADMIN_URL
# (postgres://postgres@127.0.0.1:5432/postgres), PG_URL_QUERY (appended to the database URL,
# e.g. "?options[synchronous_commit]=on"), USERS (1000), THROUGHPUT_MEMBERS (100),
# THROUGHPUT_SENDERS (99), THROUGHPUT_RATES (1000,2000,4000,6000,8000,12000,16000),
# THROUGHPUT_SECONDS (3), REFINE (2), LATENCY_MEMBERS (1000), LATENCY_SENDERS (100),
# LATENCY_RATE (100), LATENCY_SECONDS (10), IDLE_CLIENTS (1000), LOADGEN_THREADS (2),
# CARGO_TARGET_DIR (target/bench), SKIP_BUILD=1 to use the binaries already built,
# QUICK=1 for a smoke-sized run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if [[ "${QUICK:-0}" == 1 ]]; then
  : "${USERS:=200}" "${THROUGHPUT_MEMBERS:=20}" "${THROUGHPUT_SENDERS:=19}" "${THROUGHPUT_RATES:=200,400}"
  : "${THROUGHPUT_SECONDS:=1}" "${REFINE:=0}" "${LATENCY_MEMBERS:=200}" "${LATENCY_SENDERS:=20}"
  : "${LATENCY_SECONDS:=2}" "${IDLE_CLIENTS:=200}"
fi
DATABASES=${DATABASES:-sqlite postgres}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
USERS=${USERS:-1000}
THROUGHPUT_MEMBERS=${THROUGHPUT_MEMBERS:-100}
THROUGHPUT_SENDERS=${THROUGHPUT_SENDERS:-99}
THROUGHPUT_RATES=${THROUGHPUT_RATES:-1000,2000,4000,6000,8000,12000,16000}
THROUGHPUT_SECONDS=${THROUGHPUT_SECONDS:-3}
REFINE=${REFINE:-2}
LATENCY_MEMBERS=${LATENCY_MEMBERS:-1000}
LATENCY_SENDERS=${LATENCY_SENDERS:-100}
LATENCY_RATE=${LATENCY_RATE:-100}
LATENCY_SECONDS=${LATENCY_SECONDS:-10}
IDLE_CLIENTS=${IDLE_CLIENTS:-1000}
LOADGEN_THREADS=${LOADGEN_THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
RESULTS=$ROOT/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS/chat-$STAMP.jsonl
LOGS=$RESULTS/logs/chat-$STAMP
mkdir -p "$RESULTS" "$LOGS"
: >"$OUT"

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  step "build (release): ignis-chat, ignis-bench"
  cargo build --release -p ignis-chat -p ignis-bench
fi
BENCH=$CARGO_TARGET_DIR/release/ignis-bench
CHAT=$CARGO_TARGET_DIR/release/ignis-chat
for bin in "$BENCH" "$CHAT"; do
  [[ -x $bin ]] || { echo "missing $bin (run without SKIP_BUILD=1)" >&2; exit 1; }
done
# A thousand sockets and more on each side.
ulimit -n "$(ulimit -Hn)"

source scripts/bench-lib.sh

CHAT_PID=
WORK=
PG_DB=
cleanup() {
  if [[ -n $CHAT_PID ]]; then
    kill "$CHAT_PID" 2>/dev/null || true
    wait "$CHAT_PID" 2>/dev/null || true
    CHAT_PID=
  fi
  if [[ -n $PG_DB ]]; then
    psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    PG_DB=
  fi
  if [[ -n $WORK ]]; then
    rm -rf "$WORK"
    WORK=
  fi
}
trap cleanup EXIT

# machine_line WHEN: the machine's cores and load, as a JSON line.
machine_line() {
  printf '{"scenario":"machine","when":"%s","cores":%s,"loadavg":"%s","uptime":"%s"}\n' "$1" \
    "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(uptime | tr -s ' ' | sed 's/^ //')" >>"$OUT"
}

PORT=3700
# start_chat DATABASE-ARGS...: a fresh chat process on the next port (CHAT_PID, PORT).
start_chat() {
  PORT=$((PORT + 1))
  RUST_LOG=warn "$CHAT" --port "$PORT" --data-dir "$WORK/data" --jwt-secret "$SECRET" \
    --message-rate 0 "$@" >>"$LOGS/chat-$DB.log" 2>&1 &
  CHAT_PID=$!
  wait_port "$PORT"
}

stop_chat() {
  kill "$CHAT_PID" 2>/dev/null || true
  wait "$CHAT_PID" 2>/dev/null || true
  CHAT_PID=
}

# run SCENARIO ARGS...: one scenario against the running chat, one JSON line (an error line if
# it fails), with the 1-minute load average at its end.
run() {
  local scenario=$1
  printf '    %-8s %s\n' "$DB" "$*" >&2
  local line
  if line=$(timeout 600 "$BENCH" --label ignis-chat --database "$DB" --threads "$LOADGEN_THREADS" \
    --target "127.0.0.1:$PORT" --server-pid "$CHAT_PID" --users-file "$WORK/users.tsv" \
    --connect-timeout 120 "$@" 2>>"$LOGS/bench-errors.log"); then
    echo "${line%\}},\"load1\":$(cut -d' ' -f1 /proc/loadavg)}" >>"$OUT"
  else
    printf '{"peer":"ignis-chat","database":"%s","scenario":"%s","error":"%s"}\n' "$DB" \
      "${scenario//-/_}" "$(tail -1 "$LOGS/bench-errors.log" | tr -d '"\\' | cut -c1-300)" >>"$OUT"
  fi
}

machine_line start
for DB in $DATABASES; do
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/ignis-chat-bench.XXXXXX")
  SECRET=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  db_args=()
  case $DB in
    sqlite) ;;
    postgres)
      PG_DB="ignis_chat_bench_$(date -u +%Y%m%d%H%M%S)_$$"
      psql "$PG_ADMIN_URL" -q -c "CREATE DATABASE $PG_DB" >/dev/null
      db_args=(--database-url "${PG_ADMIN_URL%/*}/$PG_DB${PG_URL_QUERY:-}")
      ;;
    *) echo "unknown database $DB (sqlite or postgres)" >&2; exit 1 ;;
  esac
  step "$DB: $USERS users, then each scenario on a fresh chat"
  start_chat "${db_args[@]}"
  run chat-users --count "$USERS"
  stop_chat
  start_chat "${db_args[@]}"
  run chat-throughput --members "$THROUGHPUT_MEMBERS" --senders "$THROUGHPUT_SENDERS" \
    --rates "$THROUGHPUT_RATES" --seconds "$THROUGHPUT_SECONDS" --refine "$REFINE"
  stop_chat
  start_chat "${db_args[@]}"
  run chat-latency --members "$LATENCY_MEMBERS" --senders "$LATENCY_SENDERS" \
    --rate "$LATENCY_RATE" --seconds "$LATENCY_SECONDS"
  stop_chat
  start_chat "${db_args[@]}"
  run chat-idle --clients "$IDLE_CLIENTS" --room-size 100
  cleanup
done
machine_line end

step "results: $OUT"
python3 - "$OUT" <<'EOF'
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
machine = [r for r in rows if r.get("scenario") == "machine"]
by = {}
for r in rows:
    by.setdefault((r.get("scenario"), r.get("database")), r)
dbs = [d for d in ("sqlite", "postgres") if any(k[1] == d for k in by)]

def cell(r, f):
    if r is None:
        return "–"
    if "error" in r:
        return "error: " + r["error"][:60]
    try:
        v = f(r)
    except (KeyError, TypeError):
        return "–"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return f"{v:,}" if isinstance(v, int) else str(v)

def ms(us):
    return round(us / 1000, 1)

table = [
    ("chat_users", "sign-ups/s (argon2id each)", lambda r: r["sign_ups_per_s"]),
    ("chat_throughput", "highest sustained messages/s (100 members)", lambda r: r["max_sustained_rate"]),
    ("chat_throughput", "at that rate: stored/s", lambda r: r["at_max"]["stored_per_s"]),
    ("chat_throughput", "at that rate: deliveries/s", lambda r: r["at_max"]["deliveries_per_s"]),
    ("chat_throughput", "at that rate: lost / doubled / out of order / stored ≠ accepted", lambda r: "%d / %d / %d / %s" % (
        r["at_max"]["missing"], r["at_max"]["duplicated"], r["at_max"]["out_of_order"],
        "no" if r["at_max"]["db_matches"] else "YES")),
    ("chat_throughput", "at that rate: p50 / p99 ms", lambda r: "%s / %s" % (
        ms(r["at_max"]["latency"]["p50_us"]), ms(r["at_max"]["latency"]["p99_us"]))),
    ("chat_throughput", "at that rate: server CPU µs / message", lambda r: r["at_max"]["server_cpu_us_per_message"]),
    ("chat_throughput", "at that rate: machine idle", lambda r: "%d %%" % round(100 * r["at_max"]["machine_idle"])),
    ("chat_throughput", "first rate not sustained, and why", lambda r: next(
        ("%s: %s" % (s["rate"], why(s)) for s in r["steps"] if not s["sustained"]), "–")),
    ("chat_latency", "1 000 members, 100/s: p50 ms", lambda r: ms(r["latency"]["p50_us"])),
    ("chat_latency", "1 000 members, 100/s: p99 ms", lambda r: ms(r["latency"]["p99_us"])),
    ("chat_latency", "1 000 members, 100/s: max ms", lambda r: ms(r["latency"]["max_us"])),
    ("chat_latency", "1 000 members, 100/s: deliveries / lost", lambda r: "%s / %d" % (
        f'{r["deliveries"]:,}', r["missing"])),
    ("chat_latency", "1 000 members, 100/s: p99 under 50 ms", lambda r: "yes" if r["p99_under_50ms"] else "NO"),
    ("chat_idle", "idle: RSS KiB per user (1 000 in rooms of 100)", lambda r: r["rss_kib_per_user"]),
    ("chat_idle", "idle: connect + authenticate + join, ms for all", lambda r: r["connect_and_join_ms"]),
]

def why(s):
    reasons = []
    if s["refused"]:
        reasons.append("%d of %d sends refused (%s)" % (s["refused"], s["sends"], ", ".join(s["refusals"])))
    if s.get("lost", s["missing"]) or s["duplicated"] or s["out_of_order"]:
        reasons.append("%d deliveries of accepted messages lost, %d doubled, %d out of order" % (
            s.get("lost", s["missing"]), s["duplicated"], s["out_of_order"]))
    if not s["db_matches"]:
        reasons.append("database %d vs %d accepted" % (s["stored_total"], s["accepted_total"]))
    if s["send_max_lag_ms"] > 100 + 100 * s["sends"] / s["rate"]:
        reasons.append("sends %d ms late" % s["send_max_lag_ms"])
    if not reasons:
        reasons.append("last delivery after %.2f s" % s["seconds"])
    return ", ".join(reasons)

print("| chat (issue 15) | " + " | ".join(dbs) + " |")
print("|---|" + "---|" * len(dbs))
for scenario, label, f in table:
    print(f"| {label} | " + " | ".join(cell(by.get((scenario, d)), f) for d in dbs) + " |")
for m in machine:
    print(f"\nLoad at {m['when']}: {m['loadavg']} ({m['cores']} cores)")
for r in rows:
    if r.get("scenario") == "chat_throughput" and "steps" in r:
        print(f"\nThroughput steps, {r['database']}:\n")
        print("| rate | sustained | stored/s | deliveries/s | p99 ms | server CPU µs/msg | idle | load |")
        print("|---|---|---|---|---|---|---|---|")
        for s in r["steps"]:
            print("| %s | %s | %s | %s | %s | %s | %d %% | %s |" % (
                cell(s, lambda s: s["rate"]), "yes" if s["sustained"] else "no (" + why(s) + ")",
                cell(s, lambda s: s["stored_per_s"]), cell(s, lambda s: s["deliveries_per_s"]),
                ms(s["latency"]["p99_us"]), s["server_cpu_us_per_message"],
                round(100 * s["machine_idle"]), r.get("load1", "–")))
EOF
