// Rolling restarts behind a real load balancer: two ignis-server nodes on one Redis behind
// HAProxy, configured with deploy/haproxy.cfg (the README's), probing /api/socket/ready. The
// clients' node is drained with SIGTERM, restarted at the same address, then the other node is
// drained: each time every socket.io-client, over WebSocket and over long-polling, is moved to
// the other node without ever being told `io server disconnect`, authenticates again there and
// receives what is sent to everyone, and the drained node exits 0. Last, the REST call drains
// the remaining node.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { io } from "socket.io-client";
import { eventually, bufferEvents } from "../lib/harness.js";
import { freePort, startHaproxy } from "../lib/haproxy.js";
import { startIgnisServer, rest } from "../lib/ignis-server.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const API_KEY = "drain-test-key";
const HEADERS = { "X-API-Key": API_KEY };
// Long enough for the test's few clients to be visibly spread, short enough for CI.
const DRAIN_SECONDS = 3;

/** A socket.io-client that reconnects, authenticates on every connect and records what it saw. */
function trackedClient(url, transports) {
  const socket = bufferEvents(
    io(url, {
      path: "/io",
      transports,
      forceNew: true,
      reconnectionDelay: 200,
      reconnectionDelayMax: 1000,
    }),
  );
  const seen = { socket, transports, reasons: [], connects: [], ids: [] };
  socket.on("connect", () => {
    seen.connects.push(socket.recovered);
    seen.ids.push(socket.id);
    socket.emit("authenticate");
  });
  socket.on("disconnect", (reason) => seen.reasons.push(reason));
  return seen;
}

async function clientIds(node) {
  const info = await rest("GET", `${node.api}/info`, undefined, HEADERS);
  return info.status === 200 ? info.body.clientIds : [];
}

