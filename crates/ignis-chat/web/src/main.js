// The page's entry: a session from localStorage, or the sign-in / sign-up form; then the chat.
import { ApiError, createApi } from "./api.js";
import { ChatApp } from "./chat.js";
import { byId } from "./dom.js";

const TOKEN_KEY = "ignis-chat.token";

function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (a private window with storage off): the session lasts until reload.
  }
}

let token = storedToken();
let app = null;

/** Ends the session and shows the form, with `notice` when the session ended on its own. */
function signOut(notice) {
  storeToken(null);
  token = null;
  if (app) {
    app.stop();
    app = null;
  }
  showAuth(notice);
}

const api = createApi(
  () => token,
  // A late answer to a request of a session already ended says nothing new.
  () => token && signOut("Your session has ended: sign in again."),
);

// ---- the form ----

let mode = "sign-in";

function setMode(next) {
  mode = next;
  const signUp = mode === "sign-up";
  byId("tab-sign-in").setAttribute("aria-pressed", String(!signUp));
  byId("tab-sign-up").setAttribute("aria-pressed", String(signUp));
  byId("display-name-field").hidden = !signUp;
  byId("auth-hint").hidden = !signUp;
  byId("auth-password").autocomplete = signUp ? "new-password" : "current-password";
  byId("auth-submit").textContent = signUp ? "Create account" : "Sign in";
  byId("auth-error").textContent = "";
}

function showAuth(notice = "") {
  byId("app-view").hidden = true;
  byId("banner").hidden = true;
  byId("auth-view").hidden = false;
  byId("auth-error").textContent = notice;
  byId("auth-password").value = "";
  byId("auth-username").focus();
  document.title = "Ignis chat";
}

byId("tab-sign-in").addEventListener("click", () => setMode("sign-in"));
byId("tab-sign-up").addEventListener("click", () => setMode("sign-up"));

const FIELD_INPUT = { username: "auth-username", password: "auth-password", displayName: "auth-display-name" };

byId("auth-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = byId("auth-username").value.trim();
  const password = byId("auth-password").value;
  const displayName = byId("auth-display-name").value.trim();
  const error = byId("auth-error");
  const submit = byId("auth-submit");
  if (!username || !password) {
    error.textContent = "Enter a username and a password.";
    return;
  }
  error.textContent = "";
  submit.disabled = true;
  try {
    const session =
      mode === "sign-up" ? await api.signUp(username, password, displayName) : await api.signIn(username, password);
    token = session.token;
    storeToken(token);
    startChat(session.user);
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.message : "Something went wrong; try again.";
    const input = e instanceof ApiError && e.field ? byId(FIELD_INPUT[e.field] ?? "") : null;
    input?.focus();
  } finally {
    submit.disabled = false;
  }
});

// ---- the chat ----

function startChat(user) {
  byId("auth-view").hidden = true;
  byId("app-view").hidden = false;
  app = new ChatApp({ api, token: () => token, me: user, onSignOut: signOut });
  app.start();
}

byId("sign-out").addEventListener("click", () => signOut());

/** Opens the stored session; while the server cannot be reached, keeps trying. */
async function resume() {
  if (!token) {
    showAuth();
    return;
  }
  try {
    const user = await api.me();
    byId("banner").hidden = true;
    startChat(user);
  } catch (e) {
    // A refused token already signed out; anything else (no server, no database) passes.
    if (e instanceof ApiError && e.status === 401) return;
    byId("banner").hidden = false;
    setTimeout(resume, 2000);
  }
}

setMode("sign-in");
resume();
