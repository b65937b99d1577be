#!/usr/bin/env python3
"""Turns bench/results/*.jsonl (one JSON line per scenario and peer, from scripts/bench.sh) into
PNG charts and the generated section of docs/BENCHMARKS.md: the machine, the side-by-side table,
ratios to the floor measured in the same run, and the issue's budgets with pass or miss.

usage: bench-charts.py RESULTS.jsonl CHART_DIR BENCHMARKS.md [--command CMD]
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PEERS = ["ignis", "floor", "socketioxide", "node"]
START = "<!-- generated:start (scripts/bench-charts.py) -->"
END = "<!-- generated:end -->"


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    print(f"skipping a malformed line: {line[:80]}", file=sys.stderr)
    return rows


# The figure that orders the runs of a scenario measured more than once (scripts/bench.sh,
# BUDGET_ROUNDS).
MEDIAN_BY = {
    "connect": "server_cpu_us_per_connection",
    "echo": "server_cpu_us_per_ack",
    "broadcast": "server_cpu_us_per_delivery",
}


def matching(rows, peer, scenario, **match):
    return [
        r
        for r in rows
        if r.get("peer") == peer
        and r.get("scenario") == scenario
        and "error" not in r
        and all(r.get(k) == v for k, v in match.items())
    ]


def pick(rows, peer, scenario, **match):
    """The run of a scenario that stands for all of its runs, every figure of it together.

    Ignis and the floor, measured in alternating rounds, are taken from the same round: the one
    whose ratio of the two is the median. The host drifts within a run too (once by a third,
    halfway through), and a median of each peer's runs apart would pair one's slow minute with
    the other's fast one. Other peers, or a scenario run once: the median run, or the only one.
    """
    runs = matching(rows, peer, scenario, **match)
    if not runs:
        return None
    key = MEDIAN_BY.get(scenario)
    if key is None or len(runs) == 1:
        return runs[0]
    number = lambda r: r.get(key) if isinstance(r.get(key), (int, float)) else None  # noqa: E731
    if peer in ("ignis", "floor"):
        other = "floor" if peer == "ignis" else "ignis"
        pairs = [
            (mine, theirs)
            for mine, theirs in zip(runs, matching(rows, other, scenario, **match))
            if number(mine) and number(theirs)
        ]
        if pairs:
            ours = (lambda p: p[0]) if peer == "ignis" else (lambda p: p[1])  # noqa: E731
            floors = (lambda p: p[1]) if peer == "ignis" else (lambda p: p[0])  # noqa: E731
            pairs.sort(key=lambda p: number(ours(p)) / number(floors(p)))
            # An even count takes the lower of the two middle rounds.
            return pairs[(len(pairs) - 1) // 2][0]
    runs.sort(key=lambda r: number(r) if number(r) is not None else float("inf"))
    return runs[(len(runs) - 1) // 2]


def runs_of(rows, peer, scenario, **match):
    """How many good runs a figure is the median of."""
    return len(matching(rows, peer, scenario, **match))


def error_of(rows, peer, scenario):
    for r in rows:
        if r.get("peer") == peer and r.get("scenario") == scenario and "error" in r:
            return r["error"]
    return None


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.{digits}f}"
    return f"{int(x):,}"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        node = "?"
    return f"{os.cpu_count()} × {cpu}{mem}, Linux {platform.release()}, Node {node}"


class Figures:
    """The numbers the table, the ratios and the budgets need, per peer."""

    def __init__(self, rows, peer, broadcast_clients):
        c = pick(rows, peer, "connect", clients=self.connect_clients(rows))
        e = pick(rows, peer, "echo")
        b50 = pick(rows, peer, "broadcast", rate=50.0)
        b200 = pick(rows, peer, "broadcast", rate=200.0)
        ro = pick(rows, peer, "rooms")
        sw = pick(rows, peer, "sweep")
        cl = pick(rows, peer, "cluster_broadcast")
        big = [r for r in rows if r.get("peer") == peer and r.get("scenario") == "connect" and "error" not in r]
        big = max(big, key=lambda r: r["clients"], default=None)
        self.connect, self.echo, self.b50, self.b200, self.rooms, self.sweep, self.cluster = c, e, b50, b200, ro, sw, cl
        self.connect_max = big if big is not c else None
        g = lambda r, *keys: _get(r, keys)  # noqa: E731
        self.conn_cpu = g(c, "server_cpu_us_per_connection")
        self.rss = g(c, "rss_kib_per_connection")
        self.ack_cpu = g(e, "server_cpu_us_per_ack")
        self.acks_per_s = g(e, "acks_per_s")
        self.echo_p99 = g(e, "latency", "p99_us")
        self.d50_cpu = g(b50, "server_cpu_us_per_delivery")
        self.d50_p50 = g(b50, "latency", "p50_us")
        self.d50_p99 = g(b50, "latency", "p99_us")
        self.d50_missing = g(b50, "missing")
        self.d200_cpu = g(b200, "server_cpu_us_per_delivery")
        self.d200_p99 = g(b200, "latency", "p99_us")
        self.d200_missing = g(b200, "missing")
        self.room_cpu = g(ro, "server_cpu_us_per_delivery")
        self.room_p99 = g(ro, "latency", "p99_us")
        self.max_rate = g(sw, "max_sustained_rate")
        self.max_deliveries = g(sw, "max_sustained_deliveries_per_s")
        self.cluster_cpu = g(cl, "server_cpu_us_per_delivery")
        self.cluster_p99 = g(cl, "latency", "p99_us")
        self.cluster_missing = g(cl, "missing")

    @staticmethod
    def connect_clients(rows):
        sizes = sorted({r["clients"] for r in rows if r.get("scenario") == "connect" and "clients" in r})
        return sizes[0] if sizes else None


def _get(r, keys):
    for k in keys:
        if r is None:
            return None
        r = r.get(k) if isinstance(r, dict) else None
    return r


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def table(rows, figs, peers):
    lines = []
    head = ["", *peers]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))

    def row(label, attr, digits=1, floor_ratio=False):
        cells = []
        for p in peers:
            v = getattr(figs[p], attr)
            cell = fmt(v, digits)
            if floor_ratio and p != "floor" and v is not None:
                r = ratio(v, getattr(figs["floor"], attr)) if "floor" in figs else None
                if r is not None:
                    cell += f" ({r:.2f}×)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    n = Figures.connect_clients(rows)
    row(f"connect: server CPU µs / connection ({fmt(n)} clients)", "conn_cpu", 1, True)
    row(f"connect: server RSS KiB / idle connection ({fmt(n)})", "rss", 2, True)
    row("echo: server CPU µs / ack", "ack_cpu", 2, True)
    row("echo: acks/s", "acks_per_s", 0)
    row("echo: p99 µs", "echo_p99", 0)
    row("broadcast 50/s: server CPU µs / delivery", "d50_cpu", 2, True)
    row("broadcast 50/s: p50 µs", "d50_p50", 0)
    row("broadcast 50/s: p99 µs", "d50_p99", 0)
    row("broadcast 50/s: missing", "d50_missing", 0)
    row("broadcast 200/s: server CPU µs / delivery", "d200_cpu", 2, True)
    row("broadcast 200/s: p99 µs", "d200_p99", 0)
    row("broadcast 200/s: missing", "d200_missing", 0)
    row("rooms (10–100 members), 500 sends/s: server CPU µs / delivery", "room_cpu", 2, True)
    row("rooms: p99 µs", "room_p99", 0)
    row("sweep: highest sustained broadcasts/s", "max_rate", 0, True)
    row("sweep: deliveries/s at that rate", "max_deliveries", 0, True)
    row("cluster (2 servers, Redis), 50/s: server CPU µs / delivery", "cluster_cpu", 2)
    row("cluster: p99 µs", "cluster_p99", 0)
    row("cluster: missing", "cluster_missing", 0)
    return "\n".join(lines)


def who_spent(rows, peers):
    """Load generator CPU and machine idle next to the server's, per scenario."""
    lines = ["| peer | scenario | server CPU ms | load generator CPU ms | machine idle |", "|---|---|---|---|---|"]
    for r in rows:
        if r.get("peer") not in peers or "error" in r or "server_cpu_us" not in r:
            continue
        name = r["scenario"] + (f" {r['rate']:g}/s" if "rate" in r else "") + (f" ({r['clients']})" if "clients" in r else "")
        lines.append(
            f"| {r['peer']} | {name} | {r['server_cpu_us'] / 1000:,.0f} | {r['loadgen_cpu_us'] / 1000:,.0f} | {r['machine_idle'] * 100:.0f} % |"
        )
    return "\n".join(lines)


