// Node reference conformance server for the official protocol test suites
// (socketio/engine.io-protocol and socketio/socket.io-protocol, folder test-suite), configured as
// their READMEs describe. Used by scripts/official-suites.sh --server node to validate the runner.
// Usage: node reference.js --suite engine.io|socket.io [--port 3000]
import { createServer } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
// The Node packages come from the interop suite's locked dependencies.
const require = createRequire(path.resolve(here, "../../tests/interop/package.json"));

const { values } = parseArgs({
  options: {
    suite: { type: "string" },
    port: { type: "string", default: "3000" },
  },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port ${values.port}`);
  process.exit(2);
}

const httpServer = createServer();

if (values.suite === "engine.io") {
  const engine = require("engine.io");
  const server = engine.attach(httpServer, {
    path: "/engine.io/",
    pingInterval: 300,
    pingTimeout: 200,
    maxHttpBufferSize: 1e6,
    cors: { origin: "*" },
  });
  server.on("connection", (socket) => {
    socket.on("data", (...args) => socket.send(...args));
  });
} else if (values.suite === "socket.io") {
  const { Server } = require("socket.io");
  const io = new Server(httpServer, {
    path: "/socket.io/",
    pingInterval: 300,
    pingTimeout: 200,
    maxHttpBufferSize: 1e6,
    connectTimeout: 1000,
    cors: { origin: "*" },
  });
  io.on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth);
    socket.on("message", (...args) => socket.emit("message-back", ...args));
    socket.on("message-with-ack", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
  });
  io.of("/custom").on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth);
  });
} else {
  console.error("--suite must be engine.io or socket.io");
  process.exit(2);
}

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
