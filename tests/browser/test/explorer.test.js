// The API explorer page, in a real Chromium: it loads cleanly, lists every operation of the
// OpenAPI document, and a user can send requests (with the API key when one is configured).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { launchBrowser, WAIT_MS } from "../lib/browser.js";
import { rest, startIgnisServer } from "../lib/server.js";

const API_KEY = "browser-test-key-0123456789";
const METHODS = ["get", "post", "put", "patch", "delete"];
const FAVICON = /\/favicon\.ico\]$/;

/** The page's errors except the ones a test expects: answers it asked for, and the favicon (its own test). */
const unexpected = (errors, ...allowed) =>
  errors.filter((e) => !FAVICON.test(e) && !allowed.some((re) => re.test(e)));

/** The page's block for one operation, found by what the user sees: method and path. */
function operation(page, method, opPath) {
  return page
    .locator("details.op")
    .filter({ has: page.locator("summary .method", { hasText: new RegExp(`^${method}$`, "i") }) })
    .filter({ has: page.locator("summary .path", { hasText: new RegExp(`^${opPath.replace(/[{}]/g, "\\$&")}$`) }) });
}

/** Opens the operation, fills path parameters and the body, presses Send, and returns what the page shows. */
async function send(page, method, opPath, { params = {}, body } = {}) {
  const op = operation(page, method, opPath);
  assert.equal(await op.count(), 1, `exactly one ${method} ${opPath} on the page`);
  if (!(await op.evaluate((d) => d.open))) await op.locator("summary").click();
  for (const [name, value] of Object.entries(params)) {
    await op.locator(".field", { has: page.locator("code", { hasText: new RegExp(`^${name}$`) }) }).locator("input").fill(value);
  }
  if (body !== undefined) await op.locator("textarea").fill(body);
  // Forget an earlier answer so that the wait below sees this one.
  await op.locator(".result").evaluate((r) => r.replaceChildren());
  await op.getByRole("button", { name: "Send" }).click();
  const status = op.locator(".result .status");
  await status.waitFor({ state: "visible", timeout: WAIT_MS });
  const bodyText = await op.locator(".result pre").last().textContent();
  return { status: (await status.textContent()) ?? "", body: JSON.parse(bodyText ?? "") };
}