def budgets(figs):
    ig, fl, sx = figs.get("ignis"), figs.get("floor"), figs.get("socketioxide")
    out = ["| budget | measured | verdict |", "|---|---|---|"]

    def line(text, measured, ok):
        verdict = "–" if ok is None else ("**pass**" if ok else "**miss**")
        out.append(f"| {text} | {measured} | {verdict} |")

    def rline(text, attr, limit):
        r = ratio(getattr(ig, attr), getattr(fl, attr)) if ig and fl else None
        line(text, "–" if r is None else f"{r:.2f}× floor ({fmt(getattr(ig, attr), 2)} vs {fmt(getattr(fl, attr), 2)} µs)",
             None if r is None else r <= limit)

    rss = ig.rss if ig else None
    line("idle connection ≤ 4 KiB of server RSS", "–" if rss is None else f"{rss:.2f} KiB", None if rss is None else rss <= 4.0)
    rline("CPU per connection set-up ≤ 2× floor", "conn_cpu", 2.0)
    rline("CPU per echo ack ≤ 1.1× floor", "ack_cpu", 1.1)
    rline("CPU per delivery at 50 broadcasts/s ≤ 1.25× floor", "d50_cpu", 1.25)
    rline("CPU per delivery at 200 broadcasts/s ≤ 1.2× floor", "d200_cpu", 1.2)
    r = ratio(ig.max_rate, fl.max_rate) if ig and fl else None
    line("highest sustained broadcast rate ≥ 0.8× floor (no delivery missing, no failed call)",
         "–" if r is None else f"{r:.2f}× ({fmt(ig.max_rate)} vs {fmt(fl.max_rate)}/s)", None if r is None else r >= 0.8)
    if ig and sx and ig.d50_p99 is not None and sx.d50_p99 is not None:
        line("broadcast p99 at 1 000 clients × 50/s below socketioxide's", f"{fmt(ig.d50_p99)} vs {fmt(sx.d50_p99)} µs", ig.d50_p99 < sx.d50_p99)
    else:
        line("broadcast p99 at 1 000 clients × 50/s below socketioxide's", "–", None)
    return "\n".join(out)


