// Bad input, through the socket and through REST, on SQLite and on PostgreSQL: wrong types,
// missing fields, unknown ids, huge content, NUL characters, a flood, SQL-looking strings, more
// rooms than a connection may join. Each gets a clear error, nothing is stored that should not
// be, no answer is a 500, and the server neither dies nor panics.
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
  rest,
  restOk,
  allPages,
  closeAll,
} from "./lib.js";
import { sleep } from "../lib/harness.js";

const SQL = [
  "'; DROP TABLE messages; --",
  `" OR "1"="1`,
  "Robert'); DROP TABLE users;--",
  "1; DELETE FROM rooms WHERE 1=1",
  "%' OR 1=1 --",
  "$1 $2 ? :name @p1",
  "') UNION SELECT password_hash FROM users --",
];

for (const backend of ["SQLite", "PostgreSQL"]) {
  const postgres = backend === "PostgreSQL";

  describe(`bad input through the socket (${backend})`, () => {
    const chat = suiteChat({ postgres });

    it("wrong types and missing fields are VALIDATION errors naming the field", async () => {
      const alice = await signUp(chat, "alice");
      const bob = await signUp(chat, "bob");
      const roomId = await createRoom(chat, alice);
      const a = await connect(chat, alice);
      try {
        await callOk(a, "room:join", { roomId });
        const { message } = await callOk(a, "message:send", { roomId, content: "the only message" });
        const notObjects = [undefined, null, "a string", 42, true, [roomId], [{ roomId }]];
        const cases = [
          ...["room:join", "room:leave", "message:send", "message:edit", "message:delete", "dm:send", "typing:start", "typing:stop"].flatMap(
            (event) => notObjects.map((payload) => [event, payload, "payload"]),
          ),
          ["room:join", {}, "roomId"],
          ["room:join", { roomId: null }, "roomId"],
          ["room:join", { roomId: 5 }, "roomId"],
          ["room:join", { roomId: { id: roomId } }, "roomId"],
          ["room:join", { roomId: "" }, "roomId"],
          ["room:join", { roomId: "x".repeat(101) }, "roomId"],
          ["room:leave", { roomId: [roomId] }, "roomId"],
          ["message:send", { content: "no room" }, "roomId"],
          ["message:send", { roomId }, "content"],
          ["message:send", { roomId, content: null }, "content"],
          ["message:send", { roomId, content: 5 }, "content"],
          ["message:send", { roomId, content: { text: "hi" } }, "content"],
          ["message:send", { roomId, content: ["hi"] }, "content"],
          ["message:send", { roomId, content: "" }, "content"],
          ["message:send", { roomId, content: " \n\t " }, "content"],
          ["message:send", { roomId, content: "typed", type: 7 }, "type"],
          ["message:send", { roomId, content: "typed", type: "has spaces" }, "type"],
          ["message:send", { roomId, content: "typed", type: "x".repeat(21) }, "type"],
          ["message:edit", { content: "no id" }, "messageId"],
          ["message:edit", { messageId: message.id }, "content"],
          ["message:edit", { messageId: 12, content: "x" }, "messageId"],
          ["message:edit", { messageId: message.id, content: false }, "content"],
          ["message:delete", {}, "messageId"],
          ["message:delete", { messageId: [message.id] }, "messageId"],
          ["dm:send", { content: "to nobody" }, "receiverId"],
          ["dm:send", { receiverId: bob.id }, "content"],
          ["dm:send", { receiverId: 5, content: "x" }, "receiverId"],
          ["typing:start", {}, "roomId"],
          ["typing:stop", { roomId: 1 }, "roomId"],
        ];
        for (const [event, payload, field] of cases) {
          // Every message:send and dm:send counts against the rate limit, valid or not.
          if (event === "message:send" || event === "dm:send") await sleep(60);
          const error = await expectFailure(a, event, payload, "VALIDATION");
          const named = field === "payload" ? /payload must be an object/ : new RegExp(`\\b${field}\\b`);
          assert.match(error.message, named, `${event} ${JSON.stringify(payload)}: ${error.message}`);
        }
        // Nothing of it was stored, edited or deleted.
        const history = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: alice.token });
        assert.deepEqual(history, [message]);
        assert.deepEqual(await restOk(chat, "GET", `/api/chat/dm/${bob.id}`, { token: alice.token }), []);
      } finally {
        closeAll(a);
      }
    });

    it("unknown ids are NOT_FOUND (or FORBIDDEN where the room must be held)", async () => {
      const alice = await signUp(chat, "alice");
      const roomId = await createRoom(chat, alice);
      const a = await connect(chat, alice);
      try {
        for (const id of ["no-such-id", "00000000-0000-7000-8000-000000000000", SQL[0], "' OR '1'='1", "é😀"]) {
          await expectFailure(a, "room:join", { roomId: id }, "NOT_FOUND");
          await expectFailure(a, "room:leave", { roomId: id }, "NOT_FOUND");
          await expectFailure(a, "message:send", { roomId: id, content: "x" }, "NOT_FOUND");
          await expectFailure(a, "message:edit", { messageId: id, content: "x" }, "NOT_FOUND");
          await expectFailure(a, "message:delete", { messageId: id }, "NOT_FOUND");
          await expectFailure(a, "dm:send", { receiverId: id, content: "x" }, "NOT_FOUND");
          await expectFailure(a, "typing:start", { roomId: id }, "FORBIDDEN");
        }
        // A room one belongs to but did not join on this connection cannot be left or typed in.
        await expectFailure(a, "room:leave", { roomId }, "NOT_FOUND");
        await expectFailure(a, "typing:start", { roomId }, "FORBIDDEN");
        // An unknown event gets no acknowledgement and changes nothing; the connection stays usable.
        a.emit("message:sendd", { roomId, content: "typo" });
        a.emit("room:join");
        await callOk(a, "room:join", { roomId });
        assert.deepEqual(await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: alice.token }), []);
      } finally {
        closeAll(a);
      }
    });

    it("content is 1 to 4000 characters, multi-byte ones counted as one", async () => {
      const alice = await signUp(chat, "alice");
      const bob = await signUp(chat, "bob");
      const roomId = await createRoom(chat, alice);
      const a = await connect(chat, alice);
      try {
        await callOk(a, "room:join", { roomId });
        const fits = ["x".repeat(4000), "é".repeat(4000), "😀".repeat(4000), "a😀".repeat(2000)];
        const tooLong = ["x".repeat(4001), "é".repeat(4001), "😀".repeat(4001), "x".repeat(200_000)];
        const stored = [];
        for (const content of fits) {
          const { message } = await callOk(a, "message:send", { roomId, content });
          assert.equal(message.content, content);
          stored.push(message.id);
        }
        for (const content of tooLong) {
          const error = await expectFailure(a, "message:send", { roomId, content }, "VALIDATION");
          assert.match(error.message, /4000 characters/);
          await expectFailure(a, "dm:send", { receiverId: bob.id, content }, "VALIDATION");
          await expectFailure(a, "message:edit", { messageId: stored[0], content }, "VALIDATION");
        }
        const history = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: alice.token });
        assert.deepEqual(history.map((m) => m.id), [...stored].reverse(), "only the messages that fit are stored");
        assert.deepEqual(history.map((m) => [...m.content].length), [4000, 4000, 4000, 4000]);
        assert.equal(history[3].content, "x".repeat(4000), "a refused edit leaves the message as it was");
        assert.equal(history[3].editedAt, null);
        assert.deepEqual(await restOk(chat, "GET", `/api/chat/dm/${bob.id}`, { token: alice.token }), []);
      } finally {
        closeAll(a);
      }
    });

    it("a flood of message:send is cut at the rate limit, and exactly the accepted ones are stored", async () => {
      const alice = await signUp(chat, "alice");
      const flooder = await signUp(chat, "flooder");
      const roomId = await createRoom(chat, alice);
      const a = await connect(chat, alice);
      const f = await connect(chat, flooder);
      try {
        await callOk(a, "room:join", { roomId });
        await callOk(f, "room:join", { roomId });
        const started = Date.now();
        const acks = await Promise.all(
          Array.from({ length: 150 }, (_, i) => call(f, "message:send", { roomId, content: `flood ${i}` })),
        );
        const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
        const accepted = acks.filter((x) => x.ok).map((x) => x.message);
        const refused = acks.filter((x) => !x.ok);
        assert.ok(accepted.length >= 1, "some are accepted");
        assert.ok(accepted.length <= 20 * seconds, `${accepted.length} accepted in at most ${seconds} s windows`);
        assert.equal(accepted.length + refused.length, 150, "every message answered");
        for (const r of refused) assert.equal(r.error.code, "RATE_LIMITED", JSON.stringify(r));

        // Meanwhile another user is served at once.
        const started2 = Date.now();
        await callOk(a, "message:send", { roomId, content: "still here" });
        assert.ok(Date.now() - started2 < 2000);

        const pages = await allPages(chat, alice, `/api/chat/rooms/${roomId}/messages`, 100);
        const floods = pages.flat().filter((m) => m.senderId === flooder.id);
        assert.equal(floods.length, accepted.length, "the stored count is exactly the accepted count");
        assert.deepEqual(
          floods.map((m) => m.id).sort(),
          accepted.map((m) => m.id).sort(),
          "the stored messages are exactly the acknowledged ones",
        );
        // In the order they were sent.
        const order = floods.reverse().map((m) => Number(m.content.split(" ")[1]));
        assert.deepEqual(order, [...order].sort((x, y) => x - y));

        // The limit lifts once the second is over.
        await sleep(1100);
        await callOk(f, "message:send", { roomId, content: "calm now" });
      } finally {
        closeAll(a, f);
      }
    });

    it("SQL-looking strings are data, stored and returned verbatim", async () => {
      const alice = await signUp(chat, "alice", { displayName: SQL[2] });
      const bob = await signUp(chat, "bob");
      assert.equal(alice.user.displayName, SQL[2]);
      const room = await restOk(chat, "POST", "/api/chat/rooms", { token: alice.token, body: { name: SQL[0], description: SQL[1], isPrivate: false } }, 201);
      assert.equal(room.name, SQL[0]);
      assert.equal(room.description, SQL[1]);
      const a = await connect(chat, alice);
      try {
        await callOk(a, "room:join", { roomId: room.id });
        const sent = [];
        for (const content of SQL) {
          sent.push((await callOk(a, "message:send", { roomId: room.id, content })).message);
          await callOk(a, "dm:send", { receiverId: bob.id, content });
          await sleep(60);
        }
        await callOk(a, "message:edit", { messageId: sent[0].id, content: SQL[6] });
        const history = await restOk(chat, "GET", `/api/chat/rooms/${room.id}/messages`, { token: alice.token });
        assert.deepEqual(history.map((m) => m.content), [...SQL.slice(1)].reverse().concat([SQL[6]]));
        assert.ok(history.every((m) => m.sender.displayName === SQL[2]));
        const dms = await restOk(chat, "GET", `/api/chat/dm/${alice.id}`, { token: bob.token });
        assert.deepEqual(dms.map((m) => m.content), [...SQL].reverse());
        const publicRooms = await restOk(chat, "GET", "/api/chat/rooms/public", { token: bob.token });
        assert.equal(publicRooms.find((r) => r.id === room.id).name, SQL[0]);
        // Every table is still there and whole.
        const users = await restOk(chat, "GET", "/api/chat/users", { token: bob.token });
        assert.ok(users.some((u) => u.id === alice.id) && users.some((u) => u.id === bob.id));
        assert.ok(users.every((u) => !("passwordHash" in u)));
        await restOk(chat, "POST", "/api/auth/sign-in", { body: { username: bob.username, password: "password-of-bob" } });
      } finally {
        closeAll(a);
      }
    });

    it("NUL characters are refused as VALIDATION, whatever the database can store", async () => {
      const alice = await signUp(chat, "alice");
      const bob = await signUp(chat, "bob");
      const roomId = await createRoom(chat, alice);
      const a = await connect(chat, alice);
      try {
        await callOk(a, "room:join", { roomId });
        const { message } = await callOk(a, "message:send", { roomId, content: "clean" });
        const cases = [
          ["message:send", { roomId, content: "a\u0000b" }, "content"],
          ["message:edit", { messageId: message.id, content: "\u0000" }, "content"],
          ["dm:send", { receiverId: bob.id, content: "nul \u0000" }, "content"],
          ["room:join", { roomId: `${roomId}\u0000` }, "roomId"],
          ["room:leave", { roomId: "\u0000" }, "roomId"],
          ["message:send", { roomId: "\u0000", content: "x" }, "roomId"],
          ["message:edit", { messageId: `${message.id}\u0000`, content: "x" }, "messageId"],
          ["message:delete", { messageId: "\u0000" }, "messageId"],
          ["dm:send", { receiverId: `${bob.id}\u0000`, content: "x" }, "receiverId"],
          ["typing:start", { roomId: "\u0000" }, "roomId"],
        ];
        for (const [event, payload, field] of cases) {
          await sleep(60);
          const error = await expectFailure(a, event, payload, "VALIDATION");
          assert.match(error.message, new RegExp(`\\b${field}\\b`), `${event}: ${error.message}`);
        }
        const history = await restOk(chat, "GET", `/api/chat/rooms/${roomId}/messages`, { token: alice.token });
        assert.deepEqual(history, [message]);
        assert.deepEqual(await restOk(chat, "GET", `/api/chat/dm/${bob.id}`, { token: alice.token }), []);
      } finally {
        closeAll(a);
      }
    });

    it("a connection past its room limit is told JOIN_FAILED, never ok for a room it is not in", async () => {
      const alice = await signUp(chat, "alice");
      const bob = await signUp(chat, "bob");
      // The Socket.IO server's default limit is 1000 rooms per connection, its own included.
      const rooms = [];
      for (let i = 0; i < 1000; i++) rooms.push(await createRoom(chat, bob, { name: `room ${i}` }));
      const a = await connect(chat, alice);
      const b = await connect(chat, bob);
      try {
        const acks = [];
        for (const roomId of rooms) acks.push(await call(a, "room:join", { roomId }));
        const first = acks.findIndex((x) => !x.ok);
        assert.ok(first > 900, `${first} rooms joined before the first refusal`);
        for (const ack of acks.slice(first)) assert.equal(ack.error?.code, "JOIN_FAILED", JSON.stringify(ack));
        const last = rooms[rooms.length - 1];
        await expectFailure(a, "room:join", { roomId: last }, "JOIN_FAILED");
        // Every room acknowledged is a room the connection hears.
        await callOk(b, "room:join", { roomId: rooms[first - 1] });
        await callOk(b, "message:send", { roomId: rooms[first - 1], content: "heard" });
        assert.equal((await a.next("message:new"))[0].content, "heard");
        // Leaving one makes room for another.
        await callOk(a, "room:leave", { roomId: rooms[0] });
        await callOk(a, "room:join", { roomId: last });
        await callOk(b, "room:join", { roomId: last });
        await callOk(b, "typing:start", { roomId: last });
        assert.deepEqual((await a.next("typing:update"))[0], { roomId: last, userId: bob.id, isTyping: true });
        await callOk(a, "typing:start", { roomId: last });
      } finally {
        closeAll(a, b);
      }
    });

    it("the server is alive, has not panicked and logged no failure", async () => {
      assert.ok(chat.alive(), "the chat process still runs");
      assert.ok(!chat.stderr().includes("panicked"), chat.stderr());
      assert.ok(!chat.stderr().includes("ERROR"), `no client input is a server error:\n${chat.stderr()}`);
      assert.equal((await rest(chat, "GET", "/api/auth/me")).status, 401);
    });
  });

  describe(`bad input through REST (${backend})`, () => {
    const chat = suiteChat({ postgres });
    const statuses = [];

    /** A request whose answer must be `status` and, for a 422, name `field`. */
    async function expectStatus(method, route, options, status, field) {
      const res = await rest(chat, method, route, options);
      statuses.push([method, route, res.status]);
      const what = `${method} ${route} ${JSON.stringify(options.body ?? options.raw ?? "")?.slice(0, 120)}`;
      assert.equal(res.status, status, `${what}: ${res.text.slice(0, 300)}`);
      if (status >= 400) {
        assert.equal(typeof res.body?.error?.code, "string", `${what}: an error body: ${res.text.slice(0, 300)}`);
        assert.equal(typeof res.body.error.message, "string");
      }
      if (status === 422) assert.equal(res.body.error.field, field, `${what}: ${res.text}`);
      return res.body;
    }

    it("accounts: 400, 401, 409 and 422 naming the field", async () => {
      const taken = await signUp(chat, "taken");
      const up = "/api/auth/sign-up";
      const ok = { username: "fine_name", password: "long enough" };
      await expectStatus("POST", up, { raw: "not json" }, 400);
      await expectStatus("POST", up, { raw: "" }, 400);
      await expectStatus("POST", up, { raw: "[1, 2]" }, 422, "body");
      await expectStatus("POST", up, { raw: '"a string"' }, 422, "body");
      await expectStatus("POST", up, { body: {} }, 422, "username");
      await expectStatus("POST", up, { body: { password: "long enough" } }, 422, "username");
      await expectStatus("POST", up, { body: { ...ok, username: 42 } }, 422, "username");
      await expectStatus("POST", up, { body: { ...ok, username: "ab" } }, 422, "username");
      await expectStatus("POST", up, { body: { ...ok, username: "x".repeat(51) } }, 422, "username");
      await expectStatus("POST", up, { body: { ...ok, username: "no spaces" } }, 422, "username");
      await expectStatus("POST", up, { body: { ...ok, username: "x'; DROP TABLE users;--" } }, 422, "username");
      await expectStatus("POST", up, { body: { username: "fine_name" } }, 422, "password");
      await expectStatus("POST", up, { body: { ...ok, password: 12345678 } }, 422, "password");
      await expectStatus("POST", up, { body: { ...ok, password: "short" } }, 422, "password");
      await expectStatus("POST", up, { body: { ...ok, password: "😀".repeat(7) } }, 422, "password");
      await expectStatus("POST", up, { body: { ...ok, password: "x".repeat(201) } }, 422, "password");
      await expectStatus("POST", up, { body: { ...ok, displayName: 5 } }, 422, "displayName");
      await expectStatus("POST", up, { body: { ...ok, displayName: "" } }, 422, "displayName");
      await expectStatus("POST", up, { body: { ...ok, username: taken.username.toUpperCase() } }, 409);
      // Lengths are characters: eight two-byte characters are a valid password.
      const multi = await expectStatus("POST", up, { body: { username: "multi_byte", password: "éééééééé" } }, 201);
      assert.equal(multi.user.username, "multi_byte");

      const wrongPassword = await expectStatus(
        "POST",
        "/api/auth/sign-in",
        { body: { username: taken.username, password: "wrong password" } },
        401,
      );
      const unknownUser = await expectStatus(
        "POST",
        "/api/auth/sign-in",
        { body: { username: "nobody_here", password: "wrong password" } },
        401,
      );
      assert.equal(wrongPassword.error.message, unknownUser.error.message, "one message for either mistake");
      await expectStatus("POST", "/api/auth/sign-in", { body: { password: "x" } }, 422, "username");
      await expectStatus("POST", "/api/auth/sign-in", { body: { username: "x".repeat(10_000), password: "y" } }, 401);
      await expectStatus("GET", "/api/auth/me", {}, 401);
      await expectStatus("GET", "/api/auth/me", { token: "garbage" }, 401);
      await expectStatus("GET", "/api/auth/me", { token: `${taken.token}x` }, 401);
    });

    it("chat routes: 401, 403, 404, 413 and 422 naming the field, never a 500", async () => {
      const alice = await signUp(chat, "alice");
      const bob = await signUp(chat, "bob");
      const token = alice.token;
      const roomId = await createRoom(chat, alice);
      const privateRoom = await createRoom(chat, alice, { isPrivate: true });
      await expectStatus("GET", "/api/chat/rooms", {}, 401);
      await expectStatus("GET", "/api/chat/users", { token: "not.a.jwt" }, 401);

      const rooms = "/api/chat/rooms";
      await expectStatus("POST", rooms, { token, raw: "{" }, 400);
      await expectStatus("POST", rooms, { token, body: {} }, 422, "name");
      await expectStatus("POST", rooms, { token, body: { name: 5, isPrivate: false } }, 422, "name");
      await expectStatus("POST", rooms, { token, body: { name: "", isPrivate: false } }, 422, "name");
      await expectStatus("POST", rooms, { token, body: { name: "   ", isPrivate: false } }, 422, "name");
      await expectStatus("POST", rooms, { token, body: { name: "x".repeat(101), isPrivate: false } }, 422, "name");
      await expectStatus("POST", rooms, { token, body: { name: "ok" } }, 422, "isPrivate");
      await expectStatus("POST", rooms, { token, body: { name: "ok", isPrivate: "yes" } }, 422, "isPrivate");
      await expectStatus("POST", rooms, { token, body: { name: "ok", isPrivate: false, description: 5 } }, 422, "description");
      const wide = await expectStatus("POST", rooms, { token, body: { name: "😀".repeat(100), isPrivate: false } }, 201);
      assert.equal(wide.name, "😀".repeat(100), "100 characters fit, whatever their bytes");

      const members = `/api/chat/rooms/${privateRoom}/members`;
      await expectStatus("POST", members, { token, body: {} }, 422, "userId");
      await expectStatus("POST", members, { token, body: { userId: 5 } }, 422, "userId");
      await expectStatus("POST", members, { token, body: { userId: "no-such-user" } }, 404);
      await expectStatus("POST", "/api/chat/rooms/no-such-room/members", { token, body: { userId: bob.id } }, 404);
      await expectStatus("POST", members, { token: bob.token, body: { userId: bob.id } }, 403);
      await expectStatus("POST", members, { token, body: { userId: alice.id } }, 409);

      const messages = `/api/chat/rooms/${roomId}/messages`;
      for (const limit of ["0", "-1", "ten", "1.5", "", "99999999999999999999"]) {
        await expectStatus("GET", `${messages}?limit=${encodeURIComponent(limit)}`, { token }, 422, "limit");
      }
      assert.deepEqual(await expectStatus("GET", `${messages}?limit=100000`, { token }, 200), []);
      await expectStatus("GET", `${messages}?before=no-such-message`, { token }, 404);
      await expectStatus("GET", `/api/chat/rooms/${privateRoom}/messages`, { token: bob.token }, 403);
      await expectStatus("POST", `/api/chat/rooms/${privateRoom}/read`, { token: bob.token }, 403);
      await expectStatus("GET", "/api/chat/dm/no-such-user", { token }, 404);
      await expectStatus("GET", `/api/chat/dm/${bob.id}?limit=none`, { token }, 422, "limit");
      await expectStatus("GET", "/api/chat/users?online=maybe", { token }, 422, "online");

      // Unknown ids of every shape, SQL-looking ones included, are 404s.
      for (const id of ["no-such-id", "' OR '1'='1", "1 OR 1=1 --", "x".repeat(5000), "é😀", "%00", "\u0000", `${roomId}\u0000`, "..%2F..%2Fetc"]) {
        const e = encodeURIComponent(id);
        await expectStatus("GET", `/api/chat/rooms/${e}/messages`, { token }, 404);
        await expectStatus("POST", `/api/chat/rooms/${e}/read`, { token }, 404);
        await expectStatus("POST", `/api/chat/rooms/${e}/members`, { token, body: { userId: bob.id } }, 404);
        await expectStatus("GET", `/api/chat/dm/${e}`, { token }, 404);
        await expectStatus("POST", `/api/chat/dm/${e}/read`, { token }, 404);
        await expectStatus("GET", `${messages}?before=${e}`, { token }, 404);
      }
      await expectStatus("GET", "/api/chat/nothing-here", { token }, 404);
      await expectStatus("GET", "/api/chat/rooms/a/b/c", { token }, 404);

      // A NUL character in any field is refused and names the field.
      for (const [route, body, field] of [
        [rooms, { name: "a\u0000b", isPrivate: false }, "name"],
        [rooms, { name: "ok", description: "\u0000", isPrivate: false }, "description"],
        [`/api/chat/rooms/${privateRoom}/members`, { userId: `${bob.id}\u0000` }, "userId"],
        ["/api/auth/sign-up", { username: "nul_name", password: "pass\u0000word" }, "password"],
        ["/api/auth/sign-up", { username: "nul_name", password: "password", displayName: "\u0000" }, "displayName"],
        ["/api/auth/sign-up", { username: "nul\u0000name", password: "password" }, "username"],
      ]) {
        await expectStatus("POST", route, { token, body }, 422, field);
      }
      await expectStatus("POST", "/api/auth/sign-in", { body: { username: "nul\u0000", password: "password" } }, 401);

      // A body past 64 KiB is refused before it is read.
      const huge = JSON.stringify({ name: "x".repeat(70 * 1024), isPrivate: false });
      const res = await rest(chat, "POST", rooms, { token, raw: huge });
      statuses.push(["POST", rooms, res.status]);
      assert.equal(res.status, 413);
      // Nothing refused was stored: alice has her three rooms only.
      const mine = await restOk(chat, "GET", rooms, { token });
      assert.deepEqual(mine.map((r) => r.id).sort(), [roomId, privateRoom, wide.id].sort());
    });

    it("no answer was a 500 or 503, and the server is alive, has not panicked and logged no failure", async () => {
      assert.ok(statuses.length > 80, `${statuses.length} requests made`);
      const errors = statuses.filter(([, , s]) => s >= 500);
      assert.deepEqual(errors, []);
      assert.ok(chat.alive(), "the chat process still runs");
      assert.ok(!chat.stderr().includes("panicked"), chat.stderr());
      assert.ok(!chat.stderr().includes("ERROR"), `no client input is a server error:\n${chat.stderr()}`);
    });
  });
}
