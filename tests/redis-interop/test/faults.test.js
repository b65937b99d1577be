// Redis failures, on a private redis-server so that the shared one is never touched: Redis down
// at start, and Redis lost and restarted under a running mixed cluster.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { arrives, connect, randomKey, runToEnd, sleep, startNode, withTimeout, CLUSTER_NODE_BIN } from "../lib/cluster.js";

const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? "redis-server";

function hasRedisServer() {
  try {
    execFileSync(REDIS_SERVER, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A port nobody listens on (taken, then released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on `port`, resolves once it accepts connections. */
async function startRedis(port) {
  const child = spawn(REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (c) => (output += c));
  await withTimeout(
    new Promise((resolve, reject) => {
      const check = () => (/Ready to accept connections/.test(output) ? resolve() : setTimeout(check, 20));
      check();
      child.once("exit", (code) => reject(new Error(`redis-server exited (${code}):\n${output}`)));
    }),
    10000,
    "redis-server to start",
  );
  child.stdout.resume();
  child.stderr.resume();
  return {
    kill() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      return exited;
    },
  };
}

async function eventually(f, what, ms = 20000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      last = await f();
      if (last === true) return;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`${what} did not happen within ${ms} ms (last: ${last})`);
}

describe("Redis down at start", () => {
  it("the Rust node exits with an error naming the address after the timeout", async () => {
    const port = await freePort();
    const started = Date.now();
    const { code, output } = await runToEnd(CLUSTER_NODE_BIN, [
      "--port",
      "0",
      "--redis-url",
      `redis://127.0.0.1:${port}`,
      "--connect-timeout-ms",
      "800",
    ]);
    assert.equal(code, 1, output);
    assert.match(output, new RegExp(`Redis at 127\\.0\\.0\\.1:${port} is not reachable after`));
    assert.ok(Date.now() - started < 10000);
  });
});

for (const [protocol, extraArgs] of [
  ["classic", []],
  ["sharded", ["--mode", "sharded"]],
]) {
  describe(`Redis lost while running (${protocol})`, { skip: !hasRedisServer() && "redis-server is not installed" }, () => {
    let port;
    let redis;
    let nodes = [];
    let clients = [];

    before(async () => {
      port = await freePort();
      redis = await startRedis(port);
      const redisUrl = `redis://127.0.0.1:${port}`;
      const key = randomKey();
      nodes = await Promise.all([
        startNode({ kind: "node", name: "node", key, redisUrl, extraArgs }),
        startNode({ kind: "rust", name: "rust1", key, redisUrl, extraArgs }),
        startNode({ kind: "rust", name: "rust2", key, redisUrl, extraArgs }),
      ]);
      clients = await Promise.all(nodes.map((n) => connect(n)));
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(nodes.map((n) => n.stop()));
      await redis?.kill();
    });

    it("local delivery goes on, cross-node operations fail, and everything comes back with Redis", async () => {
      const [nodeClient, rust1, rust2] = clients;
      await rust1.request("broadcast", { event: "before", args: [1] });
      for (const c of clients) assert.deepEqual(await c.next("before"), [1]);

      await redis.kill();
      await sleep(300);

      // A broadcast still reaches this node's clients, and says the others were not reached.
      const res = await rust1.request("broadcast", { event: "during", args: [2] });
      assert.match(res?.error ?? "", /unreachable/, JSON.stringify(res));
      assert.deepEqual(await rust1.next("during"), [2]);
      assert.equal(await arrives(nodeClient, "during", 300), false);
      assert.equal(await arrives(rust2, "during", 100), false);

      const fetched = await rust1.request("fetch", {});
      assert.match(fetched?.error ?? "", /unreachable/, JSON.stringify(fetched));
      const joined = await rust2.request("socketsJoin", { rooms: ["x"] });
      assert.match(joined?.error ?? "", /unreachable/, JSON.stringify(joined));

      redis = await startRedis(port);
      for (const c of clients) {
        await eventually(async () => (await c.request("serverCount")) === 3, `${c.node} counting 3 servers again`);
      }
      // Subscriptions are back in both directions.
      for (const sender of clients) {
        const event = `after-${sender.node}`;
        await eventually(async () => {
          const r = await sender.request("broadcast", { event, args: [3] });
          return r === "ok" || JSON.stringify(r);
        }, `${sender.node} broadcasting again`);
        for (const c of clients) {
          assert.deepEqual(await c.next(event, 5000), [3], `${c.node} got ${sender.node}'s broadcast after the restart`);
          c.drain(event);
        }
      }
      const all = await rust1.request("fetch", {});
      assert.equal(all.length, 3, JSON.stringify(all));
    });
  });
}
