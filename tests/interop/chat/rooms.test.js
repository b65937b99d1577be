// Rooms with the real socket.io-client: two users chat, edit and delete, page the history with
// `before`, and the unread counts follow the read markers.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  suiteChat,
  signUp,
  createRoom,
  connect,
  callOk,
  expectFailure,
  collect,
  restOk,
  rest,
  allPages,
  sendPaced,
  closeAll,
} from "./lib.js";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe("two users chat in a room", () => {
  const chat = suiteChat();

  it("room:join, message:send, and message:new to both with acknowledgements", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const roomId = await createRoom(chat, alice, { name: "general", description: "all of us" });
    const a = await connect(chat, alice);
    const b = await connect(chat, bob);
    try {
      const joined = await callOk(a, "room:join", { roomId });
      assert.equal(joined.room.id, roomId);
      assert.equal(joined.room.name, "general");
      assert.equal(joined.room.isPrivate, false);
      assert.equal(joined.room.createdBy, alice.id);

      await callOk(b, "room:join", { roomId });
      const [seen] = await a.next("room:user-joined");
      assert.deepEqual(seen, { roomId, userId: bob.id });
      assert.equal(b.pending("room:user-joined"), 0, "the joiner is not told about itself");

      const ack = await callOk(b, "message:send", { roomId, content: "hello alice" });
      const m = ack.message;
      assert.equal(m.roomId, roomId);
      assert.equal(m.senderId, bob.id);
      assert.equal(m.content, "hello alice");
      assert.equal(m.type, "text");
      assert.equal(m.metadata, null);
      assert.equal(m.editedAt, null);
      assert.equal(m.deletedAt, null);
      assert.match(m.createdAt, ISO);
      assert.equal(m.modifiedAt, m.createdAt);
      assert.deepEqual(m.sender, { id: bob.id, username: bob.username, displayName: "bob", avatar: null });
      const [toAlice] = await a.next("message:new");
      const [toBob] = await b.next("message:new");
      assert.deepEqual(toAlice, m, "the room gets the acknowledged message");
      assert.deepEqual(toBob, m, "the sender's own connection gets it too");

      const reply = await callOk(a, "message:send", { roomId, content: "hi bob", type: "note" });
      assert.equal(reply.message.type, "note");
      assert.deepEqual((await b.next("message:new"))[0], reply.message);
      assert.deepEqual((await a.next("message:new"))[0], reply.message);

      // Stored in that order, newest first.
      const history = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: bob.token });
      assert.deepEqual(history, [reply.message, m]);

      // A user that left the room's channel gets no more of its messages, and the others hear it.
      await callOk(b, "room:leave", { roomId });
      assert.deepEqual((await a.next("room:user-left"))[0], { roomId, userId: bob.id });
      await callOk(a, "message:send", { roomId, content: "bob is gone" });
      await a.next("message:new");
      const late = await collect(b, "message:new", () => true, 300);
      assert.deepEqual(late, [], "no message:new after room:leave");
    } finally {
      closeAll(a, b);
    }
  });

  it("a private room is joined by its members only", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const roomId = await createRoom(chat, alice, { name: "secret", isPrivate: true });
    const b = await connect(chat, bob);
    try {
      await expectFailure(b, "room:join", { roomId }, "FORBIDDEN");
      const publicIds = (await restOk(chat, "GET", "/api/chat/rooms/public", { token: bob.token })).map((r) => r.id);
      assert.ok(!publicIds.includes(roomId), "a private room is not listed as public");
      assert.equal(
        (await rest(chat, "POST", `/api/chat/rooms/${roomId}/members`, { token: bob.token, body: { userId: bob.id } })).status,
        403,
        "only an admin adds members",
      );
      const added = new Promise((resolve) => b.once("room:added", resolve));
      await restOk(chat, "POST", `/api/chat/rooms/${roomId}/members`, { token: alice.token, body: { userId: bob.id } }, 201);
      const note = await added;
      assert.equal(note.room.id, roomId, "room:added names the room");
      assert.equal(note.room.name, "secret");
      assert.equal(note.addedBy, alice.id);
      await callOk(b, "room:join", { roomId });
    } finally {
      closeAll(b);
    }
  });
});

