// The Socket.IO Admin UI protocol (@socket.io/admin-ui 0.5) of ignis-server, spoken by
// socket.io-client as the UI speaks it: login, the pushed state, live socket and room events,
// the actions, and read-only mode. No browser: admin-ui.test.js drives the real UI.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { io } from "socket.io-client";
import { REPO_ROOT, startIgnisServer } from "../lib/server.js";
import { ADMIN_PASSWORD, ADMIN_USER, adminClient, next, roomClient, startAdminServer } from "../lib/admin.js";

const credentials = { username: ADMIN_USER, password: ADMIN_PASSWORD };

/** Connects an admin client and collects what the server pushes on connect. */
async function login(url, auth = credentials) {
  const admin = adminClient(url, auth);
  // Sent before `config`, when the login was a password's.
  let session;
  admin.once("session", (id) => (session = id));
  const config = next(admin, "config");
  const sockets = next(admin, "all_sockets");
  const stats = next(admin, "server_stats");
  await next(admin, "connect");
  const pushed = { config: (await config)[0], sockets: (await sockets)[0], stats: (await stats)[0] };
  return { admin, session, ...pushed };
}

describe("admin UI protocol", () => {
  let server;
  const open = [];
  before(async () => {
    server = await startAdminServer();
  });
  after(async () => {
    for (const s of open) s.close();
    await server?.stop();
  });

  it("refuses a wrong password and an unknown user", async () => {
    for (const auth of [{ username: ADMIN_USER, password: "wrong" }, { username: "root", password: ADMIN_PASSWORD }, {}]) {
      const admin = adminClient(server.url, auth);
      const [err] = await next(admin, "connect_error");
      assert.equal(err.message, "invalid credentials");
      admin.close();
    }
  });

  it("shows the sockets with their handshake and rooms, live events, and acts", async () => {
    const alice = await roomClient(server.url, ["lobby"]);
    open.push(alice);
    const { admin, session, config, sockets, stats } = await login(server.url);
    open.push(admin);

    assert.match(session, /^[0-9a-f]{32}$/);
    for (const f of ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"]) {
      assert.ok(config.supportedFeatures.includes(f), f);
    }

    const a = sockets.find((s) => s.id === alice.id);
    assert.ok(a, `alice in all_sockets: ${JSON.stringify(sockets.map((s) => s.id))}`);
    assert.equal(a.nsp, "/");
    assert.equal(a.transport, "websocket");
    assert.equal(typeof a.clientId, "string");
    assert.equal(a.clientId.length, 12);
    assert.ok(a.rooms.includes("lobby") && a.rooms.includes(alice.id) && a.rooms.includes("io-default"), JSON.stringify(a.rooms));
    assert.equal(a.handshake.address, "127.0.0.1");
    assert.equal(a.handshake.query.transport, "websocket");
    assert.equal(typeof a.handshake.headers, "object");
    assert.equal(typeof a.handshake.time, "string");
    assert.equal(a.handshake.auth, undefined);
    // The admin's own socket is listed, without its password.
    const me = sockets.find((s) => s.id === admin.id);
    assert.equal(me.nsp, "/admin");
    assert.equal(me.handshake.auth, undefined);
    assert.doesNotMatch(JSON.stringify(sockets), /correct horse/);

    assert.equal(stats.serverId, `${stats.hostname}#${stats.pid}`);
    assert.equal(stats.pid > 0, true);
    assert.ok(stats.clientsCount >= 2, JSON.stringify(stats));
    assert.equal(stats.pollingClientsCount, 0);
    assert.ok(stats.namespaces.some((n) => n.name === "/" && n.socketsCount >= 1), JSON.stringify(stats.namespaces));
    assert.ok(stats.namespaces.some((n) => n.name === "/admin" && n.socketsCount >= 1));

    // A client connects and joins a room: the UI hears both.
    const connected = next(admin, "socket_connected", { where: (s) => s.nsp === "/" });
    const lobbyJoins = [];
    admin.on("room_joined", (nsp, room, id) => nsp === "/" && room === "lobby" && lobbyJoins.push(id));
    const bob = await roomClient(server.url, ["lobby"]);
    open.push(bob);
    const [bobSeen, connectedAt] = await connected;
    assert.equal(bobSeen.id, bob.id);
    assert.match(connectedAt, /^\d{4}-\d{2}-\d{2}T/);
    await next(admin, "server_stats");
    assert.deepEqual(lobbyJoins, [bob.id]);

    // join and leave of one socket, then of a room.
    const joined = next(admin, "room_joined", { where: (nsp, room, id) => room === "vip" && id === bob.id });
    admin.emit("join", "/", "vip", bob.id);
    await joined;
    const left = next(admin, "room_left", { where: (nsp, room, id) => room === "vip" && id === bob.id });
    admin.emit("leave", "/", "vip", bob.id);
    await left;
    const bothJoined = Promise.all([alice, bob].map((c) => next(admin, "room_joined", { where: (nsp, room, id) => room === "stage" && id === c.id })));
    admin.emit("join", "/", "stage", "lobby");
    await bothJoined;

    // emit to a room reaches its members.
    const hello = Promise.all([alice, bob].map((c) => next(c, "hello")));
    admin.emit("emit", "/", "lobby", "hello", { from: "admin" }, 2);
    for (const args of await hello) assert.deepEqual(args, [{ from: "admin" }, 2]);

    // _disconnect of one socket: the client is told, the UI hears it.
    const bobId = bob.id; // socket.io-client forgets it on disconnect
    const gone = next(admin, "socket_disconnected", { where: (nsp, id) => id === bobId });
    const [reason] = await Promise.all([next(bob, "disconnect").then(([r]) => r), (admin.emit("_disconnect", "/", false, bob.id), null)]);
    assert.equal(reason, "io server disconnect");
    const [nsp, id, why] = await gone;
    assert.deepEqual([nsp, id, why], ["/", bobId, "server namespace disconnect"]);
    assert.equal(alice.connected, true, "only the one socket");

    // The session id logs in again without the password.
    const again = await login(server.url, { sessionId: session });
    open.push(again.admin);
    assert.equal(again.session, undefined, "no new session for a session login");
    const forged = adminClient(server.url, { sessionId: "0".repeat(32) });
    assert.equal((await next(forged, "connect_error"))[0].message, "invalid credentials");
    forged.close();
  });

  it("tells of an upgrade from polling to WebSocket", async () => {
    const { admin } = await login(server.url);
    open.push(admin);
    const connected = next(admin, "socket_connected", { where: (s) => s.nsp === "/" });
    const updated = next(admin, "socket_updated", { where: (s) => s.nsp === "/" });
    const client = io(server.url, { path: "/io", reconnection: false, forceNew: true });
    open.push(client);
    const [first] = await connected;
    assert.equal(first.transport, "polling");
    const [change] = await updated;
    assert.deepEqual(change, { id: first.id, nsp: "/", transport: "websocket" });
  });

  it("never creates a namespace for an action", async () => {
    const { admin } = await login(server.url);
    open.push(admin);
    admin.emit("emit", "/nowhere", null, "x");
    admin.emit("join", "/nowhere", "room", null);
    const stats = (await next(admin, "server_stats"))[0];
    assert.ok(!stats.namespaces.some((n) => n.name === "/nowhere"), JSON.stringify(stats.namespaces));
  });
});

