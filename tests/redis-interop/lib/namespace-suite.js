// The namespace suite, run by test/namespaces.test.js (classic and sharded protocols): every node
// serves `/` and `/chat`, and each node has a client on each. Every operation made in `/chat`, by a
// server or an emitter, must reach the `/chat` sockets and handlers of every node, Node or Ignis,
// and none of `/`; and every node must use the Redis channels Node uses for `/chat`.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, decodeMessage, randomKey, redisSpy, sleep, startNode } from "./cluster.js";

const CHAT = "/chat";
const sorted = (a) => [...a].sort();
let counter = 0;
const unique = (prefix) => `${prefix}-${++counter}`;

/** Asks a client's rooms until `ok(rooms)` holds (at most 2 s). */
async function roomsSettle(client, ok, what) {
  let rooms;
  for (let i = 0; i < 40; i++) {
    rooms = await client.request("rooms");
    if (ok(rooms)) return;
    await sleep(50);
  }
  assert.fail(`${what}: rooms ${JSON.stringify(rooms)}`);
}

/** Lets stray deliveries arrive, then checks none did (`events`: one event or a list). */
async function noneGot(clients, events, what) {
  await sleep(250);
  for (const event of [events].flat()) {
    for (const c of clients) assert.equal(c.pending(event), 0, `${what}: ${c.node} (${c.nsp}) got ${event}`);
  }
}

/**
 * `sharded`: the nodes run the sharded protocol (`extraArgs` then hold its mode); Node's sharded
 * adapter has no allRooms and no Node emitter speaks that protocol.
 */
