// Reference implementation of the interop test-server contract (CONTRACT.md) on the real
// Node socket.io 4.8 server. The interop suite must pass against it: that is what proves the
// tests assert the reference behaviour, which the Rust server has to reproduce.
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

let values;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      parser: { type: "string", default: "json" },
    },
  }));
} catch (err) {
  console.error(err.message);
  process.exit(2);
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port ${values.port}`);
  process.exit(2);
}
if (values.parser !== "json" && values.parser !== "msgpack") {
  console.error(`invalid --parser ${values.parser} (expected json or msgpack)`);
  process.exit(2);
}

const httpServer = createServer();
const io = new Server(httpServer, {
  path: "/socket.io/",
  pingInterval: 2000,
  pingTimeout: 1000,
  upgradeTimeout: 2000,
  connectTimeout: 2000,
  maxHttpBufferSize: 1e6,
  cors: { origin: "*" },
  perMessageDeflate: { threshold: 1024 },
  httpCompression: { threshold: 1024 },
  connectionStateRecovery: { maxDisconnectionDuration: 10000, skipMiddlewares: true },
  ...(values.parser === "msgpack" ? { parser: msgpackParser } : {}),
});

// `echo` answers through the ack when the client asked for one, otherwise with an `echo` event.
function onEcho(socket) {
  socket.on("echo", (...args) => {
    const last = args[args.length - 1];
    if (typeof last === "function") {
      last(...args.slice(0, -1));
    } else {
      socket.emit("echo", ...args);
    }
  });
}

// A client may omit the acknowledgement callback; the contract then ignores the event rather than
// letting a TypeError crash the process.
const isFn = (f) => typeof f === "function";
const isRoom = (r) => typeof r === "string";
const isCount = (n, max) => Number.isInteger(n) && n >= 0 && n <= max;

io.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.reject === true) {
    const err = new Error("rejected");
    err.data = { reason: "reject requested" };
    return next(err);
  }
  next();
});

io.on("connection", (socket) => {
  socket.emit("welcome", {
    id: socket.id,
    nsp: "/",
    auth: socket.handshake.auth,
    recovered: socket.recovered,
    query: { foo: socket.handshake.query.foo ?? null },
  });

  onEcho(socket);

  socket.on("request-ack", (timeoutMs) => {
    if (!isCount(timeoutMs, 60000)) return;
    socket.timeout(timeoutMs).emit("need-ack", "question", (err, answer) => {
      socket.emit("ack-result", err ? { error: "timeout" } : { answer });
    });
  });

  socket.on("join", (room, ack) => {
    if (!isFn(ack) || !isRoom(room)) return;
    socket.join(room);
    ack([...socket.rooms]);
  });
  socket.on("leave", (room, ack) => {
    if (!isFn(ack) || !isRoom(room)) return;
    socket.leave(room);
    ack([...socket.rooms]);
  });
  socket.on("get-rooms", (ack) => isFn(ack) && ack([...socket.rooms]));

  socket.on("to-room", (room, event, ...args) => {
    if (isRoom(room) && typeof event === "string") io.to(room).emit(event, ...args);
  });
  socket.on("broadcast", (event, ...args) => {
    if (typeof event === "string") socket.broadcast.emit(event, ...args);
  });
  socket.on("except-room", (room, event, ...args) => {
    if (isRoom(room) && typeof event === "string") io.except(room).emit(event, ...args);
  });

  socket.on("broadcast-with-ack", (ack) => {
    if (!isFn(ack)) return;
    io.timeout(1000).emit("bcast-ack-request", (err, responses) => {
      ack({ timedOut: !!err, responses: [...responses].sort() });
    });
  });

  socket.on("fetch-sockets", async (ack) => {
    if (!isFn(ack)) return;
    const sockets = await io.fetchSockets();
    ack(sockets.map((s) => s.id).sort());
  });

  socket.on("sockets-join", (room, ack) => {
    if (!isFn(ack) || !isRoom(room)) return;
    io.socketsJoin(room);
    ack();
  });
  socket.on("sockets-leave", (room, ack) => {
    if (!isFn(ack) || !isRoom(room)) return;
    io.socketsLeave(room);
    ack();
  });
  socket.on("disconnect-room", (room) => {
    if (isRoom(room)) io.in(room).disconnectSockets();
  });

  socket.on("server-binary", () => {
    socket.emit("server-binary", Buffer.from([1, 2, 3]), {
      nested: Buffer.from([4, 5]),
      list: [Buffer.from([6])],
    });
  });

  socket.on("disconnect-me", () => socket.disconnect());
  socket.on("close-transport", () => socket.conn.close());

  socket.on("volatile-burst", (n) => {
    if (!isCount(n, 10000)) return;
    for (let i = 0; i < n; i++) socket.volatile.emit("vol", i);
  });

  socket.on("big-plain", (n) => {
    if (isCount(n, 10_000_000)) socket.compress(false).emit("big", "x".repeat(n));
  });
  socket.on("big", (n) => {
    if (isCount(n, 10_000_000)) socket.emit("big", "x".repeat(n));
  });
});

const custom = io.of("/custom");
custom.on("connection", (socket) => {
  socket.emit("welcome", { id: socket.id, nsp: "/custom", auth: socket.handshake.auth });
  onEcho(socket);
});

io.of(/^\/dyn-\d+$/).on("connection", (socket) => {
  socket.emit("welcome", { id: socket.id, nsp: socket.nsp.name });
  onEcho(socket);
});

const priv = io.of("/private");
priv.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === "secret") return next();
  const err = new Error("unauthorized");
  err.data = { code: 401 };
  next(err);
});
priv.on("connection", (socket) => {
  socket.emit("welcome", { id: socket.id, nsp: "/private" });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