describe("admin UI protocol, read-only", () => {
  let server;
  before(async () => {
    server = await startAdminServer(["--admin-ui-read-only"]);
  });
  after(async () => {
    await server?.stop();
  });

  it("offers and performs no action", async () => {
    const carol = await roomClient(server.url, ["lobby"]);
    const { admin, config, sockets } = await login(server.url);
    try {
      assert.deepEqual(config.supportedFeatures.filter((f) => !f.endsWith("_EVENTS")), []);
      assert.ok(sockets.some((s) => s.id === carol.id), "still shows the sockets");
      let got = false;
      carol.on("hello", () => (got = true));
      admin.emit("_disconnect", "/", false, carol.id);
      admin.emit("emit", "/", null, "hello");
      admin.emit("leave", "/", "lobby", carol.id);
      // Whatever the server did with them is done by its next stats.
      await next(admin, "server_stats");
      await next(admin, "server_stats");
      assert.equal(carol.connected, true);
      assert.equal(got, false);
      const again = (await login(server.url)).sockets.find((s) => s.id === carol.id);
      assert.ok(again.rooms.includes("lobby"));
    } finally {
      carol.close();
      admin.close();
    }
  });
});

describe("admin UI protocol, two nodes on Redis", () => {
  let nodeA;
  let nodeB;
  before(async () => {
    // A key of its own: other tests on the same Redis are other clusters.
    const redis = ["--redis-url", process.env.REDIS_URL ?? "redis://127.0.0.1:6379", "--redis-key", `admin-ui-test-${process.pid}-${Date.now()}`];
    nodeA = await startAdminServer(redis);
    nodeB = await startAdminServer(redis);
  });
  after(async () => {
    await nodeA?.stop();
    await nodeB?.stop();
  });

  it("the UI on one node sees and acts on the other's sockets", async () => {
    const dave = await roomClient(nodeB.url, ["lobby"]);
    const daveId = dave.id;
    const { admin, sockets } = await login(nodeA.url);
    try {
      const seen = sockets.find((s) => s.id === daveId);
      assert.ok(seen, "node B's socket in node A's all_sockets");
      assert.equal(seen.nsp, "/");
      assert.ok(seen.rooms.includes("lobby"), JSON.stringify(seen.rooms));

      // Both nodes report their stats to the UI on node A.
      const pids = new Set();
      const ids = new Set();
      admin.on("server_stats", (s) => {
        pids.add(s.pid);
        ids.add(s.serverId);
      });
      const joined = next(admin, "room_joined", { where: (nsp, room, id) => room === "vip" && id === daveId });
      admin.emit("join", "/", "vip", daveId);
      await joined;
      await next(admin, "server_stats", { where: () => pids.size >= 2 });
      assert.equal(ids.size, 2, `one server id each, on one host: ${[...ids]}`);

      const told = next(admin, "socket_disconnected", { where: (nsp, id) => id === daveId });
      const disconnected = next(dave, "disconnect");
      admin.emit("_disconnect", "/", false, daveId);
      assert.equal((await disconnected)[0], "io server disconnect");
      await told;
    } finally {
      dave.close();
      admin.close();
    }
  });
});

describe("admin UI protocol, a hash made by ignis-server admin-ui-hash", () => {
  it("logs in with the password it was made from", async () => {
    const bin = path.resolve(REPO_ROOT, process.env.IGNIS_SERVER_BIN ?? "target/debug/ignis-server");
    const made = spawnSync(bin, ["admin-ui-hash", "--cost", "4"], { input: "hunter2 hunter2\n", encoding: "utf8", timeout: 10_000 });
    assert.equal(made.status, 0, made.stderr);
    const hash = made.stdout.trim();
    assert.match(hash, /^\$2b\$04\$.{53}$/);
    const server = await startIgnisServer(["--admin-ui-auth", `ops:${hash}`]);
    try {
      const { admin, config } = await login(server.url, { username: "ops", password: "hunter2 hunter2" });
      assert.ok(config.supportedFeatures.includes("DISCONNECT"));
      admin.close();
      const wrong = adminClient(server.url, { username: "ops", password: "hunter2" });
      assert.equal((await next(wrong, "connect_error"))[0].message, "invalid credentials");
      wrong.close();
    } finally {
      await server.stop();
    }
  });
});
