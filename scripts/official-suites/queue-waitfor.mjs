// Rewrites the `waitFor` helper of an official test-suite.js in place.
//
// Upstream, `waitFor(socket, type)` adds a one-shot listener when it is called, i.e. after the
// previous `await` returned. When a fast server's frames arrive together (CONNECT answer + first
// event in one TCP read), `ws` emits both in one macrotask, before the test's continuation
// registers the next `waitFor`, and the test then waits for a frame that already went by.
// A plain queue of every event is no fix: some upstream tests rely on unawaited frames being
// dropped (the upgrade tests send "2probe" and never read "3probe"). So the replacement keeps an
// unawaited event only when it arrives in the same burst as an awaited one (before the next
// macrotask), and drops it otherwise, as upstream does. Assertions and everything else in the
// file stay untouched.
import { readFileSync, writeFileSync } from "node:fs";

const file = process.argv[2];
if (!file) {
  console.error("usage: node queue-waitfor.mjs <test-suite.js>");
  process.exit(2);
}
const source = readFileSync(file, "utf8");

const start = source.indexOf("function waitFor(socket, eventType) {");
if (start < 0 || source.indexOf("function waitFor(", start + 1) >= 0) {
  console.error(`${file}: expected exactly one "function waitFor(socket, eventType) {"`);
  process.exit(1);
}
const end = source.indexOf("\n}\n", start);
if (end < 0) {
  console.error(`${file}: end of waitFor not found`);
  process.exit(1);
}
const original = source.slice(start, end + 3);
if (!original.includes("addEventListener") || !original.includes("once: true")) {
  console.error(`${file}: waitFor does not look like the upstream one-shot listener:\n${original}`);
  process.exit(1);
}

const queued = `// waitFor rewritten by scripts/official-suites/queue-waitfor.mjs: events that arrive in the
// same burst (same macrotask) as an event the test was waiting for are kept for the next waitFor;
// any other event nobody waits for is dropped, exactly as upstream.
const QUEUED_TYPES = ["open", "message", "close"];
const queuedState = new WeakMap();
globalThis.WebSocket = class QueuedWebSocket extends globalThis.WebSocket {
  constructor(...args) {
    super(...args);
    const state = { events: {}, waiters: {}, burst: false, timer: null };
    const endBurst = () => {
      state.burst = false;
      for (const type of QUEUED_TYPES) state.events[type].length = 0;
    };
    for (const type of QUEUED_TYPES) {
      state.events[type] = [];
      state.waiters[type] = [];
      this.addEventListener(type, (event) => {
        const waiter = state.waiters[type].shift();
        if (waiter) {
          waiter(event);
          state.burst = true;
        } else if (state.burst) {
          state.events[type].push(event);
        } else {
          return;
        }
        // The test's continuation runs in the microtasks that follow; by the next macrotask it
        // has registered its next waitFor, or it did not want the event.
        if (state.timer) clearImmediate(state.timer);
        state.timer = setImmediate(endBurst);
      });
    }
    queuedState.set(this, state);
  }
};

function waitFor(socket, eventType) {
  const state = queuedState.get(socket);
  if (!state || !QUEUED_TYPES.includes(eventType)) {
    return new Promise((resolve) => {
      socket.addEventListener(eventType, (event) => resolve(event), { once: true });
    });
  }
  if (state.events[eventType].length) return Promise.resolve(state.events[eventType].shift());
  return new Promise((resolve) => state.waiters[eventType].push(resolve));
}
`;

writeFileSync(file, source.slice(0, start) + queued + source.slice(end + 3));
console.log(`${file}: waitFor replaced by the queued version`);
