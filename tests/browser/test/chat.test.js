// The chat's page in a real Chromium, against the real ignis-chat binary: two people, each in a
// browser of their own, sign up, make and join a room, chat, write to each other directly, see
// each other type and come and go; a reload keeps everything; a server restart shows the banner
// and nothing is missed after it. With CHAT_SCREENSHOT=path, the last test saves a screenshot of
// a realistic conversation there (docs/chat.png is made so).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { launchBrowser } from "../lib/browser.js";
import {
  api,
  conversationItem,
  createRoom,
  freePort,
  headlessUser,
  message,
  roomItem,
  send,
  signUp,
  startChat,
  tempDataDir,
  userItem,
} from "../lib/chat.js";

/** The presence grace the chat runs with: short, so that "offline" comes quickly. */
const GRACE_MS = 500;
const CHAT_ARGS = ["--presence-grace-ms", String(GRACE_MS), "--node-heartbeat-ms", "1000"];

/** Errors a page logs while its server is away: refused connections, and nothing else. */
const DOWN = /ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|WebSocket connection to .* failed|Failed to load resource|net::ERR_/;

describe("the chat page", () => {
  let data;
  let port;
  let chat;
  let aliceBrowser;
  let bobBrowser;
  let alice;
  let bob;
  let aliceErrors;
  let bobErrors;

  before(async () => {
    data = await tempDataDir();
    port = await freePort();
    chat = await startChat({ port, dataDir: data.dir, args: CHAT_ARGS });
    aliceBrowser = await launchBrowser();
    bobBrowser = await launchBrowser();
    ({ page: alice, errors: aliceErrors } = await aliceBrowser.newPage());
    ({ page: bob, errors: bobErrors } = await bobBrowser.newPage());
  });
  after(async () => {
    await aliceBrowser?.close();
    await bobBrowser?.close();
    await chat?.stop();
    await data?.remove();
  });

  it("serves the page under its Content-Security-Policy, with the sign-in form", async () => {
    const response = await alice.goto(chat.url);
    assert.equal(response?.status(), 200);
    const csp = response?.headers()["content-security-policy"] ?? "";
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /connect-src 'self' ws: wss:/);
    await alice.getByTestId("auth-submit").waitFor();
    assert.equal(await alice.getByTestId("auth-submit").textContent(), "Sign in");
  });

  it("refuses a wrong password with the server's message", async () => {
    await alice.getByLabel("Username").fill("nobody");
    await alice.getByLabel("Password").fill("not the password");
    await alice.getByTestId("auth-submit").click();
    await alice.getByTestId("auth-error").getByText("wrong username or password").waitFor();
    // Chromium logs the 401 itself; that one is expected, and forgotten.
    assert.ok(aliceErrors.length > 0 && aliceErrors.every((e) => /401/.test(e)), aliceErrors.join("\n"));
    aliceErrors.length = 0;
  });

  it("two people sign up, create and join a room, and chat both ways", async () => {
    await signUp(alice, chat.url, { username: "alice", displayName: "Alice Martin" });
    await signUp(bob, chat.url, { username: "bob", displayName: "Bob Chen" });
    assert.equal(await alice.getByTestId("me-name").textContent(), "Alice Martin");

    await createRoom(alice, "general", { description: "Everything and anything" });
    assert.equal(await alice.getByTestId("conversation-subtitle").textContent(), "Everything and anything");

    await bob.getByTestId("browse-rooms").click();
    const listed = bob.locator('[data-testid="public-room"][data-room-name="general"]');
    await listed.getByTestId("public-room-join").click();
    await bob.getByTestId("conversation-name").getByText("general", { exact: true }).waitFor();
    await roomItem(bob, "general").waitFor();

    await send(alice, "Hi Bob! Welcome to general.");
    await message(bob, "Hi Bob! Welcome to general.").waitFor();
    await send(bob, "Thanks Alice, glad to be here.");
    await message(alice, "Thanks Alice, glad to be here.").waitFor();
    // Each page shows the sender's name with the message.
    assert.match(await message(bob, "Hi Bob! Welcome to general.").textContent(), /Alice Martin/);
    // The markup is text: what looks like HTML is shown as typed, never run.
    await send(alice, "<img src=x onerror=alert(1)> & <b>bold</b>");
    await message(bob, "<img src=x onerror=alert(1)> & <b>bold</b>").waitFor();
    assert.equal(await bob.locator(".message-list img, .message-list b").count(), 0);
  });

  it("shows who is typing, which stops on its own and when the message is sent", async () => {
    const typing = alice.getByTestId("typing");
    await bob.getByTestId("composer-input").pressSequentially("I am writ", { delay: 20 });
    await typing.getByText("Bob Chen is typing…").waitFor();
    // Bob pauses: his page stops the indicator (after 2.5 s idle).
    await alice.waitForFunction(() => document.querySelector('[data-testid="typing"]').textContent === "", null, {
      timeout: 6_000,
    });
    await bob.getByTestId("composer-input").pressSequentially("ing more", { delay: 20 });
    await typing.getByText("Bob Chen is typing…").waitFor();
    await bob.getByTestId("composer-input").press("Enter");
    await message(alice, "I am writing more").waitFor();
    assert.equal(await typing.textContent(), "");
  });

  it("shows who is online", async () => {
    const dot = userItem(alice, "bob").getByTestId("presence-dot");
    await alice.waitForFunction(
      () => document.querySelector('[data-testid="user-item"][data-username="bob"] [data-testid="presence-dot"]')?.dataset.online === "true",
    );
    assert.equal(await dot.getAttribute("data-online"), "true");
    assert.equal(await userItem(bob, "alice").getByTestId("presence-dot").getAttribute("data-online"), "true");
  });

  it("sends direct messages, with an unread badge until they are read", async () => {
    await userItem(alice, "bob").click();
    await alice.getByTestId("conversation-name").getByText("Bob Chen", { exact: true }).waitFor();
    await send(alice, "Psst, a private word.");

    const fromAlice = conversationItem(bob, "alice");
    await fromAlice.getByTestId("unread-badge").getByText("1", { exact: true }).waitFor();
    await fromAlice.click();
    await message(bob, "Psst, a private word.").waitFor();
    await fromAlice.getByTestId("unread-badge").waitFor({ state: "detached" });
    await send(bob, "Got it.");
    await message(alice, "Got it.").waitFor();
    // A DM is not editable: no actions on it.
    assert.equal(await message(alice, "Psst, a private word.").getByTestId("message-edit").count(), 0);
    // Bob's read shows on Alice's side after a fetch: the server's count is 0 for him.
    const conversations = await bob.evaluate(async () => {
      const r = await fetch("/api/chat/conversations", {
        headers: { Authorization: `Bearer ${localStorage.getItem("ignis-chat.token")}` },
      });
      return r.json();
    });
    assert.equal(conversations[0].unreadCount, 0);
  });

  it("counts the unread messages of a room that is not open", async () => {
    // Bob is in the DM; Alice writes in general.
    await roomItem(alice, "general").click();
    await send(alice, "Anyone around for lunch?");
    await send(alice, "12:30 at the usual place.");
    const badge = roomItem(bob, "general").getByTestId("unread-badge");
    await badge.getByText("2", { exact: true }).waitFor();
    assert.match(await bob.title(), /^\(2\) /);
    await roomItem(bob, "general").click();
    await message(bob, "12:30 at the usual place.").waitFor();
    await badge.waitFor({ state: "detached" });
    assert.doesNotMatch(await bob.title(), /^\(/);
  });

  it("edits and deletes one's own messages, live on the other page", async () => {
    await send(alice, "This mesage has a typo");
    await message(bob, "This mesage has a typo").waitFor();
    // Only one's own messages offer the actions.
    assert.equal(await message(alice, "Thanks Alice, glad to be here.").getByTestId("message-edit").count(), 0);

    const mine = message(alice, "This mesage has a typo");
    await mine.hover();
    await mine.getByTestId("message-edit").click();
    const input = alice.getByTestId("message-edit-input");
    await input.fill("This message had a typo");
    await input.press("Enter");
    const edited = message(bob, "This message had a typo");
    await edited.waitFor();
    await edited.getByTestId("message-edited").waitFor();
    await message(alice, "This message had a typo").getByTestId("message-edited").waitFor();
    assert.equal(await message(bob, "This mesage has a typo").count(), 0);

    const toDelete = message(alice, "This message had a typo");
    await toDelete.hover();
    await toDelete.getByTestId("message-delete").click();
    await toDelete.getByTestId("message-delete-confirm").click();
    await message(bob, "This message had a typo").waitFor({ state: "detached" });
    await message(alice, "This message had a typo").waitFor({ state: "detached" });
  });

  it("loads older messages when scrolled to the top", async () => {
    // Carol, outside any browser, fills a room with 75 messages (under the 20/s limit).
    const carol = await headlessUser(chat.url, "carol", "Carol Diaz");
    try {
      const room = await api(chat.url, "POST", "/api/chat/rooms", {
        token: carol.token,
        body: { name: "archive", isPrivate: false },
      });
      await carol.call("room:join", { roomId: room.id });
      for (let i = 1; i <= 75; i++) {
        await carol.call("message:send", { roomId: room.id, content: `Archive message ${i}` });
        await new Promise((r) => setTimeout(r, 55));
      }
    } finally {
      carol.close();
    }
    await alice.getByTestId("browse-rooms").click();
    await alice.locator('[data-testid="public-room"][data-room-name="archive"]').getByTestId("public-room-join").click();
    await message(alice, "Archive message 75").waitFor();
    const contents = () => alice.getByTestId("message-content").allTextContents();
    assert.equal((await contents()).length, 50, "the newest page first");
    assert.equal((await contents())[0], "Archive message 26");

    const anchor = message(alice, "Archive message 26");
    await alice.getByTestId("messages").evaluate((box) => (box.scrollTop = 0));
    await message(alice, "Archive message 1").waitFor();
    assert.deepEqual(
      await contents(),
      Array.from({ length: 75 }, (_, i) => `Archive message ${i + 1}`),
    );
    await alice.getByTestId("history-status").getByText("This is the beginning of archive.").waitFor();
    // The message that was at the top is still in view: the older ones came in above it.
    const inView = await anchor.evaluate((li) => {
      const box = li.closest('[data-testid="messages"]').getBoundingClientRect();
      const r = li.getBoundingClientRect();
      return r.bottom > box.top && r.top < box.bottom;
    });
    assert.equal(inView, true);
    await roomItem(alice, "general").click();
    await message(alice, "12:30 at the usual place.").waitFor();
  });

  it("a private room: hidden from the public list, its admin adds a person", async () => {
    await createRoom(alice, "leads", { isPrivate: true });
    await alice.getByTestId("conversation-subtitle").getByText("Private room").waitFor();
    await send(alice, "Only for the leads.");
    await bob.getByTestId("browse-rooms").click();
    await bob.locator('[data-testid="public-room"][data-room-name="general"]').waitFor();
    assert.equal(await bob.locator('[data-testid="public-room"][data-room-name="leads"]').count(), 0);
    await bob.keyboard.press("Escape");

    await alice.getByTestId("add-member").click();
    await alice.getByTestId("add-member-user").selectOption({ label: "Bob Chen (@bob)" });
    await alice.getByTestId("add-member-submit").click();
    await alice.getByTestId("toast").getByText("Bob Chen can now join this room.").waitFor();
    // Bob's page hears of it at once (room:added) and lists the room.
    await bob.getByTestId("toast").getByText("You were added to leads.").waitFor();
    await roomItem(bob, "leads").click();
    await message(bob, "Only for the leads.").waitFor();
    await send(bob, "Thanks for adding me.");
    await message(alice, "Thanks for adding me.").waitFor();
    await roomItem(alice, "general").click();
    await roomItem(bob, "general").click();
    await message(bob, "12:30 at the usual place.").waitFor();
  });

  it("keeps the session, the open room and its history across a reload", async () => {
    await bob.reload();
    await bob.getByTestId("me-name").getByText("Bob Chen").waitFor();
    await bob.getByTestId("conversation-name").getByText("general", { exact: true }).waitFor();
    await message(bob, "Hi Bob! Welcome to general.").waitFor();
    await message(bob, "Anyone around for lunch?").waitFor();
    await conversationItem(bob, "alice").waitFor();
    // And it is live again: a new message arrives.
    await send(alice, "Still there after your reload?");
    await message(bob, "Still there after your reload?").waitFor();
  });

  it("has logged no errors so far", () => {
    assert.deepEqual(aliceErrors, []);
    assert.deepEqual(bobErrors, []);
  });

  it("shows a banner while the server is down, and catches up once it is back", async () => {
    await chat.stop();
    await alice.getByTestId("disconnected-banner").waitFor({ state: "visible" });
    await bob.getByTestId("disconnected-banner").waitFor({ state: "visible" });
    // Sending while offline keeps the text and says why.
    await alice.getByTestId("composer-input").fill("Sent while offline?");
    await alice.getByTestId("composer-input").press("Enter");
    await alice.getByTestId("toast").getByText(/offline/).waitFor();
    assert.equal(await alice.getByTestId("composer-input").inputValue(), "Sent while offline?");
    await alice.getByTestId("composer-input").fill("");

    chat = await startChat({ port, dataDir: data.dir, args: CHAT_ARGS });
    await alice.getByTestId("disconnected-banner").waitFor({ state: "hidden", timeout: 20_000 });
    await bob.getByTestId("disconnected-banner").waitFor({ state: "hidden", timeout: 20_000 });
    // Re-authenticated and re-joined: the room works both ways again.
    await send(alice, "Back after the restart.");
    await message(bob, "Back after the restart.").waitFor();
    await send(bob, "Me too.");
    await message(alice, "Me too.").waitFor();
    // The history from before the restart is still there.
    await message(bob, "Hi Bob! Welcome to general.").waitFor();
    // Only the refused connections of the outage were logged.
    assert.deepEqual(aliceErrors.filter((e) => !DOWN.test(e)), []);
    assert.deepEqual(bobErrors.filter((e) => !DOWN.test(e)), []);
  });

  it("signs out, forgetting the session, and back in", async () => {
    await alice.getByTestId("sign-out").click();
    await alice.getByTestId("auth-submit").waitFor();
    assert.equal(await alice.evaluate(() => localStorage.getItem("ignis-chat.token")), null);
    await alice.reload();
    await alice.getByTestId("auth-submit").waitFor();
    await alice.getByLabel("Username").fill("alice");
    await alice.getByLabel("Password").fill("correct horse battery");
    await alice.getByTestId("auth-submit").click();
    await alice.getByTestId("me-name").getByText("Alice Martin").waitFor();
    await roomItem(alice, "general").click();
    await message(alice, "Me too.").waitFor();
  });

  it("shows a person offline once their last page closes (after the grace period)", async () => {
    await alice.waitForFunction(
      () => document.querySelector('[data-testid="user-item"][data-username="bob"] [data-testid="presence-dot"]')?.dataset.online === "true",
    );
    await bobBrowser.close();
    bobBrowser = null;
    await alice.waitForFunction(
      () => document.querySelector('[data-testid="user-item"][data-username="bob"] [data-testid="presence-dot"]')?.dataset.online === "false",
      null,
      { timeout: GRACE_MS + 5_000 },
    );
  });
});

