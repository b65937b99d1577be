// Prints the messages the real sharded adapter of @socket.io/redis-adapter 8.3 publishes (with
// the channel each goes to), by driving it over fake Redis clients: the source of the byte
// vectors in crates/ignis-redis/src/tests_sharded.rs. Usage: node tools/sharded-vectors.js
import { createShardedAdapter } from "@socket.io/redis-adapter";

const published = [];
const pub = {
  sPublish: (channel, payload) => {
    published.push([channel, payload]);
    return Promise.resolve(1);
  },
  sendCommand: () => Promise.resolve(["x", 3]),
  sSubscribe: () => {},
  sUnsubscribe: () => {},
};
const subscribed = [];
const sub = {
  sSubscribe: (channel) => subscribed.push(`+${channel}`),
  sUnsubscribe: (channel) => subscribed.push(`-${channel}`),
};

function adapter(mode, nspName = "/") {
  const nsp = { name: nspName, server: { opts: {}, encoder: { encode: () => [] } }, _ids: 0, sockets: new Map(), _onServerSideEmit() {} };
  const a = createShardedAdapter(pub, sub, { channelPrefix: "pfx", subscriptionMode: mode })(nsp);
  a.uid = "0123456789abcdef";
  return a;
}

const show = (what) => {
  for (const [channel, payload] of published.splice(0)) {
    const bytes = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
    console.log(`${what}\n  channel ${channel}\n  ${typeof payload === "string" ? "json " + payload : "msgpack " + bytes.toString("hex")}`);
  }
};

const a = adapter("dynamic");
const flags = {};
await a.broadcast({ type: 2, data: ["ev", "x", 1.5], nsp: "/" }, { rooms: new Set(), except: new Set(), flags });
show("broadcast all");
await a.broadcast({ type: 2, data: ["ev", Buffer.from([1, 2, 3])], nsp: "/" }, { rooms: new Set(["r1"]), except: new Set(["e"]), flags: { volatile: true, compress: false } });
show("broadcast binary to room r1 except e (dynamic)");
await a.broadcast({ type: 2, data: ["ev"], nsp: "/" }, { rooms: new Set(["abcdefghij0123456789"]), except: new Set(), flags: {} });
show("broadcast to a socket id (dynamic)");
await a.broadcast({ type: 2, data: ["ev"], nsp: "/" }, { rooms: new Set(["é€😀"]), except: new Set(), flags: {} });
show("broadcast to a non-ASCII room (dynamic)");
const p = adapter("dynamic-private");
p.uid = "0123456789abcdef";
await p.broadcast({ type: 2, data: ["ev"], nsp: "/" }, { rooms: new Set(["abcdefghij0123456789"]), except: new Set(), flags: {} });
show("broadcast to a socket id (dynamic-private)");
const s = adapter("static");
await s.broadcast({ type: 2, data: ["ev"], nsp: "/" }, { rooms: new Set(["r1"]), except: new Set(), flags: {} });
show("broadcast to room r1 (static)");
a.broadcastWithAck({ type: 2, data: ["ask", 1], nsp: "/" }, { rooms: new Set(["r1"]), except: new Set(), flags: { timeout: 3000 } }, () => {}, () => {});
show("broadcast with ack to r1 (requestId random)");
await a.addSockets({ rooms: new Set(["a"]), except: new Set(["b"]), flags: {} }, ["j1", "j2"]);
show("socketsJoin");
await a.delSockets({ rooms: new Set(), except: new Set(), flags: {} }, ["j1"]);
show("socketsLeave");
await a.disconnectSockets({ rooms: new Set(["a"]), except: new Set(), flags: {} }, true);
show("disconnectSockets close");
await a.serverSideEmit(["hello", { a: [1, null] }]);
show("serverSideEmit");
await a.serverSideEmit(["hello", Buffer.from([9])]);
show("serverSideEmit binary");
a.publishResponse("fedcba9876543210", { type: 11, data: { requestId: "req", clientCount: 2 } });
a.publishResponse("fedcba9876543210", { type: 12, data: { requestId: "req", packet: { ok: true } } });
a.publishResponse("fedcba9876543210", { type: 12, data: { requestId: "req", packet: undefined } });
a.publishResponse("fedcba9876543210", { type: 12, data: { requestId: "req", packet: Buffer.from([7]) } });
a.publishResponse("fedcba9876543210", { type: 10, data: { requestId: "req", packet: "pong" } });
a.publishResponse("fedcba9876543210", {
  type: 8,
  data: { requestId: "req", sockets: [{ id: "abcdefghij0123456789", handshake: { time: "t", issued: 1, query: { a: "1" } }, rooms: ["abcdefghij0123456789", "r"], data: { n: 1 } }] },
});
await new Promise((r) => setTimeout(r, 10));
show("responses");

a.addAll("abcdefghij0123456789", new Set(["abcdefghij0123456789", "public"]));
a.del("abcdefghij0123456789", "public");
a.delAll("abcdefghij0123456789");
console.log("dynamic subscriptions:", subscribed.splice(0).join(" "));
p.addAll("abcdefghij0123456789", new Set(["abcdefghij0123456789", "public"]));
p.delAll("abcdefghij0123456789");
console.log("dynamic-private subscriptions:", subscribed.splice(0).join(" "));
s.addAll("abcdefghij0123456789", new Set(["abcdefghij0123456789", "public"]));
console.log("static subscriptions:", subscribed.splice(0).join(" "));
