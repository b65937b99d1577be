// Test harness of the mixed cluster: starts Node and Rust nodes on one Redis under a key prefix
// of their own, connects socket.io-client sockets, and waits with timeouts so that a broken node
// fails a test instead of hanging it.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import { Redis } from "ioredis";
import { decode as msgpackDecode } from "notepack.io";

const here = path.dirname(fileURLToPath(import.meta.url));
export const SUITE_DIR = path.resolve(here, "..");
export const REPO_ROOT = path.resolve(SUITE_DIR, "../..");
export const CLUSTER_NODE_BIN = path.resolve(
  REPO_ROOT,
  process.env.IGNIS_CLUSTER_NODE_BIN ?? "target/debug/examples/cluster-node",
);
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** How long one expectation may take. */
export const WAIT_MS = 4000;

/** A key prefix no other run uses, so parallel runs never see each other's messages. */
export const randomKey = () => `ignis-test-${randomBytes(6).toString("hex")}`;

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts one node and resolves once it printed `listening on <port>`.
 * @param {{kind: "node"|"rust", name: string, key: string, redisUrl?: string, extraArgs?: string[]}} o
 */
export async function startNode({ kind, name, key, redisUrl = REDIS_URL, extraArgs = [], startTimeoutMs = 15000 }) {
  const args = ["--port", "0", "--redis-url", redisUrl, "--key", key, "--name", name, ...extraArgs];
  const [cmd, argv] =
    kind === "node" ? [process.execPath, [path.join(SUITE_DIR, "lib/node-server.js"), ...args]] : [CLUSTER_NODE_BIN, args];
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let output = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not print "listening on <port>" within ${startTimeoutMs} ms:\n${output}`));
    }, startTimeoutMs);
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      output += chunk;
      const m = /listening on (\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.stderr.setEncoding("utf8").on("data", (c) => {
      output += c;
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited early (code ${code}, signal ${signal}):\n${output}`));
    });
  });
  child.stdout.resume();
  child.stderr.resume();
  return {
    name,
    kind,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) {
        running.delete(child);
        return;
      }
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(timer);
      running.delete(child);
    },
  };
}

/** Runs a process to its end; resolves with its exit code and output. */
export function runToEnd(cmd, args, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (c) => (output += c));
    child.stderr.setEncoding("utf8").on("data", (c) => (output += c));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} did not end within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A connected socket.io-client socket whose events are buffered from the start, with
 * `next(event)`, `pending(event)`, `drain(event)` and `request(event, payload)` (emit with ack).
 */
export async function connect(node, { nsp = "/", ...opts } = {}) {
  const url = nsp === "/" ? node.url : `${node.url}${nsp}`;
  const socket = io(url, { forceNew: true, reconnection: false, timeout: WAIT_MS, transports: ["websocket"], ...opts });
  const buffered = new Map();
  const waiters = new Map();
  socket.onAny((event, ...args) => {
    const w = waiters.get(event);
    if (w && w.length) {
      w.shift()(args);
      return;
    }
    if (!buffered.has(event)) buffered.set(event, []);
    buffered.get(event).push(args);
  });
  socket.next = (event, ms = WAIT_MS) => {
    const queue = buffered.get(event);
    if (queue && queue.length) return Promise.resolve(queue.shift());
    let resolver;
    const p = new Promise((resolve) => {
      resolver = resolve;
      if (!waiters.has(event)) waiters.set(event, []);
      waiters.get(event).push(resolve);
    });
    return withTimeout(p, ms, `event "${event}" on a client of ${node.name}`).catch((err) => {
      const w = waiters.get(event);
      const i = w.indexOf(resolver);
      if (i >= 0) w.splice(i, 1);
      throw err;
    });
  };
  socket.pending = (event) => (buffered.get(event) ?? []).length;
  socket.drain = (event) => {
    const queue = buffered.get(event) ?? [];
    buffered.delete(event);
    return queue;
  };
  socket.request = (event, payload, ms = WAIT_MS * 2) =>
    socket.timeout(ms).emitWithAck(event, payload);
  socket.node = node.name;
  socket.nsp = nsp;
  const disconnected = new Promise((resolve) => socket.once("disconnect", (reason) => resolve(reason)));
  socket.gone = () => withTimeout(disconnected, WAIT_MS, `disconnect of a client of ${node.name}`);
  await withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    }),
    WAIT_MS,
    `connection to ${node.name}`,
  );
  const [welcome] = await socket.next("welcome");
  socket.welcome = welcome;
  return socket;
}

/** Resolves true if `event` arrives within `ms`. */
export async function arrives(socket, event, ms) {
  try {
    await socket.next(event, ms);
    return true;
  } catch {
    return false;
  }
}

/** A message of the adapter protocols as the suite reads it: JSON or MessagePack. */
export function decodeMessage(payload) {
  try {
    return payload[0] === 0x7b ? JSON.parse(payload.toString()) : msgpackDecode(payload);
  } catch {
    return undefined;
  }
}

/**
 * Watches the Redis channels the nodes use, on a connection of its own: `patterns` are
 * PSUBSCRIBEd (classic pub/sub), `shardChannels` SSUBSCRIBEd (sharded pub/sub). `messages` holds
 * `{channel, payload}` in arrival order; `command(...args)` runs a command (e.g. PUBSUB).
 */
export async function redisSpy({ patterns = [], shardChannels = [], redisUrl = REDIS_URL } = {}) {
  const sub = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const cmd = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  for (const c of [sub, cmd]) c.on("error", () => {});
  await Promise.all([sub.connect(), cmd.connect()]);
  const messages = [];
  sub.on("pmessageBuffer", (_pattern, channel, payload) => messages.push({ channel: channel.toString(), payload }));
  sub.on("smessageBuffer", (channel, payload) => messages.push({ channel: channel.toString(), payload }));
  if (patterns.length) await sub.psubscribe(...patterns);
  for (const c of shardChannels) await sub.ssubscribe(c);
  return {
    messages,
    async ssubscribe(channel) {
      await sub.ssubscribe(channel);
    },
    command: (...args) => cmd.call(...args),
    async close() {
      sub.disconnect();
      cmd.disconnect();
    },
  };
}
