// Socket.IO and the REST API from a browser page on another origin. The default CORS setting
// works from a browser for socket.io-client's default (`withCredentials: false`): `/io` answers
// any origin with `*` and no credentials, and the REST API is same-origin only. Origins listed
// in `--cors-origins` get credentials (`withCredentials: true`, which a literal `*` breaks) on
// both.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, WAIT_MS } from "../lib/browser.js";
import { rest, startIgnisServer } from "../lib/server.js";
import { startStaticServer } from "../lib/static.js";

const API_KEY = "browser-test-key-0123456789";

/** Waits until `predicate(window.state)` is true in the page; fails with the page's state otherwise. */
async function until(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    const state = await page.evaluate(() => JSON.stringify(window.state)).catch(() => "(page gone)");
    throw new Error(`timed out waiting for ${what}; page state: ${state}`, { cause: err });
  }
}

/** Records the CORS headers the ignis-server answered to the page's Socket.IO requests. */
function watchIoResponses(page, serverUrl) {
  const seen = [];
  page.on("response", (res) => {
    if (!res.url().startsWith(`${serverUrl}/io/`)) return;
    const h = res.headers();
    seen.push({
      method: res.request().method(),
      transport: new URL(res.url()).searchParams.get("transport"),
      status: res.status(),
      allowOrigin: h["access-control-allow-origin"],
      allowCredentials: h["access-control-allow-credentials"],
    });
  });
  return seen;
}

async function openPage(browser, pageServer, ignis, transports, { credentials = false } = {}) {
  const { page, errors } = await browser.newPage();
  const ioResponses = watchIoResponses(page, ignis.url);
  const query = new URLSearchParams({ server: ignis.url, transports: transports.join(","), credentials: credentials ? "1" : "0" });
  await page.goto(`${pageServer.origin}/?${query}`);
  return { page, errors, ioResponses };
}

