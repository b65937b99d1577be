// Server-side disconnection, reconnection after a transport loss, connection state recovery and
// volatile emits, seen through socket.io-client.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  connected,
  once,
  firesWithin,
  withoutOffset,
  eventually,
  closeAll,
  sleep,
  WAIT_MS,
} from "../lib/harness.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const fastReconnect = {
  reconnection: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 100,
  randomizationFactor: 0,
};
const ack = (socket, event, ...args) => socket.timeout(WAIT_MS).emitWithAck(event, ...args);

describe("server disconnect", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    it(`disconnect-me: reason io server disconnect, no reconnection (${transports[0]})`, async () => {
      const { socket } = await connected(server.url, { transports, ...fastReconnect });
      try {
        const gone = once(socket, "disconnect");
        socket.emit("disconnect-me");
        const [reason] = await gone;
        assert.equal(reason, "io server disconnect");
        assert.equal(socket.connected, false);
        assert.equal(socket.active, false);
        assert.equal(await firesWithin(socket, "connect", 500), false, "must not reconnect");
      } finally {
        closeAll(socket);
      }
    });
  }
});

describe("reconnection", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    it(`after close-transport the client reconnects (${transports[0]})`, async () => {
      const { socket } = await connected(server.url, { transports, ...fastReconnect });
      try {
        const gone = once(socket, "disconnect");
        const reconnected = once(socket.io, "reconnect", WAIT_MS);
        socket.emit("close-transport");
        const [reason] = await gone;
        assert.equal(reason, "transport close");
        assert.equal(socket.active, true);
        const [attempt] = await reconnected;
        assert.equal(attempt, 1);
        await eventually(() => socket.connected, WAIT_MS, "connected again");
        const [welcome] = await socket.next("welcome");
        assert.equal(welcome.id, socket.id);
        assert.equal(await ack(socket, "echo", "back"), "back");
      } finally {
        closeAll(socket);
      }
    });
  }
});

describe("connection state recovery", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    it(`a client cut off recovers its id, rooms and missed events (${transports[0]})`, async () => {
      // A long enough reconnection delay that B's emits surely happen while A is away.
      const a = (
        await connected(server.url, {
          transports,
          reconnection: true,
          reconnectionDelay: 600,
          reconnectionDelayMax: 600,
          randomizationFactor: 0,
          auth: { who: "a" },
        })
      ).socket;
      const { socket: b } = await connected(server.url, { transports });
      let fresh;
      try {
        const idBefore = a.id;
        assert.equal(a.recovered, false);
        assert.deepEqual(await ack(a, "join", "r"), [idBefore, "r"]);

        const gone = once(a, "disconnect");
        const back = once(a, "connect", WAIT_MS);
        a.emit("close-transport");
        assert.equal((await gone)[0], "transport close");
        await eventually(
          async () => !(await ack(b, "fetch-sockets")).includes(idBefore),
          WAIT_MS,
          "A gone from the server",
        );
        b.emit("to-room", "r", "missed", 1);
        b.emit("to-room", "r", "missed", 2, { last: true });
        // Make sure both were processed before A comes back.
        await ack(b, "get-rooms");
        assert.equal(a.connected, false, "the events must be emitted while A is away");

        await back;
        assert.equal(a.recovered, true);
        assert.equal(a.id, idBefore);
        assert.deepEqual(withoutOffset(await a.next("missed")), [1]);
        assert.deepEqual(withoutOffset(await a.next("missed")), [2, { last: true }]);
        const [welcome] = await a.next("welcome");
        assert.equal(welcome.recovered, true);
        assert.equal(welcome.id, idBefore);
        assert.equal(welcome.auth.who, "a");
        assert.equal(typeof welcome.auth.pid, "string", "the client sends its pid in the auth payload");
        assert.equal(
          typeof welcome.auth.offset,
          "string",
          "the client sends its last offset in the auth payload",
        );
        assert.deepEqual(await ack(a, "get-rooms"), [idBefore, "r"], "rooms are restored");

        b.emit("to-room", "r", "live", 3);
        assert.deepEqual(withoutOffset(await a.next("live")), [3]);
        assert.equal(a.pending("missed"), 0, "no missed event is delivered twice");

        const other = await connected(server.url, { transports });
        fresh = other.socket;
        assert.equal(fresh.recovered, false);
        assert.equal(other.welcome.recovered, false);
      } finally {
        closeAll(a, b, fresh);
      }
    });
  }

  it("a client disconnected by the server (disconnect-me) does not keep a session", async () => {
    const { socket } = await connected(server.url, { transports: ["websocket"] });
    const idBefore = socket.id;
    const pid = socket._pid;
    const offset = socket._lastOffset;
    assert.equal(typeof pid, "string");
    assert.equal(typeof offset, "string");
    socket.emit("disconnect-me");
    await once(socket, "disconnect");
    closeAll(socket);
    // Reusing the old pid/offset by hand does not recover anything.
    const { socket: again, welcome } = await connected(server.url, {
      transports: ["websocket"],
      auth: { pid, offset },
    });
    try {
      assert.equal(welcome.recovered, false);
      assert.notEqual(again.id, idBefore);
    } finally {
      closeAll(again);
    }
  });
});

describe("volatile", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    it(`volatile-burst delivers at most n events, in order, without offsets (${transports[0]})`, async () => {
      const { socket } = await connected(server.url, { transports });
      try {
        const n = 50;
        socket.emit("volatile-burst", n);
        // A normal event after the burst shows the burst is over.
        socket.emit("echo", "after-burst");
        withoutOffset(await socket.next("echo"));
        await sleep(100);
        const got = socket.drain("vol");
        assert.ok(got.length <= n, `got ${got.length} > ${n}`);
        const values = got.map((args) => {
          assert.equal(args.length, 1, "volatile packets carry no recovery offset");
          return args[0];
        });
        for (let i = 1; i < values.length; i++) assert.ok(values[i] > values[i - 1], "strictly increasing");
        for (const v of values) assert.ok(Number.isInteger(v) && v >= 0 && v < n);
      } finally {
        closeAll(socket);
      }
    });
  }
});
