// Connection state recovery across a mixed cluster on @socket.io/redis-streams-adapter: a real
// socket.io-client behind a TCP proxy loses its connection to one server and, reconnecting through
// the proxy, lands on another: Node -> Ignis, Ignis -> Node and Ignis -> Ignis. It must come back
// with `recovered: true`, its id, rooms and data, and every packet broadcast meanwhile to it, in
// order and once, and nothing broadcast to rooms it is not in.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { io } from "socket.io-client";
import { WAIT_MS, connect, randomKey, sleep, startNode, withTimeout } from "../lib/cluster.js";

/**
 * A TCP proxy whose target can change; `cut()` closes every connection through it, and while
 * `hold(true)` is on it refuses new ones.
 */
async function proxy(targetPort) {
  let target = targetPort;
  let held = false;
  const sockets = new Set();
  const server = net.createServer((client) => {
    if (held) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    target(port) {
      target = port;
    },
    hold(on) {
      held = on;
    },
    cut() {
      for (const s of sockets) s.destroy();
    },
    close() {
      this.cut();
      server.close();
    },
  };
}

/** A reconnecting client whose events (with their offsets) are kept in order. */
function recoveringClient(url) {
  const socket = io(url, {
    forceNew: true,
    transports: ["websocket"],
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    timeout: WAIT_MS,
  });
  const events = [];
  socket.onAny((event, ...args) => events.push([event, ...args]));
  const once = (event) => withTimeout(new Promise((resolve) => socket.once(event, resolve)), WAIT_MS * 2, event);
  return { socket, events, once };
}

/** Waits until `events` holds `n` events named `name`, and returns them. */
async function received(client, name, n) {
  for (let i = 0; i < 100; i++) {
    const got = client.events.filter((e) => e[0] === name);
    if (got.length >= n) return got;
    await sleep(50);
  }
  return client.events.filter((e) => e[0] === name);
}

describe("streams: connection state recovery across Node and Ignis", () => {
  const key = randomKey();
  let nodes = [];
  let senders = [];
  let relay;
  let client;

  before(async () => {
    const extraArgs = ["--mode", "streams", "--recovery"];
    nodes = await Promise.all([
      startNode({ kind: "node", name: "node", key, extraArgs }),
      startNode({ kind: "rust", name: "rust1", key, extraArgs }),
      startNode({ kind: "rust", name: "rust2", key, extraArgs }),
    ]);
    // Clients that stay on each server and broadcast while the recovering one is away.
    senders = await Promise.all(nodes.map((n) => connect(n)));
    relay = await proxy(nodes[0].port);
    client = recoveringClient(relay.url);
    await client.once("connect");
  });

  after(async () => {
    client?.socket.close();
    relay?.close();
    for (const s of senders) s.close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  // From the Node server to rust1, from rust1 to the Node server, from the Node server to rust2,
  // and from rust2 to rust1.
  const hops = [
    [0, 1],
    [1, 0],
    [0, 2],
    [2, 1],
  ];
  let round = 0;

  it("starts on the Node server, in a room, with data and an offset", async () => {
    assert.equal(client.socket.recovered, false);
    const [welcome] = (await received(client, "welcome", 1)).at(-1).slice(1);
    assert.equal(welcome.node, "node");
    const rooms = await client.socket.timeout(WAIT_MS).emitWithAck("join", ["kept", "also-kept"]);
    assert.ok(rooms.includes("kept"));
    // A first broadcast gives the client an offset to come back with.
    await senders[2].request("broadcast", { event: "n", to: "kept", args: ["start"] });
    const [, arg, offset] = (await received(client, "n", 1))[0];
    assert.equal(arg, "start");
    assert.match(offset, /^\d+-\d+$/, "the offset is a stream entry id");
  });

  for (const [from, to] of hops) {
    it(`a client that leaves server ${from} recovers on server ${to} with all it missed`, async () => {
      round++;
      const id = client.socket.id;
      const before = client.events.filter((e) => e[0] === "n").length;
      relay.target(nodes[to].port);
      relay.hold(true);
      const gone = client.once("disconnect");
      relay.cut();
      assert.equal(await gone, "transport close");
      // Let the old server see the close and keep the session.
      await sleep(300);
      // Broadcast from every server while the client is away: to its room, to all, to a room
      // it is not in, and except its room.
      const expected = [];
      for (const [i, sender] of senders.entries()) {
        const tag = `r${round}-s${i}`;
        await sender.request("broadcast", { event: "n", to: "kept", args: [`${tag}-room`] });
        await sender.request("broadcast", { event: "n", args: [`${tag}-all`] });
        await sender.request("broadcast", { event: "n", to: "elsewhere", args: [`${tag}-not-mine`] });
        await sender.request("broadcast", { event: "n", except: "also-kept", args: [`${tag}-excepted`] });
        expected.push(`${tag}-room`, `${tag}-all`);
      }
      const back = client.once("connect");
      relay.hold(false);
      await back;
      assert.equal(client.socket.recovered, true, "recovered");
      assert.equal(client.socket.id, id, "same id");
      const got = (await received(client, "n", before + expected.length)).slice(before);
      // Every missed packet, once, and only those for its rooms. Senders on different servers
      // race to the stream, so the order is the stream's: the offsets (entry ids) increase.
      assert.deepEqual(
        got.map((e) => e[1]).sort(),
        [...expected].sort(),
        "every missed packet, once, and only those for its rooms",
      );
      const offsets = got.map((e) => e[2]);
      for (const o of offsets) assert.match(o, /^\d+-\d+$/);
      const ids = offsets.map((o) => o.split("-").map(BigInt));
      for (let i = 1; i < ids.length; i++) {
        const [a, b] = [ids[i - 1], ids[i]];
        assert.ok(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]), `in stream order: ${offsets}`);
      }
      // What one server sent comes in the order it sent it.
      for (let i = 0; i < senders.length; i++) {
        const mine = got.map((e) => e[1]).filter((a) => a.startsWith(`r${round}-s${i}-`));
        assert.deepEqual(mine, [`r${round}-s${i}-room`, `r${round}-s${i}-all`]);
      }
      // Back in its rooms, on the new server.
      const rooms = await client.socket.timeout(WAIT_MS).emitWithAck("rooms", null);
      assert.deepEqual([...rooms].sort(), [id, "also-kept", "kept"].sort());
      const fetched = await senders[to].request("fetch", { to: id });
      assert.equal(fetched.length, 1);
      assert.deepEqual(fetched[0].data, { node: "node" }, "the data of the first server came along");
      // Live again: a broadcast reaches it once.
      await senders[(to + 1) % 3].request("broadcast", { event: "n", to: "kept", args: [`r${round}-live`] });
      const live = await received(client, "n", before + expected.length + 1);
      assert.deepEqual(live.slice(before + expected.length).map((e) => e[1]), [`r${round}-live`]);
    });
  }
});

describe("streams: recovery onto Ignis servers under a steady stream of broadcasts", () => {
  const key = randomKey();
  let nodes = [];
  let sender;
  let relay;
  let client;

  before(async () => {
    const extraArgs = ["--mode", "streams", "--recovery"];
    nodes = await Promise.all([
      startNode({ kind: "node", name: "node", key, extraArgs }),
      startNode({ kind: "rust", name: "rust1", key, extraArgs }),
      startNode({ kind: "rust", name: "rust2", key, extraArgs }),
    ]);
    sender = await connect(nodes[0]);
    relay = await proxy(nodes[0].port);
    client = recoveringClient(relay.url);
    await client.once("connect");
    await client.socket.timeout(WAIT_MS).emitWithAck("join", ["steady"]);
  });

  after(async () => {
    client?.socket.close();
    relay?.close();
    sender?.close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("every numbered broadcast arrives once and in order across hops Node -> Ignis -> Ignis", async () => {
    // The Node server broadcasts a number every 10 ms to the room while the client hops from
    // the Node server to rust1, then between rust1 and rust2, reconnecting at once each time.
    let n = 0;
    let sending = true;
    const loop = (async () => {
      while (sending) {
        await sender.request("broadcast", { event: "seq", to: "steady", args: [n++] });
        await sleep(10);
      }
    })();
    const hops = [1, 2, 1, 2, 1];
    for (const to of hops) {
      await sleep(200);
      relay.target(nodes[to].port);
      const back = client.once("connect");
      relay.cut();
      await back;
      assert.equal(client.socket.recovered, true, `recovered on ${nodes[to].name}`);
    }
    await sleep(200);
    sending = false;
    await loop;
    const last = n - 1;
    const got = await received(client, "seq", n);
    const numbers = got.map((e) => e[1]);
    const missing = [];
    for (let i = 0; i <= last; i++) if (!numbers.includes(i)) missing.push(i);
    const repeated = numbers.filter((x, i) => numbers.indexOf(x) !== i);
    const disordered = numbers.filter((x, i) => i > 0 && x < numbers[i - 1]);
    assert.deepEqual({ missing, repeated, disordered }, { missing: [], repeated: [], disordered: [] });
    assert.equal(numbers.length, n);
  });
});
