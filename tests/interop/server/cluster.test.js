// Two ignis-server instances on one Redis (spec §14.3 #11 and DESIGN.md decision 19): REST on
// one instance reaches clients of the other; the registry stays local.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { client, once, closeAll, eventually } from "../lib/harness.js";
import { startIgnisServer, rest } from "../lib/ignis-server.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

async function authenticated(url) {
  const socket = client(url, { path: "/io", transports: ["websocket"] });
  await once(socket, "connect");
  socket.emit("authenticate");
  await socket.next("authenticated", 5000);
  return socket;
}

for (const mode of [[], ["--redis-mode", "sharded"], ["--redis-mode", "sharded", "--redis-subscription-mode", "static"]]) describe(`two instances sharing Redis ${mode.join(" ") || "(classic)"}`, () => {
  let one;
  let two;
  let a;
  let b;
  before(async () => {
    // A key of its own, so that parallel runs never see each other's traffic.
    const key = `ignis-test-${randomBytes(6).toString("hex")}`;
    const args = ["--redis-url", REDIS_URL, "--redis-key", key, ...mode];
    [one, two] = await Promise.all([startIgnisServer(args), startIgnisServer(args)]);
    a = await authenticated(one.url);
    b = await authenticated(two.url);
  });
  after(async () => {
    closeAll(a, b);
    await Promise.all([one?.stop(), two?.stop()]);
  });

  it("health reports Redis up", async () => {
    const health = await rest("GET", `${one.api}/health`);
    assert.equal(health.body.healthy, true);
    assert.equal(health.body.redis, "up");
  });

  it("#11 a REST send on one instance reaches a client of the other", async () => {
    const res = await rest("POST", `${one.api}/client/${b.id}/send`, { topic: "direct", data: { n: 1 } });
    assert.equal(res.body.success, true);
    const [got] = await b.next("direct", 5000);
    assert.deepEqual(got, { n: 1 });
  });

  it("a broadcast on one instance reaches clients of both", async () => {
    await rest("POST", `${two.api}/broadcast`, { topic: "all", data: "everyone" });
    const [[ga], [gb]] = await Promise.all([a.next("all", 5000), b.next("all", 5000)]);
    assert.equal(ga, "everyone");
    assert.equal(gb, "everyone");
  });

  it("the registry of each instance lists its own clients only", async () => {
    const [i1, i2] = await Promise.all([rest("GET", `${one.api}/info`), rest("GET", `${two.api}/info`)]);
    assert.ok(i1.body.clientIds.includes(a.id) && !i1.body.clientIds.includes(b.id));
    assert.ok(i2.body.clientIds.includes(b.id) && !i2.body.clientIds.includes(a.id));
  });

  it("decision 19: REST join, rooms and leave reach a client on the other instance", async () => {
    const join = await rest("POST", `${one.api}/client/${b.id}/join`, { rooms: ["cross-node"] });
    assert.equal(join.body.success, true, JSON.stringify(join.body));
    await eventually(async () => {
      const rooms = await rest("GET", `${one.api}/client/${b.id}/rooms`);
      return rooms.body.success && rooms.body.rooms.includes("cross-node");
    }, 5000, "the remote join");
    await rest("POST", `${one.api}/room/cross-node/send`, { topic: "room-msg", data: "to the room" });
    const [got] = await b.next("room-msg", 5000);
    assert.equal(got, "to the room");
    const leave = await rest("POST", `${one.api}/client/${b.id}/leave`, { rooms: ["cross-node"] });
    assert.equal(leave.body.success, true);
    await eventually(async () => {
      const rooms = await rest("GET", `${two.api}/client/${b.id}/rooms`);
      return rooms.body.success && !rooms.body.rooms.includes("cross-node");
    }, 5000, "the remote leave");
    const unknown = await rest("POST", `${one.api}/client/${"x".repeat(20)}/join`, { rooms: ["r"] });
    assert.equal(unknown.body.success, false);
  });

  it("a chat broadcast from a client of one instance reaches the other", async () => {
    a.emit("chat:message", { message: "across nodes" });
    const [msg] = await b.next("chat:broadcast", 5000);
    assert.equal(msg.from, a.id);
    assert.equal(msg.message, "across nodes");
  });
});
