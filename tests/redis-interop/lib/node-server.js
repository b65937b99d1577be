// The Node node of the mixed cluster: socket.io 4.8 with @socket.io/redis-adapter 8.3 over ioredis,
// or, with `--mode sharded`, with its sharded adapter over node-redis 4 (the client its README
// documents for it), with the same behaviour as crates/ignis-redis/examples/cluster-node.rs (see
// CONTRACT.md).
// Several comma-separated Redis URLs name the nodes of a Redis Cluster: node-redis's
// createCluster for the sharded adapter, ioredis's Cluster for the classic one.
// With `--mode streams`, @socket.io/redis-streams-adapter over ioredis (stream `{key}-stream`,
// channel prefix `{key}`, sessions under `{key}:session:`), and `--recovery` turns connection
// state recovery on (60 s).
// Usage: node lib/node-server.js --port 0 --redis-url redis://127.0.0.1:6379 --key socket.io --name node
//        [--mode classic|sharded|streams] [--subscription-mode dynamic|dynamic-private|static]
//        [--specific-response-channel] [--recovery]
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { Cluster, Redis } from "ioredis";
import { createClient, createCluster } from "redis";
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
    "specific-response-channel": { type: "boolean", default: false },
    recovery: { type: "boolean", default: false },
  },
});
const NODE = opts.name;
const KEY = opts.key;
const SHARDED = opts.mode === "sharded";
const STREAMS = opts.mode === "streams";
/** The namespaces every node of the contract serves. */
const NAMESPACES = ["/", "/chat"];

const URLS = opts["redis-url"].split(",").filter(Boolean);
const CLUSTER = URLS.length > 1;

/**
 * In a Redis Cluster the client spreads commands over several connections, so no one round trip
 * confirms the ones before it: the promises of the commands that must have taken effect
 * (subscriptions, the emitter's publications, neither awaited by the adapter or the emitter) are
 * kept, and `settled` waits for them.
 */
function track(client, methods) {
  const pending = new Set();
  for (const m of methods) {
    const original = client[m].bind(client);
    client[m] = (...args) => {
      const p = Promise.resolve(original(...args));
      const entry = p.catch(() => {}).finally(() => pending.delete(entry));
      pending.add(entry);
      return p;
    };
  }
  client.settled = async () => {
    while (pending.size) await Promise.all([...pending]);
  };
  return client;
}

let pubClient, subClient, emitterClient, adapter, emitter;
if (STREAMS) {
  pubClient = CLUSTER
    ? new Cluster(
        URLS.map((u) => {
          const url = new URL(u);
          return { host: url.hostname, port: Number(url.port || 6379) };
        }),
      )
    : new Redis(URLS[0]);
  pubClient.on("error", () => {});
  // The adapter makes its own reading and subscribing connections; these two only stay for
  // the shared start and stop below.
  subClient = pubClient.duplicate();
  emitterClient = pubClient.duplicate();
  for (const c of [subClient, emitterClient]) c.on("error", () => {});
  adapter = createStreamsAdapter(pubClient, {
    streamName: `${KEY}-stream`,
    channelPrefix: KEY,
    sessionKeyPrefix: `${KEY}:session:`,
  });
  emitter = null;
} else if (SHARDED) {
  pubClient = CLUSTER ? createCluster({ rootNodes: URLS.map((url) => ({ url })) }) : createClient({ url: URLS[0] });
  subClient = pubClient.duplicate();
  emitterClient = pubClient.duplicate();
  for (const c of [pubClient, subClient, emitterClient]) c.on("error", () => {});
  if (CLUSTER) track(subClient, ["sSubscribe", "sUnsubscribe"]);
  await Promise.all([pubClient.connect(), subClient.connect(), emitterClient.connect()]);
  adapter = createShardedAdapter(pubClient, subClient, { channelPrefix: KEY, subscriptionMode: opts["subscription-mode"] });
  // No official emitter speaks the sharded protocol (socket.io-redis-emitter#127): the `emitter`
  // request fails on this node in this mode.
  emitter = null;
} else {
  if (CLUSTER) {
    const nodes = URLS.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    pubClient = new Cluster(nodes);
  } else {
    pubClient = new Redis(URLS[0]);
  }
  subClient = pubClient.duplicate();
  emitterClient = pubClient.duplicate();
  for (const c of [pubClient, subClient, emitterClient]) c.on("error", () => {});
  if (CLUSTER) {
    track(subClient, ["subscribe", "psubscribe", "unsubscribe", "punsubscribe"]);
    track(emitterClient, ["publish"]);
  }
  adapter = createAdapter(pubClient, subClient, {
    key: KEY,
    requestsTimeout: Number(opts["requests-timeout-ms"]),
    publishOnSpecificResponseChannel: opts["specific-response-channel"],
  });
  emitter = new Emitter(emitterClient, { key: KEY });
}

