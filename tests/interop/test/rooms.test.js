// Rooms and broadcasting: join/leave, to/except, broadcast without the sender, broadcast with
// acknowledgements, fetchSockets, socketsJoin/socketsLeave and disconnectSockets.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  connected,
  once,
  withoutOffset,
  eventually,
  firesWithin,
  closeAll,
  WAIT_MS,
} from "../lib/harness.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const ack = (socket, event, ...args) => socket.timeout(WAIT_MS).emitWithAck(event, ...args);

/**
 * Connects `n` clients and waits until the server's `/` namespace holds exactly them, so
 * server-wide operations are not disturbed by sockets of earlier tests still closing.
 */
async function clients(n, transports = ["websocket"]) {
  const list = [];
  for (let i = 0; i < n; i++) list.push((await connected(server.url, { transports })).socket);
  const expected = list.map((s) => s.id).sort();
  await eventually(
    async () => JSON.stringify(await ack(list[0], "fetch-sockets")) === JSON.stringify(expected),
    WAIT_MS,
    "only this test's sockets on the server",
  );
  return list;
}

/** Asserts that `socket` receives no `event` for a short while. */
async function assertSilent(socket, event, ms = 150) {
  assert.equal(await firesWithin(socket, event, ms), false, `${socket.id} must not receive "${event}"`);
  assert.equal(socket.pending(event), 0, `${socket.id} must not have received "${event}"`);
}

describe("rooms", () => {
  it("join and leave acknowledge the socket's rooms in order (own id first)", async () => {
    const [a] = await clients(1);
    try {
      assert.deepEqual(await ack(a, "get-rooms"), [a.id]);
      assert.deepEqual(await ack(a, "join", "r1"), [a.id, "r1"]);
      assert.deepEqual(await ack(a, "join", "r2"), [a.id, "r1", "r2"]);
      assert.deepEqual(await ack(a, "join", "r1"), [a.id, "r1", "r2"], "joining twice is a no-op");
      assert.deepEqual(await ack(a, "leave", "r1"), [a.id, "r2"]);
      assert.deepEqual(await ack(a, "leave", "not-joined"), [a.id, "r2"]);
      assert.deepEqual(await ack(a, "get-rooms"), [a.id, "r2"]);
    } finally {
      closeAll(a);
    }
  });

  for (const transports of [["websocket"], ["polling"]]) {
    it(`room sends and the acknowledgements that follow them arrive in the order made (${transports[0]})`, async () => {
      const [a] = await clients(1, transports);
      try {
        await ack(a, "join", "order-room");
        // Each room send is made before the next event's acknowledgement (the server handles a
        // client's events in order), so the client must see them interleaved.
        const seen = [];
        a.on("ordered", (i) => seen.push(`room ${i}`));
        const n = 30;
        const acked = new Promise((resolve) => {
          for (let i = 0; i < n; i++) {
            a.emit("to-room", "order-room", "ordered", i);
            a.emit("echo", i, () => {
              seen.push(`ack ${i}`);
              if (i === n - 1) resolve();
            });
          }
        });
        await acked;
        const expected = [];
        for (let i = 0; i < n; i++) expected.push(`room ${i}`, `ack ${i}`);
        assert.deepEqual(seen, expected);
      } finally {
        closeAll(a);
      }
    });
  }

  it("to-room reaches the room members, the sender included, and nobody else", async () => {
    const [a, b, c] = await clients(3);
    try {
      await ack(a, "join", "room-x");
      await ack(b, "join", "room-x");
      a.emit("to-room", "room-x", "hello-room", 1, { two: 2 });
      assert.deepEqual(withoutOffset(await a.next("hello-room")), [1, { two: 2 }]);
      assert.deepEqual(withoutOffset(await b.next("hello-room")), [1, { two: 2 }]);
      await assertSilent(c, "hello-room");

      // A sender outside the room does not get it.
      c.emit("to-room", "room-x", "from-c");
      await a.next("from-c");
      await b.next("from-c");
      await assertSilent(c, "from-c");

      // A socket id is a room too.
      c.emit("to-room", b.id, "direct", "psst");
      assert.deepEqual(withoutOffset(await b.next("direct")), ["psst"]);
      await assertSilent(a, "direct");

      await ack(b, "leave", "room-x");
      a.emit("to-room", "room-x", "after-leave");
      await a.next("after-leave");
      await assertSilent(b, "after-leave");
    } finally {
      closeAll(a, b, c);
    }
  });

  it("except-room reaches everyone outside the room, the sender included", async () => {
    const [a, b, c] = await clients(3);
    try {
      await ack(b, "join", "excluded");
      a.emit("except-room", "excluded", "not-for-b", "z");
      assert.deepEqual(withoutOffset(await a.next("not-for-b")), ["z"]);
      assert.deepEqual(withoutOffset(await c.next("not-for-b")), ["z"]);
      await assertSilent(b, "not-for-b");
    } finally {
      closeAll(a, b, c);
    }
  });

  it("broadcast excludes the sender", async () => {
    const [a, b, c] = await clients(3, ["polling"]);
    try {
      a.emit("broadcast", "news", { n: 1 }, [true]);
      assert.deepEqual(withoutOffset(await b.next("news")), [{ n: 1 }, [true]]);
      assert.deepEqual(withoutOffset(await c.next("news")), [{ n: 1 }, [true]]);
      await assertSilent(a, "news");
    } finally {
      closeAll(a, b, c);
    }
  });

  it("one broadcast carries the same offset to every recipient", async () => {
    const [a, b, c] = await clients(3);
    try {
      a.emit("broadcast", "same");
      const [offB] = await b.next("same");
      const [offC] = await c.next("same");
      assert.equal(typeof offB, "string");
      assert.equal(offB, offC);
    } finally {
      closeAll(a, b, c);
    }
  });
});