describe("edit and delete", () => {
  const chat = suiteChat();

  it("the sender edits and deletes; the room admin deletes others'; others are refused", async () => {
    const admin = await signUp(chat, "admin");
    const bob = await signUp(chat, "bob");
    const carol = await signUp(chat, "carol");
    const roomId = await createRoom(chat, admin);
    const a = await connect(chat, admin);
    const b = await connect(chat, bob);
    const c = await connect(chat, carol);
    try {
      for (const s of [a, b, c]) await callOk(s, "room:join", { roomId });
      const fromAdmin = (await callOk(a, "message:send", { roomId, content: "admin's" })).message;
      const fromBob = (await callOk(b, "message:send", { roomId, content: "bob's" })).message;
      const fromBob2 = (await callOk(b, "message:send", { roomId, content: "bob's second" })).message;
      for (const s of [a, b, c]) s.drain("message:new");

      // The sender edits: everyone in the room hears it, and the history keeps it.
      const edited = (await callOk(b, "message:edit", { messageId: fromBob.id, content: "bob's, edited" })).message;
      assert.equal(edited.id, fromBob.id);
      assert.equal(edited.content, "bob's, edited");
      assert.match(edited.editedAt, ISO);
      assert.equal(edited.modifiedAt, edited.editedAt);
      assert.equal(edited.createdAt, fromBob.createdAt);
      for (const s of [a, b, c]) assert.deepEqual((await s.next("message:edited"))[0], edited);

      // Nobody else edits it, not even the room's admin, and a refused edit changes nothing.
      await expectFailure(c, "message:edit", { messageId: fromBob.id, content: "carol was here" }, "FORBIDDEN");
      await expectFailure(a, "message:edit", { messageId: fromBob.id, content: "admin was here" }, "FORBIDDEN");
      // A member deletes no one else's message.
      await expectFailure(c, "message:delete", { messageId: fromBob.id }, "FORBIDDEN");
      await expectFailure(b, "message:delete", { messageId: fromAdmin.id }, "FORBIDDEN");
      let history = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: carol.token });
      assert.deepEqual(
        history.map((m) => [m.id, m.content]),
        [
          [fromBob2.id, "bob's second"],
          [fromBob.id, "bob's, edited"],
          [fromAdmin.id, "admin's"],
        ],
      );
      assert.equal(b.pending("message:edited") + b.pending("message:deleted"), 0, "refusals broadcast nothing");

      // The admin deletes bob's message; the sender deletes its own.
      assert.deepEqual((await callOk(a, "message:delete", { messageId: fromBob.id })).messageId, fromBob.id);
      for (const s of [a, b, c]) assert.deepEqual((await s.next("message:deleted"))[0], { messageId: fromBob.id, roomId });
      await callOk(b, "message:delete", { messageId: fromBob2.id });
      for (const s of [a, b, c]) assert.deepEqual((await s.next("message:deleted"))[0], { messageId: fromBob2.id, roomId });

      // Deleted: gone from the history, neither edited nor deleted again.
      history = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: carol.token });
      assert.deepEqual(history.map((m) => m.id), [fromAdmin.id]);
      await expectFailure(b, "message:edit", { messageId: fromBob2.id, content: "again" }, "NOT_FOUND");
      await expectFailure(a, "message:delete", { messageId: fromBob.id }, "NOT_FOUND");
      const rooms = await restOk(chat, "GET", "/api/chat/rooms", { token: carol.token });
      assert.equal(rooms.find((r) => r.id === roomId).lastMessage.id, fromAdmin.id, "lastMessage skips deleted ones");
    } finally {
      closeAll(a, b, c);
    }
  });
});

