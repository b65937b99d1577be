// Starts the real `ignis-server` binary on port 0 and offers a small REST helper.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

const running = new Set();
// A failing test must never leave a process behind that keeps the runner alive.
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts one of the project's binaries and waits for its "listening on PORT" line.
 * @param {{name: string, bin: string, args: string[], rustLog: string, startMs: number}} options
 * @returns {Promise<{port:number, url:string, logs:() => string, stop:() => Promise<number|null>}>}
 */
export async function startBinary({ name, bin, args, rustLog, startMs }) {
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    // The tests state every setting they rely on; an APP_ENV_* left in the caller's shell must not change them.
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("APP_ENV_"))),
      RUST_LOG: process.env.RUST_LOG ?? rustLog,
    },
  });
  running.add(child);
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  const exited = new Promise((resolve) =>
    child.on("exit", (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${startMs / 1000} s:\n${output}`)), startMs);
    child.stdout.on("data", () => {
      const m = /listening on (\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${output}`));
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    logs: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * @param {string[]} args extra command-line flags
 * @returns {Promise<{port:number, url:string, api:string, logs:() => string, stop:() => Promise<number|null>}>}
 */
export async function startIgnisServer(args = []) {
  const bin = path.resolve(REPO_ROOT, process.env.IGNIS_SERVER_BIN ?? "target/debug/ignis-server");
  if (!existsSync(bin)) {
    throw new Error(`ignis-server not found at ${bin}: build it with \`cargo build -p ignis-server\` or set IGNIS_SERVER_BIN`);
  }
  const server = await startBinary({
    name: "ignis-server",
    bin,
    args: ["--host", "127.0.0.1", "--port", "0", ...args],
    rustLog: "info",
    startMs: 10_000,
  });
  return { ...server, api: `${server.url}/api/socket` };
}

/** A JSON request from Node (not from the browser); resolves with {status, body}. */
export async function rest(method, url, body, headers = {}) {
  const res = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}