export function namespaceSuite({ title, extraArgs = [], sharded = false }) {
  const emitters = sharded ? [["Rust emitter", 1]] : [["Node emitter", 0], ["Rust emitter", 1]];
  describe(title, () => {
    const key = randomKey();
    let nodes = [];
    /** A client on `/` per node. */
    let main = [];
    /** A client on `/chat` per node. */
    let chat = [];

    before(async () => {
      nodes = await Promise.all([
        startNode({ kind: "node", name: "node", key, extraArgs }),
        startNode({ kind: "rust", name: "rust1", key, extraArgs }),
        startNode({ kind: "rust", name: "rust2", key, extraArgs }),
      ]);
      main = await Promise.all(nodes.map((n) => connect(n)));
      chat = await Promise.all(nodes.map((n) => connect(n, { nsp: CHAT })));
    });

    after(async () => {
      for (const c of [...main, ...chat]) c.close();
      await Promise.all(nodes.map((n) => n.stop()));
    });

    it("every node subscribes to the channels Node names for /chat, and counts three servers there", async () => {
      for (const c of chat) {
        assert.equal(c.welcome.nsp, CHAT);
        assert.equal(await c.request("serverCount"), 3, `server count in /chat seen from ${c.node}`);
      }
      const spy = await redisSpy();
      try {
        const numsub = async (sub, channel) => Number((await spy.command("PUBSUB", sub, channel))[1]);
        const sids = new Set([...main, ...chat].map((c) => c.welcome.id));
        for (const nsp of ["/", CHAT]) {
          if (sharded) {
            // The namespace channel, and one response channel per node.
            const base = `${key}#${nsp}#`;
            assert.equal(await numsub("SHARDNUMSUB", base), 3, base);
            const channels = await spy.command("PUBSUB", "SHARDCHANNELS", `${key}#${nsp}#*`);
            const own = channels.filter((c) => c !== base && !sids.has(c.slice(base.length, -1)));
            assert.equal(own.length, 3, `response channels of ${nsp}: ${JSON.stringify(channels)}`);
            for (const c of own) {
              assert.match(c, new RegExp(`^${key}#${nsp}#[0-9a-f]{16}#$`));
              assert.equal(await numsub("SHARDNUMSUB", c), 1, c);
            }
          } else {
            for (const c of [`${key}-request#${nsp}#`, `${key}-response#${nsp}#`]) {
              assert.equal(await numsub("NUMSUB", c), 3, c);
            }
            const specific = await spy.command("PUBSUB", "CHANNELS", `${key}-response#${nsp}#?*#`);
            assert.equal(specific.length, 3, `specific response channels of ${nsp}: ${JSON.stringify(specific)}`);
            for (const c of specific) {
              assert.match(c, new RegExp(`^${key}-response#${nsp}#[A-Za-z0-9_-]{6}#$`));
              assert.equal(await numsub("NUMSUB", c), 1, c);
            }
          }
        }
      } finally {
        await spy.close();
      }
    });

    it("a broadcast in /chat goes out on /chat's channels and reaches the /chat clients of every node, no / client", async () => {
      const room = unique("chat-room");
      await Promise.all(chat.map((c) => c.request("join", room)));
      // A room of the same name in `/`, which must not get what is sent to the /chat one.
      await Promise.all(main.map((c) => c.request("join", room)));
      // Both protocols name a namespace's broadcast channel `{key}#{nsp}#`, and a room's
      // `{key}#{nsp}#{room}#`.
      const nspChannel = `${key}#${CHAT}#`;
      const roomChannel = `${nspChannel}${room}#`;
      const mode = sharded ? extraArgs[extraArgs.indexOf("--subscription-mode") + 1] : undefined;
      const spy = sharded
        ? await redisSpy({ shardChannels: [nspChannel, roomChannel] })
        : await redisSpy({ patterns: [`${key}#*`] });
      try {
        const events = [];
        for (const sender of chat) {
          const all = unique("chat-all");
          const toRoom = unique("chat-to-room");
          events.push(all, toRoom);
          assert.equal(await sender.request("broadcast", { event: all, args: [sender.node] }), "ok");
          assert.equal(await sender.request("broadcast", { event: toRoom, to: room, args: [sender.node] }), "ok");
          for (const c of chat) {
            assert.deepEqual(await c.next(all), [sender.node], `${c.node} got ${sender.node}'s /chat broadcast`);
            assert.deepEqual(await c.next(toRoom), [sender.node], `${c.node} got ${sender.node}'s /chat room broadcast`);
          }
        }
        // And the other way: a broadcast in `/` to the room stays out of /chat.
        const fromMain = unique("main-to-room");
        await main[1].request("broadcast", { event: fromMain, to: room, args: [] });
        for (const c of main) await c.next(fromMain);
        await noneGot(main, events, "a /chat broadcast");
        await noneGot(chat, fromMain, "a / broadcast");

        // Each node published two broadcasts of /chat, on /chat's channels only.
        const published = spy.messages
          .map((m) => ({ channel: m.channel, msg: decodeMessage(m.payload) }))
          .filter(({ msg }) => (sharded ? msg?.type === 3 : Array.isArray(msg)));
        const chatOnes = published.filter(({ msg }) => (sharded ? msg.nsp : msg[1]?.nsp) === CHAT);
        assert.equal(chatOnes.length, 6, JSON.stringify(published.map((p) => p.channel)));
        for (const { channel, msg } of chatOnes) {
          // A classic node drops a packet of another namespace; a sharded one reads the
          // message's `nsp`, and Node leaves it out of the packet.
          if (!sharded) assert.equal(msg[1].nsp, CHAT);
          const rooms = sharded ? msg.data.opts.rooms : msg[2].rooms;
          // The classic protocol and the dynamic sharded modes give a one-room broadcast the
          // room's channel; the static sharded mode keeps everything on the namespace's.
          const expected = rooms.length === 1 && (!sharded || mode !== "static") ? roomChannel : nspChannel;
          assert.equal(channel, expected, `${JSON.stringify(rooms)} published on ${channel}`);
        }
        if (!sharded) {
          // The `/` broadcast went to `/`'s room channel.
          assert.ok(published.some(({ channel }) => channel === `${key}#/#${room}#`));
        }
      } finally {
        await spy.close();
      }
      await Promise.all([...main, ...chat].map((c) => c.request("leave", room)));
    });

    it("fetchSockets in /chat sees the /chat sockets of every node only", async () => {
      const room = unique("chat-fetch");
      await chat[1].request("join", room);
      await chat[0].request("join", room);
      await main[2].request("join", room);
      for (const c of chat) {
        const all = await c.request("fetch", {});
        assert.ok(Array.isArray(all), `fetch from ${c.node}: ${JSON.stringify(all)}`);
        assert.deepEqual(sorted(all.map((s) => s.id)), sorted(chat.map((x) => x.welcome.id)), `fetch from ${c.node}`);
        for (const s of all) assert.deepEqual(s.data, { node: chat.find((x) => x.welcome.id === s.id).node });
        const inRoom = await c.request("fetch", { to: room });
        assert.deepEqual(sorted(inRoom.map((s) => s.id)), sorted([chat[0].welcome.id, chat[1].welcome.id]));
        const notInRoom = await c.request("fetch", { except: room });
        assert.deepEqual(notInRoom.map((s) => s.id), [chat[2].welcome.id]);
      }
      await Promise.all([chat[0], chat[1], main[2]].map((c) => c.request("leave", room)));
    });

    it("socketsJoin and socketsLeave in /chat move the /chat sockets of every node only", async () => {
      for (const sender of chat) {
        const room = unique("chat-joined");
        assert.equal(await sender.request("socketsJoin", { rooms: [room] }), "ok");
        for (const c of chat) {
          await roomsSettle(c, (rooms) => rooms.includes(room), `${c.node} joined ${room} (asked by ${sender.node})`);
        }
        assert.equal(await sender.request("socketsLeave", { except: sender.welcome.id, rooms: room }), "ok");
        for (const c of chat) {
          await roomsSettle(c, (rooms) => rooms.includes(room) === (c === sender), `${c.node} after socketsLeave`);
        }
        for (const c of main) assert.ok(!(await c.request("rooms")).includes(room), `${c.node}'s / socket joined`);
        await sender.request("leave", room);
      }
    });

    it("allRooms in /chat lists the /chat rooms of every node", async () => {
      const rooms = chat.map((c) => unique(`chat-all-${c.node}`));
      const mainRoom = unique("main-only");
      await Promise.all(chat.map((c, i) => c.request("join", rooms[i])));
      await main[1].request("join", mainRoom);
      for (const c of chat) {
        const all = await c.request("allRooms");
        if (sharded && c.node === "node") {
          assert.ok(all.error, "Node's sharded adapter has no allRooms");
          continue;
        }
        for (const r of rooms) assert.ok(all.includes(r), `${c.node} sees ${r}: ${JSON.stringify(all)}`);
        assert.ok(!all.includes(mainRoom), `${c.node} sees the / room ${mainRoom} in /chat`);
      }
      await Promise.all(chat.map((c, i) => c.request("leave", rooms[i])));
      await main[1].request("leave", mainRoom);
    });

    it("serverSideEmit in /chat reaches the /chat handlers of the other nodes", async () => {
      for (const sender of chat) {
        const tag = unique("chat-sse");
        assert.deepEqual(await sender.request("serverSideEmit", { event: "ping-node", args: [tag] }), { responses: [] });
        for (const c of chat) {
          if (c === sender) continue;
          assert.deepEqual(await c.next("server-event"), [c.node, "ping-node", [tag], CHAT]);
        }
        const withAck = await sender.request("serverSideEmit", { event: "ping-node", args: [tag], ack: true });
        assert.ok(Array.isArray(withAck.responses), JSON.stringify(withAck));
        assert.deepEqual(
          sorted(withAck.responses.map((r) => `${r.node} ${r.nsp}`)),
          sorted(chat.filter((c) => c !== sender).map((c) => `${c.node} ${CHAT}`)),
        );
        for (const c of chat) if (c !== sender) await c.next("server-event");
      }
      await noneGot(main, "server-event", "a /chat server-side event");
      await noneGot(chat, "server-event", "one server-side event too many");
    });

    it("a broadcast with acknowledgements in /chat collects the answers of the /chat clients only", async () => {
      for (const c of [...main, ...chat]) {
        c.removeAllListeners("ask");
        c.on("ask", (arg, cb) => cb({ node: c.node, nsp: c.nsp }));
      }
      for (const sender of chat) {
        const res = await sender.request("broadcastWithAck", { event: "ask", args: [1], timeout: 3000 });
        assert.equal(res.error, undefined, JSON.stringify(res));
        assert.deepEqual(sorted(res.responses.map((r) => `${r.node} ${r.nsp}`)), [
          `node ${CHAT}`,
          `rust1 ${CHAT}`,
          `rust2 ${CHAT}`,
        ]);
      }
    });

    it("disconnectSockets in /chat disconnects the /chat sockets of every node, not their / sockets", async () => {
      const extraMain = await Promise.all(nodes.map((n) => connect(n)));
      let extraChat = await Promise.all(nodes.map((n) => connect(n, { nsp: CHAT })));
      for (const sender of chat) {
        const room = unique("chat-doomed");
        await Promise.all([...extraMain, ...extraChat].map((e) => e.request("join", room)));
        assert.equal(await sender.request("disconnectSockets", { to: room }), "ok");
        for (const e of extraChat) {
          assert.equal(await e.gone(), "io server disconnect", `${e.node}'s /chat socket disconnected by ${sender.node}`);
        }
        await sleep(200);
        for (const e of extraMain) {
          assert.ok(e.connected, `${e.node}'s / socket was disconnected by ${sender.node} in /chat`);
          assert.ok((await e.request("rooms")).includes(room));
          await e.request("leave", room);
        }
        extraChat = await Promise.all(nodes.map((n) => connect(n, { nsp: CHAT })));
      }
      for (const e of [...extraMain, ...extraChat]) e.close();
    });

    for (const [which, idx] of emitters) {
      it(`the ${which} .of("/chat") reaches the /chat clients and handlers of every node, no / client`, async () => {
        const requester = () => main[idx];
        const emit = (req) => requester().request("emitter", { nsp: CHAT, ...req });
        const room = unique("em-chat-room");
        await chat[0].request("join", room);
        await chat[2].request("join", room);
        await main[1].request("join", room);

        const all = unique("em-chat-all");
        const bin = Buffer.from([9, 8, 7]);
        assert.equal(await emit({ event: all, args: [{ a: 1 }, bin] }), "ok");
        for (const c of chat) {
          const [obj, b] = await c.next(all);
          assert.deepEqual(obj, { a: 1 });
          assert.deepEqual(Buffer.from(b), bin, `${c.node} got the binary`);
        }
        const toRoom = unique("em-chat-room");
        assert.equal(await emit({ event: toRoom, to: room, args: [2] }), "ok");
        assert.deepEqual(await chat[0].next(toRoom), [2]);
        assert.deepEqual(await chat[2].next(toRoom), [2]);
        await noneGot([chat[1], ...main], toRoom, "an emit to a /chat room");
        assert.equal(main.filter((c) => c.pending(all)).length, 0, "an emit to /chat reached / clients");

        const tag = unique("em-chat-sse");
        assert.equal(await emit({ op: "serverSideEmit", event: "ping-node", args: [tag] }), "ok");
        for (const c of chat) assert.deepEqual(await c.next("server-event"), [c.node, "ping-node", [tag], CHAT]);
        await noneGot(main, "server-event", "a /chat server-side event from an emitter");

        const joined = unique("em-chat-joined");
        assert.equal(await emit({ op: "socketsJoin", to: room, rooms: [joined] }), "ok");
        for (const c of [chat[0], chat[2]]) await roomsSettle(c, (r) => r.includes(joined), `${c.node} joined`);
        assert.ok(!(await chat[1].request("rooms")).includes(joined));
        assert.ok(!(await main[1].request("rooms")).includes(joined), "the / socket in the room joined");
        assert.equal(await emit({ op: "socketsLeave", rooms: [joined] }), "ok");
        for (const c of chat) await roomsSettle(c, (r) => !r.includes(joined), `${c.node} left`);

        const extraMain = await Promise.all(nodes.map((n) => connect(n)));
        const extraChat = await Promise.all(nodes.map((n) => connect(n, { nsp: CHAT })));
        const doomed = unique("em-chat-doomed");
        await Promise.all([...extraMain, ...extraChat].map((e) => e.request("join", doomed)));
        assert.equal(await emit({ op: "disconnectSockets", to: doomed }), "ok");
        for (const e of extraChat) assert.equal(await e.gone(), "io server disconnect", e.node);
        await sleep(200);
        for (const e of extraMain) assert.ok(e.connected, `${e.node}'s / socket was disconnected`);
        for (const e of extraMain) e.close();

        await Promise.all([chat[0], chat[2], main[1]].map((c) => c.request("leave", room)));
      });
    }
  });
}
