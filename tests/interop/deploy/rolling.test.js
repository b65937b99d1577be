// A day of operations under load, behind a real load balancer: three ignis-server nodes on Redis
// Streams (with connection state recovery) behind HAProxy configured with deploy/haproxy.cfg,
// 1 000 socket.io-clients over WebSocket, long-polling and polling upgraded to WebSocket, each in
// a room of 100, receiving a numbered stream of broadcasts and room sends at a steady rate while
//   1. every node in turn is drained (SIGTERM) and started again at its address,
//   2. every Redis connection is killed (CLIENT KILL),
//   3. Redis, with append-only persistence, is shut down and started again,
//   4. one node is killed with SIGKILL.
// Counted per client: missing, duplicated and out-of-order messages. Through 1 to 3 nothing may
// be missing, duplicated or out of order. A node killed outright never keeps the sessions of
// its clients (a session is kept when its socket leaves, which a killed process never sees), so
// its clients reconnect elsewhere with new sessions and lose what was sent between the kill and
// their new joins: that, and only that, is allowed, and reported.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import { eventually, sleep, withTimeout } from "../lib/harness.js";
import { SERVER_NAMES, freePort, startHaproxy } from "../lib/haproxy.js";
import { rest, startIgnisServer } from "../lib/ignis-server.js";

const CLIENTS = Number(process.env.DEPLOY_CLIENTS ?? 1000);
const ROOMS = 10;
// One broadcast and one room send (to the rooms in turn) every this many milliseconds.
const SEND_EVERY_MS = 100;
// Clients connect from 127.0.0.2 up, this many addresses: HAProxy hashes on the source address,
// so a spread of addresses spreads the clients over the nodes.
const SOURCES = 24;
const DRAIN_SECONDS = 3;
// Times in reports count from here.
const started = Date.now();
const API_KEY = "deploy-test-key";
const HEADERS = { "X-API-Key": API_KEY };
const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? "redis-server";
const REDIS_CLI = process.env.REDIS_CLI_BIN ?? "redis-cli";

/** A redis-server of the test's own, with append-only persistence, that can be restarted. */
class PrivateRedis {
  constructor(port, dir) {
    this.port = port;
    this.dir = dir;
  }

  async start() {
    const args = [
      "--port", String(this.port), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "yes", "--appendfsync", "always", "--dir", this.dir,
    ];
    const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (c) => (output += c));
    child.stderr.setEncoding("utf8").on("data", (c) => (output += c));
    this.exited = new Promise((resolve) => child.once("exit", resolve));
    this.child = child;
    await withTimeout(
      new Promise((resolve, reject) => {
        const check = () => (/Ready to accept connections/.test(output) ? resolve() : setTimeout(check, 20));
        check();
        child.once("exit", (code) => reject(new Error(`redis-server exited (${code}):\n${output}`)));
      }),
      10000,
      "redis-server to start",
    );
  }

  cli(...args) {
    return execFileSync(REDIS_CLI, ["-p", String(this.port), ...args], { encoding: "utf8" }).trim();
  }

  /** SHUTDOWN: Redis writes its append-only file and exits. */
  async shutdown() {
    try {
      this.cli("SHUTDOWN");
    } catch {
      // redis-cli reports the connection Redis closed as it exited.
    }
    await withTimeout(this.exited, 10000, "redis-server to exit");
  }

  kill() {
    this.child?.kill("SIGKILL");
  }
}

/** A REST post that never throws: status 0 when no answer came. */
async function post(url, body) {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...HEADERS },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15000),
    });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

/**
 * The numbered stream: one broadcast `b {n}` and one room send `r {n}` (numbered per room) each
 * period, one request after another, so the order of the answers is the order of the sends.
 */
class Sender {
  constructor(url) {
    this.url = url;
    this.broadcasts = [];
    this.roomSends = Array.from({ length: ROOMS }, () => []);
    this.stopped = false;
  }

  start() {
    this.done = this.run();
  }

