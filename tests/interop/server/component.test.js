// Edge cases of the Socket.IO component (spec §14.3 #3, #6 and DESIGN.md decisions 5 and 6),
// against the component example of the ignis crate.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { client, once, closeAll } from "../lib/harness.js";
import { startComponentExample } from "../lib/ignis-server.js";

const ioOpts = { path: "/io", transports: ["websocket"] };
const servers = [];
after(async () => {
  for (const s of servers) await s.stop();
});

async function start(args) {
  const s = await startComponentExample(args);
  servers.push(s);
  return s;
}

async function authenticateOn(server) {
  const socket = client(server.url, ioOpts);
  await once(socket, "connect");
  // Registered now: the disconnect may come in the same batch as the reply.
  socket.disconnectReason = once(socket, "disconnect", 5000);
  socket.disconnectReason.catch(() => {});
  socket.emit("authenticate");
  return socket;
}

describe("authenticate handler failures", () => {
  for (const mode of ["error", "panic"]) {
    it(`#3 a handler that fails (${mode}) gives "Failed to authenticate" and a disconnect`, async () => {
      const server = await start(["--auth", mode]);
      const socket = await authenticateOn(server);
      try {
        const [msg] = await socket.next("unauthenticated", 3000);
        assert.equal(msg.message, "Failed to authenticate connection! Please login again!");
        const [reason] = await socket.disconnectReason;
        assert.equal(reason, "io server disconnect");
      } finally {
        closeAll(socket);
      }
    });
  }

  it("a handler that refuses gives \"Invalid token\"", async () => {
    const server = await start(["--auth", "refuse"]);
    const socket = await authenticateOn(server);
    try {
      const [msg] = await socket.next("unauthenticated", 3000);
      assert.equal(msg.message, "Invalid token to authenticate! Please login again!");
    } finally {
      closeAll(socket);
    }
  });
});

describe("rooms and the client-connected handler", () => {
  it("#6 without a validator no room is joined", async () => {
    const server = await start([]);
    const socket = await authenticateOn(server);
    try {
      await socket.next("authenticated", 3000);
      const reply = await socket.timeout(3000).emitWithAck("join", { rooms: ["a", "b"] });
      assert.deepEqual(reply.rooms, [socket.id, "io-default", "io-notification"]);
    } finally {
      closeAll(socket);
    }
  });

  it("with a validator the returned rooms are joined", async () => {
    const server = await start(["--validator"]);
    const socket = await authenticateOn(server);
    try {
      await socket.next("authenticated", 3000);
      const reply = await socket.timeout(3000).emitWithAck("join", { rooms: ["a", "b"] });
      assert.deepEqual(reply.rooms, [socket.id, "io-default", "io-notification", "a", "b"]);
    } finally {
      closeAll(socket);
    }
  });

  it("a panicking client-connected handler never undoes the authentication", async () => {
    const server = await start(["--client-connected", "panic"]);
    const socket = await authenticateOn(server);
    try {
      await socket.next("authenticated", 3000);
      await socket.next("ping", 3000);
      await socket.next("ping", 3000);
      assert.equal(socket.pending("unauthenticated"), 0);
      assert.equal(socket.connected, true);
    } finally {
      closeAll(socket);
    }
  });
});
