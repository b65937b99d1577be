// The real Socket.IO Admin UI (the built `ui/dist` of the npm package @socket.io/admin-ui),
// served from another origin, in Chromium, logged in to ignis-server: it lists the sockets and
// rooms of a running scenario, and its disconnect button disconnects a client.
// ADMIN_UI_SCREENSHOT=path saves the screenshot of the sockets page there (docs/admin-ui.png).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { ADMIN_PASSWORD, ADMIN_USER, next, roomClient, startAdminServer } from "../lib/admin.js";
import { launchBrowser, WAIT_MS } from "../lib/browser.js";
import { startDirServer } from "../lib/static.js";

const require = createRequire(import.meta.url);
const UI_DIST = path.join(path.dirname(require.resolve("@socket.io/admin-ui/package.json")), "ui/dist");
const MDI = path.dirname(require.resolve("@mdi/font/package.json"));

/** The page's CDN stylesheets, from disk: the icon font from @mdi/font, no web font. */
async function offline(page) {
  await page.route(/^https:\/\/fonts\.googleapis\.com\//, (route) =>
    route.fulfill({ status: 200, contentType: "text/css", body: "" }),
  );
  await page.route(/^https:\/\/cdn\.jsdelivr\.net\/npm\/@mdi\/font@[^/]+\/(.*)$/, async (route) => {
    const rest = /@mdi\/font@[^/]+\/([^?#]*)/.exec(route.request().url())[1];
    const file = path.resolve(MDI, rest);
    if (!file.startsWith(MDI + path.sep)) return route.fulfill({ status: 404, body: "" });
    const type = file.endsWith(".css") ? "text/css" : "font/woff2";
    return route.fulfill({ status: 200, contentType: type, body: await readFile(file) });
  });
}

describe("the Socket.IO Admin UI against ignis-server", () => {
  let browser;
  let ui;
  let server;
  const clients = {};
  before(async () => {
    [browser, ui] = await Promise.all([launchBrowser(), startDirServer(UI_DIST)]);
    // The UI connects with `withCredentials: true`: its origin is listed.
    server = await startAdminServer(["--cors-origins", ui.origin]);
    clients.alice = await roomClient(server.url, ["lobby", "team-red"]);
    clients.bob = await roomClient(server.url, ["lobby", "team-blue"]);
    clients.carol = await roomClient(server.url, ["team-blue"]);
  });
  after(async () => {
    for (const c of Object.values(clients)) c.close();
    await server?.stop();
    await ui?.close();
    await browser?.close();
  });

  it("logs in, shows the sockets and rooms, and disconnects a socket", async () => {
    const { page, errors } = await browser.newPage();
    await offline(page);
    await page.goto(`${ui.origin}/`);

    // The connection dialog, as a person fills it in.
    await page.getByLabel("Server URL").fill(server.url);
    await page.getByLabel("Username").fill(ADMIN_USER);
    await page.getByLabel("Password").fill("not the password");
    await page.getByText("Advanced options").click();
    await page.getByLabel("Path").fill("/io");
    assert.equal(await page.getByLabel("Admin namespace").inputValue(), "/admin");
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByText("invalid credentials").waitFor();
    await page.getByLabel("Password").fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });

    // Every socket of the scenario, with its transport.
    await page.goto(`${ui.origin}/#/sockets/`);
    for (const c of Object.values(clients)) {
      await page.getByRole("row").filter({ hasText: c.id }).waitFor();
    }
    const aliceRow = page.getByRole("row").filter({ hasText: clients.alice.id });
    assert.match(await aliceRow.innerText(), /websocket/i);

    if (process.env.ADMIN_UI_SCREENSHOT) {
      await page.getByText("Connection", { exact: true }).waitFor({ state: "hidden" });
      await page.screenshot({ path: process.env.ADMIN_UI_SCREENSHOT });
    }

    // One socket's page: its rooms.
    await aliceRow.click();
    for (const room of ["lobby", "team-red", "io-default"]) {
      await page.getByRole("row").filter({ hasText: room }).first().waitFor();
    }

    // The rooms of the scenario.
    await page.goto(`${ui.origin}/#/rooms/`);
    for (const room of ["lobby", "team-red", "team-blue", "io-notification"]) {
      await page.getByRole("row").filter({ hasText: room }).first().waitFor();
    }

    // The disconnect button of bob's row disconnects bob.
    await page.goto(`${ui.origin}/#/sockets/`);
    const bobId = clients.bob.id;
    const bobRow = page.getByRole("row").filter({ hasText: bobId });
    const disconnected = next(clients.bob, "disconnect", { ms: WAIT_MS });
    await bobRow.getByRole("button").click();
    const [reason] = await disconnected;
    assert.equal(reason, "io server disconnect");
    // The click also opens the socket's page (the row's own click): back to the list, without bob.
    await page.goto(`${ui.origin}/#/sockets/`);
    await page.getByRole("row").filter({ hasText: clients.alice.id }).waitFor();
    await bobRow.waitFor({ state: "detached" });
    assert.equal(clients.alice.connected, true);
    assert.equal(clients.carol.connected, true);

    // The only errors are the refused login's (none) and the CDN requests answered from disk.
    assert.deepEqual(errors, []);
  });
});
