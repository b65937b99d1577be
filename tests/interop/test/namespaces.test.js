// Namespaces (static, dynamic, multiplexed, unknown), handshake auth and query, middleware
// rejections and the /private namespace.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Manager } from "socket.io-client";
import {
  startServer,
  client,
  connected,
  once,
  bufferEvents,
  withoutOffset,
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

/** Resolves with the connect_error of a socket that must not connect. */
async function connectError(socket) {
  const outcome = await Promise.race([
    once(socket, "connect_error").then(([err]) => ({ err })),
    once(socket, "connect").then(() => ({ connected: true })),
  ]);
  assert.ok(!outcome.connected, "the connection must be refused");
  return outcome.err;
}

describe("namespaces", () => {
  it("/custom: welcome names the namespace and carries the auth payload", async () => {
    const { socket, welcome } = await connected(`${server.url}/custom`, { auth: { user: "ann", n: 1 } });
    try {
      assert.deepEqual(welcome, { id: socket.id, nsp: "/custom", auth: { user: "ann", n: 1 } });
      assert.equal(await socket.timeout(WAIT_MS).emitWithAck("echo", "in custom"), "in custom");
    } finally {
      closeAll(socket);
    }
  });

  it("dynamic namespace /dyn-42", async () => {
    const { socket, welcome } = await connected(`${server.url}/dyn-42`);
    try {
      assert.deepEqual(welcome, { id: socket.id, nsp: "/dyn-42" });
      socket.emit("echo", "dyn");
      assert.deepEqual(withoutOffset(await socket.next("echo")), ["dyn"]);
    } finally {
      closeAll(socket);
    }
  });

  it("a name that does not match the dynamic pattern is an invalid namespace", async () => {
    const socket = client(`${server.url}/dyn-abc`);
    try {
      const err = await connectError(socket);
      assert.equal(err.message, "Invalid namespace");
    } finally {
      closeAll(socket);
    }
  });

  it("/, /custom and /dyn-42 multiplexed on one Manager share one Engine.IO session", async () => {
    const manager = new Manager(server.url, { reconnection: false, timeout: WAIT_MS });
    const main = bufferEvents(manager.socket("/"));
    const custom = bufferEvents(manager.socket("/custom", { auth: { k: "v" } }));
    const dyn = bufferEvents(manager.socket("/dyn-42"));
    try {
      const [wMain] = await main.next("welcome");
      const [wCustom] = await custom.next("welcome");
      const [wDyn] = await dyn.next("welcome");
      assert.equal(wMain.nsp, "/");
      assert.deepEqual(wCustom, { id: custom.id, nsp: "/custom", auth: { k: "v" } });
      assert.deepEqual(wDyn, { id: dyn.id, nsp: "/dyn-42" });
      // Each namespace socket has its own id; all ride on the same engine.
      assert.equal(new Set([main.id, custom.id, dyn.id]).size, 3);
      assert.equal(manager.engine.readyState, "open");
      const [a, b, c] = await Promise.all([
        main.timeout(WAIT_MS).emitWithAck("echo", "m"),
        custom.timeout(WAIT_MS).emitWithAck("echo", "c"),
        dyn.timeout(WAIT_MS).emitWithAck("echo", "d"),
      ]);
      assert.deepEqual([a, b, c], ["m", "c", "d"]);
      // Leaving one namespace keeps the others usable.
      custom.disconnect();
      assert.equal(await dyn.timeout(WAIT_MS).emitWithAck("echo", "still"), "still");
    } finally {
      closeAll(main, custom, dyn);
    }
  });

  it("unknown namespace /nope: connect_error Invalid namespace", async () => {
    const socket = client(`${server.url}/nope`);
    try {
      const err = await connectError(socket);
      assert.equal(err.message, "Invalid namespace");
      assert.equal(err.data, undefined);
    } finally {
      closeAll(socket);
    }
  });
});

describe("handshake data", () => {
  it("auth payload is delivered to the server", async () => {
    const auth = { token: "abc", nested: { list: [1, 2] }, flag: false };
    const { socket, welcome } = await connected(server.url, { auth });
    try {
      assert.deepEqual(welcome.auth, auth);
      assert.equal(welcome.recovered, false);
    } finally {
      closeAll(socket);
    }
  });

  it("no auth gives an empty object", async () => {
    const { socket, welcome } = await connected(server.url);
    try {
      assert.deepEqual(welcome.auth, {});
      assert.deepEqual(welcome.query, { foo: null });
    } finally {
      closeAll(socket);
    }
  });

  for (const transports of [["websocket"], ["polling"]]) {
    it(`query parameters reach the handshake (${transports[0]})`, async () => {
      const { socket, welcome } = await connected(server.url, {
        transports,
        query: { foo: "bar baz/ü", other: "1" },
      });
      try {
        assert.deepEqual(welcome.query, { foo: "bar baz/ü" });
      } finally {
        closeAll(socket);
      }
    });
  }
});

describe("middleware", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    it(`rejection on / gives connect_error with message and data (${transports[0]})`, async () => {
      const socket = client(server.url, { transports, auth: { reject: true } });
      try {
        const err = await connectError(socket);
        assert.equal(err.message, "rejected");
        assert.deepEqual(err.data, { reason: "reject requested" });
        assert.equal(socket.connected, false);
      } finally {
        closeAll(socket);
      }
    });
  }

  it("reject must be exactly true", async () => {
    const { socket, welcome } = await connected(server.url, { auth: { reject: "true" } });
    try {
      assert.deepEqual(welcome.auth, { reject: "true" });
    } finally {
      closeAll(socket);
    }
  });

  it("/private without a token is refused with unauthorized and data {code: 401}", async () => {
    const socket = client(`${server.url}/private`);
    try {
      const err = await connectError(socket);
      assert.equal(err.message, "unauthorized");
      assert.deepEqual(err.data, { code: 401 });
    } finally {
      closeAll(socket);
    }
  });

  it("/private with a wrong token is refused", async () => {
    const socket = client(`${server.url}/private`, { auth: { token: "nope" } });
    try {
      const err = await connectError(socket);
      assert.equal(err.message, "unauthorized");
    } finally {
      closeAll(socket);
    }
  });

  it("/private with the token connects", async () => {
    const { socket, welcome } = await connected(`${server.url}/private`, { auth: { token: "secret" } });
    try {
      assert.deepEqual(welcome, { id: socket.id, nsp: "/private" });
    } finally {
      closeAll(socket);
    }
  });

  it("a refused namespace does not harm the others on the same Manager", async () => {
    const manager = new Manager(server.url, { reconnection: false, timeout: WAIT_MS });
    const main = bufferEvents(manager.socket("/"));
    const priv = manager.socket("/private");
    // Listen before awaiting anything: the refusal of /private may arrive
    // before the welcome on /, and an event emitted with no listener is gone.
    const refused = connectError(priv);
    refused.catch(() => {}); // awaited below; not unhandled if the welcome fails first
    try {
      await main.next("welcome");
      const err = await refused;
      assert.equal(err.message, "unauthorized");
      assert.equal(await main.timeout(WAIT_MS).emitWithAck("echo", "ok"), "ok");
    } finally {
      closeAll(main, priv);
    }
  });
});
