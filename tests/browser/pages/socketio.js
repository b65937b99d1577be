// Loaded from a different origin than the ignis-server.
// Query: ?server=<url>&transports=polling,websocket&credentials=1 (credentials: cookies on /io and REST calls)
// Everything the page sees goes into `window.state` (read by the test) and onto the page (for screenshots).
"use strict";
(function () {
  const params = new URLSearchParams(window.location.search);
  const server = params.get("server");
  const transports = (params.get("transports") || "polling,websocket").split(",");
  const withCredentials = params.get("credentials") === "1";
  const state = { events: [], transports: [], connected: false, authenticated: null, connectError: null };
  window.state = state;
  const logEl = document.getElementById("log");
  const show = (line) => { logEl.textContent += line + "\n"; };

  const socket = io(server, { path: "/io", withCredentials, transports, reconnection: false });
  window.socket = socket;

  const noteTransport = (name) => {
    state.transports.push(name);
    document.getElementById("transport").textContent = name;
  };
  socket.io.on("open", () => {
    noteTransport(socket.io.engine.transport.name);
    socket.io.engine.on("upgrade", (transport) => { noteTransport(transport.name); show("upgraded to " + transport.name); });
  });
  socket.on("connect", () => {
    state.connected = true;
    show("connected " + socket.id);
    socket.emit("authenticate");
  });
  socket.on("connect_error", (err) => {
    state.connectError = String(err && err.message);
    show("connect_error " + state.connectError);
  });
  socket.on("disconnect", (reason) => { state.connected = false; show("disconnect " + reason); });
  socket.on("authenticated", (payload) => { state.authenticated = payload; show("authenticated " + JSON.stringify(payload)); });
  socket.onAny((event, ...args) => {
    state.events.push({ event, args });
    if (event !== "authenticated") show("event " + event + " " + JSON.stringify(args));
  });

  /** A cross-origin REST call (credentialed with credentials=1); resolves with what the page could read of the answer. */
  window.callApi = async function (method, path, body, headers) {
    const init = { method, credentials: withCredentials ? "include" : "same-origin", headers: Object.assign({}, headers || {}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      const res = await fetch(server + path, init);
      const text = await res.text();
      show("fetch " + method + " " + path + " -> " + res.status);
      return { ok: true, status: res.status, requestId: res.headers.get("x-request-id"), text };
    } catch (err) {
      show("fetch " + method + " " + path + " failed: " + err);
      return { ok: false, error: String(err) };
    }
  };
})();
