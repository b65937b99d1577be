// Tools of the abuse suite: a raw WebSocket client that can misbehave (never read, flood control
// frames, send broken frames), the server's RSS and open files from /proc, and a probe client whose
// echo round trip shows whether the server still serves everybody else.
import net from "node:net";
import crypto from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { client, once, sleep, withTimeout } from "../lib/harness.js";

/** Resident memory of a process in KiB. */
export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** Open file descriptors of a process. */
export function openFiles(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** One client-to-server WebSocket frame (masked, as RFC 6455 requires of clients). */
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, masked = true } = {}) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = body.length;
  let head;
  if (len < 126) {
    head = Buffer.from([0, len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (!masked) return Buffer.concat([head, body]);
  head[1] |= 0x80;
  const mask = crypto.randomBytes(4);
  const out = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) out[i] = body[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, out]);
}

/**
 * A WebSocket over a bare TCP socket: it does the opening handshake, then parses what the server
 * sends into frames (all of them, control frames included) unless `pause()` stops reading.
 */
export async function rawWebSocket(port, path = "/io/?EIO=4&transport=websocket", headers = {}) {
  const socket = net.connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  await withTimeout(
    new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject)),
    3000,
    "tcp connect",
  );
  socket.on("error", () => {});
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}`,
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.write(lines.join("\r\n") + "\r\n\r\n");
  let buf = Buffer.alloc(0);
  let status = null;
  const frames = [];
  const waiters = [];
  let statusResolve;
  const statusReady = new Promise((resolve) => (statusResolve = resolve));
  const closed = new Promise((resolve) => socket.once("close", resolve));
  socket.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (status === null) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      status = Number(buf.subarray(0, end).toString("latin1").split(" ")[1]);
      buf = buf.subarray(end + 4);
      statusResolve(status);
    }
    for (;;) {
      if (buf.length < 2) return;
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
      if (buf.length < off + len) return;
      const f = { opcode: buf[0] & 0x0f, payload: Buffer.from(buf.subarray(off, off + len)) };
      f.text = f.opcode === 1 ? f.payload.toString() : undefined;
      buf = buf.subarray(off + len);
      if (waiters.length) waiters.shift()(f);
      else frames.push(f);
    }
  });
  const got = await withTimeout(statusReady, 3000, "websocket handshake answer");
  if (got !== 101) throw new Error(`websocket handshake answered ${got}`);
  const ws = {
    socket,
    closed,
    /** Every frame received so far and not taken. */
    frames,
    /** The next frame of any kind. */
    nextFrame(ms = 3000) {
      if (frames.length) return Promise.resolve(frames.shift());
      return withTimeout(new Promise((resolve) => waiters.push(resolve)), ms, "a frame");
    },
    /** The next text frame that is not an Engine.IO ping (answered with a pong, as a client must). */
    async nextText(ms = 3000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const f = await ws.nextFrame(Math.max(1, deadline - Date.now()));
        if (f.opcode === 8) throw new Error(`closed by the server: ${f.payload.subarray(2)}`);
        if (f.opcode !== 1) continue;
        if (f.text === "2") {
          ws.send(1, "3");
          continue;
        }
        return f.text;
      }
    },
    /** Waits for an Engine.IO/Socket.IO text frame that satisfies `pred`. */
    async expect(pred, ms = 3000, what = "a matching packet") {
      const deadline = Date.now() + ms;
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}`);
        const text = await ws.nextText(left);
        if (pred(text)) return text;
      }
    },
    send(opcode, payload, opts) {
      return socket.write(frame(opcode, payload, opts));
    },
    sendText(text) {
      return ws.send(1, text);
    },
    /** Stops reading: what the server sends stays in its buffers (and the kernel's). */
    pause() {
      socket.pause();
    },
    /**
     * Writes the frames `make(n)` returns, as fast as the server takes them, for `ms` or until
     * `count` were written; returns how many were.
     */
    async flood(make, { ms, count = Infinity }) {
      const end = Date.now() + ms;
      let n = 0;
      while (Date.now() < end && n < count && !socket.destroyed) {
        if (!socket.write(make(n++))) {
          // The server stopped taking bytes: wait for it, but never buffer without bound here.
          await Promise.race([
            new Promise((resolve) => socket.once("drain", resolve)),
            sleep(Math.max(1, Math.min(200, end - Date.now()))),
          ]);
          if (socket.writableLength > 64 << 20) break;
        } else if ((n & 255) === 0) {
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      return n;
    },
    destroy() {
      socket.destroy();
    },
  };
  return ws;
}

/** Opens a raw Socket.IO session on `/` and returns the socket id of its CONNECT answer. */
export async function rawSocketIo(port, auth) {
  const ws = await rawWebSocket(port);
  const open = await ws.nextText();
  if (!open.startsWith("0")) throw new Error(`expected the open packet, got ${open}`);
  ws.sendText(auth === undefined ? "40" : `40${JSON.stringify(auth)}`);
  const connect = await ws.expect((t) => t.startsWith("40") || t.startsWith("44"), 3000, "CONNECT answer");
  if (!connect.startsWith("40")) throw new Error(`connect refused: ${connect}`);
  ws.sid = JSON.parse(connect.slice(2)).sid;
  return ws;
}

/** A raw session that has authenticated (open mode, or with a token). */
export async function rawAuthenticated(port, token) {
  const ws = await rawSocketIo(port, token === undefined ? undefined : { token });
  ws.sendText('42["authenticate"]');
  await ws.expect((t) => t.startsWith('42["authenticated"'), 3000, "authenticated");
  return ws;
}

/**
 * A well-behaved socket.io-client that keeps measuring its `echo` round trip. `stop()` resolves
 * with {count, max} (ms) and fails if any echo took longer than `limitMs` or never came back.
 */
export async function echoProbe(url, { token, intervalMs = 100, limitMs = 2000 } = {}) {
  const socket = client(url, { path: "/io", transports: ["websocket"], auth: token ? { token } : undefined });
  await once(socket, "connect", 5000);
  socket.emit("authenticate");
  await socket.next("authenticated", 5000);
  const rtts = [];
  let running = true;
  let failure = null;
  const loop = (async () => {
    let n = 0;
    while (running) {
      const started = Date.now();
      socket.emit("echo", { n });
      try {
        const [reply] = await socket.next("echo:response", limitMs);
        if (reply?.original?.n !== n) throw new Error(`echo ${n} answered with ${JSON.stringify(reply)}`);
      } catch (err) {
        failure = err;
        return;
      }
      rtts.push(Date.now() - started);
      n++;
      await sleep(intervalMs);
    }
  })();
  return {
    socket,
    async stop() {
      running = false;
      await loop;
      socket.close();
      if (failure) throw new Error(`the probe client was not served: ${failure.message}`);
      if (rtts.length === 0) throw new Error("the probe measured nothing");
      return { count: rtts.length, max: Math.max(...rtts) };
    },
  };
}