def charts(rows, figs, peers, outdir):
    os.makedirs(outdir, exist_ok=True)
    colors = {"ignis": "#d9480f", "floor": "#495057", "socketioxide": "#1971c2", "node": "#2f9e44"}
    made = []

    # 1. Server CPU per unit of work, as a ratio to the floor.
    metrics = [("conn_cpu", "per connection"), ("ack_cpu", "per echo ack"), ("d50_cpu", "per delivery\n50/s"),
               ("d200_cpu", "per delivery\n200/s"), ("room_cpu", "per room\ndelivery")]
    if "floor" in figs:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        others = [p for p in peers if p != "floor"]
        width = 0.8 / max(len(others), 1)
        for i, p in enumerate(others):
            vals = [ratio(getattr(figs[p], m), getattr(figs["floor"], m)) or 0 for m, _ in metrics]
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(xs, vals, width, label=p, color=colors.get(p))
        ax.axhline(1.0, color="black", lw=1, ls="--", label="floor = 1")
        ax.set_xticks([j + width * (len(others) - 1) / 2 for j in range(len(metrics))])
        ax.set_xticklabels([label for _, label in metrics])
        ax.set_ylabel("server CPU, × floor (same run)")
        ax.set_title("Server CPU per unit of work, relative to the epoll floor")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "cpu-vs-floor.png"), dpi=110)
        plt.close(fig)
        made.append(("cpu-vs-floor.png", "Server CPU per unit of work, relative to the floor"))

    # 2. RSS per idle connection.
    fig, ax = plt.subplots(figsize=(6, 3.5))
    vals = [figs[p].rss or 0 for p in peers]
    ax.bar(peers, vals, color=[colors.get(p) for p in peers])
    ax.axhline(4.0, color="black", lw=1, ls="--", label="budget 4 KiB")
    ax.set_ylabel("KiB of server RSS per idle connection")
    ax.set_title(f"Idle connections ({fmt(Figures.connect_clients(rows))} clients)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "rss-per-connection.png"), dpi=110)
    plt.close(fig)
    made.append(("rss-per-connection.png", "Server RSS per idle connection"))

    # 3. Rate sweep: deliveries/s and p99 against the broadcast rate.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for p in peers:
        sw = figs[p].sweep
        if not sw:
            continue
        # A retried rate keeps its last attempt; the refining steps fall between the list's.
        steps = sorted({s["rate"]: s for s in sw.get("steps", [])}.values(), key=lambda s: s["rate"])
        rates = [s["rate"] for s in steps]
        ax1.plot(rates, [s["deliveries_per_s"] for s in steps], marker="o", label=p, color=colors.get(p))
        ax2.plot(rates, [s["latency"]["p99_us"] / 1000 for s in steps], marker="o", label=p, color=colors.get(p))
        bad = [s for s in steps if not s.get("sustained")]
        for s in bad:
            ax1.scatter([s["rate"]], [s["deliveries_per_s"]], marker="x", s=80, color=colors.get(p))
    ax1.set_xscale("log")
    ax1.set_xlabel("broadcasts/s (× clients = deliveries wanted)")
    ax1.set_ylabel("deliveries/s measured")
    ax1.set_title("Rate sweep (× = not sustained)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("broadcasts/s")
    ax2.set_ylabel("delivery p99, ms")
    ax2.set_title("Delivery latency p99")
    ax1.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "sweep.png"), dpi=110)
    plt.close(fig)
    made.append(("sweep.png", "Broadcast rate sweep"))

    # 4. Broadcast latency at 50/s and 200/s.
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels = ["p50 50/s", "p99 50/s", "p99 200/s", "p99 rooms", "p99 echo"]
    width = 0.8 / len(peers)
    for i, p in enumerate(peers):
        f = figs[p]
        vals = [(v or 0) / 1000 for v in (f.d50_p50, f.d50_p99, f.d200_p99, f.room_p99, f.echo_p99)]
        ax.bar([j + i * width for j in range(len(labels))], vals, width, label=p, color=colors.get(p))
    ax.set_xticks([j + width * (len(peers) - 1) / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels)
    ax.set_ylabel("ms")
    ax.set_title("Latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "latency.png"), dpi=110)
    plt.close(fig)
    made.append(("latency.png", "Latency"))
    return made


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("chart_dir")
    ap.add_argument("doc")
    ap.add_argument("--command", default="./scripts/bench.sh")
    args = ap.parse_args()
    rows = load(args.results)
    peers = [p for p in PEERS if any(r.get("peer") == p for r in rows)]
    bclients = next((r["clients"] for r in rows if r.get("scenario") == "broadcast" and "clients" in r), None)
    figs = {p: Figures(rows, p, bclients) for p in peers}
    made = charts(rows, figs, peers, args.chart_dir)
    rel = os.path.relpath(args.chart_dir, os.path.dirname(os.path.abspath(args.doc)) or ".")
    errors = [r for r in rows if "error" in r]
    big = [f"{p}: {fmt(figs[p].connect_max['clients'])} connections in {fmt(figs[p].connect_max['connect_ms'])} ms, "
           f"{fmt(figs[p].connect_max['rss_kib_per_connection'], 2)} KiB RSS and "
           f"{fmt(figs[p].connect_max['server_cpu_us_per_connection'], 1)} µs CPU each"
           for p in peers if figs[p].connect_max]
    section = [
        START,
        f"Generated from `{os.path.relpath(args.results)}` by `{args.command}`.",
        "",
        f"**Machine:** {machine()}. Shared with other work while measuring: absolute figures drift; "
        "the ratios to the floor, measured in the same run, are what count.",
        "",
        f"Broadcast scenarios use {fmt(bclients)} clients. Ratios in parentheses are to the floor.",
        "",
    ]
    repeated = {p: runs_of(rows, p, "echo") for p in peers}
    if max(repeated.values(), default=0) > 1:
        counts = ", ".join(f"{p} {n}" for p, n in repeated.items())
        section += [
            "Connect, echo and the broadcasts at 50/s and 200/s ran several times, alternating "
            f"between ignis and the floor on fresh servers (runs of echo: {counts}). Ignis and the "
            "floor in those rows come from one round, the one whose ratio of the two is the median "
            "(the host drifts within a run); the other peers' from their median run.",
            "",
        ]
    section += [
        table(rows, figs, peers),
        "",
        "### Budgets (issue 6), ignis against the floor of the same run",
        "",
        budgets(figs),
        "",
    ]
    if big:
        section += ["Near the open-file limit: " + "; ".join(big) + ".", ""]
    if errors:
        section += ["Scenarios that failed in this run:", ""]
        section += [f"- {e['peer']} {e.get('scenario')}: {e['error']}" for e in errors]
        section.append("")
    section += ["### Charts", ""]
    section += [f"![{title}]({rel}/{name})" for name, title in made]
    section += ["", "### Who spent the CPU", "", who_spent(rows, peers), "", END]
    text = "\n".join(section)
    try:
        with open(args.doc) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n\n"
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + text + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip() + "\n\n" + text + "\n"
    with open(args.doc, "w") as f:
        f.write(doc)
    print(f"wrote {args.doc} and {len(made)} charts in {args.chart_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
