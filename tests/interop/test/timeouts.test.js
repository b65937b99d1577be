// Timers: heartbeat (pingInterval 2000 + pingTimeout 1000), connectTimeout 2000 and
// upgradeTimeout 2000. The tests run concurrently so the file takes ~4 s.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, sleep } from "../lib/harness.js";
import { pollingHandshake, sessionUrl, post, get, rawWs } from "../lib/raw.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const within = (ms, lo, hi, what) =>
  assert.ok(ms >= lo && ms <= hi, `${what}: ${ms} ms not in [${lo}, ${hi}]`);

describe("timers", { concurrency: true }, () => {
  it("websocket: a client that never answers pings is closed after pingInterval + pingTimeout", async () => {
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
    try {
      const t0 = Date.now();
      await ws.next();
      ws.send("40");
      await ws.next(); // CONNECT
      await ws.next(); // welcome
      assert.equal(await ws.next(3000, { skipPings: false }), "2");
      within(Date.now() - t0, 1800, 2600, "first ping");
      const closed = await ws.waitClosed(2500);
      within(closed.afterMs, 2800, 3700, "close");
      assert.equal(closed.code, 1005);
    } finally {
      ws.terminate();
    }
  });

  it("websocket: a client that answers pings stays connected", async () => {
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
    try {
      await ws.next();
      ws.send("40");
      await ws.next();
      await ws.next();
      assert.equal(await ws.next(3000, { skipPings: false }), "2");
      ws.send("3");
      await sleep(1500); // past the first ping's timeout
      assert.equal(ws.readyState, ws.OPEN);
      ws.send('4231["echo","alive"]');
      assert.equal(await ws.next(), '4331["alive"]');
    } finally {
      ws.terminate();
    }
  });

  it("websocket: a client that never sends CONNECT is closed after connectTimeout", async () => {
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
    try {
      await ws.next();
      const closed = await ws.waitClosed(3500);
      within(closed.afterMs, 1900, 2700, "close");
      assert.equal(closed.code, 1005);
    } finally {
      ws.terminate();
    }
  });

  it("polling: the ping arrives on the long-poll; without pong the pending GET gets a close packet", async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    const t0 = Date.now();
    assert.equal((await post(url, "40")).body, "ok");
    assert.match((await get(url)).body, /^40/);
    const ping = await get(url, {}, 3000);
    assert.equal(ping.body, "2");
    within(Date.now() - t0, 1800, 2600, "ping");
    const closing = await get(url, {}, 2500);
    assert.equal(closing.status, 200);
    assert.equal(closing.body, "1");
    within(Date.now() - t0, 2800, 3700, "close");
    const gone = await get(url);
    assert.equal(gone.status, 400);
    assert.deepEqual(JSON.parse(gone.body), { code: 1, message: "Session ID unknown" });
  });

  it("polling: answering the ping keeps the session", async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    assert.equal((await post(url, "40")).body, "ok");
    await get(url);
    assert.equal((await get(url, {}, 3000)).body, "2");
    assert.equal((await post(url, "3")).body, "ok");
    await sleep(1300);
    assert.equal((await post(url, '4232["echo","alive"]')).body, "ok");
    assert.equal((await get(url)).body, '4332["alive"]');
  });

  it("upgrade: a websocket that never probes is closed after upgradeTimeout; polling goes on", async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    assert.equal((await post(url, "40")).body, "ok");
    await get(url);
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket&sid=${sid}`);
    try {
      await ws.opened;
      assert.equal((await get(url, {}, 3000)).body, "2");
      assert.equal((await post(url, "3")).body, "ok");
      const closed = await ws.waitClosed(2000);
      within(closed.afterMs, 1900, 2700, "upgrade timeout");
      assert.equal((await post(url, '4233["echo","poll"]')).body, "ok");
      assert.equal((await get(url)).body, '4333["poll"]');
    } finally {
      ws.terminate();
    }
  });
});
