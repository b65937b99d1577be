// Typing indicators and per-user presence with the real socket.io-client.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  suiteChat,
  startChat,
  signUp,
  createRoom,
  connect,
  callOk,
  nextWhere,
  collect,
  rest,
  restOk,
  closeAll,
} from "./lib.js";
import { sleep } from "../lib/harness.js";

/** The server's auto-stop of a typing indicator (socket.rs TYPING_TIMEOUT). */
const TYPING_TIMEOUT_MS = 3000;
const GRACE_MS = 1500;

describe("typing", () => {
  const chat = suiteChat();

  async function roomOfTwo() {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const roomId = await createRoom(chat, alice);
    const a = await connect(chat, alice);
    const b = await connect(chat, bob);
    await callOk(a, "room:join", { roomId });
    await callOk(b, "room:join", { roomId });
    return { alice, bob, roomId, a, b };
  }

  it("starts, and stops on its own about 3 s later without typing:stop", async () => {
    const { alice, roomId, a, b } = await roomOfTwo();
    try {
      // Taken before the server can start its timer, so that the stop is never early by this clock.
      const started = Date.now();
      await callOk(a, "typing:start", { roomId });
      assert.deepEqual((await b.next("typing:update"))[0], { roomId, userId: alice.id, isTyping: true });
      const [stopped] = await b.next("typing:update", TYPING_TIMEOUT_MS + 3000);
      const elapsed = Date.now() - started;
      assert.deepEqual(stopped, { roomId, userId: alice.id, isTyping: false });
      assert.ok(elapsed >= TYPING_TIMEOUT_MS - 50 && elapsed <= TYPING_TIMEOUT_MS + 1500, `stopped after ${elapsed} ms`);
      assert.equal(a.pending("typing:update"), 0, "the typist does not get its own indicator");
      assert.deepEqual(await collect(b, "typing:update", () => true, 200), [], "one stop, not more");
    } finally {
      closeAll(a, b);
    }
  });

  it("another typing:start keeps it going; typing:stop stops it at once", async () => {
    const { alice, roomId, a, b } = await roomOfTwo();
    try {
      await callOk(a, "typing:start", { roomId });
      assert.equal((await b.next("typing:update"))[0].isTyping, true);
      await sleep(2000);
      await callOk(a, "typing:start", { roomId });
      await sleep(1800);
      // 3.8 s after the first start, 1.8 s after the second: still typing, and announced once.
      assert.equal(b.pending("typing:update"), 0, "a renewed start neither stops nor repeats the indicator");
      const asked = Date.now();
      await callOk(a, "typing:stop", { roomId });
      assert.deepEqual((await b.next("typing:update", 1000))[0], { roomId, userId: alice.id, isTyping: false });
      assert.ok(Date.now() - asked < 1000);
      // Stopping what is not started announces nothing.
      await callOk(a, "typing:stop", { roomId });
      assert.deepEqual(await collect(b, "typing:update", () => true, 3500), [], "no late auto-stop after typing:stop");
    } finally {
      closeAll(a, b);
    }
  });

  it("stops when the typist's connection closes", async () => {
    const { alice, roomId, a, b } = await roomOfTwo();
    try {
      await callOk(a, "typing:start", { roomId });
      assert.equal((await b.next("typing:update"))[0].isTyping, true);
      const closed = Date.now();
      a.close();
      assert.deepEqual((await b.next("typing:update", 2000))[0], { roomId, userId: alice.id, isTyping: false });
      assert.ok(Date.now() - closed < 1500, "well before the 3 s auto-stop");
    } finally {
      closeAll(a, b);
    }
  });

  it("stops when the typist sends the message", async () => {
    const { alice, roomId, a, b } = await roomOfTwo();
    try {
      await callOk(a, "typing:start", { roomId });
      assert.equal((await b.next("typing:update"))[0].isTyping, true);
      const sent = Date.now();
      const { message } = await callOk(a, "message:send", { roomId, content: "done typing" });
      assert.deepEqual((await b.next("message:new"))[0], message);
      assert.deepEqual((await b.next("typing:update", 2000))[0], { roomId, userId: alice.id, isTyping: false });
      assert.ok(Date.now() - sent < 1500, "well before the 3 s auto-stop");
      assert.deepEqual(await collect(b, "typing:update", () => true, 3000), [], "and the timer does not stop it twice");
    } finally {
      closeAll(a, b);
    }
  });
});