  async run() {
    let n = 0;
    const perRoom = new Array(ROOMS).fill(0);
    while (!this.stopped) {
      const started = Date.now();
      n += 1;
      const b = { n, at: started };
      b.status = await post(`${this.url}/api/socket/broadcast`, { topic: "b", data: { n } });
      b.answered = Date.now();
      this.broadcasts.push(b);
      const room = n % ROOMS;
      perRoom[room] += 1;
      const r = { n: perRoom[room], at: Date.now() };
      r.status = await post(`${this.url}/api/socket/room/room-${room}/send`, { topic: "r", data: { n: r.n } });
      r.answered = Date.now();
      this.roomSends[room].push(r);
      await sleep(Math.max(0, SEND_EVERY_MS - (Date.now() - started)));
    }
  }

  async stop() {
    this.stopped = true;
    await this.done;
  }
}

/** One socket.io-client that authenticates on every connect, joins its room unless recovered. */
function trackedClient(url, i, agents) {
  const kind = i % 10;
  const transports = kind < 4 ? ["websocket"] : kind < 7 ? ["polling"] : ["polling", "websocket"];
  const localAddress = `127.0.0.${2 + (i % SOURCES)}`;
  const socket = io(url, {
    path: "/io",
    transports,
    forceNew: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    // WebSocket takes the address itself, long-polling through its agent (a connection per
    // request, as engine.io-client makes by default in Node).
    localAddress,
    agent: agents.get(localAddress),
  });
  const c = {
    i,
    socket,
    transports: transports.join("+"),
    room: i % ROOMS,
    b: [],
    r: [],
    connects: [],
    reasons: [],
    inRoom: false,
    ready: false,
  };
  socket.on("connect", () => {
    c.connects.push({ at: Date.now(), recovered: socket.recovered, id: socket.id });
    c.ready = false;
    if (!socket.recovered) c.inRoom = false;
    socket.emit("authenticate");
  });
  socket.on("authenticated", () => {
    if (c.inRoom) {
      c.ready = true;
      return;
    }
    socket.timeout(10000).emit("join", { rooms: [`room-${c.room}`] }, (err) => {
      if (err) return;
      c.inRoom = true;
      c.ready = true;
      c.readyAt = Date.now();
    });
  });
  c.bt = [];
  c.rt = [];
  if (process.env.DEPLOY_DUMP) {
    c.trace = [];
    const onevent = socket.onevent.bind(socket);
    socket.onevent = (packet) => {
      c.trace.push([Date.now() - started, socket.connected, socket.io.engine?.id, JSON.stringify(packet.data).slice(0, 60)]);
      onevent(packet);
    };
    const onconnect = socket.onconnect.bind(socket);
    socket.onconnect = (...a) => {
      c.trace.push([Date.now() - started, "onconnect", socket.io.engine?.id, JSON.stringify(a)]);
      onconnect(...a);
    };
    socket.on("disconnect", (reason, details) => {
      c.trace.push([Date.now() - started, "disconnect", reason, JSON.stringify(details ?? null).slice(0, 200)]);
    });
    socket.io.on("open", () => c.trace.push([Date.now() - started, "open", socket.io.engine?.id]));
    socket.io.on("error", (e) => c.trace.push([Date.now() - started, "error", String(e).slice(0, 100)]));
  }
  socket.on("b", (d) => { c.b.push(d.n); c.bt.push(Date.now()); });
  socket.on("r", (d) => { c.r.push(d.n); c.rt.push(Date.now()); });
  c.disconnects = [];
  socket.on("disconnect", (reason) => {
    c.reasons.push(reason);
    c.disconnects.push(Date.now());
  });
  c.errors = [];
  socket.on("connect_error", (err) => c.errors.push(`${Date.now() - started} ${err.message}`));
  return c;
}

