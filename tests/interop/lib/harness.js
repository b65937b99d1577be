// Test harness: starts the server under test (the Rust interop example or the Node reference),
// and offers waits that always time out so a broken server fails a test instead of hanging it.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
export const INTEROP_DIR = path.resolve(here, "..");
export const REPO_ROOT = path.resolve(INTEROP_DIR, "../..");

export const SERVER_KIND = process.env.INTEROP_SERVER ?? "rust";

/** Default time a single expectation may take before the test fails. */
export const WAIT_MS = 3000;

function serverCommand(parser) {
  const args = ["--port", "0", "--parser", parser];
  if (SERVER_KIND === "node") {
    return { cmd: process.execPath, args: [path.join(INTEROP_DIR, "reference/server.js"), ...args] };
  }
  if (SERVER_KIND === "rust") {
    const bin = path.resolve(REPO_ROOT, process.env.IGNIS_INTEROP_BIN ?? "target/debug/examples/interop");
    if (!existsSync(bin)) {
      throw new Error(
        `interop server binary not found at ${bin}: build it with ` +
          "`cargo build --example interop -p ignis-socketio` or set IGNIS_INTEROP_BIN",
      );
    }
    return { cmd: bin, args };
  }
  throw new Error(`INTEROP_SERVER must be "rust" or "node", got "${SERVER_KIND}"`);
}

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts one server process and resolves once it printed `listening on <port>`.
 * @returns {Promise<{port:number, url:string, base:string, stop:() => Promise<void>}>}
 */
export async function startServer({ parser = "json", startTimeoutMs = 15000 } = {}) {
  const { cmd, args } = serverCommand(parser);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let output = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server did not print "listening on <port>" within ${startTimeoutMs} ms:\n${output}`));
    }, startTimeoutMs);
    const onData = (chunk) => {
      output += chunk;
      const m = /listening on (\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", (c) => {
      output += c;
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${signal}):\n${output}`));
    });
  });
  // Drain output so a chatty server never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    base: `${url}/socket.io/`,
    wsBase: `ws://127.0.0.1:${port}/socket.io/`,
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

/** Rejects after `ms` with a message naming what was awaited. */
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

/** Resolves with the argument list of the next `event` emitted by `emitter`. */
export function once(emitter, event, ms = WAIT_MS) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args);
    emitter.once(event, handler);
  });
  return withTimeout(p, ms, `"${event}"`).catch((err) => {
    emitter.off(event, handler);
    throw err;
  });
}

/** Resolves with `true` if `event` fires within `ms`, `false` otherwise. */
export async function firesWithin(emitter, event, ms) {
  try {
    await once(emitter, event, ms);
    return true;
  } catch {
    return false;
  }
}

/**
 * A socket.io-client socket whose received events are buffered from creation on, so a test can
 * await them in order without racing the listener registration.
 */
export function client(url, opts = {}) {
  return bufferEvents(
    io(url, {
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...opts,
    }),
  );
}

/** Adds `next(event)`, `pending(event)` and `drain(event)` to a socket.io-client socket. */
export function bufferEvents(socket) {
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
  /** Next arguments of `event` (buffered or future). */
  socket.next = (event, ms = WAIT_MS) => {
    const queue = buffered.get(event);
    if (queue && queue.length) return Promise.resolve(queue.shift());
    let resolver;
    const p = new Promise((resolve) => {
      resolver = resolve;
      if (!waiters.has(event)) waiters.set(event, []);
      waiters.get(event).push(resolve);
    });
    return withTimeout(p, ms, `event "${event}"`).catch((err) => {
      const w = waiters.get(event);
      const i = w.indexOf(resolver);
      if (i >= 0) w.splice(i, 1);
      throw err;
    });
  };
  /** Events of this name received so far and not yet consumed. */
  socket.pending = (event) => (buffered.get(event) ?? []).length;
  socket.drain = (event) => {
    const queue = buffered.get(event) ?? [];
    buffered.delete(event);
    return queue;
  };
  return socket;
}

/** Connects and resolves once `welcome` arrived; returns the socket and its welcome payload. */
export async function connected(url, opts = {}) {
  const socket = client(url, opts);
  await once(socket, "connect").catch((err) => {
    socket.close();
    throw err;
  });
  const [welcome, offset] = await socket.next("welcome");
  return { socket, welcome, offset };
}

/**
 * The reference server runs with connection state recovery, so every plain (non-volatile,
 * non-acknowledged) event it emits carries its offset as a trailing string argument. Returns the
 * event arguments without it, failing when it is missing.
 */
export function withoutOffset(args) {
  const last = args[args.length - 1];
  if (typeof last !== "string" || last.length === 0) {
    throw new Error(`expected a trailing recovery offset, got ${JSON.stringify(args)}`);
  }
  return args.slice(0, -1);
}

/** Polls `fn` until it returns a truthy value, or fails after `ms`. */
export async function eventually(fn, ms = WAIT_MS, what = "condition") {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

export function closeAll(...sockets) {
  for (const s of sockets) s?.close?.();
}
