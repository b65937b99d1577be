// The emitter suite, run by test/emitter.test.js and test/sharded.test.js: @socket.io/redis-emitter
// (Node) reaching clients of Ignis servers, and the ignis-redis Emitter reaching clients of the
// Node server (and of the other Ignis server).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { arrives, connect, randomKey, startNode } from "./cluster.js";

let counter = 0;
const unique = (prefix) => `${prefix}-${++counter}`;

export function emitterSuite({ title, extraArgs = [], emitters = [["Node emitter", 0], ["Rust emitter", 1]] }) {
  describe(title, () => {
    const key = randomKey();
    let nodes = [];
    let clients = [];

    before(async () => {
      nodes = await Promise.all([
        startNode({ kind: "node", name: "node", key, extraArgs }),
        startNode({ kind: "rust", name: "rust1", key, extraArgs }),
        startNode({ kind: "rust", name: "rust2", key, extraArgs }),
      ]);
      clients = await Promise.all(nodes.map((n) => connect(n)));
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(nodes.map((n) => n.stop()));
    });

    // clients[0] asks the Node server to use the Node emitter; clients[1] asks rust1 to use ours.
    for (const [which, idx] of emitters) {
      describe(which, () => {
        const emitter = () => clients[idx];

        it("emits to everyone, binary included", async () => {
          const event = unique("emitted");
          const bin = Buffer.from("bytes from the emitter");
          assert.equal(await emitter().request("emitter", { event, args: [{ a: 1 }, bin, "x"] }), "ok");
          for (const c of clients) {
            const [obj, b, s] = await c.next(event);
            assert.deepEqual(obj, { a: 1 });
            assert.deepEqual(Buffer.from(b), bin, `${c.node} got the binary`);
            assert.equal(s, "x");
          }
        });

        it("emits to a room and except a room", async () => {
          const room = unique("em-room");
          await clients[0].request("join", room);
          await clients[2].request("join", room);
          const event = unique("em-to");
          await emitter().request("emitter", { event, to: room, args: [1] });
          assert.deepEqual(await clients[0].next(event), [1]);
          assert.deepEqual(await clients[2].next(event), [1]);
          assert.equal(await arrives(clients[1], event, 300), false);
          const event2 = unique("em-except");
          await emitter().request("emitter", { event: event2, except: room, args: [2] });
          assert.deepEqual(await clients[1].next(event2), [2]);
          assert.equal(await arrives(clients[0], event2, 300), false);
          assert.equal(await arrives(clients[2], event2, 100), false);
          await clients[0].request("leave", room);
          await clients[2].request("leave", room);
        });

        it("socketsJoin and socketsLeave", async () => {
          const room = unique("em-join");
          assert.equal(await emitter().request("emitter", { op: "socketsJoin", rooms: [room] }), "ok");
          for (const c of clients) {
            let rooms;
            for (let i = 0; i < 20; i++) {
              rooms = await c.request("rooms");
              if (rooms.includes(room)) break;
              await new Promise((r) => setTimeout(r, 50));
            }
            assert.ok(rooms.includes(room), `${c.node} joined via the emitter`);
          }
          assert.equal(await emitter().request("emitter", { op: "socketsLeave", to: room, rooms: [room] }), "ok");
          for (const c of clients) {
            let rooms;
            for (let i = 0; i < 20; i++) {
              rooms = await c.request("rooms");
              if (!rooms.includes(room)) break;
              await new Promise((r) => setTimeout(r, 50));
            }
            assert.ok(!rooms.includes(room), `${c.node} left via the emitter`);
          }
        });

        it("serverSideEmit reaches every server", async () => {
          const tag = unique("em-sse");
          assert.equal(await emitter().request("emitter", { op: "serverSideEmit", event: "ping-node", args: [tag] }), "ok");
          for (const c of clients) {
            const [node, event, args] = await c.next("server-event");
            assert.equal(node, c.node);
            assert.equal(event, "ping-node");
            assert.deepEqual(args, [tag]);
          }
        });

        it("disconnectSockets", async () => {
          const extra = await Promise.all(nodes.map((n) => connect(n)));
          const room = unique("em-doomed");
          await Promise.all(extra.map((e) => e.request("join", room)));
          assert.equal(await emitter().request("emitter", { op: "disconnectSockets", to: room }), "ok");
          for (const e of extra) assert.equal(await e.gone(), "io server disconnect", e.node);
        });
      });
    }
  });
}