// Classic Redis keeps sessions in each node's memory: a client moved to another node starts a
// new session. The streams adapter keeps them in Redis: the same client recovers there.
for (const mode of ["classic", "streams"]) describe(`rolling restart behind HAProxy (${mode} Redis)`, () => {
  const recovers = mode === "streams";
  let nodes = [];
  let ports = [];
  let args = [];
  let proxy;
  let clients = [];
  // The node the clients are on after the rolling restart.
  let remaining;

  before(async () => {
    const key = `ignis-drain-${randomBytes(6).toString("hex")}`;
    args = [
      "--redis-url", REDIS_URL,
      "--redis-key", key,
      "--redis-mode", mode,
      "--api-key", API_KEY,
      "--drain-seconds", String(DRAIN_SECONDS),
      "--recovery-max-disconnection-ms", "60000",
    ];
    // Fixed ports: a restarted node comes back at the address HAProxy knows.
    ports = [await freePort(), await freePort()];
    nodes = await Promise.all(ports.map((port) => startIgnisServer(["--port", String(port), ...args])));
    // The configuration has three server lines: the third names the second node again.
    proxy = await startHaproxy(ports);
  });

  after(async () => {
    for (const c of clients) c.socket.close();
    await proxy?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  /** Drains `from` with SIGTERM; every client ends up on `to`, none told `io server disconnect`. */
  async function moveAll(from, to, round) {
    const started = Date.now();
    from.stop("SIGTERM");
    // The probe turns 503 at once.
    await eventually(
      async () => (await rest("GET", `${from.api}/ready`).catch(() => ({ status: 0 }))).status !== 200,
      2000,
      "the drained node's readiness at 503",
    );
    // Every client comes back, through the proxy, to the other node and authenticates there.
    await Promise.all(clients.map((c) => c.socket.next("authenticated", 15000)));
    const code = await from.exited;
    const took = Date.now() - started;
    assert.equal(code, 0, "the drained node exits 0");
    assert.ok(took < (DRAIN_SECONDS + 3) * 1000, `drain took ${took} ms`);
    const ids = await clientIds(to);
    for (const c of clients) {
      assert.ok(!c.reasons.includes("io server disconnect"), `${c.transports}: ${c.reasons}`);
      assert.equal(c.reasons.length, round, `${c.transports}: ${c.reasons}`);
      assert.equal(c.reasons[round - 1], "transport close", `${c.transports}: ${c.reasons}`);
      assert.equal(c.socket.connected, true);
      assert.ok(ids.includes(c.socket.id), `${c.socket.id} on the other node`);
      // Recovered on the other node only when Redis carries the sessions (streams), and then
      // with the id it had from its first connect.
      assert.equal(c.connects.length, round + 1);
      assert.equal(c.connects[0], false);
      assert.ok(c.connects.slice(1).every((recovered) => recovered === recovers), `${mode}: ${c.connects}`);
      if (recovers) assert.ok(c.ids.every((id) => id === c.ids[0]), `${mode}: ${c.ids}`);
    }
    // And the cluster still reaches everyone.
    const topic = `after-drain-${round}`;
    const sent = await rest("POST", `${proxy.url}/api/socket/broadcast`, { topic, data: round }, HEADERS);
    assert.equal(sent.status, 200, sent.text);
    await Promise.all(clients.map((c) => c.socket.next(topic, 5000)));
  }

  it("drains one node, restarts it, drains the other: every client moves twice, never told to stop", async () => {
    const transportsOf = [["websocket"], ["websocket"], ["polling"], ["polling"], ["polling", "websocket"], ["polling", "websocket"]];
    // A send to a room nobody is in: the stream holds an entry, as any live cluster's does (a
    // restore checks that the client's offset is an entry of the stream). The clients get no
    // broadcast before the first move, only the events emitted to them (`authenticated`,
    // `ping`), whose offsets must let them recover on the other node.
    const before = await rest("POST", `${proxy.url}/api/socket/room/nobody-here/send`, { topic: "t", data: 0 }, HEADERS);
    assert.equal(before.status, 200, before.text);
    await new Promise((resolve) => setTimeout(resolve, 300));
    clients = transportsOf.map((t) => trackedClient(proxy.url, t));
    await Promise.all(clients.map((c) => c.socket.next("authenticated", 10000)));

    // Hashed on the client address, every test client is on the same node: drain that one.
    const [onOne, onTwo] = await Promise.all(nodes.map(clientIds));
    const first = onOne.length === clients.length ? 0 : 1;
    assert.equal([onOne, onTwo][first].length, clients.length, `clients on one node: ${onOne} / ${onTwo}`);
    const second = 1 - first;

    await moveAll(nodes[first], nodes[second], 1);

    // The new version of the drained node starts at the same address; HAProxy takes it back
    // once two probes passed.
    nodes[first] = await startIgnisServer(["--port", String(ports[first]), ...args]);
    await eventually(
      () => proxy.upCount(first === 0 ? "one" : "two") > 1,
      10000,
      "HAProxy to see the restarted node up",
    );

    await moveAll(nodes[second], nodes[first], 2);
    remaining = nodes[first];
  });

  it("the REST drain of the remaining node refuses new clients and moves the last ones", async () => {
    const other = remaining;
    assert.ok(other, "the first test left one node");
    const denied = await rest("POST", `${other.api}/drain`);
    assert.equal(denied.status, 401, "the drain needs the API key");
    const answer = await rest("POST", `${other.api}/drain`, undefined, HEADERS);
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.drainSeconds, DRAIN_SECONDS);
    // Asked directly, the draining node refuses a new client; the clients it moves off keep
    // trying (no node is left), never told to stop.
    const handshake = await fetch(`${other.url}/io/?EIO=4&transport=polling`);
    assert.equal(handshake.status, 503);
    assert.deepEqual(await handshake.json(), { code: 7, message: "Server draining" });
    assert.equal(await other.exited, 0);
    await eventually(() => clients.every((c) => c.reasons.length === 3), 3000, "every client moved off again");
    for (const c of clients) {
      assert.deepEqual(c.reasons, ["transport close", "transport close", "transport close"], `${c.transports}`);
      assert.equal(c.socket.active, true, "still reconnecting");
    }
  });
});
