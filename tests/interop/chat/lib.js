// The chat under test: the real `ignis-chat` binary (IGNIS_CHAT_BIN) started on a free port with a
// data directory of its own, accounts signed up over REST, and the real socket.io-client connected
// to `/io` and authenticated through the component's flow.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { REPO_ROOT, client, once, sleep } from "../lib/harness.js";

/** How long a single expectation of the chat may take. */
export const WAIT_MS = 5000;
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** The PostgreSQL server of the cluster tests (trust auth for `postgres`). */
export const PG = { host: "127.0.0.1", port: "5432", user: "postgres" };

const running = new Set();
const dataDirs = new Set();
const databases = new Set();
// A test file that fails or is cut short leaves no process, data directory or database behind.
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  for (const db of databases) {
    try {
      db.drop();
    } catch {
      // Best effort: the server may be gone too.
    }
  }
});

let counter = 0;
/** A name no other test of this run uses. */
export function unique(prefix) {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}_${Date.now().toString(36)}`;
}

function binary() {
  const bin = path.resolve(REPO_ROOT, process.env.IGNIS_CHAT_BIN ?? "target/debug/ignis-chat");
  if (!existsSync(bin)) {
    throw new Error(`ignis-chat not found at ${bin}: build it with \`cargo build -p ignis-chat\` or set IGNIS_CHAT_BIN`);
  }
  return bin;
}

/**
 * Starts one chat node. Options: `graceMs` (presence grace), `heartbeatMs`, `databaseUrl` (default
 * SQLite in the temp data directory), `redisKey` (joins the Redis at REDIS_URL), `jwtSecret`,
 * `dataDir` (another node's, which that node removes; default a new temporary one).
 */
export async function startChat({ graceMs = 1000, heartbeatMs, databaseUrl, redisKey, jwtSecret, dataDir: shared } = {}) {
  const dataDir = shared ?? mkdtempSync(path.join(tmpdir(), "ignis-chat-interop-"));
  if (!shared) dataDirs.add(dataDir);
  const args = ["--port", "0", "--data-dir", dataDir, "--presence-grace-ms", String(graceMs)];
  if (heartbeatMs !== undefined) args.push("--node-heartbeat-ms", String(heartbeatMs));
  if (databaseUrl) args.push("--database-url", databaseUrl);
  if (redisKey) args.push("--redis-url", REDIS_URL, "--redis-key", redisKey);
  if (jwtSecret) args.push("--jwt-secret", jwtSecret);
  const child = spawn(binary(), args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
  let exit = null;
  const exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      running.delete(child);
      exit = { code, signal };
      resolve(exit);
    }),
  );
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ignis-chat did not start within 20 s:\n${stdout}${stderr}`)), 20000);
    child.stdout.on("data", () => {
      const m = /listening on (\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`ignis-chat exited (code ${code}, signal ${signal}):\n${stdout}${stderr}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  // Printed once it listens; it must also answer before a test begins.
  const probe = await fetch(`${url}/api/auth/me`);
  assert.equal(probe.status, 401, "an unauthenticated /api/auth/me is a 401");
  let killed = false;
  const chat = {
    port,
    url,
    pid: child.pid,
    dataDir,
    /** The SQLite file of a chat started without `databaseUrl`. */
    dbPath: path.join(dataDir, "chat.db"),
    stderr: () => stderr,
    alive: () => exit === null,
    /** Kills the process (SIGKILL: no clean-up of any kind). */
    async kill() {
      killed = true;
      child.kill("SIGKILL");
      await exited;
    },
    /** Fails when the node died on its own or ever panicked, then stops it and removes its data. */
    async stop() {
      const died = !killed && exit !== null;
      if (exit === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (!shared) {
        rmSync(dataDir, { recursive: true, force: true });
        dataDirs.delete(dataDir);
      }
      if (died) throw new Error(`ignis-chat exited by itself (${JSON.stringify(exit)}):\n${stderr}`);
      if (stderr.includes("panicked")) throw new Error(`ignis-chat panicked:\n${stderr}`);
    },
  };
  return chat;
}

/**
 * A chat node for the tests of a `describe`: started before them, checked and stopped after.
 * With `postgres: true`, on a PostgreSQL database of its own, dropped after.
 */
export function suiteChat({ postgres = false, ...options } = {}) {
  const chat = {};
  let db;
  before(async () => {
    if (postgres) db = createPostgresDatabase();
    Object.assign(chat, await startChat({ ...options, databaseUrl: db?.url ?? options.databaseUrl }));
  });
  after(async () => {
    try {
      await chat.stop?.();
    } finally {
      db?.drop();
    }
  });
  return chat;
}