describe("API explorer page", () => {
  let browser;
  let shots;
  before(async () => {
    browser = await launchBrowser();
    shots = process.env.IGNIS_BROWSER_ARTIFACTS
      ? path.resolve(process.env.IGNIS_BROWSER_ARTIFACTS)
      : await mkdtemp(path.join(os.tmpdir(), "ignis-browser-explorer-"));
    await mkdir(shots, { recursive: true });
  });
  after(async () => {
    await browser?.close();
  });

  describe("open server (no API key)", () => {
    let server;
    before(async () => {
      server = await startIgnisServer();
    });
    after(async () => {
      await server?.stop();
    });

    it("loads without console errors and lists every operation of openapi.json", async (t) => {
      const { page, errors } = await browser.newPage();
      const response = await page.goto(`${server.url}/api/doc/explorer`);
      assert.equal(response?.status(), 200);
      await page.locator("details.op").first().waitFor({ timeout: WAIT_MS });

      const doc = (await rest("GET", `${server.url}/api/doc/openapi.json`)).body;
      const expected = Object.entries(doc.paths)
        .flatMap(([p, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${p}`))
        .sort();
      assert.ok(expected.length >= 13, `the document has the API's operations: ${expected}`);
      const listed = await page.locator("details.op > summary").evaluateAll((nodes) =>
        nodes.map((n) => `${n.querySelector(".method").textContent} ${n.querySelector(".path").textContent}`),
      );
      assert.deepEqual(listed.slice().sort(), expected);
      assert.equal(await page.locator("#title").textContent(), doc.info.title);
      // Markdown's `inline code` in the document's descriptions is shown as code, not as backticks.
      assert.ok((await page.locator("#description code").count()) > 0, "the description shows inline code");
      const texts = await page.locator("#description, details.op .description, details.op .responses").allTextContents();
      assert.ok(texts.length > 1);
      for (const text of texts) assert.ok(!text.includes("`"), `a literal backtick: ${text}`);
      assert.equal(await page.title(), `${doc.info.title} explorer`);

      const shot = path.join(shots, "explorer-overview.png");
      await page.screenshot({ path: shot, fullPage: true });
      t.diagnostic(`screenshot: ${shot}`);
      assert.deepEqual(unexpected(errors), []);
      await page.close();
    });

    it("asks for no resource the server does not have (the browser's /favicon.ico)", async () => {
      // A fresh profile: Chromium asks an origin for its icon once and then remembers the answer.
      const fresh = await launchBrowser();
      try {
        const { page, errors } = await fresh.newPage();
        // Chromium asks for the icon itself after the load (Playwright shows no request event for
        // it); a missing icon shows up as a console error naming /favicon.ico.
        const iconError = page
          .waitForEvent("console", { predicate: (m) => FAVICON.test(`${m.location().url}]`), timeout: 2_000 })
          .catch(() => null);
        await page.goto(`${server.url}/api/doc/explorer`);
        await page.locator("details.op").first().waitFor();
        await iconError;
        assert.deepEqual(errors, []);
      } finally {
        await fresh.close();
      }
    });

    it("sends POST broadcast with a JSON body and GET info, and shows status and body", async (t) => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${server.url}/api/doc/explorer`);
      await page.locator("details.op").first().waitFor();

      const broadcast = await send(page, "POST", "/api/socket/broadcast", {
        body: JSON.stringify({ topic: "news", data: { text: "from the explorer" } }),
      });
      assert.match(broadcast.status, /^200 OK\b/);
      assert.equal(broadcast.body.success, true);
      assert.match(broadcast.body.message, /^Broadcast sent to \d+ clients$/);

      const info = await send(page, "GET", "/api/socket/info");
      assert.match(info.status, /^200 OK\b/);
      assert.equal(info.body.status, "running");
      assert.ok(Array.isArray(info.body.clientIds));

      // A malformed body shows the error answer, not a broken page.
      const bad = await send(page, "POST", "/api/socket/room/{roomId}/send", { params: { roomId: "lobby" }, body: "{ not json" });
      assert.match(bad.status, /^400\b/);
      assert.equal(bad.body.error.statusCode, 400);

      const rooms = await send(page, "GET", "/api/socket/client/{clientId}/rooms", { params: { clientId: "nobody" } });
      assert.match(rooms.status, /^200\b/);
      assert.deepEqual(rooms.body, { success: false, message: "Client not found: nobody" });

      const shot = path.join(shots, "explorer-requests.png");
      await page.screenshot({ path: shot, fullPage: true });
      t.diagnostic(`screenshot: ${shot}`);
      // The 400 above is an answer the page asked for; the browser logs it as a failed resource load.
      assert.deepEqual(unexpected(errors, /status of 400/), []);
      await page.close();
    });
  });

  describe("server with --api-key", () => {
    let server;
    before(async () => {
      server = await startIgnisServer(["--api-key", API_KEY]);
    });
    after(async () => {
      await server?.stop();
    });

    it("lets the user supply the key, and the protected call then succeeds", async (t) => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${server.url}/api/doc/explorer`);
      await page.locator("details.op").first().waitFor();
      assert.ok(
        (await operation(page, "GET", "/api/socket/info").locator(".lock").count()) === 1,
        "protected operations are marked",
      );

      const refused = await send(page, "GET", "/api/socket/info");
      assert.match(refused.status, /^401\b/);

      await page.getByLabel("API key").fill(API_KEY);
      const info = await send(page, "GET", "/api/socket/info");
      assert.match(info.status, /^200 OK\b/);
      assert.equal(info.body.status, "running");

      const broadcast = await send(page, "POST", "/api/socket/broadcast", {
        body: JSON.stringify({ topic: "news", data: 0 }),
      });
      assert.match(broadcast.status, /^200 OK\b/);
      assert.equal(broadcast.body.success, true);

      const shot = path.join(shots, "explorer-api-key.png");
      await page.screenshot({ path: shot, fullPage: true });
      t.diagnostic(`screenshot: ${shot}`);

      // The key survives a reload (the page keeps it for the user).
      await page.reload();
      await page.locator("details.op").first().waitFor();
      assert.equal(await page.getByLabel("API key").inputValue(), API_KEY);
      assert.deepEqual(unexpected(errors, /status of 401/), []);
      await page.close();
    });
  });
});
