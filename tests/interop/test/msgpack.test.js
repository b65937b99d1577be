// The server started with `--parser msgpack` (socket.io-msgpack-parser on both sides).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import msgpackParser from "socket.io-msgpack-parser";
import { startServer, connected, client, once, withoutOffset, closeAll, WAIT_MS, SERVER_KIND } from "../lib/harness.js";
import { rawWs, pollingHandshake, sessionUrl, get, post } from "../lib/raw.js";

let server;
before(async () => {
  server = await startServer({ parser: "msgpack" });
});
after(async () => {
  await server?.stop();
});

const opts = (transports) => ({ transports, parser: msgpackParser });

/** Decodes one socket.io-msgpack-parser packet. */
function decode(buf) {
  const decoder = new msgpackParser.Decoder();
  let packet;
  decoder.on("decoded", (p) => (packet = p));
  decoder.add(buf);
  return packet;
}
const encode = (packet) => new msgpackParser.Encoder().encode(packet)[0];

for (const transports of [["websocket"], ["polling"]]) {
  describe(`msgpack over ${transports[0]}`, () => {
    it("connects and gets the welcome", async () => {
      const { socket, welcome } = await connected(server.url, { ...opts(transports), auth: { a: [1, "b"] } });
      try {
        assert.deepEqual(welcome, {
          id: socket.id,
          nsp: "/",
          auth: { a: [1, "b"] },
          recovered: false,
          query: { foo: null },
        });
      } finally {
        closeAll(socket);
      }
    });

    it("echo with ack keeps every type", async () => {
      const { socket } = await connected(server.url, opts(transports));
      try {
        const value = { int: -5, float: 1.5, big: 2 ** 40, str: "é✓", nil: null, bool: true, list: [[], {}] };
        const args = await new Promise((resolve, reject) =>
          socket
            .timeout(WAIT_MS)
            .emit("echo", value, "two", (err, ...rest) => (err ? reject(err) : resolve(rest))),
        );
        assert.deepEqual(args, [value, "two"]);
        socket.emit("echo", 1, [2]);
        assert.deepEqual(withoutOffset(await socket.next("echo")), [1, [2]]);
      } finally {
        closeAll(socket);
      }
    });

    it("binary both ways", async () => {
      const { socket } = await connected(server.url, opts(transports));
      try {
        const echoed = await socket
          .timeout(WAIT_MS)
          .emitWithAck("echo", { deep: [Buffer.from([1, 2, 250])] });
        assert.deepEqual([...echoed.deep[0]], [1, 2, 250]);
        socket.emit("server-binary");
        const [top, obj] = withoutOffset(await socket.next("server-binary"));
        assert.deepEqual([...top], [1, 2, 3]);
        assert.deepEqual([...obj.nested], [4, 5]);
        assert.deepEqual([...obj.list[0]], [6]);
      } finally {
        closeAll(socket);
      }
    });

    it("a Date (msgpack extension type 0) round-trips (Node) / arrives as its ISO string (Ignis)", async () => {
      const { socket } = await connected(server.url, opts(transports));
      try {
        const date = new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789));
        const back = await socket.timeout(WAIT_MS).emitWithAck("echo", date);
        if (SERVER_KIND === "rust") {
          // Ignis turns a msgpack date into the ISO string a JSON client would have seen, so that
          // handlers see one representation whatever the parser (docs/ARCHITECTURE.md).
          assert.equal(back, "2024-02-29T12:34:56.789Z");
        } else {
          assert.ok(back instanceof Date);
          assert.equal(back.getTime(), date.getTime());
        }
      } finally {
        closeAll(socket);
      }
    });

    it("middleware rejection carries message and data", async () => {
      const socket = client(server.url, { ...opts(transports), auth: { reject: true } });
      try {
        const [err] = await once(socket, "connect_error");
        assert.equal(err.message, "rejected");
        assert.deepEqual(err.data, { reason: "reject requested" });
      } finally {
        closeAll(socket);
      }
    });
  });
}

describe("msgpack on the wire", () => {
  it("websocket: every socket.io packet is one binary frame with a msgpack map", async () => {
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
    try {
      const open = await ws.next();
      assert.equal(typeof open, "string", "the Engine.IO open packet stays text");
      assert.equal(open[0], "0");
      ws.send(encode({ type: 0, nsp: "/" }));
      const connect = await ws.next();
      assert.ok(Buffer.isBuffer(connect), "CONNECT comes back as a binary frame");
      const cp = decode(connect);
      assert.deepEqual(Object.keys(cp).sort(), ["data", "nsp", "type"]);
      assert.equal(cp.type, 0);
      assert.equal(cp.nsp, "/");
      assert.deepEqual(Object.keys(cp.data), ["sid", "pid"]);
      const welcome = decode(await ws.next());
      assert.equal(welcome.type, 2);
      assert.equal(welcome.nsp, "/");
      assert.equal(welcome.data[0], "welcome");
      assert.equal(welcome.data[1].id, cp.data.sid);
      assert.equal(typeof welcome.data[2], "string", "recovery offset");
      assert.equal(welcome.id, undefined);

      ws.send(encode({ type: 2, nsp: "/", data: ["echo", Buffer.from([9]), "s"], id: 7 }));
      const ackPacket = decode(await ws.next());
      assert.equal(ackPacket.type, 3);
      assert.equal(ackPacket.id, 7);
      assert.equal(ackPacket.nsp, "/");
      assert.deepEqual([...ackPacket.data[0]], [9]);
      assert.equal(ackPacket.data[1], "s");
      assert.equal(ackPacket.data.length, 2);

      // An undecodable packet closes the connection.
      ws.send(encode({ type: 9, nsp: "/", data: [] }));
      const closed = await ws.waitClosed();
      assert.equal(closed.code, 1005);
    } finally {
      ws.terminate();
    }
  });

  it("polling: binary packets travel base64-encoded with the b prefix", async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    const connectPacket = "b" + encode({ type: 0, nsp: "/" }).toString("base64");
    assert.equal((await post(url, connectPacket)).body, "ok");
    const res = await get(url);
    assert.equal(res.status, 200);
    const parts = res.body.split("\x1e");
    assert.equal(parts.length, 2);
    for (const p of parts) assert.equal(p[0], "b");
    const cp = decode(Buffer.from(parts[0].slice(1), "base64"));
    assert.equal(cp.type, 0);
    assert.equal(typeof cp.data.sid, "string");
    const welcome = decode(Buffer.from(parts[1].slice(1), "base64"));
    assert.equal(welcome.data[0], "welcome");
    await post(url, "1");
  });
});
