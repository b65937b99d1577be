// Every error code of the chat reached through the socket, each in the acknowledgement and as the
// `error` event; and a payload that names another user never speaks for them.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  suiteChat,
  signUp,
  createRoom,
  connect,
  call,
  callOk,
  expectFailure,
  collect,
  restOk,
  sqlite,
  closeAll,
} from "./lib.js";
import { sleep } from "../lib/harness.js";

describe("error codes", () => {
  const chat = suiteChat();

  it("VALIDATION, NOT_FOUND, FORBIDDEN and RATE_LIMITED", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const roomId = await createRoom(chat, alice);
    const privateRoom = await createRoom(chat, alice, { isPrivate: true });
    const b = await connect(chat, bob);
    try {
      await callOk(b, "room:join", { roomId });
      await expectFailure(b, "message:send", { roomId }, "VALIDATION");
      await expectFailure(b, "message:send", { roomId, content: "x".repeat(4001) }, "VALIDATION");
      await expectFailure(b, "room:join", { roomId: "no-such-room" }, "NOT_FOUND");
      await expectFailure(b, "message:send", { roomId: "no-such-room", content: "x" }, "NOT_FOUND");
      await expectFailure(b, "dm:send", { receiverId: "no-such-user", content: "x" }, "NOT_FOUND");
      await expectFailure(b, "room:join", { roomId: privateRoom }, "FORBIDDEN");
      await expectFailure(b, "message:send", { roomId: privateRoom, content: "let me in" }, "FORBIDDEN");
      await expectFailure(b, "typing:start", { roomId: privateRoom }, "FORBIDDEN");

      // A burst past 20 messages a second: the acknowledgements of the refused ones say
      // RATE_LIMITED, and each refusal is also an `error` event.
      await sleep(1000 - (Date.now() % 1000));
      b.drain("error");
      const acks = await Promise.all(
        Array.from({ length: 30 }, (_, i) => call(b, "message:send", { roomId, content: `burst ${i}` })),
      );
      const refused = acks.filter((a) => !a.ok);
      assert.ok(refused.length >= 1, "some of 30 messages in one burst are refused");
      for (const r of refused) {
        assert.equal(r.error.code, "RATE_LIMITED", JSON.stringify(r));
        assert.ok(r.error.message.length > 0);
      }
      await sleep(100);
      const events = b.drain("error").map(([e]) => e);
      assert.deepEqual(events, refused.map((r) => r.error), "one error event per refused message");
      // The limit is per second: a second later the user may talk again.
      await sleep(1100);
      await callOk(b, "message:send", { roomId, content: "calm again" });
    } finally {
      closeAll(b);
    }
  });

  it("JOIN_FAILED, SEND_FAILED, EDIT_FAILED, DELETE_FAILED and DM_FAILED when the database refuses", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const roomId = await createRoom(chat, alice);
    const otherRoom = await createRoom(chat, alice);
    const a = await connect(chat, alice);
    try {
      await callOk(a, "room:join", { roomId });
      const { message } = await callOk(a, "message:send", { roomId, content: "before the failure" });
      const joinerOfOther = await connect(chat, bob);

      // Each write of the chat's tables fails inside the database from now on.
      const tables = ["room_members", "messages", "direct_messages"];
      sqlite(
        chat,
        tables
          .flatMap((t) => [
            `CREATE TRIGGER fail_insert_${t} BEFORE INSERT ON ${t} BEGIN SELECT RAISE(ABORT, 'injected failure'); END;`,
            `CREATE TRIGGER fail_update_${t} BEFORE UPDATE ON ${t} BEGIN SELECT RAISE(ABORT, 'injected failure'); END;`,
          ])
          .join("\n"),
      );
      try {
        // Joining a public room one is not a member of writes the membership.
        await expectFailure(joinerOfOther, "room:join", { roomId: otherRoom }, "JOIN_FAILED");
        await expectFailure(a, "message:send", { roomId, content: "lost" }, "SEND_FAILED");
        await expectFailure(a, "message:edit", { messageId: message.id, content: "changed" }, "EDIT_FAILED");
        await expectFailure(a, "message:delete", { messageId: message.id }, "DELETE_FAILED");
        await expectFailure(a, "dm:send", { receiverId: bob.id, content: "lost" }, "DM_FAILED");
        // The client learns nothing of the database's own words.
        a.drain("error");
        const ack = await call(a, "message:send", { roomId, content: "lost" });
        assert.ok(!JSON.stringify(ack).includes("injected"), JSON.stringify(ack));
      } finally {
        sqlite(chat, tables.flatMap((t) => [`DROP TRIGGER fail_insert_${t};`, `DROP TRIGGER fail_update_${t};`]).join("\n"));
      }
      // Nothing half-done was stored, and the chat works again once the database does.
      const history = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: alice.token });
      assert.deepEqual(history, [message]);
      assert.deepEqual(await restOk(chat, "GET", `/api/chat/dm/${bob.id}`, { token: alice.token }), []);
      await callOk(joinerOfOther, "room:join", { roomId: otherRoom });
      await callOk(a, "message:edit", { messageId: message.id, content: "changed" });
      await callOk(a, "dm:send", { receiverId: bob.id, content: "back" });
      closeAll(joinerOfOther);
    } finally {
      closeAll(a);
    }
  });
});

