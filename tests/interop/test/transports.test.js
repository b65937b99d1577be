// socket.io-client over each transport, binary payloads and acknowledgements in both directions.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  client,
  connected,
  once,
  withTimeout,
  withoutOffset,
  closeAll,
} from "../lib/harness.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function echoRoundTrip(socket) {
  socket.emit("echo", "hello", 42, { nested: [true, null, "x"] });
  const args = withoutOffset(await socket.next("echo"));
  assert.deepEqual(args, ["hello", 42, { nested: [true, null, "x"] }]);
}

describe("transports", () => {
  it("websocket only", async () => {
    const { socket, welcome } = await connected(server.url, { transports: ["websocket"] });
    try {
      assert.equal(socket.io.engine.transport.name, "websocket");
      assert.equal(welcome.id, socket.id);
      assert.equal(welcome.nsp, "/");
      assert.equal(welcome.recovered, false);
      await echoRoundTrip(socket);
    } finally {
      closeAll(socket);
    }
  });

  it("polling only", async () => {
    const { socket, welcome } = await connected(server.url, { transports: ["polling"] });
    try {
      assert.equal(socket.io.engine.transport.name, "polling");
      assert.equal(welcome.id, socket.id);
      await echoRoundTrip(socket);
      assert.equal(socket.io.engine.transport.name, "polling");
    } finally {
      closeAll(socket);
    }
  });

  it("polling then upgrade to websocket; traffic flows after the upgrade", async () => {
    const socket = client(server.url, { transports: ["polling", "websocket"] });
    try {
      const upgraded = new Promise((resolve) => {
        socket.io.once("open", () => {
          assert.equal(socket.io.engine.transport.name, "polling");
          socket.io.engine.once("upgrade", resolve);
        });
      });
      await once(socket, "connect");
      const [transport] = await withTimeout(
        upgraded.then((t) => [t]),
        3000,
        "upgrade",
      );
      assert.equal(transport.name, "websocket");
      assert.equal(socket.io.engine.transport.name, "websocket");
      withoutOffset(await socket.next("welcome"));
      await echoRoundTrip(socket);
      assert.equal(await socket.timeout(3000).emitWithAck("echo", "after-upgrade"), "after-upgrade");
      assert.equal(socket.io.engine.transport.name, "websocket");
    } finally {
      closeAll(socket);
    }
  });
});

for (const transports of [["websocket"], ["polling"]]) {
  describe(`binary over ${transports[0]}`, () => {
    it("client to server and back, nested Buffers keep their bytes", async () => {
      const { socket } = await connected(server.url, { transports });
      try {
        const payload = {
          a: Buffer.from([0, 1, 2, 255]),
          deep: { list: [Buffer.from([9, 8]), "text", Buffer.alloc(0)] },
        };
        const echoed = await socket.timeout(3000).emitWithAck("echo", Buffer.from([7, 7, 7]), payload);
        // emitWithAck resolves with the first ack argument only; ask for all of them via the event.
        assert.ok(Buffer.isBuffer(echoed));
        assert.deepEqual([...echoed], [7, 7, 7]);

        socket.emit("echo", Buffer.from([7, 7, 7]), payload);
        const [first, second] = withoutOffset(await socket.next("echo"));
        assert.deepEqual([...first], [7, 7, 7]);
        assert.deepEqual([...second.a], [0, 1, 2, 255]);
        assert.deepEqual([...second.deep.list[0]], [9, 8]);
        assert.equal(second.deep.list[1], "text");
        assert.ok(Buffer.isBuffer(second.deep.list[2]));
        assert.equal(second.deep.list[2].length, 0);
      } finally {
        closeAll(socket);
      }
    });

    it("server-emitted binary: top-level, nested and in a list", async () => {
      const { socket } = await connected(server.url, { transports });
      try {
        socket.emit("server-binary");
        const [top, obj] = withoutOffset(await socket.next("server-binary"));
        assert.ok(Buffer.isBuffer(top));
        assert.deepEqual([...top], [1, 2, 3]);
        assert.deepEqual([...obj.nested], [4, 5]);
        assert.equal(obj.list.length, 1);
        assert.deepEqual([...obj.list[0]], [6]);
      } finally {
        closeAll(socket);
      }
    });
  });
}

describe("acknowledgements", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    it(`client emitWithAck gets every ack argument (${transports[0]})`, async () => {
      const { socket } = await connected(server.url, { transports });
      try {
        const args = await new Promise((resolve, reject) => {
          socket
            .timeout(3000)
            .emit("echo", 1, "two", { three: [3] }, null, (err, ...rest) =>
              err ? reject(err) : resolve(rest),
            );
        });
        // Ack arguments carry no recovery offset.
        assert.deepEqual(args, [1, "two", { three: [3] }, null]);
        assert.equal(await socket.emitWithAck("echo", "single"), "single");
      } finally {
        closeAll(socket);
      }
    });
  }

  it("timeout().emitWithAck on an event the server never answers rejects with a timeout", async () => {
    const { socket } = await connected(server.url);
    try {
      const started = Date.now();
      await assert.rejects(socket.timeout(300).emitWithAck("no-such-handler", 1), (err) => {
        assert.equal(err.message, "operation has timed out");
        return true;
      });
      assert.ok(Date.now() - started >= 290);
      // The connection is unaffected.
      assert.equal(await socket.timeout(3000).emitWithAck("echo", "still here"), "still here");
    } finally {
      closeAll(socket);
    }
  });

  it("server to client ack answered", async () => {
    const { socket } = await connected(server.url);
    try {
      socket.on("need-ack", (question, ack) => {
        assert.equal(question, "question");
        assert.equal(typeof ack, "function");
        ack("the answer");
      });
      socket.emit("request-ack", 2000);
      const [result, ...rest] = await socket.next("ack-result");
      assert.deepEqual(result, { answer: "the answer" });
      assert.equal(rest.length, 1, "ack-result carries its offset");
    } finally {
      closeAll(socket);
    }
  });

  it("server to client ack not answered times out on the server", async () => {
    const { socket } = await connected(server.url);
    try {
      let asked = 0;
      socket.on("need-ack", (question) => {
        assert.equal(question, "question");
        asked++;
      });
      socket.emit("request-ack", 200);
      const [result] = await socket.next("ack-result");
      assert.deepEqual(result, { error: "timeout" });
      assert.equal(asked, 1);
    } finally {
      closeAll(socket);
    }
  });

  it("an ack request from the server has no recovery offset but an ack id", async () => {
    const { socket } = await connected(server.url);
    try {
      const seen = new Promise((resolve) => socket.on("need-ack", (...args) => resolve(args)));
      socket.emit("request-ack", 500);
      const args = await seen;
      assert.equal(args.length, 2);
      assert.equal(args[0], "question");
      assert.equal(typeof args[1], "function");
      args[1](7);
      assert.deepEqual((await socket.next("ack-result"))[0], { answer: 7 });
    } finally {
      closeAll(socket);
    }
  });
});
