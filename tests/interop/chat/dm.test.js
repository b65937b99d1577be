// Direct messages with the real socket.io-client: every device of both users gets them, the
// history pages with `before` in both directions, and conversations count what is unread.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { suiteChat, signUp, connect, callOk, collect, restOk, rest, allPages, closeAll } from "./lib.js";
import { sleep } from "../lib/harness.js";

describe("direct messages", () => {
  const chat = suiteChat();

  it("dm:new reaches every connection of the receiver and of the sender, and nobody else", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const carol = await signUp(chat, "carol");
    const aPhone = await connect(chat, alice);
    const aLaptop = await connect(chat, alice);
    const bPhone = await connect(chat, bob);
    const bLaptop = await connect(chat, bob);
    const c = await connect(chat, carol);
    try {
      const ack = await callOk(aPhone, "dm:send", { receiverId: bob.id, content: "psst, bob" });
      const dm = ack.message;
      assert.deepEqual(Object.keys(dm).sort(), [
        "content",
        "createdAt",
        "deletedAt",
        "id",
        "metadata",
        "readAt",
        "receiverId",
        "senderId",
        "type",
      ]);
      assert.equal(dm.senderId, alice.id);
      assert.equal(dm.receiverId, bob.id);
      assert.equal(dm.content, "psst, bob");
      assert.equal(dm.type, "text");
      assert.equal(dm.readAt, null);
      assert.equal(dm.deletedAt, null);
      for (const s of [aPhone, aLaptop, bPhone, bLaptop]) {
        assert.deepEqual((await s.next("dm:new"))[0], dm);
      }
      // Exactly once on each, and not to a third user.
      assert.deepEqual(await collect(c, "dm:new", () => true, 300), []);
      for (const s of [aPhone, aLaptop, bPhone, bLaptop]) assert.equal(s.pending("dm:new"), 0);

      // The answer goes the same way, from another device.
      const back = (await callOk(bLaptop, "dm:send", { receiverId: alice.id, content: "hi alice" })).message;
      for (const s of [aPhone, aLaptop, bPhone, bLaptop]) assert.deepEqual((await s.next("dm:new"))[0], back);

      // A device that connects later reads the conversation from the history.
      const history = await restOk(chat, "GET", `/api/chat/dm/${alice.id}`, { token: bob.token });
      assert.deepEqual(history, [back, dm]);
      assert.deepEqual(await restOk(chat, "GET", `/api/chat/dm/${bob.id}`, { token: alice.token }), [back, dm]);
      assert.deepEqual(await restOk(chat, "GET", `/api/chat/dm/${alice.id}`, { token: carol.token }), []);

      // A note to oneself reaches each of one's devices once, not once per side.
      const note = (await callOk(aLaptop, "dm:send", { receiverId: alice.id, content: "note to self" })).message;
      for (const s of [aPhone, aLaptop]) assert.deepEqual((await s.next("dm:new"))[0], note);
      assert.deepEqual(await collect(aPhone, "dm:new", () => true, 300), []);
      assert.equal(aLaptop.pending("dm:new") + bPhone.pending("dm:new") + bLaptop.pending("dm:new"), 0);
    } finally {
      closeAll(aPhone, aLaptop, bPhone, bLaptop, c);
    }
  });

  it("the DM history pages with before in both directions: newest first, no overlap, complete", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const carol = await signUp(chat, "carol");
    const a = await connect(chat, alice);
    const b = await connect(chat, bob);
    try {
      const sent = [];
      for (let i = 0; i < 23; i++) {
        const [from, to] = i % 3 === 0 ? [b, alice] : [a, bob];
        sent.push((await callOk(from, "dm:send", { receiverId: to.id, content: `dm ${i}` })).message);
        await sleep(60);
      }
      // Another conversation of alice's stays out of this one.
      const other = (await callOk(a, "dm:send", { receiverId: carol.id, content: "not for bob" })).message;
      const expected = sent.map((m) => m.id).reverse();
      for (const [user, partner] of [
        [alice, bob],
        [bob, alice],
      ]) {
        const pages = await allPages(chat, user, `/api/chat/dm/${partner.id}`, 7);
        assert.deepEqual(pages.map((p) => p.length), [7, 7, 7, 2]);
        const ids = pages.flat().map((m) => m.id);
        assert.equal(new Set(ids).size, ids.length, "no DM on two pages");
        assert.deepEqual(ids, expected, "every DM of both directions once, newest first");
      }
      // A cursor from another conversation, or no DM at all, is a 404.
      for (const before of [other.id, "no-such-dm"]) {
        const res = await rest(chat, "GET", `/api/chat/dm/${bob.id}?limit=5&before=${before}`, { token: alice.token });
        assert.equal(res.status, 404, res.text);
      }
      const tail = await restOk(chat, "GET", `/api/chat/dm/${bob.id}?limit=100&before=${sent[3].id}`, {
        token: alice.token,
      });
      assert.deepEqual(tail.map((m) => m.content), ["dm 2", "dm 1", "dm 0"]);
    } finally {
      closeAll(a, b);
    }
  });

  it("conversations count unread DMs and a read marker clears them", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const carol = await signUp(chat, "carol");
    const a = await connect(chat, alice);
    const b = await connect(chat, bob);
    const c = await connect(chat, carol);
    try {
      for (const content of ["one", "two", "three"]) await callOk(a, "dm:send", { receiverId: bob.id, content });
      const fromBob = (await callOk(b, "dm:send", { receiverId: alice.id, content: "reply" })).message;
      const fromCarol = (await callOk(c, "dm:send", { receiverId: bob.id, content: "carol here" })).message;

      let convs = await restOk(chat, "GET", "/api/chat/conversations", { token: bob.token });
      assert.deepEqual(
        convs.map((x) => [x.user.id, x.unreadCount, x.lastMessage.id]),
        [
          [carol.id, 1, fromCarol.id],
          [alice.id, 3, fromBob.id],
        ],
        "one entry per partner, latest first, counting only what bob received",
      );
      assert.equal(convs[1].user.username, alice.username);
      assert.equal(convs[1].user.isOnline, true);
      assert.ok(!("passwordHash" in convs[1].user) && !("password_hash" in convs[1].user));
      const aliceConvs = await restOk(chat, "GET", "/api/chat/conversations", { token: alice.token });
      assert.deepEqual(aliceConvs.map((x) => [x.user.id, x.unreadCount]), [[bob.id, 1]]);

      const read = await restOk(chat, "POST", `/api/chat/dm/${alice.id}/read`, { token: bob.token });
      assert.equal(read.count, 3);
      assert.equal(read.userId, alice.id);
      convs = await restOk(chat, "GET", "/api/chat/conversations", { token: bob.token });
      assert.deepEqual(convs.map((x) => [x.user.id, x.unreadCount]), [
        [carol.id, 1],
        [alice.id, 0],
      ]);
      // readAt is set on what bob received from alice, and only there.
      const history = await restOk(chat, "GET", `/api/chat/dm/${alice.id}`, { token: bob.token });
      for (const m of history) {
        if (m.senderId === alice.id) assert.equal(m.readAt, read.readAt, `${m.content} is read`);
        else assert.equal(m.readAt, null, "bob's own DM is not marked read by bob");
      }
      assert.equal((await restOk(chat, "GET", "/api/chat/conversations", { token: alice.token }))[0].unreadCount, 1);
      // Reading again marks nothing; an unknown partner is a 404.
      assert.equal((await restOk(chat, "POST", `/api/chat/dm/${alice.id}/read`, { token: bob.token })).count, 0);
      assert.equal((await rest(chat, "POST", "/api/chat/dm/no-such-user/read", { token: bob.token })).status, 404);
      // New DMs are unread again.
      await callOk(a, "dm:send", { receiverId: bob.id, content: "four" });
      convs = await restOk(chat, "GET", "/api/chat/conversations", { token: bob.token });
      assert.deepEqual(convs.map((x) => [x.user.id, x.unreadCount]), [
        [alice.id, 1],
        [carol.id, 1],
      ]);
    } finally {
      closeAll(a, b, c);
    }
  });
});