describe("a realistic conversation (the README's screenshot)", () => {
  let data;
  let chat;
  let browsers = [];
  let headless = [];

  before(async () => {
    data = await tempDataDir();
    chat = await startChat({ port: await freePort(), dataDir: data.dir, args: CHAT_ARGS });
  });
  after(async () => {
    for (const b of browsers) await b.close();
    for (const h of headless) h.close();
    await chat?.stop();
    await data?.remove();
  });

  it("shows messages, presence and typing together", async () => {
    const aliceBrowser = await launchBrowser();
    const bobBrowser = await launchBrowser();
    browsers = [aliceBrowser, bobBrowser];
    const { page: alice, errors } = await aliceBrowser.newPage();
    const { page: bob } = await bobBrowser.newPage();
    await alice.setViewportSize({ width: 1280, height: 760 });

    await signUp(alice, chat.url, { username: "alice", displayName: "Alice Martin" });
    await signUp(bob, chat.url, { username: "bob", displayName: "Bob Chen" });
    // Two more people: Carol online elsewhere, Dan who signed up and left.
    const carol = await headlessUser(chat.url, "carol", "Carol Diaz");
    headless.push(carol);
    const dan = await headlessUser(chat.url, "dan", "Dan Okafor");
    dan.close();

    await createRoom(alice, "launch", { description: "Shipping v2.0 on Friday" });
    await createRoom(alice, "design");
    await createRoom(alice, "leads", { isPrivate: true });
    await roomItem(alice, "launch").click();
    await bob.getByTestId("browse-rooms").click();
    await bob.locator('[data-testid="public-room"][data-room-name="launch"]').getByTestId("public-room-join").click();
    await bob.getByTestId("conversation-name").getByText("launch", { exact: true }).waitFor();
    const rooms = await api(chat.url, "GET", "/api/chat/rooms/public", { token: carol.token });
    const launch = rooms.find((r) => r.name === "launch");
    const design = rooms.find((r) => r.name === "design");
    await carol.call("room:join", { roomId: launch.id });
    await carol.call("room:join", { roomId: design.id });

    await send(alice, "Morning! The release branch is cut: v2.0-rc1 is on staging.");
    await send(bob, "Great, I'll run the load tests on it this morning.");
    await carol.call("message:send", { roomId: launch.id, content: "Docs are updated too; the changelog needs one more pass." });
    await message(alice, "Docs are updated too; the changelog needs one more pass.").waitFor();
    await send(alice, "Thanks Carol. Bob, can you share the p99 numbers when you have them?");
    await send(bob, "Sure: 1,000 clients, p99 at 12 ms so far.\nNo errors in the logs.");
    await send(alice, "That's well under budget. Nice work!");
    await carol.call("message:send", { roomId: design.id, content: "New icons are in the design room." });
    await roomItem(alice, "design").getByTestId("unread-badge").waitFor();

    // A direct conversation with an unread message.
    const aliceId = (await api(chat.url, "POST", "/api/auth/sign-in", { body: { username: "alice", password: "correct horse battery" } })).user.id;
    await carol.call("dm:send", { receiverId: aliceId, content: "Can we talk about the blog post later?" });
    await conversationItem(alice, "carol").getByTestId("unread-badge").waitFor();

    // Bob types; Alice sees it.
    await bob.getByTestId("composer-input").pressSequentially("Running the soak test", { delay: 15 });
    await alice.getByTestId("typing").getByText("Bob Chen is typing…").waitFor();
    await alice.waitForFunction(
      () => document.querySelector('[data-testid="user-item"][data-username="carol"] [data-testid="presence-dot"]')?.dataset.online === "true",
    );
    assert.equal(await userItem(alice, "dan").getByTestId("presence-dot").getAttribute("data-online"), "false");
    await alice.mouse.move(0, 0);
    if (process.env.CHAT_SCREENSHOT) {
      const file = path.resolve(process.env.CHAT_SCREENSHOT);
      await mkdir(path.dirname(file), { recursive: true });
      await alice.screenshot({ path: file });
      console.log(`# screenshot: ${file}`);
    }
    assert.deepEqual(errors, []);
  });
});