describe("room history and unread counts", () => {
  const chat = suiteChat();

  it("pages with before: newest first, limit, no overlap, complete, deleted ones left out", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const roomId = await createRoom(chat, alice);
    const otherRoom = await createRoom(chat, alice);
    const a = await connect(chat, alice);
    const b = await connect(chat, bob);
    try {
      await callOk(a, "room:join", { roomId });
      await callOk(b, "room:join", { roomId });
      await callOk(a, "room:join", { roomId: otherRoom });
      const contents = Array.from({ length: 27 }, (_, i) => `message ${i}`);
      const sent = [
        ...(await sendPaced(a, roomId, contents.slice(0, 14))),
        ...(await sendPaced(b, roomId, contents.slice(14))),
      ];
      const elsewhere = (await callOk(a, "message:send", { roomId: otherRoom, content: "elsewhere" })).message;
      // One message in the middle is deleted: the pages skip it and still tie together.
      const deleted = sent[9];
      await callOk(a, "message:delete", { messageId: deleted.id });
      const expected = sent.filter((m) => m.id !== deleted.id).reverse().map((m) => m.id);

      const pages = await allPages(chat, bob, `/api/chat/rooms/${roomId}/messages`, 10);
      assert.deepEqual(pages.map((p) => p.length), [10, 10, 6]);
      const ids = pages.flat().map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, "no message on two pages");
      assert.deepEqual(ids, expected, "every message once, newest first");
      assert.ok(!ids.includes(elsewhere.id), "another room's messages are not in this history");

      // The default page holds them all (50 by default); the last page is empty past the start.
      const all = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: bob.token });
      assert.deepEqual(all.map((m) => m.id), expected);
      const oldest = expected[expected.length - 1];
      const past = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages?before=${oldest}`, { token: bob.token });
      assert.deepEqual(past, []);
      // A cursor that is not a message of this room is a 404, not a silent first page.
      for (const before of [elsewhere.id, "no-such-message"]) {
        const res = await rest(chat, "GET", `/api/chat/rooms/${roomId}/messages?before=${before}`, { token: bob.token });
        assert.equal(res.status, 404, res.text);
      }
    } finally {
      closeAll(a, b);
    }
  });

  it("unread counts follow the read markers", async () => {
    const alice = await signUp(chat, "alice");
    const bob = await signUp(chat, "bob");
    const roomId = await createRoom(chat, alice);
    const a = await connect(chat, alice);
    const b = await connect(chat, bob);
    const unread = async (user) =>
      (await restOk(chat, "GET", "/api/chat/rooms", { token: user.token })).find((r) => r.id === roomId);
    try {
      await callOk(a, "room:join", { roomId });
      await callOk(b, "room:join", { roomId });
      const fromAlice = await sendPaced(a, roomId, ["one", "two", "three"]);
      const fromBob = await sendPaced(b, roomId, ["mine"]);

      let mine = await unread(bob);
      assert.equal(mine.unreadCount, 3, "alice's three; bob's own message is not unread for him");
      assert.equal(mine.role, "member");
      assert.equal(mine.lastMessage.id, fromBob[0].id);
      assert.equal((await unread(alice)).unreadCount, 1);
      assert.equal((await unread(alice)).role, "admin");

      const read = await restOk(chat, "POST", `/api/chat/rooms/${roomId}/read`, { token: bob.token });
      assert.equal(read.unreadCount, 0);
      assert.match(read.lastReadAt, ISO);
      assert.equal((await unread(bob)).unreadCount, 0);
      assert.equal((await unread(alice)).unreadCount, 1, "bob's marker is his own");

      const more = await sendPaced(a, roomId, ["four", "five"]);
      assert.equal((await unread(bob)).unreadCount, 2);
      await callOk(a, "message:delete", { messageId: more[0].id });
      assert.equal((await unread(bob)).unreadCount, 1, "a deleted message is not unread");
      await callOk(a, "message:delete", { messageId: fromAlice[0].id });
      assert.equal((await unread(bob)).unreadCount, 1, "deleting a read message changes nothing");
      await restOk(chat, "POST", `/api/chat/rooms/${roomId}/read`, { token: bob.token });
      assert.equal((await unread(bob)).unreadCount, 0);
      assert.equal((await rest(chat, "POST", "/api/chat/rooms/no-such-room/read", { token: bob.token })).status, 404);
    } finally {
      closeAll(a, b);
    }
  });
});
