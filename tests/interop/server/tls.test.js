// The official socket.io-client over HTTPS and WSS against ignis-server with --tls-cert and
// --tls-key: a CA and a server certificate made for the run with openssl, given to the client
// with Node's `ca` option; a client that trusts another CA is refused.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { client, once, closeAll } from "../lib/harness.js";
import { startIgnisServer } from "../lib/ignis-server.js";

/** A CA and a certificate for localhost signed by it, in `dir`; returns the CA's PEM. */
function makeCertificates(dir, name) {
  const file = (f) => path.join(dir, `${name}-${f}`);
  const openssl = (...args) => execFileSync("openssl", args, { stdio: "pipe" });
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "1", "-subj", `/CN=${name} CA`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign");
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", file("key.pem"), "-out", file("server.csr"), "-subj", "/CN=localhost");
  writeFileSync(file("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
    "-CAcreateserial", "-out", file("cert.pem"), "-days", "1", "-extfile", file("ext.cnf"));
  return { ca: readFileSync(file("ca.pem"), "utf8"), cert: file("cert.pem"), key: file("key.pem") };
}

describe("ignis-server over TLS", () => {
  let dir;
  let trusted;
  let other;
  let server;
  let url;
  const sockets = [];

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "ignis-interop-tls-"));
    trusted = makeCertificates(dir, "trusted");
    other = makeCertificates(dir, "other");
    server = await startIgnisServer(["--tls-cert", trusted.cert, "--tls-key", trusted.key]);
    url = `https://localhost:${server.port}`;
  });
  after(async () => {
    closeAll(...sockets);
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const transports of [["websocket"], ["polling"], ["polling", "websocket"]]) {
    it(`connects and authenticates over ${transports.join(" then ")}`, async () => {
      const socket = client(url, { path: "/io", transports, ca: trusted.ca });
      sockets.push(socket);
      await once(socket, "connect");
      socket.emit("authenticate");
      const [auth] = await socket.next("authenticated", 5000);
      assert.equal(auth.id, socket.id);
      if (transports.length === 2) {
        // The upgrade to WSS follows the polling handshake over HTTPS (it may be done already).
        if (socket.io.engine.transport.name !== "websocket") await once(socket.io.engine, "upgrade");
        assert.equal(socket.io.engine.transport.name, "websocket");
      }
      socket.emit("echo", { n: 1 });
      const [echo] = await socket.next("echo:response", 5000);
      assert.deepEqual(echo.original, { n: 1 });
    });
  }

  it("refuses a client that trusts another CA", async () => {
    const socket = client(url, { path: "/io", transports: ["websocket"], ca: other.ca });
    sockets.push(socket);
    const [err] = await once(socket, "connect_error");
    assert.match(String(err.description?.message ?? err.description ?? err.message), /certificate|self-signed|issuer/i);
  });
});
