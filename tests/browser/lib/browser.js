// Launches Debian's Chromium through playwright-core (no browser download) with a fresh profile,
// and records every console error and uncaught page error so tests can assert there are none.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Every wait in these tests is bounded by this unless it says otherwise. */
export const WAIT_MS = 5_000;

/**
 * @returns {Promise<{context: import("playwright-core").BrowserContext, newPage: () => Promise<{page: import("playwright-core").Page, errors: string[]}>, close: () => Promise<void>}>}
 */
export async function launchBrowser() {
  const profile = await mkdtemp(path.join(os.tmpdir(), "ignis-chromium-profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 20_000,
  });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      const errors = [];
      page.on("console", (msg) => {
        if (msg.type() === "error") errors.push(`console: ${msg.text()} [${msg.location().url}]`);
      });
      page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
      page.on("requestfailed", (req) => {
        // An aborted request is how a page is torn down; every other failure is an error.
        const failure = req.failure()?.errorText ?? "";
        if (!/ERR_ABORTED/.test(failure)) errors.push(`requestfailed: ${req.method()} ${req.url()} ${failure}`);
      });
      return { page, errors };
    },
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}
