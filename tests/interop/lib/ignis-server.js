// Starts the real `ignis-server` binary with the given flags and offers helpers for its REST API.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./harness.js";

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * @param {string[]} args extra command-line flags
 * @returns {Promise<{port:number, url:string, api:string, logs:() => string, stop:(signal?:string) => Promise<number|null>, exited: Promise<number|null>}>}
 */
export async function startIgnisServer(args = [], env = {}) {
  const bin = path.resolve(REPO_ROOT, process.env.IGNIS_SERVER_BIN ?? "target/debug/ignis-server");
  if (!existsSync(bin)) {
    throw new Error(`ignis-server not found at ${bin}: build it with \`cargo build -p ignis-server\` or set IGNIS_SERVER_BIN`);
  }
  // A port of the caller's (a node restarted behind a load balancer keeps its address), else a free one.
  let full = args.includes("--port") ? args : ["--port", "0", ...args];
  // SIGTERM drains over --drain-seconds (15 by default): a test that stops a server with
  // clients still on it does not wait for that unless it asks for a window.
  if (!full.includes("--drain-seconds")) full = [...full, "--drain-seconds", "0"];
  return startBinary(bin, full, env);
}

/** The component example of the ignis crate (its flags: see crates/ignis/examples/component.rs). */
export async function startComponentExample(args = []) {
  const bin = path.resolve(REPO_ROOT, process.env.IGNIS_COMPONENT_BIN ?? "target/debug/examples/component");
  if (!existsSync(bin)) {
    throw new Error(`component example not found at ${bin}: build it with \`cargo build -p ignis --examples\``);
  }
  return startBinary(bin, args, {});
}

async function startBinary(bin, args, env) {
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "info", ...env },
  });
  running.add(child);
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  const exited = new Promise((resolve) => child.on("exit", (code) => { running.delete(child); resolve(code); }));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ignis-server did not start:\n${output}`)), 15000);
    const check = () => {
      const m = /listening on (\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on("data", check);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`ignis-server exited with ${code}:\n${output}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    pid: child.pid,
    port,
    url,
    api: `${url}/api/socket`,
    logs: () => output,
    exited,
    stop: async (signal = "SIGTERM") => {
      child.kill(signal);
      return exited;
    },
  };
}

/** JSON request; resolves with {status, headers, body (parsed when JSON), text}. */
export async function rest(method, url, body, headers = {}) {
  const res = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

const b64url = (data) => Buffer.from(data).toString("base64url");

/** An HS256 JWT; valid for an hour unless the claims give their own `exp` (the server requires one). */
export function jwt(claims, secret) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}
