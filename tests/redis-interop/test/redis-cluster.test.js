// The mixed cluster on a Redis Cluster (three masters): the Node server over node-redis's
// createCluster with the sharded adapter (what @socket.io/redis-adapter documents for Redis
// Cluster) and over ioredis's Cluster with the classic one (its PUBSUB helper sums NUMSUB over the
// masters, so it supports that too) with the classic and the streams adapters, and the Ignis
// nodes on `RedisConfig::from_url_list` with the same protocol. The whole cluster suite runs, plus rooms whose channels live on each master, and
// the emitters.
//
// The cluster is the one of scripts/redis-cluster.sh, started here if it does not run; set
// REDIS_CLUSTER_URLS to use another one instead.
import { before, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { Redis } from "ioredis";
import { mixedClusterSuite } from "../lib/cluster-suite.js";
import { REPO_ROOT, arrives, runToEnd } from "../lib/cluster.js";

const URLS = process.env.REDIS_CLUSTER_URLS ?? "redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103";
const REQUIRED = process.env.CI === "true" || !!process.env.IGNIS_REQUIRE_REDIS_CLUSTER;

function hasRedisServer() {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// Without redis-server nothing can start the cluster: skipped on a developer's machine, a
// failure in CI.
const skip = !process.env.REDIS_CLUSTER_URLS && !hasRedisServer() && !REQUIRED && "redis-server is not installed";

before(async () => {
  if (skip || process.env.REDIS_CLUSTER_URLS) return;
  const script = path.join(REPO_ROOT, "scripts/redis-cluster.sh");
  const { code, output } = await runToEnd(script, ["ensure"], 120000);
  assert.equal(code, 0, `scripts/redis-cluster.sh ensure failed:\n${output}`);
});

/** The master serving each slot range: `[{from, to, port}]`. */
async function slotMap(redis) {
  const slots = await redis.call("CLUSTER", "SLOTS");
  return slots.map(([from, to, [host, port]]) => ({ from, to, master: `${host}:${port}` }));
}

/**
 * One room per master, each room's channel (`{key}#/#{room}#`, the sharded adapter's room
 * channel) on that master's slots, so that the rooms span every shard.
 */
async function roomsOnEveryMaster(key) {
  const first = new URL(URLS.split(",")[0]);
  const redis = new Redis({ host: first.hostname, port: Number(first.port || 6379), lazyConnect: true });
  redis.on("error", () => {});
  await redis.connect();
  try {
    const map = await slotMap(redis);
    const masters = [...new Set(map.map((r) => r.master))].sort();
    const rooms = new Map();
    for (let i = 0; rooms.size < masters.length && i < 1000; i++) {
      const room = `shard-room-${i}`;
      const slot = await redis.call("CLUSTER", "KEYSLOT", `${key}#/#${room}#`);
      const { master } = map.find((r) => slot >= r.from && slot <= r.to);
      if (!rooms.has(master)) rooms.set(master, room);
    }
    assert.equal(rooms.size, masters.length, `a room for each of ${masters.join(", ")}`);
    assert.ok(masters.length >= 2, `a cluster of several masters: ${masters.join(", ")}`);
    return [...rooms.values()];
  } finally {
    redis.disconnect();
  }
}

/** Tests of the Redis Cluster runs on top of the cluster suite. */
function onRedisCluster(emitters) {
  return (cluster) => {
    roomsOnShards(cluster);
    it("the emitters reach the clients of every node, to everyone and to a room on each master", async () => {
      const { key, clients } = cluster();
      const rooms = await roomsOnEveryMaster(key);
      await Promise.all(rooms.map((room, i) => clients[i % clients.length].request("join", room)));
      for (const [which, idx] of emitters) {
        const event = `emitted-${which}`;
        assert.equal(await clients[idx].request("emitter", { event, args: [which] }), "ok");
        for (const c of clients) assert.deepEqual(await c.next(event), [which], `${c.node} got the ${which} emitter's`);
        for (const [i, room] of rooms.entries()) {
          const toRoom = `${event}-${room}`;
          assert.equal(await clients[idx].request("emitter", { event: toRoom, to: room, args: [] }), "ok");
          assert.deepEqual(await clients[i % clients.length].next(toRoom), []);
        }
      }
      await Promise.all(rooms.map((room, i) => clients[i % clients.length].request("leave", room)));
    });
  };
}

function roomsOnShards(cluster) {
  it("a broadcast to a room reaches its members whichever master holds the room's channel", async () => {
    const { key, clients } = cluster();
    const rooms = await roomsOnEveryMaster(key);
    // Room i has the client of node i % 3 only.
    await Promise.all(rooms.map((room, i) => clients[i % clients.length].request("join", room)));
    for (const sender of clients) {
      for (const [i, room] of rooms.entries()) {
        const member = clients[i % clients.length];
        const event = `${room}-from-${sender.node}`;
        assert.equal(await sender.request("broadcast", { event, to: room, args: [sender.node] }), "ok");
        assert.deepEqual(await member.next(event), [sender.node], `${member.node} got ${event}`);
        for (const c of clients) {
          if (c !== member) assert.equal(await arrives(c, event, 100), false, `${c.node} is not in ${room}`);
        }
      }
    }
    await Promise.all(rooms.map((room, i) => clients[i % clients.length].request("leave", room)));
  });
}

// No Node emitter speaks the sharded protocol, no emitter at all the streams one.
for (const [title, extraArgs, nodeAllRooms, emitters] of [
  ["classic", [], true, [["Node", 0], ["Rust", 1]]],
  ["sharded", ["--mode", "sharded", "--subscription-mode", "dynamic"], false, [["Rust", 1]]],
  // The stream lives on one master, requests go over classic pub/sub; no emitter.
  ["streams", ["--mode", "streams"], false, []],
]) {
  mixedClusterSuite({
    title: `mixed cluster on a Redis Cluster (${title})`,
    redisUrl: URLS,
    extraArgs,
    nodeAllRooms,
    extra: onRedisCluster(emitters),
    skip,
  });
}
