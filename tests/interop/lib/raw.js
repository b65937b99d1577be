// Protocol-level helpers: Engine.IO over plain HTTP long-polling and WebSocket without
// socket.io-client, plus a minimal WebSocket frame reader over TCP to look at frame bits.
import net from "node:net";
import http from "node:http";
import crypto from "node:crypto";
import WebSocket from "ws";
import { WAIT_MS, withTimeout } from "./harness.js";

export const RS = "\x1e";

/** Opens a polling session; returns the parsed open packet. */
export async function pollingHandshake(base, query = "") {
  const res = await fetch(`${base}?EIO=4&transport=polling${query}`);
  const body = await res.text();
  if (res.status !== 200 || body[0] !== "0") {
    throw new Error(`handshake failed: ${res.status} ${body}`);
  }
  return JSON.parse(body.slice(1));
}

export function sessionUrl(base, sid) {
  return `${base}?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
}

export async function post(url, body, headers = {}) {
  const res = await fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(WAIT_MS) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

export async function get(url, headers = {}, ms = WAIT_MS) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(ms) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** GET with node:http so the body comes back exactly as sent (fetch would decompress it). */
export function rawGet(url, headers = {}, ms = WAIT_MS) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = http.get(url, { headers, agent: false }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      });
      req.on("error", reject);
    }),
    ms,
    `GET ${url}`,
  );
}

/**
 * A `ws` WebSocket whose messages are queued from the moment it is created, with a promise
 * for its close (code, reason, and time since creation).
 */
export function rawWs(url, opts = {}) {
  const ws = new WebSocket(url, opts);
  const started = Date.now();
  const queue = [];
  const waiters = [];
  ws.on("message", (data, isBinary) => {
    const msg = isBinary ? Buffer.from(data) : data.toString();
    if (waiters.length) waiters.shift()(msg);
    else queue.push(msg);
  });
  ws.on("error", () => {});
  ws.closed = new Promise((resolve) => {
    ws.on("close", (code, reason) =>
      resolve({ code, reason: reason.toString(), afterMs: Date.now() - started }),
    );
  });
  ws.opened = withTimeout(
    new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => {
          const err = new Error(`unexpected response ${res.statusCode}`);
          err.status = res.statusCode;
          err.headers = res.headers;
          err.body = body;
          reject(err);
        });
      });
      ws.once("close", () => reject(new Error("closed before open")));
    }),
    WAIT_MS,
    "websocket open",
  );
  ws.opened.catch(() => {});
  /** Next message; `skipPings` drops Engine.IO pings ("2"). */
  ws.next = (ms = WAIT_MS, { skipPings = true } = {}) => {
    const take = () => {
      while (queue.length) {
        const m = queue.shift();
        if (!(skipPings && m === "2")) return m;
      }
      return undefined;
    };
    const ready = take();
    if (ready !== undefined) return Promise.resolve(ready);
    let resolver;
    const p = new Promise((resolve) => {
      resolver = (m) => {
        if (skipPings && m === "2") waiters.unshift(resolver);
        else resolve(m);
      };
      waiters.push(resolver);
    });
    return withTimeout(p, ms, "websocket message").catch((err) => {
      const i = waiters.indexOf(resolver);
      if (i >= 0) waiters.splice(i, 1);
      throw err;
    });
  };
  ws.waitClosed = (ms = WAIT_MS) => withTimeout(ws.closed, ms, "websocket close");
  return ws;
}

/** Opens a raw WebSocket session, checks the open packet, sends CONNECT for `/` and reads the reply. */
export async function rawSocketIo(wsBase, { auth } = {}) {
  const ws = rawWs(`${wsBase}?EIO=4&transport=websocket`);
  const open = await ws.next();
  if (open[0] !== "0") throw new Error(`expected open packet, got ${open}`);
  ws.send(auth === undefined ? "40" : `40${JSON.stringify(auth)}`);
  const connect = await ws.next();
  return { ws, open: JSON.parse(open.slice(1)), connect };
}

/**
 * WebSocket client over a bare TCP socket: performs the opening handshake itself and parses the
 * server's frames, so a test can see header bits (RSV1 = per-message compressed) that `ws` hides.
 */
export async function tcpWebSocket(port, pathAndQuery, extraHeaders = {}) {
  const socket = net.connect(port, "127.0.0.1");
  await withTimeout(
    new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject)),
    WAIT_MS,
    "tcp connect",
  );
  const key = crypto.randomBytes(16).toString("base64");
  const lines = [
    `GET ${pathAndQuery} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...Object.entries(extraHeaders).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.write(lines.join("\r\n") + "\r\n\r\n");

  let buf = Buffer.alloc(0);
  const frames = [];
  const waiters = [];
  let response = null;
  let responseResolve;
  const responseReady = new Promise((resolve) => (responseResolve = resolve));
  socket.on("error", () => {});
  socket.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (!response) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine, ...headerLines] = buf.subarray(0, end).toString("latin1").split("\r\n");
      const headers = {};
      for (const l of headerLines) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      response = { status: Number(statusLine.split(" ")[1]), headers };
      buf = buf.subarray(end + 4);
      responseResolve(response);
    }
    for (;;) {
      if (buf.length < 2) return;
      const fin = (buf[0] & 0x80) !== 0;
      const rsv1 = (buf[0] & 0x40) !== 0;
      const opcode = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf[1] & 0x80) throw new Error("server frames must not be masked");
      if (buf.length < off + len) return;
      const frame = { fin, rsv1, opcode, payload: Buffer.from(buf.subarray(off, off + len)) };
      buf = buf.subarray(off + len);
      if (waiters.length) waiters.shift()(frame);
      else frames.push(frame);
    }
  });
  const res = await withTimeout(responseReady, WAIT_MS, "websocket handshake response");
  return {
    response: res,
    /** Next data frame (control frames other than close are skipped). */
    nextFrame(ms = WAIT_MS) {
      const take = () => {
        while (frames.length) {
          const f = frames.shift();
          if (f.opcode !== 0x9 && f.opcode !== 0xa) return f;
        }
        return undefined;
      };
      const ready = take();
      if (ready) return Promise.resolve(ready);
      return withTimeout(
        new Promise((resolve) => {
          const w = (f) => (f.opcode === 0x9 || f.opcode === 0xa ? waiters.unshift(w) : resolve(f));
          waiters.push(w);
        }),
        ms,
        "websocket frame",
      );
    },
    sendText(text) {
      const payload = Buffer.from(text);
      const mask = crypto.randomBytes(4);
      let header;
      if (payload.length < 126) {
        header = Buffer.from([0x81, 0x80 | payload.length]);
      } else if (payload.length < 65536) {
        header = Buffer.alloc(4);
        header[0] = 0x81;
        header[1] = 0x80 | 126;
        header.writeUInt16BE(payload.length, 2);
      } else {
        throw new Error("test frames are small");
      }
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
      socket.write(Buffer.concat([header, mask, masked]));
    },
    destroy() {
      socket.destroy();
    },
  };
}
