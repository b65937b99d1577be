// HAProxy with the committed configuration (deploy/haproxy.cfg, the README's) in front of
// ignis-server nodes, and the small tools the deployment tests share.
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { REPO_ROOT, eventually } from "./harness.js";

/** A port nobody listens on (taken, then released). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const proxies = new Set();
process.on("exit", () => {
  for (const child of proxies) child.kill("SIGKILL");
});

/** The names of the configuration's `server` lines, in order. */
export const SERVER_NAMES = ["one", "two", "three"];

/**
 * HAProxy with deploy/haproxy.cfg in front of `ports` (one per `server` line of the file, which
 * has three; a test with fewer nodes names its last node again for the lines left over).
 */
export async function startHaproxy(ports) {
  const port = await freePort();
  const config = path.join(REPO_ROOT, "deploy/haproxy.cfg");
  const nodes = SERVER_NAMES.map((_, i) => `127.0.0.1:${ports[Math.min(i, ports.length - 1)]}`);
  const child = spawn(process.env.HAPROXY_BIN ?? "haproxy", ["-db", "-f", config], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      IGNIS_LB_BIND: `127.0.0.1:${port}`,
      IGNIS_NODE_ONE: nodes[0],
      IGNIS_NODE_TWO: nodes[1],
      IGNIS_NODE_THREE: nodes[2],
    },
  });
  proxies.add(child);
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  child.on("error", (err) => (output += `\n${err.message} (is HAProxy installed? apt-get install haproxy)`));
  const url = `http://127.0.0.1:${port}`;
  // Up once it answers through to a node.
  await eventually(
    () => fetch(`${url}/api/socket/ready`).then((r) => r.ok, () => false),
    10000,
    "HAProxy answering",
  ).catch((err) => {
    throw new Error(`${err.message}:\n${output}`);
  });
  return {
    url,
    logs: () => output,
    /** How many times HAProxy has seen the node of `server` line `name` come up. */
    upCount: (name) => output.split(`Server ignis/${name} is UP`).length - 1,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
      proxies.delete(child);
    },
  };
}
