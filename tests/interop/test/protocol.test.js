// Raw Engine.IO / Socket.IO protocol checks with fetch and ws, each asserting the Node
// reference's exact answer (status, body, headers).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, sleep, eventually, WAIT_MS } from "../lib/harness.js";
import { SERVER_KIND } from "../lib/harness.js";
import { RS, pollingHandshake, sessionUrl, post, get, rawWs, rawSocketIo, tcpWebSocket } from "../lib/raw.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const OPEN_KEYS = ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"];
const SID = /^[A-Za-z0-9_-]+$/;

function assertError(res, code, message) {
  assert.equal(res.status, 400);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(JSON.parse(res.body), { code, message });
  assert.equal(res.body, JSON.stringify({ code, message }), "exact bytes");
}

async function request(url, init = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(WAIT_MS) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** A polling session already connected to `/` (CONNECT answered and drained). */
async function connectedPolling() {
  const { sid } = await pollingHandshake(server.base);
  const url = sessionUrl(server.base, sid);
  assert.equal((await post(url, "40")).body, "ok");
  const first = await get(url);
  const [connect, welcome] = first.body.split(RS);
  assert.match(connect, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
  assert.match(welcome, /^42\["welcome",/);
  return { sid, url, socketId: JSON.parse(connect.slice(2)).sid };
}

describe("handshake", () => {
  it("polling: open packet, headers", async () => {
    const res = await request(`${server.base}?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; charset=UTF-8");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.headers.get("content-length"), String(Buffer.byteLength(res.body)));
    assert.equal(res.body[0], "0");
    const open = JSON.parse(res.body.slice(1));
    assert.deepEqual(Object.keys(open), OPEN_KEYS, "keys in this order");
    assert.match(open.sid, SID);
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(open.pingInterval, 2000);
    assert.equal(open.pingTimeout, 1000);
    assert.equal(open.maxPayload, 1000000);
  });

  it("websocket: open packet without upgrades", async () => {
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
    try {
      const msg = await ws.next();
      assert.equal(typeof msg, "string");
      assert.equal(msg[0], "0");
      const open = JSON.parse(msg.slice(1));
      assert.deepEqual(Object.keys(open), OPEN_KEYS);
      assert.match(open.sid, SID);
      assert.deepEqual(open.upgrades, []);
      assert.equal(open.pingInterval, 2000);
      assert.equal(open.pingTimeout, 1000);
      assert.equal(open.maxPayload, 1000000);
    } finally {
      ws.terminate();
    }
  });

  it("websocket: the 101 response carries Access-Control-Allow-Origin", async () => {
    const conn = await tcpWebSocket(server.port, "/socket.io/?EIO=4&transport=websocket");
    try {
      assert.equal(conn.response.status, 101);
      assert.equal(conn.response.headers["access-control-allow-origin"], "*");
    } finally {
      conn.destroy();
    }
  });

  it("sids are unique", async () => {
    const sids = await Promise.all(
      Array.from({ length: 5 }, () => pollingHandshake(server.base).then((o) => o.sid)),
    );
    assert.equal(new Set(sids).size, 5);
  });
});

describe("request errors (polling)", () => {
  const cases = [
    ["unknown transport", "GET", "?EIO=4&transport=foo", 0, "Transport unknown"],
    ["missing transport", "GET", "?EIO=4", 0, "Transport unknown"],
    ["transport checked before version", "GET", "?EIO=3&transport=foo", 0, "Transport unknown"],
    ["unknown sid", "GET", "?EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"],
    ["unknown sid on POST", "POST", "?EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"],
    ["handshake with POST", "POST", "?EIO=4&transport=polling", 2, "Bad handshake method"],
    ["handshake with PUT", "PUT", "?EIO=4&transport=polling", 2, "Bad handshake method"],
    ["method checked before version", "POST", "?EIO=3&transport=polling", 2, "Bad handshake method"],
    ["websocket handshake without Upgrade", "GET", "?EIO=4&transport=websocket", 3, "Bad request"],
    ["EIO=3", "GET", "?EIO=3&transport=polling", 5, "Unsupported protocol version"],
    ["missing EIO", "GET", "?transport=polling", 5, "Unsupported protocol version"],
    ["EIO=abc", "GET", "?EIO=abc&transport=polling", 5, "Unsupported protocol version"],
  ];
  for (const [name, method, query, code, message] of cases) {
    it(`${name} -> 400 code ${code}`, async () => {
      assertError(await request(`${server.base}${query}`, { method }), code, message);
    });
  }

  it("a polling sid used with transport=websocket without Upgrade -> code 3", async () => {
    const { sid } = await pollingHandshake(server.base);
    assertError(await request(`${server.base}?EIO=4&transport=websocket&sid=${sid}`), 3, "Bad request");
  });

  it("a polling sid used with EIO=3 -> code 3 (protocol mismatch, not 5)", async () => {
    const { sid } = await pollingHandshake(server.base);
    assertError(await request(`${server.base}?EIO=3&transport=polling&sid=${sid}`), 3, "Bad request");
  });

  it("PUT on a session -> 500 with an empty body", async () => {
    const { sid } = await pollingHandshake(server.base);
    const res = await request(sessionUrl(server.base, sid), { method: "PUT" });
    assert.equal(res.status, 500);
    assert.equal(res.body, "");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
  });
});

describe("request errors (websocket upgrade)", () => {
  for (const [name, query, message] of [
    ["unknown transport", "?EIO=4&transport=foo", "Transport unknown"],
    ["unknown sid", "?EIO=4&transport=websocket&sid=nope", "Session ID unknown"],
  ]) {
    it(`${name}: plain HTTP 400 with a text body, connection closed`, async () => {
      const ws = rawWs(`${server.wsBase}${query}`);
      const err = await ws.opened.then(
        () => assert.fail("the upgrade must be refused"),
        (e) => e,
      );
      ws.terminate();
      assert.equal(err.status, 400);
      assert.equal(err.body, message);
      assert.equal(err.headers["content-type"], "text/html");
      assert.equal(err.headers.connection, "close");
    });
  }

  it("EIO=3 over websocket never opens a session", async () => {
    const ws = rawWs(`${server.wsBase}?EIO=3&transport=websocket`);
    try {
      const msg = await ws.next(1000).catch(() => null);
      assert.ok(msg === null || msg[0] !== "0", `no open packet expected, got ${msg}`);
    } finally {
      ws.terminate();
    }
  });
});

describe("CORS", () => {
  it("preflight OPTIONS -> 204 with the Access-Control headers", async () => {
    const res = await request(`${server.base}?EIO=4&transport=polling`, {
      method: "OPTIONS",
      headers: {
        Origin: "http://example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-custom",
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.body, "");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.headers.get("access-control-allow-methods"), "GET,HEAD,PUT,PATCH,POST,DELETE");
    assert.equal(res.headers.get("access-control-allow-headers"), "content-type,x-custom");
    assert.equal(res.headers.get("vary"), "Access-Control-Request-Headers");
    // hyper never sends Content-Length on a 204 (RFC 9110 §8.6 forbids it); Node sends 0.
    if (SERVER_KIND === "node") assert.equal(res.headers.get("content-length"), "0");
    assert.equal(res.headers.get("access-control-allow-credentials"), null);
  });

  it("normal requests carry Access-Control-Allow-Origin: * with or without Origin", async () => {
    for (const headers of [{ Origin: "http://example.com" }, {}]) {
      const res = await request(`${server.base}?EIO=4&transport=polling`, { headers });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      assert.equal(res.headers.get("access-control-allow-credentials"), null);
    }
  });
});

describe("polling sessions", () => {
  it("POST answers 200 ok as text/html; packets come back in one payload joined by 0x1e", async () => {
    const { url } = await connectedPolling();
    const res = await post(url, `42["echo","a"]${RS}4212["echo","b",1]`);
    assert.equal(res.status, 200);
    assert.equal(res.body, "ok");
    assert.equal(res.headers.get("content-type"), "text/html");
    assert.equal(res.headers.get("content-length"), "2");
    const poll = await get(url);
    const packets = poll.body.split(RS);
    assert.equal(packets.length, 2, poll.body);
    assert.match(packets[0], /^42\["echo","a","[^"]+"\]$/);
    assert.equal(packets[1], '4312["b",1]');
    await post(url, "1");
  });

  // Node runs namespace middlewares asynchronously even when they finish at once, so an event
  // posted with its CONNECT finds no joined namespace and the session is closed. Ignis completes
  // a connect whose middlewares do not wait before it reads the next packet, so the event is
  // handled, in order (docs/ARCHITECTURE.md, "Handlers").
  it("an event in the same payload as its CONNECT: Node closes the session", { skip: SERVER_KIND !== "node" }, async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    assert.equal((await post(url, `40${RS}42["echo","a"]`)).body, "ok");
    const poll = await get(url);
    assert.equal(poll.body, `6${RS}1`, "noop then close");
    assertError(await request(url), 1, "Session ID unknown");
  });

  it("an event in the same payload as its CONNECT: Ignis handles it after the connect", { skip: SERVER_KIND !== "rust" }, async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    assert.equal((await post(url, `40${RS}42["echo","a"]`)).body, "ok");
    const poll = await get(url);
    const packets = poll.body.split(RS);
    assert.match(packets[0], /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
    assert.match(packets[1], /^42\["welcome",/);
    assert.match(packets[2], /^42\["echo","a","[^"]+"\]$/);
  });

  it("a second concurrent GET: the first gets a close packet, the second 400 with no body, the session is gone", async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    const first = get(url);
    await sleep(50);
    const second = await get(url);
    assert.equal(second.status, 400);
    assert.equal(second.body, "");
    assert.equal(second.headers.get("content-type"), null);
    const firstRes = await first;
    assert.equal(firstRes.status, 200);
    assert.equal(firstRes.body, "1");
    assertError(await request(url), 1, "Session ID unknown");
  });

  it("POST above maxHttpBufferSize -> 413 with no body; the session survives", async () => {
    const { url } = await connectedPolling();
    const res = await post(url, `42["echo","${"x".repeat(1e6)}"]`);
    assert.equal(res.status, 413);
    assert.equal(res.body, "");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal((await post(url, '4210["echo","still"]')).body, "ok");
    assert.equal((await get(url)).body, '4310["still"]');
    await post(url, "1");
  });

  it("POST of exactly maxHttpBufferSize bytes is accepted", async () => {
    const { url } = await connectedPolling();
    const prefix = '4211["echo","';
    const suffix = '"]';
    const body = prefix + "y".repeat(1e6 - prefix.length - suffix.length) + suffix;
    assert.equal(Buffer.byteLength(body), 1e6);
    const res = await post(url, body);
    assert.equal(res.status, 200);
    assert.equal(res.body, "ok");
    const poll = await get(url);
    assert.equal(poll.body, `4311["${"y".repeat(1e6 - prefix.length - suffix.length)}"]`);
    await post(url, "1");
  });

  it("an invalid Engine.IO packet in a POST: 200 ok, then the session is closed", async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    const res = await post(url, "abc");
    assert.equal(res.status, 200);
    assert.equal(res.body, "ok");
    assertError(await request(url), 1, "Session ID unknown");
  });

  it("a POST with Content-Type application/octet-stream -> 400, session closed", async () => {
    const { sid } = await pollingHandshake(server.base);
    const url = sessionUrl(server.base, sid);
    const res = await post(url, "40", { "Content-Type": "application/octet-stream" });
    assert.equal(res.status, 400);
    assert.equal(res.body, "");
    assertError(await request(url), 1, "Session ID unknown");
  });

  it("a close packet releases the pending GET with a noop and ends the session", async () => {
    const { url } = await connectedPolling();
    const pending = get(url);
    await sleep(50);
    assert.equal((await post(url, "1")).body, "ok");
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.body, "6");
    assertError(await request(url), 1, "Session ID unknown");
  });
});

describe("socket.io packets over a raw websocket", () => {
  it("CONNECT answer has sid and pid; events carry an offset; acks do not", async () => {
    const { ws, connect } = await rawSocketIo(server.wsBase, { auth: { t: 1 } });
    try {
      assert.match(connect, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
      const { sid } = JSON.parse(connect.slice(2));
      const welcome = await ws.next();
      const [event, payload, offset] = JSON.parse(welcome.slice(2));
      assert.equal(event, "welcome");
      assert.deepEqual(payload, {
        id: sid,
        nsp: "/",
        auth: { t: 1 },
        recovered: false,
        query: { foo: null },
      });
      assert.equal(typeof offset, "string");
      ws.send('42["echo",1,"two"]');
      assert.match(await ws.next(), /^42\["echo",1,"two","[^"]+"\]$/);
      ws.send('4299["echo",{"k":[null]}]');
      assert.equal(await ws.next(), '4399[{"k":[null]}]');
      // Ack ids are decimal numbers: leading zeros are dropped in the answer.
      ws.send('42007["echo","z"]');
      assert.equal(await ws.next(), '437["z"]');
      // A JavaScript string may hold a lone surrogate, which JSON.stringify escapes: the packet
      // is taken (Node keeps the surrogate; a Rust string holds U+FFFD in its place).
      ws.send('4208["echo","a\\ud83d"]');
      assert.match(await ws.next(), /^438\["a(\\ud83d|\uFFFD)"\]$/);
    } finally {
      ws.terminate();
    }
  });

  it("binary attachments: placeholder packet then one binary frame per attachment", async () => {
    const { ws } = await rawSocketIo(server.wsBase);
    try {
      await ws.next(); // welcome
      ws.send('452-["echo",{"_placeholder":true,"num":0},{"k":{"_placeholder":true,"num":1}}]');
      ws.send(Buffer.from([1, 2]));
      ws.send(Buffer.from([3]));
      assert.match(
        await ws.next(),
        /^452-\["echo",\{"_placeholder":true,"num":0\},\{"k":\{"_placeholder":true,"num":1\}\},"[^"]+"\]$/,
      );
      assert.deepEqual([...(await ws.next())], [1, 2]);
      assert.deepEqual([...(await ws.next())], [3]);
      ws.send('451-7["echo",{"_placeholder":true,"num":0}]');
      ws.send(Buffer.from([9]));
      assert.equal(await ws.next(), '461-7[{"_placeholder":true,"num":0}]');
      assert.deepEqual([...(await ws.next())], [9]);
    } finally {
      ws.terminate();
    }
  });

  it("unknown namespace -> CONNECT_ERROR Invalid namespace, the connection stays open", async () => {
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
    try {
      await ws.next();
      ws.send("40/nope,");
      assert.equal(await ws.next(), '44/nope,{"message":"Invalid namespace"}');
      ws.send("40/custom,");
      assert.match(await ws.next(), /^40\/custom,\{"sid":"[^"]+","pid":"[^"]+"\}$/);
    } finally {
      ws.terminate();
    }
  });

  it("middleware rejection -> CONNECT_ERROR with message and data", async () => {
    const { ws, connect } = await rawSocketIo(server.wsBase, { auth: { reject: true } });
    try {
      assert.equal(connect, '44{"message":"rejected","data":{"reason":"reject requested"}}');
      ws.send('40/private,{"token":"x"}');
      assert.equal(await ws.next(), '44/private,{"message":"unauthorized","data":{"code":401}}');
    } finally {
      ws.terminate();
    }
  });

  for (const [name, packets] of [
    ["malformed event 42[", ["40", "42["]],
    ["event payload that is not an array", ["40", "42{}"]],
    ["invalid ack id", ["40", '42abc["echo"]']],
    ["unknown socket.io packet type", ["4abc"]],
    ["invalid Engine.IO packet", ["abc"]],
    ["a ping from the client (wrong heartbeat direction)", ["2"]],
  ]) {
    it(`${name} closes the connection`, async () => {
      const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
      try {
        await ws.next();
        for (const p of packets) {
          ws.send(p);
          if (p === "40") await ws.next();
        }
        const closed = await ws.waitClosed(1000);
        assert.equal(closed.code, 1005, "closing handshake without a status code");
      } finally {
        ws.terminate();
      }
    });
  }

  it("DISCONNECT from / leaves the Engine.IO connection open and other namespaces connected", async () => {
    const { ws } = await rawSocketIo(server.wsBase);
    try {
      await ws.next(); // welcome
      ws.send("40/custom,");
      await ws.next();
      await ws.next(); // custom welcome
      ws.send("41");
      ws.send('42/custom,7["echo","c"]');
      assert.equal(await ws.next(), '43/custom,7["c"]');
    } finally {
      ws.terminate();
    }
  });

  it("an event for a namespace the client is not connected to closes the whole connection", async () => {
    const { ws } = await rawSocketIo(server.wsBase);
    try {
      await ws.next(); // welcome
      ws.send('42/custom,["echo","c"]');
      assert.equal((await ws.waitClosed(1000)).code, 1005);
    } finally {
      ws.terminate();
    }
  });

  it("an event for / after DISCONNECT from / closes the connection", async () => {
    const { ws } = await rawSocketIo(server.wsBase);
    try {
      await ws.next(); // welcome
      ws.send("41");
      ws.send('42["echo","main"]');
      assert.equal((await ws.waitClosed(1000)).code, 1005);
    } finally {
      ws.terminate();
    }
  });
});

describe("upgrade by hand", () => {
  it("2probe -> 3probe, the pending GET gets a noop, 5 completes it, polling is refused afterwards", async () => {
    const { url, sid } = await connectedPolling();
    const pending = get(url);
    await sleep(50);
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket&sid=${sid}`);
    try {
      await ws.opened;
      ws.send("2probe");
      assert.equal(await ws.next(), "3probe");
      const released = await pending;
      assert.equal(released.status, 200);
      assert.equal(released.body, "6");
      ws.send("5");
      ws.send('42["echo","over ws"]');
      assert.match(await ws.next(), /^42\["echo","over ws","[^"]+"\]$/);
      assertError(await request(url), 3, "Bad request");
      assertError(await request(url, { method: "POST", body: "40" }), 3, "Bad request");
      // A second websocket for the same sid after the upgrade is refused.
      const again = rawWs(`${server.wsBase}?EIO=4&transport=websocket&sid=${sid}`);
      const outcome = await again.opened.then(
        () => again.waitClosed(),
        (e) => e,
      );
      again.terminate();
      assert.ok(outcome.status === 400 || typeof outcome.code === "number");
    } finally {
      ws.terminate();
    }
  });

  it("packets emitted during the upgrade are not lost", async () => {
    const { url, sid } = await connectedPolling();
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket&sid=${sid}`);
    try {
      await ws.opened;
      ws.send("2probe");
      assert.equal(await ws.next(), "3probe");
      // Emitted on polling before the switch: it arrives on the polling GET.
      assert.equal((await post(url, '4221["echo","mid"]')).body, "ok");
      const poll = await get(url);
      assert.equal(poll.status, 200);
      assert.ok(poll.body === '4321["mid"]' || poll.body === "6", poll.body);
      ws.send("5");
      if (poll.body === "6") assert.equal(await ws.next(), '4321["mid"]');
      ws.send('4222["echo","after"]');
      assert.equal(await ws.next(), '4322["after"]');
    } finally {
      ws.terminate();
    }
  });

  it("a wrong probe payload closes the upgrading websocket", async () => {
    const { url, sid } = await connectedPolling();
    const ws = rawWs(`${server.wsBase}?EIO=4&transport=websocket&sid=${sid}`);
    try {
      await ws.opened;
      ws.send("2hello");
      assert.equal((await ws.waitClosed(1000)).code, 1005);
      assert.equal((await post(url, '4223["echo","poll"]')).body, "ok");
      assert.equal((await get(url)).body, '4323["poll"]');
    } finally {
      ws.terminate();
    }
  });
});

describe("connection state recovery on the wire", () => {
  it("missed packets are sent before the CONNECT answer, which repeats the same sid and pid", async () => {
    const a = await rawSocketIo(server.wsBase);
    const b = await rawSocketIo(server.wsBase);
    try {
      const { sid, pid } = JSON.parse(a.connect.slice(2));
      const welcome = JSON.parse((await a.ws.next()).slice(2));
      const offset = welcome[2];
      await b.ws.next();
      a.ws.send('421["join","r"]');
      assert.equal(await a.ws.next(), `431[["${sid}","r"]]`);
      a.ws.send('42["close-transport"]');
      assert.equal((await a.ws.waitClosed()).code, 1005);
      b.ws.send('42["to-room","r","m",1]');
      b.ws.send('42["to-room","r","m",2]');
      b.ws.send('422["get-rooms"]');
      await b.ws.next();

      const c = rawWs(`${server.wsBase}?EIO=4&transport=websocket`);
      try {
        await c.next();
        c.send(`40${JSON.stringify({ pid, offset })}`);
        assert.match(await c.next(), /^42\["m",1,"[^"]+"\]$/);
        assert.match(await c.next(), /^42\["m",2,"[^"]+"\]$/);
        assert.equal(await c.next(), `40{"sid":"${sid}","pid":"${pid}"}`);
        const again = JSON.parse((await c.next()).slice(2));
        assert.equal(again[0], "welcome");
        assert.equal(again[1].recovered, true);
        assert.deepEqual(again[1].auth, { pid, offset });
      } finally {
        c.terminate();
      }
    } finally {
      a.ws.terminate();
      b.ws.terminate();
    }
  });

  it("an unknown pid/offset gives a fresh session", async () => {
    const { ws, connect } = await rawSocketIo(server.wsBase, { auth: { pid: "nope", offset: "nope" } });
    try {
      const { sid, pid } = JSON.parse(connect.slice(2));
      assert.notEqual(pid, "nope");
      const welcome = JSON.parse((await ws.next()).slice(2));
      assert.equal(welcome[1].id, sid);
      assert.equal(welcome[1].recovered, false);
    } finally {
      ws.terminate();
    }
  });
});

describe("sanity", () => {
  it("the server is still healthy after all of the above", async () => {
    await eventually(async () => (await request(`${server.base}?EIO=4&transport=polling`)).status === 200);
  });
});