/**
 * Resolves once every subscription the adapter asked for is active: the subscriber connection
 * handles commands in order, so a subscription of our own confirms the ones before it.
 */
async function subscribed() {
  if (STREAMS) {
    // No room channels; the adapter's own connections are waited for once, at start.
  } else if (CLUSTER) {
    await subClient.settled();
  } else if (SHARDED) {
    const probe = `${KEY}-probe-${randomBytes(8).toString("hex")}`;
    await subClient.sSubscribe(probe, () => {});
    await subClient.sUnsubscribe(probe);
  } else {
    await subClient.ping().catch(() => {});
  }
}

const httpServer = createServer();
const io = new Server(httpServer, {
  adapter,
  ...(opts.recovery ? { connectionStateRecovery: { maxDisconnectionDuration: 60_000, skipMiddlewares: true } } : {}),
});

const list = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
function select(nsp, req = {}) {
  const to = list(req.to);
  const except = list(req.except);
  let b = to.length ? nsp.to(to) : nsp.except([]);
  if (except.length) b = b.except(except);
  if (req.local) b = b.local;
  return b;
}
const error = (e) => ({ error: e?.message ?? String(e) });
const socketValue = (s) => ({ id: s.id, rooms: [...s.rooms], data: s.data });

// Every namespace of the contract has the same handlers, each scoped to its namespace.
for (const name of NAMESPACES) serve(io.of(name));

function serve(nsp) {
  nsp.on("ping-node", (...args) => {
    const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
    nsp.local.emit("server-event", NODE, "ping-node", args, nsp.name);
    if (cb) cb({ node: NODE, args, nsp: nsp.name });
  });
  nsp.on("connection", (socket) => onConnection(nsp, socket));
}

function onConnection(nsp, socket) {
  // A recovered socket keeps the data it had, wherever it was set.
  if (!socket.recovered) socket.data = { node: NODE };
  socket.emit("welcome", { id: socket.id, node: NODE, nsp: nsp.name });
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
    select(nsp, req).emit(req.event, ...args);
    return "ok";
  });
  on("fetch", async (req) => (await select(nsp, req).fetchSockets()).map(socketValue));
  on("socketsJoin", async (req) => {
    await select(nsp, req).socketsJoin(list(req.rooms));
    return "ok";
  });
  on("socketsLeave", async (req) => {
    await select(nsp, req).socketsLeave(list(req.rooms));
    return "ok";
  });
  on("disconnectSockets", async (req) => {
    await select(nsp, req).disconnectSockets(!!req.close);
    return "ok";
  });
  on("allRooms", async () => {
    // The sharded and streams adapters have no allRooms.
    if (typeof nsp.adapter.allRooms !== "function") return error("allRooms is not supported by this adapter");
    return [...(await nsp.adapter.allRooms())];
  });
  on("serverCount", async () => nsp.adapter.serverCount());
  on("serverSideEmit", async (req) => {
    if (!req.ack) {
      nsp.serverSideEmit(req.event, ...(req.args ?? []));
      return { responses: [] };
    }
    try {
      const responses = await nsp.serverSideEmitWithAck(req.event, ...(req.args ?? []));
      return { responses };
    } catch (e) {
      return error(e);
    }
  });
  on("broadcastWithAck", async (req) => {
    try {
      const responses = await select(nsp, req)
        .timeout(req.timeout ?? 2000)
        .emitWithAck(req.event, ...(req.args ?? []));
      return { responses };
    } catch (e) {
      return { error: e.message, responses: [] };
    }
  });
  on("emitter", async (req) => {
    if (!emitter) return error("no Node emitter for this adapter");
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
    if (CLUSTER) await emitterClient.settled();
    else await emitterClient.ping();
    return "ok";
  });
}

// The adapter subscribes without waiting.
await subscribed();
// The streams adapter subscribes and starts reading the stream (from its end) on connections of
// its own, which cannot be probed.
if (STREAMS) await new Promise((r) => setTimeout(r, 500));
await new Promise((resolve) => httpServer.listen(Number(opts.port), "127.0.0.1", resolve));
if (!SHARDED && !STREAMS) await subClient.subscribe(`${KEY}-ready-probe`).catch(() => {});
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
