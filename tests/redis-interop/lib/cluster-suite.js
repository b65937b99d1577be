// The mixed-cluster suite, run by test/cluster.test.js (classic protocol), test/sharded.test.js
// (sharded protocol, each subscription mode), test/specific-response.test.js (the request/response
// part with publishOnSpecificResponseChannel) and test/redis-cluster.test.js (on a Redis Cluster):
// one Node socket.io server with @socket.io/redis-adapter and two Ignis servers with ignis-redis on
// one Redis, each with one socket.io-client client. Every operation is run from every node, so each
// direction (Node -> Rust, Rust -> Node, Rust -> Rust) is covered.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { arrives, connect, decodeMessage, randomKey, redisSpy, sleep, startNode } from "./cluster.js";

const sorted = (a) => [...a].sort();

/** Asks a client's rooms until `ok(rooms)` holds (at most 2 s). */
async function roomsSettle(client, ok, what) {
  let rooms;
  for (let i = 0; i < 40; i++) {
    rooms = await client.request("rooms");
    if (ok(rooms)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: rooms ${JSON.stringify(rooms)}`);
}
let counter = 0;
const unique = (prefix) => `${prefix}-${++counter}`;

/**
 * `nodeArgs` adds arguments to one node (by name: node, rust1, rust2); `requestsOnly` leaves out
 * the plain broadcasts, keeping what goes through requests and responses; `specificResponse`
 * (node name -> whether it runs with `--specific-response-channel`) adds a check of the channel
 * every response is published on. `redisUrl` is passed to every node; `extra(cluster)` may add
 * tests, which find the running cluster in `cluster()`: `{key, nodes, clients}`.
 */
export function mixedClusterSuite({
  title,
  extraArgs = [],
  nodeArgs = {},
  redisUrl,
  extra,
  skip = false,
  nodeAllRooms = true,
  requestsOnly = false,
  specificResponse,
}) {
  // Left out, not skipped: these runs are about the request/response paths only.
  const plain = requestsOnly ? () => {} : it;
  describe(title, { skip }, () => {
    const key = randomKey();
    let nodes = [];
    let clients = [];

    before(async () => {
      const args = (name) => [...extraArgs, ...(nodeArgs[name] ?? [])];
      nodes = await Promise.all([
        startNode({ kind: "node", name: "node", key, redisUrl, extraArgs: args("node") }),
        startNode({ kind: "rust", name: "rust1", key, redisUrl, extraArgs: args("rust1") }),
        startNode({ kind: "rust", name: "rust2", key, redisUrl, extraArgs: args("rust2") }),
      ]);
      clients = await Promise.all(nodes.map((n) => connect(n)));
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(nodes.map((n) => n.stop()));
    });

    it("every node counts three servers", async () => {
      for (const c of clients) {
        assert.equal(await c.request("serverCount"), 3, `server count seen from ${c.node}`);
      }
    });

    plain("a broadcast to everyone reaches every node's clients, binary included", async () => {
      for (const sender of clients) {
        const event = unique("hello");
        const payload = { from: sender.node, when: "now", n: 1.5, nested: [1, { deep: true }] };
        const bin = Buffer.from([0, 1, 2, 250, 255]);
        assert.equal(await sender.request("broadcast", { event, args: [payload, bin] }), "ok");
        for (const c of clients) {
          const [got, gotBin] = await c.next(event);
          assert.deepEqual(got, payload, `${c.node} got ${sender.node}'s payload`);
          assert.deepEqual(Buffer.from(gotBin), bin, `${c.node} got ${sender.node}'s binary`);
        }
      }
    });

    plain("a Date broadcast by Node reaches Ignis clients as the ISO string a JSON client sees", async () => {
      const event = unique("date");
      await clients[0].request("broadcast", { event, args: ["d"], dateMs: 1700000000123 });
      for (const c of clients) {
        assert.deepEqual(await c.next(event), ["d", "2023-11-14T22:13:20.123Z"], c.node);
      }
    });

    plain("a broadcast to a room reaches only its members, and except leaves a room out", async () => {
      const room = unique("room");
      const other = unique("other");
      // node and rust2 are in the room; rust1 is in another room.
      await clients[0].request("join", room);
      await clients[2].request("join", [room, other]);
      await clients[1].request("join", other);
      for (const sender of clients) {
        const event = unique("to-room");
        await sender.request("broadcast", { event, to: room, args: [sender.node] });
        assert.deepEqual(await clients[0].next(event), [sender.node]);
        assert.deepEqual(await clients[2].next(event), [sender.node]);
        assert.equal(await arrives(clients[1], event, 300), false, `rust1 is not in ${room}`);

        const event2 = unique("except");
        await sender.request("broadcast", { event: event2, except: other, args: [sender.node] });
        assert.deepEqual(await clients[0].next(event2), [sender.node]);
        assert.equal(await arrives(clients[1], event2, 300), false);
        assert.equal(await arrives(clients[2], event2, 100), false);

        const event3 = unique("two-rooms");
        await sender.request("broadcast", { event: event3, to: [room, other], except: clients[2].welcome.id, args: [] });
        assert.deepEqual(await clients[0].next(event3), []);
        assert.deepEqual(await clients[1].next(event3), []);
        assert.equal(await arrives(clients[2], event3, 300), false);
      }
      for (const c of clients) await c.request("leave", [room, other]);
    });

    plain("a broadcast to one socket id reaches it on any node", async () => {
      for (const sender of clients) {
        for (const target of clients) {
          const event = unique("direct");
          await sender.request("broadcast", { event, to: target.welcome.id, args: [sender.node] });
          assert.deepEqual(await target.next(event), [sender.node]);
        }
      }
      for (const c of clients) assert.equal(c.pending("direct"), 0);
    });

    it("fetchSockets sees the sockets of every node, with rooms and data", async () => {
      const room = unique("fetch");
      await clients[1].request("join", room);
      await clients[0].request("join", room);
      for (const c of clients) {
        const all = await c.request("fetch", {});
        assert.ok(Array.isArray(all), `fetch from ${c.node}: ${JSON.stringify(all)}`);
        assert.deepEqual(sorted(all.map((s) => s.id)), sorted(clients.map((x) => x.welcome.id)));
        for (const s of all) {
          const owner = clients.find((x) => x.welcome.id === s.id);
          assert.deepEqual(s.data, { node: owner.node });
          assert.ok(s.rooms.includes(s.id), "a socket is in its own room");
        }
        const inRoom = await c.request("fetch", { to: room });
        assert.deepEqual(sorted(inRoom.map((s) => s.data.node)), ["node", "rust1"]);
        const notInRoom = await c.request("fetch", { except: room });
        assert.deepEqual(notInRoom.map((s) => s.data.node), ["rust2"]);
      }
      await clients[1].request("leave", room);
      await clients[0].request("leave", room);
    });

    it("allRooms lists the rooms of every node", async () => {
      const rooms = clients.map((c) => unique(`all-${c.node}`));
      await Promise.all(clients.map((c, i) => c.request("join", rooms[i])));
      for (const c of clients) {
        const all = await c.request("allRooms");
        if (c.node === "node" && !nodeAllRooms) {
          assert.ok(all.error, "Node's sharded adapter has no allRooms");
          continue;
        }
        for (const r of rooms) assert.ok(all.includes(r), `${c.node} sees ${r}: ${JSON.stringify(all)}`);
      }
      await Promise.all(clients.map((c, i) => c.request("leave", rooms[i])));
    });

    it("socketsJoin and socketsLeave reach the sockets of every node", async () => {
      for (const sender of clients) {
        const room = unique("joined");
        assert.equal(await sender.request("socketsJoin", { rooms: [room] }), "ok");
        // The protocol does not wait for the other nodes (nor, in Node, for its own): poll.
        for (const c of clients) {
          await roomsSettle(c, (rooms) => rooms.includes(room), `${c.node} joined ${room} (asked by ${sender.node})`);
        }
        // Leave only for the sockets of the other nodes.
        assert.equal(await sender.request("socketsLeave", { except: sender.welcome.id, rooms: room }), "ok");
        for (const c of clients) {
          await roomsSettle(
            c,
            (rooms) => rooms.includes(room) === (c === sender),
            `${c.node} after socketsLeave by ${sender.node}`,
          );
        }
        await sender.request("leave", room);
      }
    });

    it("serverSideEmit reaches the other nodes, without and with acknowledgements", async () => {
      for (const sender of clients) {
        const tag = unique("sse");
        assert.deepEqual(await sender.request("serverSideEmit", { event: "ping-node", args: [tag] }), { responses: [] });
        for (const c of clients) {
          if (c === sender) {
            assert.equal(await arrives(c, "server-event", 300), false, "the sender's own node does not get it");
            continue;
          }
          const [node, event, args] = await c.next("server-event");
          assert.equal(node, c.node);
          assert.equal(event, "ping-node");
          assert.deepEqual(args, [tag]);
        }
        const withAck = await sender.request("serverSideEmit", { event: "ping-node", args: [tag, 2], ack: true });
        assert.ok(Array.isArray(withAck.responses), JSON.stringify(withAck));
        assert.deepEqual(
          sorted(withAck.responses.map((r) => r.node)),
          sorted(clients.filter((c) => c !== sender).map((c) => c.node)),
        );
        for (const r of withAck.responses) assert.deepEqual(r.args, [tag, 2]);
        for (const c of clients) if (c !== sender) await c.next("server-event");
      }
    });

    it("a broadcast with acknowledgements collects the answers of every node's clients", async () => {
      for (const c of clients) {
        c.removeAllListeners("ask");
        c.on("ask", (arg, cb) => cb({ node: c.node, arg }));
      }
      for (const sender of clients) {
        const res = await sender.request("broadcastWithAck", { event: "ask", args: [sender.node], timeout: 3000 });
        assert.equal(res.error, undefined, JSON.stringify(res));
        assert.deepEqual(sorted(res.responses.map((r) => r.node)), ["node", "rust1", "rust2"]);
        for (const r of res.responses) assert.equal(r.arg, sender.node);
      }
      // A room on one other node only.
      const room = unique("ack-room");
      await clients[2].request("join", room);
      for (const sender of clients) {
        const res = await sender.request("broadcastWithAck", { event: "ask", to: room, args: [1], timeout: 3000 });
        assert.deepEqual(res.responses.map((r) => r.node), ["rust2"], `${sender.node}: ${JSON.stringify(res)}`);
      }
      await clients[2].request("leave", room);
    });

    it("disconnectSockets reaches the sockets of the other nodes", async () => {
      const extra = await Promise.all(nodes.map((n) => connect(n)));
      for (const sender of clients) {
        const room = unique("doomed");
        // Every extra socket but the sender node's joins the room.
        await Promise.all(extra.filter((e) => e.node !== sender.node).map((e) => e.request("join", room)));
        assert.equal(await sender.request("disconnectSockets", { to: room }), "ok");
        for (const e of extra) {
          if (e.node === sender.node) continue;
          assert.equal(await e.gone(), "io server disconnect", `${e.node} disconnected by ${sender.node}`);
        }
        // Reconnect the ones that went.
        for (let i = 0; i < extra.length; i++) {
          if (!extra[i].connected) extra[i] = await connect(nodes[i]);
        }
      }
      for (const e of extra) e.close();
    });

    extra?.(() => ({ key, nodes, clients }));

    if (specificResponse) {
      it("every node answers on the response channel its own option names, whatever the requester's", async () => {
        const shared = `${key}-response#/#`;
        const spy = await redisSpy({ patterns: [`${key}-request#/#`, `${key}-response#/#*`] });
        try {
          for (const c of clients) {
            c.removeAllListeners("ask");
            c.on("ask", (arg, cb) => cb({ node: c.node, arg }));
          }
          for (const sender of clients) {
            assert.ok(Array.isArray(await sender.request("fetch", {})));
            assert.ok(Array.isArray(await sender.request("allRooms")));
            const acks = await sender.request("broadcastWithAck", { event: "ask", args: [1], timeout: 3000 });
            assert.equal(acks.responses.length, 3, JSON.stringify(acks));
            const sse = await sender.request("serverSideEmit", { event: "ping-node", args: [], ack: true });
            assert.equal(sse.responses.length, 2, JSON.stringify(sse));
          }
          await sleep(200);
          const owner = new Map(clients.map((c) => [c.welcome.id, c.node]));
          const requester = new Map();
          for (const m of spy.messages) {
            if (m.channel !== `${key}-request#/#`) continue;
            const req = decodeMessage(m.payload);
            if (req?.requestId) requester.set(req.requestId, req.uid);
          }
          // Which node answered: fetch and allRooms answers carry its sockets, acknowledgements
          // and server-side answers its name; client counts say nothing, so they are counted.
          const seen = { fetch: 0, allRooms: 0, ack: 0, count: { shared: 0, specific: 0 }, serverSideEmit: 0 };
          for (const m of spy.messages) {
            if (m.channel === `${key}-request#/#`) continue;
            const res = decodeMessage(m.payload);
            assert.ok(res, `undecodable response on ${m.channel}`);
            const uid = requester.get(res.requestId);
            assert.ok(uid, `a response to an unknown request: ${JSON.stringify(res)}`);
            const specific = `${key}-response#/#${uid}#`;
            const expect = (node, what) => {
              assert.ok(node in specificResponse, `${what}: responder ${node}`);
              assert.equal(
                m.channel,
                specificResponse[node] ? specific : shared,
                `${what} from ${node} published on ${m.channel}`,
              );
            };
            if (res.type === 6) {
              // Node answers server-side events on the shared channel whatever the option.
              assert.equal(m.channel, shared, `server-side answer from ${res.data?.node} on ${m.channel}`);
              seen.serverSideEmit++;
            } else if (res.type === 8) {
              seen.count[m.channel === shared ? "shared" : "specific"]++;
              assert.ok(m.channel === shared || m.channel === specific, m.channel);
            } else if (res.type === 9) {
              expect(res.packet?.node, "acknowledgement");
              seen.ack++;
            } else if (Array.isArray(res.sockets)) {
              expect(res.sockets[0]?.data?.node, "fetchSockets answer");
              seen.fetch++;
            } else if (Array.isArray(res.rooms)) {
              const nodes = new Set(res.rooms.map((r) => owner.get(r)).filter(Boolean));
              assert.equal(nodes.size, 1, `allRooms answer ${JSON.stringify(res.rooms)}`);
              expect([...nodes][0], "allRooms answer");
              seen.allRooms++;
            } else {
              assert.fail(`unexpected response ${JSON.stringify(res)} on ${m.channel}`);
            }
          }
          // Every sender asked the two others.
          assert.deepEqual(
            { fetch: seen.fetch, allRooms: seen.allRooms, ack: seen.ack, serverSideEmit: seen.serverSideEmit },
            { fetch: 6, allRooms: 6, ack: 6, serverSideEmit: 6 },
          );
          const on = Object.values(specificResponse).filter(Boolean).length;
          // Each node answers the client count of the two others' requests.
          assert.deepEqual(seen.count, { specific: 2 * on, shared: 2 * (3 - on) });
        } finally {
          await spy.close();
        }
      });
    }
  });
}
