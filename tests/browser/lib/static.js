// A second local HTTP server, on its own port and therefore a different origin from the
// ignis-server, serving the test pages and socket.io-client's browser bundle.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const FILES = new Map([
  ["/", { file: "pages/socketio.html", type: "text/html; charset=utf-8" }],
  ["/socketio.js", { file: "pages/socketio.js", type: "text/javascript; charset=utf-8" }],
  ["/socket.io.min.js", { file: "node_modules/socket.io-client/dist/socket.io.min.js", type: "text/javascript; charset=utf-8" }],
]);

/** @returns {Promise<{origin: string, close: () => Promise<void>}>} */
export async function startStaticServer() {
  const server = createServer(async (req, res) => {
    const entry = FILES.get(new URL(req.url ?? "/", "http://x").pathname);
    if (!entry) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
      return;
    }
    try {
      const body = await readFile(path.join(ROOT, entry.file));
      res.writeHead(200, { "Content-Type": entry.type, "Cache-Control": "no-store" }).end(body);
    } catch (err) {
      res.writeHead(500, { "Content-Type": "text/plain" }).end(String(err));
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

/**
 * Serves the files of `dir` (read-only, nothing outside it) on its own port.
 * @returns {Promise<{origin: string, close: () => Promise<void>}>}
 */
export async function startDirServer(dir) {
  const root = path.resolve(dir);
  const server = createServer(async (req, res) => {
    let pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (pathname.endsWith("/")) pathname += "index.html";
    const file = path.resolve(root, `.${pathname}`);
    if (!file.startsWith(root + path.sep)) {
      res.writeHead(403, { "Content-Type": "text/plain" }).end("forbidden");
      return;
    }
    try {
      const body = await readFile(file);
      const type = TYPES[path.extname(file)] ?? "application/octet-stream";
      res.writeHead(200, { "Content-Type": type, "Cache-Control": "no-store" }).end(body);
    } catch {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
