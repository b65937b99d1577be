// Starts the real `ignis-chat` binary (IGNIS_CHAT_BIN, default target/debug/ignis-chat) on a
// port of its own with a temp data directory, and drives its page like a person would.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import { REPO_ROOT, startBinary } from "./server.js";

export const CHAT_BIN = path.resolve(REPO_ROOT, process.env.IGNIS_CHAT_BIN ?? "target/debug/ignis-chat");

/** A port nobody listens on now (the chat must come back on the same one after a restart). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A fresh data directory; `remove()` deletes it. */
export async function tempDataDir() {
  const dir = await mkdtemp(path.join(os.tmpdir(), "ignis-chat-browser-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Starts the chat.
 * @param {{port: number, dataDir: string, args?: string[]}} options
 * @returns {Promise<{port: number, url: string, logs: () => string, stop: () => Promise<number|null>}>}
 */
export async function startChat({ port, dataDir, args = [] }) {
  if (!existsSync(CHAT_BIN)) {
    throw new Error(`ignis-chat not found at ${CHAT_BIN}: build it with \`cargo build -p ignis-chat\` or set IGNIS_CHAT_BIN`);
  }
  return startBinary({
    name: "ignis-chat",
    bin: CHAT_BIN,
    args: ["--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir, ...args],
    rustLog: "warn",
    startMs: 15_000,
  });
}

/** A JSON call of the chat's REST API from Node; resolves with the body, throws on an error status. */
export async function api(url, method, route, { token, body } = {}) {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: {
      "Content-Type": "application/json",
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/**
 * A user who is not in a browser: signed up over REST, connected with socket.io-client.
 * @returns {Promise<{token: string, user: object, socket: import("socket.io-client").Socket, call: (event: string, payload: object) => Promise<object>, close: () => void}>}
 */
export async function headlessUser(url, username, displayName) {
  const { token, user } = await api(url, "POST", "/api/auth/sign-up", {
    body: { username, password: "correct horse battery", displayName },
  });
  const socket = io(url, { path: "/io", transports: ["websocket"], reconnection: false });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${username} was not authenticated`)), 10_000);
    socket.on("connect", () => socket.emit("authenticate", { token }));
    socket.on("authenticated", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const call = async (event, payload) => {
    const answer = await socket.timeout(10_000).emitWithAck(event, payload);
    if (!answer?.ok) throw new Error(`${event}: ${JSON.stringify(answer)}`);
    return answer;
  };
  return { token, user, socket, call, close: () => socket.close() };
}

// ---- the page, as a person uses it ----

/** Signs up through the form and waits for the chat to show. */
export async function signUp(page, url, { username, password = "correct horse battery", displayName }) {
  await page.goto(url);
  await page.getByTestId("tab-sign-up").click();
  await page.getByLabel("Username").fill(username);
  if (displayName) await page.getByLabel("Display name").fill(displayName);
  await page.getByLabel("Password").fill(password);
  await page.getByTestId("auth-submit").click();
  await page.getByTestId("me-name").waitFor();
}

/** The sidebar's entry of a room. */
export const roomItem = (page, name) => page.locator(`[data-testid="room-item"][data-room-name="${name}"]`);
/** The People entry of a user. */
export const userItem = (page, username) => page.locator(`[data-testid="user-item"][data-username="${username}"]`);
/** The conversation list's entry of a DM partner. */
export const conversationItem = (page, username) =>
  page.locator(`[data-testid="conversation-item"][data-username="${username}"]`);
/** The shown message whose text is `text`. */
export const message = (page, text) =>
  page.getByTestId("message").filter({ has: page.getByTestId("message-content").getByText(text, { exact: true }) });

/** Creates a room through the dialog; the page opens it. */
export async function createRoom(page, name, { description, isPrivate = false } = {}) {
  await page.getByTestId("new-room").click();
  await page.getByTestId("room-name").fill(name);
  if (description) await page.getByTestId("room-description").fill(description);
  if (isPrivate) await page.getByTestId("room-private").check();
  await page.getByTestId("create-room-submit").click();
  await page.getByTestId("conversation-name").getByText(name, { exact: true }).waitFor();
}

/** Types and sends a message with Enter, and waits until the page shows it. */
export async function send(page, text) {
  await page.getByTestId("composer-input").fill(text);
  await page.getByTestId("composer-input").press("Enter");
  await message(page, text).waitFor();
}
