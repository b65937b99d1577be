// The original example's client.ts (spec §14.1), every expectation a hard assertion, against the
// real ignis-server binary.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { client, once, sleep, closeAll, eventually } from "../lib/harness.js";
import { startIgnisServer, rest } from "../lib/ignis-server.js";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("the 18-step flow of the original example", () => {
  let server;
  let a;
  let b;
  let idA;
  let idB;
  const opts = () => ({
    path: "/io",
    transports: ["websocket", "polling"],
    extraHeaders: { Authorization: "Bearer test-token" },
  });

  before(async () => {
    // Step 5 lists every client, as the original does; the server shows a client only its own
    // id unless told otherwise.
    server = await startIgnisServer(["--get-clients", "all"]);
  });
  after(async () => {
    closeAll(a, b);
    await server?.stop();
  });

  it("S1-S4: two clients connect and authenticate", async () => {
    a = client(server.url, opts());
    await once(a, "connect");
    a.emit("authenticate");
    const [authA] = await a.next("authenticated", 5000);
    assert.equal(authA.id, a.id);
    assert.match(authA.time, ISO);
    idA = authA.id;

    b = client(server.url, opts());
    await once(b, "connect");
    b.emit("authenticate");
    const [authB] = await b.next("authenticated", 5000);
    assert.equal(authB.id, b.id);
    idB = authB.id;
    await sleep(500);
  });

  it("1-3: health, info, clients over REST", async () => {
    const health = await rest("GET", `${server.api}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.healthy, true);
    assert.match(health.body.timestamp, ISO);

    const info = await rest("GET", `${server.api}/info`);
    assert.equal(info.body.status, "running");
    assert.equal(typeof info.body.connectedClients, "number");
    assert.ok(Array.isArray(info.body.clientIds));
    assert.ok(info.body.clientIds.includes(idA) && info.body.clientIds.includes(idB));

    const clients = await rest("GET", `${server.api}/clients`);
    assert.equal(typeof clients.body.count, "number");
    assert.ok(Array.isArray(clients.body.clients));
    assert.equal(clients.body.count, clients.body.clients.length);
  });

  it("4: echo", async () => {
    a.emit("echo", { message: "hello echo", ts: Date.now() });
    const [res] = await a.next("echo:response", 5000);
    assert.equal(res.original.message, "hello echo");
    assert.match(res.timestamp, ISO);
  });

  it("5: get-clients over the socket", async () => {
    a.emit("get-clients");
    const [list] = await a.next("clients:list", 5000);
    assert.ok(list.count >= 2);
    assert.ok(list.clients.includes(idA) && list.clients.includes(idB));
  });

  it("6-9: socket joins, a broadcast chat message and a room chat message", async () => {
    a.emit("join", { rooms: ["test-room-socket"] });
    b.emit("join", { rooms: ["test-room-socket"] });
    await sleep(500);

    a.emit("chat:message", { message: "hello everyone via socket" });
    const [broadcast] = await b.next("chat:broadcast", 5000);
    assert.equal(broadcast.from, idA);
    assert.equal(broadcast.message, "hello everyone via socket");
    assert.match(broadcast.timestamp, ISO);
    // The sender gets its own broadcast too.
    const [own] = await a.next("chat:broadcast", 5000);
    assert.equal(own.from, idA);

    a.emit("chat:message", { room: "test-room-socket", message: "hello room via socket" });
    const [room] = await b.next("chat:message", 5000);
    assert.equal(room.message, "hello room via socket");
    assert.equal(room.from, idA);
  });

  it("10-14: leave by socket, join and leave by REST, rooms by REST", async () => {
    b.emit("leave", { rooms: ["test-room-socket"] });
    await sleep(500);

    const join = await rest("POST", `${server.api}/client/${idA}/join`, { rooms: ["rest-room-a", "rest-room-b"] });
    assert.equal(join.status, 200);
    assert.equal(join.body.success, true);
    assert.equal(join.body.message, `Client ${idA} joined rooms: rest-room-a, rest-room-b`);

    const rooms = await rest("GET", `${server.api}/client/${idA}/rooms`);
    assert.equal(rooms.body.success, true);
    assert.deepEqual(rooms.body.rooms, [idA, "io-default", "io-notification", "test-room-socket", "rest-room-a", "rest-room-b"]);

    const leave = await rest("POST", `${server.api}/client/${idA}/leave`, { rooms: ["rest-room-b"] });
    assert.equal(leave.body.success, true);
    assert.equal(leave.body.message, `Client ${idA} left rooms: rest-room-b`);

    const after = await rest("GET", `${server.api}/client/${idA}/rooms`);
    assert.deepEqual(after.body.rooms, [idA, "io-default", "io-notification", "test-room-socket", "rest-room-a"]);

    const bRooms = await rest("GET", `${server.api}/client/${idB}/rooms`);
    assert.ok(!bRooms.body.rooms.includes("test-room-socket"), "B left the room by socket");
  });

  it("15: send to one client", async () => {
    const res = await rest("POST", `${server.api}/client/${idB}/send`, {
      topic: "direct:message",
      data: { text: "hello specific client", ts: Date.now() },
    });
    assert.equal(res.body.success, true);
    assert.equal(res.body.message, `Message sent to client: ${idB}`);
    const [msg] = await b.next("direct:message", 5000);
    assert.equal(msg.text, "hello specific client");
    assert.equal(a.pending("direct:message"), 0);
  });

  it("16-17: send to a room", async () => {
    await rest("POST", `${server.api}/client/${idB}/join`, { rooms: ["notify-room"] });
    await sleep(300);
    const res = await rest("POST", `${server.api}/room/notify-room/send`, {
      topic: "room:update",
      data: { text: "hello room members", ts: Date.now() },
    });
    assert.equal(res.body.success, true);
    assert.equal(res.body.message, "Message sent to room: notify-room");
    const [msg] = await b.next("room:update", 5000);
    assert.equal(msg.text, "hello room members");
  });

  it("18: broadcast reaches both", async () => {
    const res = await rest("POST", `${server.api}/broadcast`, {
      topic: "system:announcement",
      data: { text: "broadcast for everyone", ts: Date.now() },
    });
    assert.equal(res.body.success, true);
    assert.match(res.body.message, /^Broadcast sent to \d+ clients$/);
    const [[ma], [mb]] = await Promise.all([a.next("system:announcement", 5000), b.next("system:announcement", 5000)]);
    assert.equal(ma.text, "broadcast for everyone");
    assert.equal(mb.text, "broadcast for everyone");
  });

  it("cleanup: the registry drops both clients", async () => {
    closeAll(a, b);
    await eventually(async () => {
      const info = await rest("GET", `${server.api}/info`);
      return !info.body.clientIds.includes(idA) && !info.body.clientIds.includes(idB);
    }, 5000, "both clients to leave the registry");
  });
});