describe("the default: /io from any origin without credentials, REST same-origin only", () => {
  let browser;
  let pages;
  let ignis;
  before(async () => {
    [browser, pages] = await Promise.all([launchBrowser(), startStaticServer()]);
    // The defaults, as a user runs it: CORS is whatever `ignis-server` does without flags.
    ignis = await startIgnisServer();
  });
  after(async () => {
    await ignis?.stop();
    await pages?.close();
    await browser?.close();
  });

  it("the page and the server really are on different origins", () => {
    assert.notEqual(new URL(pages.origin).origin, new URL(ignis.url).origin);
  });

  it("polling then WebSocket: authenticates and receives a REST broadcast", async () => {
    const { page, errors, ioResponses } = await openPage(browser, pages, ignis, ["polling", "websocket"]);
    await until(page, "authenticated", () => window.state.authenticated !== null);
    const auth = await page.evaluate(() => window.state.authenticated);
    assert.equal(auth.id, await page.evaluate(() => window.socket.id));
    assert.match(auth.time, /^\d{4}-\d{2}-\d{2}T/);

    await until(page, "the upgrade to WebSocket", () => window.state.transports.includes("websocket"));
    assert.deepEqual(await page.evaluate(() => window.state.transports), ["polling", "websocket"]);
    assert.equal(await page.evaluate(() => window.socket.io.engine.transport.name), "websocket");

    // Every polling answer allowed any origin, never with credentials.
    const polling = ioResponses.filter((r) => r.transport === "polling");
    assert.ok(polling.length >= 2, `polling requests seen: ${JSON.stringify(ioResponses)}`);
    for (const r of polling) {
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.allowOrigin, "*", JSON.stringify(r));
      assert.equal(r.allowCredentials, undefined, JSON.stringify(r));
    }

    const sent = await rest("POST", `${ignis.api}/broadcast`, { topic: "news", data: { text: "hello browser" } });
    assert.equal(sent.status, 200);
    assert.equal(sent.body.success, true);
    await until(page, "the broadcast", () => window.state.events.some((e) => e.event === "news"));
    const news = await page.evaluate(() => window.state.events.filter((e) => e.event === "news"));
    assert.deepEqual(news, [{ event: "news", args: [{ text: "hello browser" }] }]);

    assert.equal(await page.evaluate(() => window.state.connected), true);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("polling only: authenticates and receives a REST broadcast", async () => {
    const { page, errors, ioResponses } = await openPage(browser, pages, ignis, ["polling"]);
    await until(page, "authenticated", () => window.state.authenticated !== null);
    const sent = await rest("POST", `${ignis.api}/broadcast`, { topic: "polled", data: "" });
    assert.equal(sent.status, 200);
    await until(page, "the broadcast", () => window.state.events.some((e) => e.event === "polled"));
    assert.deepEqual(
      await page.evaluate(() => window.state.events.filter((e) => e.event === "polled")),
      [{ event: "polled", args: [""] }],
    );
    assert.deepEqual(await page.evaluate(() => window.state.transports), ["polling"]);
    assert.equal(await page.evaluate(() => window.socket.io.engine.transport.name), "polling");
    assert.ok(ioResponses.some((r) => r.method === "POST"), "the page sent data over polling");
    assert.ok(ioResponses.every((r) => r.transport === "polling"));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("a page on another origin can neither read nor send through the REST API", async () => {
    const { page, errors } = await openPage(browser, pages, ignis, ["websocket"]);
    await until(page, "authenticated", () => window.state.authenticated !== null);
    const info = await page.evaluate(() => window.callApi("GET", "/api/socket/info"));
    assert.equal(info.ok, false, "the browser must block the answer");
    // JSON content type: the preflight fails, so the broadcast is never sent.
    const sent = await page.evaluate(() => window.callApi("POST", "/api/socket/broadcast", { topic: "from-page" }));
    assert.equal(sent.ok, false);
    const probe = await rest("POST", `${ignis.api}/broadcast`, { topic: "probe" });
    assert.equal(probe.status, 200);
    await until(page, "the probe", () => window.state.events.some((e) => e.event === "probe"));
    assert.deepEqual(
      await page.evaluate(() => window.state.events.filter((e) => e.event === "from-page")),
      [],
      "the page's broadcast never went out",
    );
    assert.ok(errors.some((e) => /CORS/i.test(e)), `the browser reported CORS: ${errors}`);
    await page.close();
  });

  it("with credentials, an unlisted origin is refused by the browser", async () => {
    const { page } = await openPage(browser, pages, ignis, ["polling", "websocket"], { credentials: true });
    await until(page, "connect_error", () => window.state.connectError !== null);
    assert.equal(await page.evaluate(() => window.state.connected), false);
    await page.close();
  });
});

describe("a listed origin, with credentials", () => {
  let browser;
  let pages;
  let ignis;
  before(async () => {
    [browser, pages] = await Promise.all([launchBrowser(), startStaticServer()]);
    ignis = await startIgnisServer(["--cors-origins", `http://127.0.0.1:1,${pages.origin}`]);
  });
  after(async () => {
    await ignis?.stop();
    await pages?.close();
    await browser?.close();
  });

  it("Socket.IO over polling then WebSocket names the origin and allows credentials", async () => {
    const { page, errors, ioResponses } = await openPage(browser, pages, ignis, ["polling", "websocket"], { credentials: true });
    await until(page, "authenticated", () => window.state.authenticated !== null);
    await until(page, "the upgrade to WebSocket", () => window.state.transports.includes("websocket"));
    const polling = ioResponses.filter((r) => r.transport === "polling");
    assert.ok(polling.length >= 2, `polling requests seen: ${JSON.stringify(ioResponses)}`);
    for (const r of polling) {
      assert.equal(r.allowOrigin, pages.origin, JSON.stringify(r));
      assert.equal(r.allowCredentials, "true", JSON.stringify(r));
    }
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("a credentialed cross-origin fetch of the REST API works (simple and preflighted)", async () => {
    const { page, errors } = await openPage(browser, pages, ignis, ["polling", "websocket"], { credentials: true });
    await until(page, "authenticated", () => window.state.authenticated !== null);
    const id = await page.evaluate(() => window.socket.id);

    const info = await page.evaluate(() => window.callApi("GET", "/api/socket/info"));
    assert.equal(info.ok, true, info.error);
    assert.equal(info.status, 200);
    assert.ok(JSON.parse(info.text).clientIds.includes(id));
    assert.match(info.requestId ?? "", /\S/, "X-Request-Id is exposed to the page");

    const sent = await page.evaluate(() =>
      window.callApi("POST", "/api/socket/broadcast", { topic: "from-page", data: false }),
    );
    assert.equal(sent.ok, true, sent.error);
    assert.equal(sent.status, 200);
    assert.equal(JSON.parse(sent.text).success, true);
    await until(page, "the page's own broadcast", () => window.state.events.some((e) => e.event === "from-page"));
    assert.deepEqual(
      await page.evaluate(() => window.state.events.filter((e) => e.event === "from-page")),
      [{ event: "from-page", args: [false] }],
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("a literal `*` with credentials (the original's default) is refused: this page detects decision 13's bug", async () => {
    const { page, errors } = await browser.newPage();
    await page.route(`${ignis.url}/io/**`, async (route) => {
      const res = await route.fetch();
      await route.fulfill({ response: res, headers: { ...res.headers(), "access-control-allow-origin": "*" } });
    });
    const query = new URLSearchParams({ server: ignis.url, transports: "polling,websocket", credentials: "1" });
    await page.goto(`${pages.origin}/?${query}`);
    await until(page, "connect_error", () => window.state.connectError !== null);
    assert.equal(await page.evaluate(() => window.state.connected), false);
    assert.ok(errors.some((e) => /must not be the wildcard '\*'/.test(e)), `the browser named the cause: ${errors}`);
    await page.close();
  });
});

describe("REST with --api-key from a listed origin", () => {
  let browser;
  let pages;
  let ignis;
  before(async () => {
    [browser, pages] = await Promise.all([launchBrowser(), startStaticServer()]);
    ignis = await startIgnisServer(["--api-key", API_KEY, "--cors-origins", pages.origin]);
  });
  after(async () => {
    await ignis?.stop();
    await pages?.close();
    await browser?.close();
  });

  it("the X-API-Key header passes the preflight; without it the page reads the 401", async () => {
    const { page, errors } = await openPage(browser, pages, ignis, ["websocket"], { credentials: true });
    await until(page, "authenticated", () => window.state.authenticated !== null);
    const ok = await page.evaluate((key) => window.callApi("GET", "/api/socket/info", undefined, { "X-API-Key": key }), API_KEY);
    assert.equal(ok.ok, true, ok.error);
    assert.equal(ok.status, 200);
    const bearer = await page.evaluate(
      (key) => window.callApi("POST", "/api/socket/broadcast", { topic: "t" }, { Authorization: `Bearer ${key}` }),
      API_KEY,
    );
    assert.equal(bearer.status, 200, bearer.error);
    const refused = await page.evaluate(() => window.callApi("GET", "/api/socket/info"));
    assert.equal(refused.ok, true, "the 401 is readable cross-origin, not a network error");
    assert.equal(refused.status, 401);
    assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
    await page.close();
  });
});

describe("an origin outside --cors-origins", () => {
  let browser;
  let pages;
  let ignis;
  before(async () => {
    [browser, pages] = await Promise.all([launchBrowser(), startStaticServer()]);
    // Proves the checks above can fail: the same page is refused by a server that does not list it.
    ignis = await startIgnisServer(["--cors-origins", "http://127.0.0.1:1"]);
  });
  after(async () => {
    await ignis?.stop();
    await pages?.close();
    await browser?.close();
  });

  for (const credentials of [false, true]) {
    it(`is refused by the browser (credentials ${credentials}): no connection, no readable REST answer`, async () => {
      const { page, errors } = await openPage(browser, pages, ignis, ["polling", "websocket"], { credentials });
      await until(page, "connect_error", () => window.state.connectError !== null);
      assert.equal(await page.evaluate(() => window.state.connected), false);
      const info = await page.evaluate(() => window.callApi("GET", "/api/socket/info"));
      assert.equal(info.ok, false, "the browser must block the answer");
      assert.ok(errors.some((e) => /CORS/i.test(e)), `the browser reported CORS: ${errors}`);
      await page.close();
    });
  }
});