describe("broadcast with acknowledgements", () => {
  it("collects one response per client across 3 clients", async () => {
    const list = await clients(3);
    try {
      for (const s of list) s.on("bcast-ack-request", (cb) => cb(s.id));
      const result = await ack(list[1], "broadcast-with-ack");
      assert.deepEqual(result, { timedOut: false, responses: list.map((s) => s.id).sort() });
    } finally {
      closeAll(...list);
    }
  });

  it("reports a timeout with the responses received when a client stays silent", async () => {
    const list = await clients(3);
    try {
      list[0].on("bcast-ack-request", (cb) => cb(list[0].id));
      list[1].on("bcast-ack-request", (cb) => cb(list[1].id));
      let silentAsked = false;
      list[2].on("bcast-ack-request", () => (silentAsked = true));
      const started = Date.now();
      const result = await list[0].timeout(WAIT_MS).emitWithAck("broadcast-with-ack");
      const elapsed = Date.now() - started;
      assert.deepEqual(result, { timedOut: true, responses: [list[0].id, list[1].id].sort() });
      assert.ok(silentAsked);
      assert.ok(elapsed >= 900 && elapsed < 2500, `server timeout is 1000 ms, took ${elapsed}`);
    } finally {
      closeAll(...list);
    }
  });
});

describe("server-wide operations", () => {
  it("fetch-sockets lists every connected socket of /, sorted", async () => {
    const list = await clients(3);
    try {
      assert.deepEqual(await ack(list[2], "fetch-sockets"), list.map((s) => s.id).sort());
      list[0].close();
      const rest = list
        .slice(1)
        .map((s) => s.id)
        .sort();
      await eventually(
        async () => JSON.stringify(await ack(list[1], "fetch-sockets")) === JSON.stringify(rest),
        WAIT_MS,
        "closed socket gone from fetch-sockets",
      );
    } finally {
      closeAll(...list);
    }
  });

  it("sockets-join and sockets-leave move every socket", async () => {
    const [a, b, c] = await clients(3);
    try {
      assert.equal(await ack(a, "sockets-join", "everyone"), undefined);
      for (const s of [a, b, c]) assert.deepEqual(await ack(s, "get-rooms"), [s.id, "everyone"]);
      b.emit("to-room", "everyone", "all-hands");
      await Promise.all([a.next("all-hands"), b.next("all-hands"), c.next("all-hands")]);

      assert.equal(await ack(c, "sockets-leave", "everyone"), undefined);
      for (const s of [a, b, c]) assert.deepEqual(await ack(s, "get-rooms"), [s.id]);
    } finally {
      closeAll(a, b, c);
    }
  });

  it("disconnect-room disconnects the room's sockets with io server disconnect", async () => {
    const [a, b, c] = await clients(3);
    try {
      await ack(a, "join", "doomed");
      await ack(b, "join", "doomed");
      const aGone = once(a, "disconnect");
      const bGone = once(b, "disconnect");
      c.emit("disconnect-room", "doomed");
      assert.equal((await aGone)[0], "io server disconnect");
      assert.equal((await bGone)[0], "io server disconnect");
      assert.equal(await firesWithin(c, "disconnect", 150), false);
      assert.equal(c.connected, true);
      assert.deepEqual(await ack(c, "fetch-sockets"), [c.id]);
    } finally {
      closeAll(a, b, c);
    }
  });
});