/** A JSON request: `{status, body, text}`; `token` adds the bearer header. */
export async function rest(chat, method, route, { body, token, raw } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined || raw !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${chat.url}${route}`, {
    method,
    headers,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

/** Like `rest`, and fails unless the answer has `status`. */
export async function restOk(chat, method, route, options = {}, status = 200) {
  const res = await rest(chat, method, route, options);
  assert.equal(res.status, status, `${method} ${route}: ${res.text}`);
  return res.body;
}

/** Signs a new user up: `{token, user, id}`. */
export async function signUp(chat, name, extra = {}) {
  const username = unique(name).slice(0, 50);
  const body = await restOk(
    chat,
    "POST",
    "/api/auth/sign-up",
    { body: { username, password: "password-of-" + name, displayName: name, ...extra } },
    201,
  );
  return { token: body.token, user: body.user, id: body.user.id, username };
}

/** Creates a room as `owner`: its id. */
export async function createRoom(chat, owner, { name = "room", isPrivate = false, description } = {}) {
  const room = await restOk(
    chat,
    "POST",
    "/api/chat/rooms",
    { token: owner.token, body: { name, isPrivate, description } },
    201,
  );
  return room.id;
}

/**
 * A socket.io-client socket of `user` on `chat`, authenticated (`authenticate` answered with
 * `authenticated`); received events are buffered (`next`, `pending`, `drain` of the harness).
 */
export async function connect(chat, user, opts = {}) {
  const socket = client(chat.url, {
    path: "/io",
    transports: ["websocket"],
    auth: { token: user.token },
    timeout: WAIT_MS,
    ...opts,
  });
  await once(socket, "connect", WAIT_MS).catch((err) => {
    socket.close();
    throw err;
  });
  socket.emit("authenticate");
  await socket.next("authenticated", WAIT_MS);
  return socket;
}

/** Emits `event` with `payload` (none if `undefined`) and resolves with its acknowledgement. */
export function call(socket, event, ...payload) {
  return socket.timeout(WAIT_MS).emitWithAck(event, ...payload);
}

/** Like `call`, and fails unless the acknowledgement is `{ok: true, …}`. */
export async function callOk(socket, event, payload) {
  const ack = await call(socket, event, payload);
  assert.equal(ack?.ok, true, `${event} ${JSON.stringify(payload)}: ${JSON.stringify(ack)}`);
  return ack;
}

/**
 * Emits `event` and checks that it failed with `code`: in the acknowledgement
 * `{ok: false, error: {code, message}}` and in the `error` event sent to this socket, both the
 * same. Returns the error.
 */
export async function expectFailure(socket, event, payload, code) {
  socket.drain("error");
  const ack = await call(socket, event, ...(payload === undefined ? [] : [payload]));
  const what = `${event} ${JSON.stringify(payload)?.slice(0, 200)}`;
  assert.equal(ack?.ok, false, `${what} must fail: ${JSON.stringify(ack)?.slice(0, 300)}`);
  assert.equal(ack.error?.code, code, `${what}: ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error.message, "string");
  assert.ok(ack.error.message.length > 0, "the error has a message");
  assert.deepEqual(Object.keys(ack).sort(), ["error", "ok"]);
  const [event_] = await socket.next("error", WAIT_MS);
  assert.deepEqual(event_, ack.error, `the error event of ${what} is the acknowledgement's error`);
  return ack.error;
}

/** Waits for the next `event` whose payload satisfies `pred`; others are dropped. */
export async function nextWhere(socket, event, pred, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for a matching "${event}"`);
    const [payload] = await socket.next(event, left);
    if (pred(payload)) return payload;
  }
}

/** The `event` payloads that satisfy `pred` received within `ms` from now (the buffer included). */
export async function collect(socket, event, pred, ms) {
  await sleep(ms);
  return socket
    .drain(event)
    .map(([p]) => p)
    .filter(pred);
}

/** Every page of a history route (`/api/chat/rooms/{id}/messages` or `/api/chat/dm/{id}`). */
export async function allPages(chat, user, route, limit) {
  const pages = [];
  let before;
  for (let i = 0; i < 1000; i++) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set("before", before);
    const page = await restOk(chat, "GET", `${route}?${q}`, { token: user.token });
    assert.ok(Array.isArray(page), `${route} answers an array`);
    pages.push(page);
    if (page.length < limit) return pages;
    before = page[page.length - 1].id;
  }
  throw new Error("history never ends");
}

/**
 * Sends `contents` in order through `socket` as room messages, slowly enough to stay under the
 * rate limit of 20 per second; their acknowledged messages.
 */
export async function sendPaced(socket, roomId, contents) {
  const sent = [];
  for (const content of contents) {
    const started = Date.now();
    const ack = await callOk(socket, "message:send", { roomId, content });
    sent.push(ack.message);
    await sleep(Math.max(0, 70 - (Date.now() - started)));
  }
  return sent;
}

/** Runs SQL on the SQLite file of a running chat (the sqlite3 command-line tool). */
export function sqlite(chat, sql) {
  return execFileSync("sqlite3", ["-cmd", ".timeout 5000", chat.dbPath, sql], { encoding: "utf8" });
}

function psql(sql, db = "postgres") {
  return execFileSync("psql", ["-h", PG.host, "-p", PG.port, "-U", PG.user, "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], {
    encoding: "utf8",
  });
}

/** A PostgreSQL database of its own: `{url, drop()}`. */
export function createPostgresDatabase() {
  const name = unique("ignis_chat_interop").toLowerCase();
  psql(`CREATE DATABASE ${name}`);
  const db = {
    name,
    url: `postgres://${PG.user}@${PG.host}:${PG.port}/${name}`,
    drop() {
      databases.delete(db);
      psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
  databases.add(db);
  return db;
}

/** Closes sockets, ignoring those already closed. */
export function closeAll(...sockets) {
  for (const s of sockets.flat()) s?.close?.();
}