/** Missing, duplicated and out-of-order numbers of `got` against the numbers `expected`. */
function count(got, expected) {
  const seen = new Map();
  let outOfOrder = 0;
  let last = 0;
  for (const n of got) {
    seen.set(n, (seen.get(n) ?? 0) + 1);
    if (n <= last) outOfOrder += 1;
    last = Math.max(last, n);
  }
  const missing = expected.filter((n) => !seen.has(n));
  let duplicated = 0;
  for (const times of seen.values()) duplicated += times - 1;
  return { missing, duplicated, outOfOrder };
}

describe("deploys and faults under a steady stream, three nodes on Redis Streams behind HAProxy", () => {
  let redis;
  let redisDir;
  let ports = [];
  let nodes = [];
  let args = [];
  let proxy;
  let clients = [];
  let sender;
  const agents = new Map();
  // Filled by the test, read by the report.
  const phases = {};

  before(async () => {
    redisDir = mkdtempSync(path.join(os.tmpdir(), "ignis-deploy-redis-"));
    redis = new PrivateRedis(await freePort(), redisDir);
    await redis.start();
    args = [
      "--redis-url", `redis://127.0.0.1:${redis.port}`,
      "--redis-key", `ignis-deploy-${randomBytes(6).toString("hex")}`,
      "--redis-mode", "streams",
      "--api-key", API_KEY,
      "--drain-seconds", String(DRAIN_SECONDS),
      "--recovery-max-disconnection-ms", "120000",
    ];
    ports = [await freePort(), await freePort(), await freePort()];
    nodes = await Promise.all(ports.map((port) => startIgnisServer(["--port", String(port), ...args])));
    proxy = await startHaproxy(ports);
    for (let s = 0; s < SOURCES; s += 1) {
      const localAddress = `127.0.0.${2 + s}`;
      agents.set(localAddress, new http.Agent({ localAddress, keepAlive: false }));
    }
  });

  after(async () => {
    await sender?.stop();
    for (const c of clients) c.socket.close();
    for (const agent of agents.values()) agent.destroy();
    await proxy?.stop();
    await Promise.all(nodes.map((n) => n?.stop("SIGKILL")));
    redis?.kill();
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
  });

  const allReady = (ms, what) =>
    eventually(() => clients.every((c) => c.ready && c.socket.connected), ms, `every client ready (${what})`).catch(
      (err) => {
        const stuck = clients.filter((c) => !(c.ready && c.socket.connected));
        const show = stuck.slice(0, 5).map((c) => ({
          client: c.i,
          transports: c.transports,
          connected: c.socket.connected,
          inRoom: c.inRoom,
          connects: c.connects.map((x) => ({ ...x, at: x.at - started })),
          reasons: c.reasons,
          errors: c.errors,
          manager: c.socket.io._readyState,
          engine: c.socket.io.engine?.readyState,
          transport: c.socket.io.engine?.transport?.name,
          attempts: c.socket.io.backoff?.attempts,
          trace: c.trace?.slice(-8),
        }));
        throw new Error(`${err.message}: ${stuck.length} clients not ready, e.g. ${JSON.stringify(show)}`);
      },
    );

  async function clientIds(node) {
    const info = await rest("GET", `${node.api}/info`, undefined, HEADERS).catch(() => ({ status: 0 }));
    return info.status === 200 ? info.body.clientIds : [];
  }

  /** Drains node `k` with SIGTERM, waits for its exit, starts it again and for HAProxy to take it. */
  async function rollNode(k) {
    const name = SERVER_NAMES[k];
    const ups = proxy.upCount(name);
    const held = (await clientIds(nodes[k])).length;
    (phases.events ??= []).push({ what: `drain ${name}`, at: Date.now() });
    nodes[k].stop("SIGTERM");
    const code = await nodes[k].exited;
    assert.equal(code, 0, `node ${name} exits 0 after its drain`);
    phases.events.push({ what: `exited ${name}`, at: Date.now() });
    nodes[k] = await startIgnisServer(["--port", String(ports[k]), ...args]);
    phases.events.push({ what: `started ${name}`, at: Date.now() });
    await eventually(() => proxy.upCount(name) > ups, 10000, `HAProxy to see node ${name} up again`);
    await allReady(30000, `after the drain of node ${name}`);
    return held;
  }

  it("1 000 clients spread over the nodes, in their rooms", async () => {
    // A first entry in the stream: a restore checks that a client's offset is one of its entries.
    assert.equal(await post(`${proxy.url}/api/socket/room/nobody-here/send`, { topic: "t", data: 0 }), 200);
    for (let i = 0; i < CLIENTS; i += 1) {
      clients.push(trackedClient(proxy.url, i, agents));
      // Not all at once: the first connects of 1 000 clients within a few seconds.
      if (i % 50 === 49) await sleep(20);
    }
    await allReady(60000, "first connect");
    const spread = await Promise.all(nodes.map(clientIds));
    phases.spread = spread.map((ids) => ids.length);
    assert.equal(phases.spread.reduce((a, b) => a + b, 0), CLIENTS, `clients per node: ${phases.spread}`);
    assert.ok(phases.spread.every((n) => n > 0), `every node holds clients: ${phases.spread}`);
  });

  it("drains and restarts every node in turn, then kills Redis's connections, then restarts Redis: nothing lost", async () => {
    sender = new Sender(proxy.url);
    sender.start();
    await sleep(1000);
    phases.moved = [];
    for (let k = 0; k < nodes.length; k += 1) {
      phases.moved.push(await rollNode(k));
      await sleep(500);
    }
    assert.ok(phases.moved.every((n) => n > 0), `each drained node had clients: ${phases.moved}`);

    phases.events.push({ what: "client kill", at: Date.now() });
    // Every connection to Redis cut at once: the nodes reconnect and read on where they stopped.
    redis.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
    redis.cli("CLIENT", "KILL", "TYPE", "pubsub");
    await sleep(3000);

    // Redis stopped (its append-only file written) and started again on the same files.
    phases.events.push({ what: "redis shutdown", at: Date.now() });
    await redis.shutdown();
    await sleep(1000);
    await redis.start();
    await sleep(4000);
    await allReady(30000, "after the Redis faults");

    // Everything answered 200 until here must have reached everyone, once and in order.
    phases.until = Date.now();
    await sleep(2000);
    const ok = (sends) => sends.filter((s) => s.status === 200 && s.answered < phases.until).map((s) => s.n);
    const failed = sender.broadcasts.filter((s) => s.status !== 200 && s.answered < phases.until);
    phases.sentBefore = { broadcasts: ok(sender.broadcasts).length, failed: failed.length };
    const bad = [];
    for (const c of clients) {
      const lastB = ok(sender.broadcasts).at(-1);
      const lastR = ok(sender.roomSends[c.room]).at(-1);
      const b = count(c.b.filter((n) => n <= lastB), ok(sender.broadcasts));
      const r = count(c.r.filter((n) => n <= lastR), ok(sender.roomSends[c.room]));
      if (b.missing.length || b.duplicated || b.outOfOrder || r.missing.length || r.duplicated || r.outOfOrder) {
        bad.push({ client: c.i, transports: c.transports, b: { ...b, missing: b.missing.slice(0, 10) }, r: { ...r, missing: r.missing.slice(0, 10) }, connects: c.connects.length, reasons: c.reasons });
      }
    }
    if (process.env.DEPLOY_DUMP) {
      const { writeFileSync } = await import("node:fs");
      const dump = clients.map((c) => ({ i: c.i, t: c.transports, connects: c.connects, reasons: c.reasons, b: c.b, r: c.r, bt: c.bt, rt: c.rt, trace: c.trace }));
      writeFileSync(process.env.DEPLOY_DUMP, JSON.stringify({ started, bad, dump, sends: sender.broadcasts, phases, proxy: proxy.logs(), logs: nodes.map((n) => n.logs()) }));
    }
    const moves = clients.reduce((sum, c) => sum + c.connects.length - 1, 0);
    const recovered = clients.reduce((sum, c) => sum + c.connects.filter((x) => x.recovered).length, 0);
    phases.reconnects = { moves, recovered };
    console.log(`# deploy: ${phases.sentBefore.broadcasts} broadcasts and their room sends answered 200 ` +
      `(${phases.sentBefore.failed} refused) through three drains and two Redis faults; ` +
      `${moves} reconnects, ${recovered} recovered; clients with a fault: ${bad.length}`);
    assert.equal(failed.length, 0, `REST sends refused: ${JSON.stringify(failed.slice(0, 5))}`);
    assert.deepEqual(bad.slice(0, 5), [], `${bad.length} clients missed, repeated or reordered messages`);
    assert.equal(recovered, moves, "every reconnect recovered its session");
  });

  it("a node killed with SIGKILL: only its own clients lose what was sent before they joined again", async () => {
    const held = await Promise.all(nodes.map(clientIds));
    const k = held.reduce((best, ids, j) => (ids.length > held[best].length ? j : best), 0);
    const ids = new Set(held[k]);
    const victims = new Set(clients.filter((c) => ids.has(c.socket.id)));
    assert.ok(victims.size > 0, "the killed node holds clients");
    const killedAt = Date.now();
    await nodes[k].stop("SIGKILL");
    nodes[k] = undefined;
    await allReady(60000, "after the kill");
    await sleep(2000);
    await sender.stop();
    await sleep(2000);

    const ok = (sends) => sends.filter((s) => s.status === 200).map((s) => s.n);
    const report = { victims: victims.size, lost: 0, lostWindowMs: 0, others: 0 };
    for (const c of clients) {
      const b = count(c.b, ok(sender.broadcasts));
      const r = count(c.r, ok(sender.roomSends[c.room]));
      // Order and uniqueness hold for everyone, always.
      assert.equal(b.duplicated + r.duplicated, 0, `client ${c.i} (${c.transports}) got duplicates`);
      assert.equal(b.outOfOrder + r.outOfOrder, 0, `client ${c.i} (${c.transports}) got messages out of order`);
      if (!victims.has(c)) {
        report.others += b.missing.length + r.missing.length;
        continue;
      }
      // A victim may lose one run of messages: those after the last it got from the killed
      // node, up to the first it got on its new node (what the killed node had not written
      // yet, and what was sent while the client had no node). A hole anywhere else is a loss.
      // Until its connection broke (the dying process may still write for a moment after the
      // signal), and from its new node on.
      const broke = c.disconnects.find((at) => at >= killedAt) ?? Infinity;
      const gap = (got, times) => {
        let before = 0;
        let after = Infinity;
        got.forEach((n, k) => {
          if (times[k] <= broke) before = Math.max(before, n);
          else after = Math.min(after, n);
        });
        return (n) => n > before && n < after;
      };
      const inB = gap(c.b, c.bt);
      const inR = gap(c.r, c.rt);
      assert.deepEqual(b.missing.filter((n) => !inB(n)), [], `client ${c.i}: broadcasts lost outside the kill's gap`);
      assert.deepEqual(r.missing.filter((n) => !inR(n)), [], `client ${c.i}: room sends lost outside the kill's gap`);
      const lastMissing = b.missing.at(-1);
      if (lastMissing !== undefined) {
        const sent = sender.broadcasts.find((x) => x.n === lastMissing);
        report.lostWindowMs = Math.max(report.lostWindowMs, sent.at - killedAt);
      }
      report.lost += b.missing.length + r.missing.length;
    }
    console.log(`# SIGKILL: ${report.victims} clients on the killed node lost ${report.lost} messages in all, ` +
      `each a single run from its last message of the killed node to its first of its new node ` +
      `(the last sent ${report.lostWindowMs} ms after the kill); the other ` +
      `${clients.length - report.victims} clients lost ${report.others}`);
    assert.equal(report.others, 0, "clients of the other nodes lost nothing");
  });
});
