// Helpers for the admin UI tests: an ignis-server with the admin UI on, and clients of its
// Socket.IO path that authenticate and join rooms as the standalone server's clients do.
import bcrypt from "bcryptjs";
import { io } from "socket.io-client";
import { startIgnisServer } from "./server.js";

export const ADMIN_USER = "admin";
export const ADMIN_PASSWORD = "correct horse battery staple";
// Made by the admin UI package's own bcrypt (bcryptjs, `$2a$`), checked by the server's.
export const ADMIN_HASH = bcrypt.hashSync(ADMIN_PASSWORD, 8);

/** ignis-server with the admin UI for ADMIN_USER (open development mode: no JWT key). */
export function startAdminServer(extra = []) {
  return startIgnisServer(["--admin-ui-auth", `${ADMIN_USER}:${ADMIN_HASH}`, ...extra]);
}

/** Resolves with the first `event` on `socket` (its arguments), or fails after `ms`. */
export function next(socket, event, { ms = 5_000, where = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const listener = (...args) => {
      if (!where(...args)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(args);
    };
    socket.on(event, listener);
  });
}

/** A client of `/`, authenticated, in `rooms`. */
export async function roomClient(url, rooms) {
  const socket = io(url, { path: "/io", transports: ["websocket"], reconnection: false, forceNew: true });
  const authenticated = next(socket, "authenticated");
  await next(socket, "connect");
  socket.emit("authenticate", {});
  await authenticated;
  if (rooms.length > 0) {
    const answer = await socket.timeout(5_000).emitWithAck("join", { rooms });
    for (const room of rooms) {
      if (!answer.rooms?.includes(room)) throw new Error(`not in ${room}: ${JSON.stringify(answer)}`);
    }
  }
  return socket;
}

/** A client of the admin namespace, as the UI connects (auth {username, password} or {sessionId}). */
export function adminClient(url, auth) {
  return io(`${url}/admin`, { path: "/io", transports: ["websocket"], reconnection: false, forceNew: true, auth });
}
