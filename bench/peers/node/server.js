// The bench contract (bench/CONTRACT.md) on Node socket.io 4.8.
// node server.js PORT [--redis-url redis://127.0.0.1:6379 --redis-key KEY]
import { createServer } from "node:http";
import { Server } from "socket.io";

const args = process.argv.slice(2);
const port = Number(args[0] ?? 3300);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const redisUrl = option("--redis-url");
const redisKey = option("--redis-key") ?? "socket.io";
const MAX_BODY = 1 << 20;

// Broadcasts reach authenticated clients only, as in the Ignis server.
const AUTHED = "authenticated-clients";

const http = createServer((req, res) => {
  const answer = (status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  };
  if (req.method !== "POST") return answer(404, { error: "not found" });
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return answer(400, { error: "bad json" });
    }
    if (typeof body?.topic !== "string" || !body.topic) return answer(400, { error: "Topic is required" });
    const room = /^\/room\/([^/]+)\/send$/.exec(req.url ?? "");
    if (req.url === "/broadcast") io.to(AUTHED).emit(body.topic, body.data);
    else if (room) io.to(decodeURIComponent(room[1])).emit(body.topic, body.data);
    else return answer(404, { error: "not found" });
    answer(200, { success: true });
  });
});

const io = new Server(http, { path: "/io/", serveClient: false, cors: { origin: "*" } });

if (redisUrl) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub, { key: redisKey }));
}

io.on("connection", (socket) => {
  socket.on("authenticate", () => {
    socket.join(AUTHED);
    socket.emit("authenticated", { id: socket.id, time: new Date().toISOString() });
  });
  socket.on("echo", (original, ack) => {
    socket.emit("echo:response", { original, timestamp: new Date().toISOString() });
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("join", (payload, ack) => {
    const rooms = Array.isArray(payload?.rooms) ? payload.rooms.filter((r) => typeof r === "string") : [];
    socket.join(rooms);
    if (typeof ack === "function") ack([...socket.rooms]);
  });
});

http.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