describe("identity comes from the token", () => {
  const chat = suiteChat();

  it("a userId or senderId in a payload never speaks for someone else", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const carol = await signUp(chat, "carol");
    const mallory = await signUp(chat, "mallory");
    const roomId = await createRoom(chat, alice);
    const a = await connect(chat, alice);
    const b = await connect(chat, bob);
    const c = await connect(chat, carol);
    const m = await connect(chat, mallory);
    const asAlice = { userId: alice.id, senderId: alice.id, sender: { id: alice.id, username: alice.username } };
    try {
      await callOk(a, "room:join", { roomId });
      await callOk(b, "room:join", { roomId });
      assert.deepEqual((await a.next("room:user-joined"))[0], { roomId, userId: bob.id });

      // Joining "as carol" joins mallory, and nobody else.
      await callOk(m, "room:join", { roomId, userId: carol.id });
      assert.deepEqual((await a.next("room:user-joined"))[0], { roomId, userId: mallory.id });
      const carolsRooms = await restOk(chat, "GET", "/api/chat/rooms", { token: carol.token });
      assert.ok(!carolsRooms.some((r) => r.id === roomId), "carol was not made a member");

      // A room message "from alice" is mallory's, as sent and as stored.
      const sent = (await callOk(m, "message:send", { roomId, content: "I am alice", ...asAlice })).message;
      assert.equal(sent.senderId, mallory.id);
      assert.equal(sent.sender.id, mallory.id);
      assert.equal(sent.sender.username, mallory.username);
      const seen = (await b.next("message:new"))[0];
      assert.equal(seen.senderId, mallory.id);
      const stored = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: bob.token });
      assert.deepEqual(stored.map((x) => [x.id, x.senderId]), [[sent.id, mallory.id]]);

      // Typing "as alice" is mallory typing.
      b.drain("typing:update");
      await callOk(m, "typing:start", { roomId, ...asAlice });
      assert.deepEqual((await b.next("typing:update"))[0], { roomId, userId: mallory.id, isTyping: true });
      await callOk(m, "typing:stop", { roomId, ...asAlice });
      assert.equal((await b.next("typing:update"))[0].userId, mallory.id);

      // A DM "from alice" to carol comes from mallory; alice is not part of it.
      a.drain("dm:new");
      const dm = (await callOk(m, "dm:send", { receiverId: carol.id, content: "it's alice", ...asAlice })).message;
      assert.equal(dm.senderId, mallory.id);
      assert.equal((await c.next("dm:new"))[0].senderId, mallory.id);
      assert.deepEqual(await collect(a, "dm:new", () => true, 300), [], "the named user gets nothing");
      const carolsConversations = await restOk(chat, "GET", "/api/chat/conversations", { token: carol.token });
      assert.deepEqual(carolsConversations.map((x) => x.user.id), [mallory.id]);

      // Editing or deleting alice's message "as alice" is refused, and changes nothing.
      const alices = (await callOk(a, "message:send", { roomId, content: "alice's own" })).message;
      await expectFailure(m, "message:edit", { messageId: alices.id, content: "rewritten", ...asAlice }, "FORBIDDEN");
      await expectFailure(m, "message:delete", { messageId: alices.id, ...asAlice }, "FORBIDDEN");
      const after = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages?limit=1`, { token: alice.token });
      assert.deepEqual(after.map((x) => [x.id, x.content, x.editedAt]), [[alices.id, "alice's own", null]]);
    } finally {
      closeAll(a, b, c, m);
    }
  });
});
