// Two ignis-chat nodes on one Redis and one PostgreSQL database are one chat: a user on each node,
// room messages, DMs, typing and presence cross nodes, and a node killed with SIGKILL leaves its
// users offline within the bound the chat states (four node heartbeats: a node silent for three
// is swept by the next sweep of a live node, and sweeps run once a heartbeat).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startChat,
  signUp,
  createRoom,
  connect,
  callOk,
  nextWhere,
  collect,
  restOk,
  createPostgresDatabase,
  unique,
  closeAll,
} from "./lib.js";
import { sleep } from "../lib/harness.js";

const HEARTBEAT_MS = 500;
/** The chat's stated bound for a dead node's users (presence.rs, config.rs, README). */
const DEAD_NODE_BOUND_MS = 4 * HEARTBEAT_MS;
/** Scheduling and delivery on a busy machine, on top of the bound. */
const SLACK_MS = 1000;
const GRACE_MS = 500;

describe("two nodes on one Redis and one PostgreSQL", () => {
  let db;
  let n1;
  let n2;
  const sockets = [];

  before(async () => {
    db = createPostgresDatabase();
    const options = {
      databaseUrl: db.url,
      redisKey: unique("ignis-chat-interop"),
      // The nodes check each other's tokens.
      jwtSecret: unique("a-cluster-secret-of-enough-length"),
      heartbeatMs: HEARTBEAT_MS,
      graceMs: GRACE_MS,
    };
    n1 = await startChat(options);
    n2 = await startChat(options);
  });

  after(async () => {
    closeAll(sockets);
    const errors = [];
    for (const node of [n1, n2]) {
      try {
        await node?.stop();
      } catch (e) {
        errors.push(e);
      }
    }
    db?.drop();
    if (errors.length) throw errors[0];
  });

  it("room messages, DMs, typing and presence cross nodes; a killed node's users go offline in time", async (t) => {
    const alice = await signUp(n1, "alice");
    const bob = await signUp(n2, "bob");
    const carol = await signUp(n2, "carol");
    const roomId = await createRoom(n1, alice, { name: "across" });
    const isBob = (p) => p.userId === bob.id;
    const online = async (node) =>
      (await restOk(node, "GET", "/api/chat/users?online=true", { token: alice.token })).map((u) => u.id).sort();

    const a = await connect(n1, alice);
    sockets.push(a);
    const bOn2 = await connect(n2, bob);
    sockets.push(bOn2);
    // Presence of a user of node 2 reaches node 1.
    assert.equal((await nextWhere(a, "presence:changed", isBob)).status, "online");
    const c = await connect(n2, carol);
    sockets.push(c);
    assert.equal((await nextWhere(a, "presence:changed", (p) => p.userId === carol.id)).status, "online");
    assert.deepEqual(await online(n1), [alice.id, bob.id, carol.id].sort());
    assert.deepEqual(await online(n2), [alice.id, bob.id, carol.id].sort());

    // Joins and room messages, both ways.
    await callOk(a, "room:join", { roomId });
    await callOk(bOn2, "room:join", { roomId });
    assert.deepEqual((await a.next("room:user-joined"))[0], { roomId, userId: bob.id });
    const fromBob = (await callOk(bOn2, "message:send", { roomId, content: "from node 2" })).message;
    assert.deepEqual((await a.next("message:new"))[0], fromBob);
    assert.deepEqual((await bOn2.next("message:new"))[0], fromBob);
    const fromAlice = (await callOk(a, "message:send", { roomId, content: "from node 1" })).message;
    assert.deepEqual((await bOn2.next("message:new"))[0], fromAlice);
    assert.deepEqual(await restOk(n2, "GET", `/api/chat/rooms/${roomId}/messages`, { token: bob.token }), [fromAlice, fromBob]);

    // Typing, both ways, and its auto-stop.
    await callOk(bOn2, "typing:start", { roomId });
    assert.deepEqual((await a.next("typing:update"))[0], { roomId, userId: bob.id, isTyping: true });
    await callOk(bOn2, "typing:stop", { roomId });
    assert.deepEqual((await a.next("typing:update"))[0], { roomId, userId: bob.id, isTyping: false });
    await callOk(a, "typing:start", { roomId });
    assert.deepEqual((await bOn2.next("typing:update"))[0], { roomId, userId: alice.id, isTyping: true });
    assert.deepEqual((await bOn2.next("typing:update", 6000))[0], { roomId, userId: alice.id, isTyping: false });

    // A second device of bob on node 1: a DM reaches every connection of both users on both nodes.
    const bOn1 = await connect(n1, bob);
    sockets.push(bOn1);
    const dm = (await callOk(a, "dm:send", { receiverId: bob.id, content: "to all of bob" })).message;
    for (const s of [a, bOn1, bOn2]) assert.deepEqual((await s.next("dm:new"))[0], dm);
    const back = (await callOk(bOn2, "dm:send", { receiverId: alice.id, content: "from bob's node 2" })).message;
    for (const s of [a, bOn1, bOn2]) assert.deepEqual((await s.next("dm:new"))[0], back);
    assert.deepEqual(await collect(c, "dm:new", () => true, 200), [], "not to a third user");

    // Bob's device on node 1 goes: his device on node 2 keeps him online, past the grace.
    bOn1.close();
    assert.deepEqual(await collect(a, "presence:changed", isBob, GRACE_MS + 1000), []);
    assert.ok((await online(n1)).includes(bob.id));

    // Carol's connection to node 2 drops and she comes back on node 1 within the grace: nobody
    // hears of it. Then she leaves node 1 the ordinary way: offline once the grace is over.
    const isCarol = (p) => p.userId === carol.id;
    c.close();
    await sleep(GRACE_MS / 3);
    const cBack = await connect(n1, carol);
    sockets.push(cBack);
    assert.deepEqual(await collect(a, "presence:changed", isCarol, GRACE_MS + 1000), [], "a reconnect on another node");
    assert.ok((await online(n2)).includes(carol.id));
    const left = Date.now();
    cBack.close();
    const carolOff = await nextWhere(a, "presence:changed", (p) => p.userId === carol.id, GRACE_MS + 5000);
    assert.equal(carolOff.status, "offline");
    assert.ok(Date.now() - left >= GRACE_MS - 100, `carol offline ${Date.now() - left} ms after leaving`);

    // Node 2 dies without a word: bob, held by it only, goes offline within the bound, announced
    // on node 1; alice stays online.
    a.drain("presence:changed");
    const killed = Date.now();
    await n2.kill();
    const off = await nextWhere(a, "presence:changed", isBob, DEAD_NODE_BOUND_MS + SLACK_MS + 3000);
    const after = Date.now() - killed;
    t.diagnostic(`bob offline ${after} ms after SIGKILL (bound ${DEAD_NODE_BOUND_MS} ms, heartbeat ${HEARTBEAT_MS} ms)`);
    assert.equal(off.status, "offline", JSON.stringify(off));
    assert.ok(after <= DEAD_NODE_BOUND_MS + SLACK_MS, `bob offline ${after} ms after the kill (bound ${DEAD_NODE_BOUND_MS} ms)`);
    assert.deepEqual(await online(n1), [alice.id], "the REST list agrees");
    const users = await restOk(n1, "GET", "/api/chat/users", { token: alice.token });
    const stored = users.find((u) => u.id === bob.id);
    assert.equal(stored.isOnline, false);
    assert.equal(stored.lastSeenAt, off.lastSeenAt);
    assert.equal(users.find((u) => u.id === carol.id).lastSeenAt, carolOff.lastSeenAt);
    assert.equal(users.find((u) => u.id === alice.id).isOnline, true);
    assert.deepEqual(
      await collect(a, "presence:changed", (p) => p.userId === alice.id, HEARTBEAT_MS * 4),
      [],
      "the live node's user is never taken for dead",
    );
    assert.ok(n1.alive());
  });
});