describe("presence with a grace period", () => {
  const chat = suiteChat({ graceMs: GRACE_MS });

  const online = async (user) =>
    (await restOk(chat, "GET", "/api/chat/users?online=true", { token: user.token })).map((u) => u.id);
  const allUsers = async (user) => await restOk(chat, "GET", "/api/chat/users", { token: user.token });

  it("online at the first connection; a second device and a quick reconnect keep it; offline after the grace", async () => {
    const watcher = await signUp(chat, "watcher");
    const bob = await signUp(chat, "bob");
    const w = await connect(chat, watcher);
    const isBob = (p) => p.userId === bob.id;
    const bobsChanges = (ms) => collect(w, "presence:changed", isBob, ms);
    try {
      assert.ok(!(await online(watcher)).includes(bob.id), "not online before connecting");
      const bPhone = await connect(chat, bob);
      const on = await nextWhere(w, "presence:changed", isBob);
      assert.equal(on.status, "online");
      assert.ok(Math.abs(Date.parse(on.lastSeenAt) - Date.now()) < 5000, `lastSeenAt ${on.lastSeenAt}`);
      assert.ok((await online(watcher)).includes(bob.id));

      // A second device: nothing new is announced, and closing one of the two keeps bob online.
      const bLaptop = await connect(chat, bob);
      bPhone.close();
      assert.deepEqual(await bobsChanges(GRACE_MS + 800), [], "no change while a device remains");
      assert.ok((await online(watcher)).includes(bob.id));

      // The last device goes and comes back within the grace period: no offline, no new online.
      bLaptop.close();
      await sleep(GRACE_MS / 3);
      const bBack = await connect(chat, bob);
      assert.deepEqual(await bobsChanges(GRACE_MS + 800), [], "a reconnect within the grace is not announced");
      assert.ok((await online(watcher)).includes(bob.id));

      // The last device goes for good: offline once the grace is over, with lastSeenAt.
      const closed = Date.now();
      bBack.close();
      const off = await nextWhere(w, "presence:changed", isBob, GRACE_MS + 5000);
      const elapsed = Date.now() - closed;
      assert.equal(off.status, "offline");
      assert.ok(elapsed >= GRACE_MS - 100, `offline after ${elapsed} ms, before the ${GRACE_MS} ms grace`);
      assert.ok(elapsed <= GRACE_MS + 2000, `offline after ${elapsed} ms`);
      const seen = Date.parse(off.lastSeenAt);
      assert.ok(seen >= closed - 100 && seen <= Date.now() + 100, `lastSeenAt ${off.lastSeenAt}`);
      // The REST lists agree with what was announced.
      assert.ok(!(await online(watcher)).includes(bob.id));
      assert.ok((await online(watcher)).includes(watcher.id));
      const stored = (await allUsers(watcher)).find((u) => u.id === bob.id);
      assert.equal(stored.isOnline, false);
      assert.equal(stored.lastSeenAt, off.lastSeenAt);
      assert.deepEqual(await bobsChanges(300), [], "announced once");

      // Coming back is announced again.
      const bAgain = await connect(chat, bob);
      assert.equal((await nextWhere(w, "presence:changed", isBob)).status, "online");
      assert.equal((await allUsers(watcher)).find((u) => u.id === bob.id).isOnline, true);
      bAgain.close();
    } finally {
      closeAll(w);
    }
  });
});

describe("a whole chat that restarts", () => {
  const HEARTBEAT_MS = 500;

  it("leaves nobody online after a crash: offline within four heartbeats, sessions kept", async (t) => {
    const first = await startChat({ heartbeatMs: HEARTBEAT_MS });
    let second;
    let w;
    try {
      const bob = await signUp(first, "bob");
      const watcher = await signUp(first, "watcher");
      const b = await connect(first, bob);
      const isOnline = async (chat) =>
        (await restOk(chat, "GET", "/api/chat/users", { token: watcher.token })).find((u) => u.id === bob.id).isOnline;
      const deadline = Date.now() + 5000;
      while (!(await isOnline(first))) {
        assert.ok(Date.now() < deadline, "bob is stored online");
        await sleep(25);
      }
      // The only node dies with bob online; a new one starts on the same data directory.
      const killed = Date.now();
      await first.kill();
      closeAll(b);
      second = await startChat({ heartbeatMs: HEARTBEAT_MS, dataDir: first.dataDir });
      // The token issued before the crash still signs in (the generated secret is kept).
      assert.equal((await rest(second, "GET", "/api/auth/me", { token: bob.token })).status, 200);
      w = await connect(second, watcher);
      const off = await nextWhere(w, "presence:changed", (p) => p.userId === bob.id, 4 * HEARTBEAT_MS + 3000);
      const after = Date.now() - killed;
      t.diagnostic(`bob offline ${after} ms after the crash (bound ${4 * HEARTBEAT_MS} ms)`);
      assert.equal(off.status, "offline");
      assert.ok(after <= 4 * HEARTBEAT_MS + 1000, `bob offline ${after} ms after the crash`);
      assert.equal(await isOnline(second), false);
      assert.deepEqual(
        (await restOk(second, "GET", "/api/chat/users?online=true", { token: watcher.token })).map((u) => u.id),
        [watcher.id],
      );
    } finally {
      closeAll(w);
      await second?.stop();
      await first.stop();
    }
  });
});
