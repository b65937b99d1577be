// The Node node of the mixed cluster: socket.io 4.8 with @socket.io/redis-adapter 8.3 over ioredis,
// or, with `--mode sharded`, with its sharded adapter over node-redis 4 (the client its README
// documents for it), with the same behaviour as crates/ignis-redis/examples/cluster-node.rs (see
// CONTRACT.md).
// Usage: node lib/node-server.js --port 0 --redis-url redis://127.0.0.1:6379 --key socket.io --name node
//        [--mode classic|sharded] [--subscription-mode dynamic|dynamic-private|static]
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { randomBytes } from "node:crypto";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    key: { type: "string", default: "socket.io" },
    name: { type: "string", default: "node" },
    "requests-timeout-ms": { type: "string", default: "5000" },
    mode: { type: "string", default: "classic" },
    "subscription-mode": { type: "string", default: "dynamic" },
  },
});
const NODE = opts.name;
const KEY = opts.key;
const SHARDED = opts.mode === "sharded";

let pubClient, subClient, emitterClient, adapter, emitter;
if (SHARDED) {
  pubClient = createClient({ url: opts["redis-url"] });
  subClient = pubClient.duplicate();
  emitterClient = pubClient.duplicate();
  for (const c of [pubClient, subClient, emitterClient]) c.on("error", () => {});
  await Promise.all([pubClient.connect(), subClient.connect(), emitterClient.connect()]);
  adapter = createShardedAdapter(pubClient, subClient, { channelPrefix: KEY, subscriptionMode: opts["subscription-mode"] });
  // No official emitter speaks the sharded protocol (socket.io-redis-emitter#127): the `emitter`
  // request fails on this node in this mode.
  emitter = null;
} else {
  pubClient = new Redis(opts["redis-url"]);
  subClient = pubClient.duplicate();
  emitterClient = pubClient.duplicate();
  for (const c of [pubClient, subClient, emitterClient]) c.on("error", () => {});
  adapter = createAdapter(pubClient, subClient, { key: KEY, requestsTimeout: Number(opts["requests-timeout-ms"]) });
  emitter = new Emitter(emitterClient, { key: KEY });
}

/**
 * Resolves once every subscription the adapter asked for is active: the subscriber connection
 * handles commands in order, so a subscription of our own confirms the ones before it.
 */
async function subscribed() {
  if (SHARDED) {
    const probe = `${KEY}-probe-${randomBytes(8).toString("hex")}`;
    await subClient.sSubscribe(probe, () => {});
    await subClient.sUnsubscribe(probe);
  } else {
    await subClient.ping().catch(() => {});
  }
}

const httpServer = createServer();
const io = new Server(httpServer, { adapter });

const list = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
function select(req = {}) {
  let op = io.of("/");
  const to = list(req.to);
  const except = list(req.except);
  let b = to.length ? op.to(to) : op.except([]);
  if (except.length) b = b.except(except);
  if (req.local) b = b.local;
  return b;
}
const error = (e) => ({ error: e?.message ?? String(e) });
const socketValue = (s) => ({ id: s.id, rooms: [...s.rooms], data: s.data });

io.on("ping-node", (...args) => {
  const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
  io.local.emit("server-event", NODE, "ping-node", args);
  if (cb) cb({ node: NODE, args });
});

io.on("connection", (socket) => {
  socket.data = { node: NODE };
  socket.emit("welcome", { id: socket.id, node: NODE });
  const on = (event, f) =>
    socket.on(event, async (req, ack) => {
      let answer;
      try {
        answer = await f(req);
      } catch (e) {
        answer = error(e);
      }
      if (typeof ack === "function") ack(answer);
    });
  on("join", async (req) => {
    socket.join(list(req));
    // A room may have a sharded channel of its own.
    await subscribed();
    return [...socket.rooms];
  });
  on("leave", (req) => {
    for (const r of list(req)) socket.leave(r);
    return [...socket.rooms];
  });
  on("rooms", () => [...socket.rooms]);
  on("broadcast", (req) => {
    // JSON cannot carry a Date: `dateMs` asks for one more argument that is a Date.
    const args = [...(req.args ?? [])];
    if (req.dateMs !== undefined) args.push(new Date(req.dateMs));
    select(req).emit(req.event, ...args);
    return "ok";
  });
  on("fetch", async (req) => (await select(req).fetchSockets()).map(socketValue));
  on("socketsJoin", async (req) => {
    await select(req).socketsJoin(list(req.rooms));
    return "ok";
  });
  on("socketsLeave", async (req) => {
    await select(req).socketsLeave(list(req.rooms));
    return "ok";
  });
  on("disconnectSockets", async (req) => {
    await select(req).disconnectSockets(!!req.close);
    return "ok";
  });
  on("allRooms", async () => {
    // The sharded adapter has no allRooms.
    if (typeof io.of("/").adapter.allRooms !== "function") return error("allRooms is not supported by this adapter");
    return [...(await io.of("/").adapter.allRooms())];
  });
  on("serverCount", async () => io.of("/").adapter.serverCount());
  on("serverSideEmit", async (req) => {
    if (!req.ack) {
      io.serverSideEmit(req.event, ...(req.args ?? []));
      return { responses: [] };
    }
    try {
      const responses = await io.serverSideEmitWithAck(req.event, ...(req.args ?? []));
      return { responses };
    } catch (e) {
      return error(e);
    }
  });
  on("broadcastWithAck", async (req) => {
    try {
      const responses = await select(req)
        .timeout(req.timeout ?? 2000)
        .emitWithAck(req.event, ...(req.args ?? []));
      return { responses };
    } catch (e) {
      return { error: e.message, responses: [] };
    }
  });
  on("emitter", async (req) => {
    if (!emitter) return error("no Node emitter for the sharded adapter");
    let e = req.nsp ? emitter.of(req.nsp) : emitter;
    const to = list(req.to);
    const except = list(req.except);
    let b = to.length ? e.to(to) : e;
    if (except.length) b = b.except(except);
    switch (req.op ?? "emit") {
      case "emit":
        b.emit(req.event, ...(req.args ?? []));
        break;
      case "socketsJoin":
        b.socketsJoin(list(req.rooms));
        break;
      case "socketsLeave":
        b.socketsLeave(list(req.rooms));
        break;
      case "disconnectSockets":
        b.disconnectSockets(!!req.close);
        break;
      case "serverSideEmit":
        b.serverSideEmit(req.event, ...(req.args ?? []));
        break;
      default:
        return error(`unknown emitter op ${req.op}`);
    }
    // The emitter publishes on its own connection: a round trip on it means Redis has the message.
    await emitterClient.ping();
    return "ok";
  });
});

// The adapter subscribes without waiting.
await subscribed();
await new Promise((resolve) => httpServer.listen(Number(opts.port), "127.0.0.1", resolve));
if (!SHARDED) await subClient.subscribe(`${KEY}-ready-probe`).catch(() => {});
console.log(`listening on ${httpServer.address().port}`);

const stop = () => {
  io.close();
  for (const c of [pubClient, subClient, emitterClient]) {
    Promise.resolve()
      .then(() => c.disconnect())
      .catch(() => {});
  }
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
