// The chat once signed in: the sidebar (rooms, conversations, people), the open room or direct
// conversation, and the Socket.IO connection that keeps them live.
//
// Nothing is missed across a lost connection: on every `authenticated` (the first and each one
// after a reconnection) the page refetches its lists, joins each of its rooms on the new
// connection, then reloads the open conversation's newest page. Live events that arrive while a
// page loads are kept and merged, so none falls between the fetch and the join.
import { io } from "socket.io-client";
import { ApiError } from "./api.js";
import { avatar, byId, el, nameOf, shortTime } from "./dom.js";
import { MessageList } from "./messages.js";

/** The page of history loaded when a conversation opens, and on each scroll to the top. */
const PAGE = 50;
/** How close to the top (px) the list loads older messages. */
const OLDER_MARGIN = 150;
/** How close to the bottom (px) counts as "reading the newest", so new messages scroll in. */
const BOTTOM_MARGIN = 150;
const ACK_TIMEOUT_MS = 10_000;
/** While one types, `typing:start` again this often (the server stops it after 3 s). */
const TYPING_REPEAT_MS = 2_000;
/** Typing stops this long after the last key. */
const TYPING_IDLE_MS = 2_500;
/** A shown indicator whose stop never came (a lost event) fades after this. */
const TYPING_SHOWN_MS = 6_000;
/** Rooms joined at once after (re)connecting: the server lets 32 events of one connection wait. */
const JOIN_BATCH = 8;

/** A refused event: the server's code and message. */
class EventError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const hashOf = (view) => `#/${view.kind}/${encodeURIComponent(view.id)}`;
const sameView = (a, b) => !!a && !!b && a.kind === b.kind && a.id === b.id;

function lockIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", "lock");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M4 7V5a4 4 0 1 1 8 0v2h1v8H3V7zm2 0h4V5a2 2 0 1 0-4 0z");
  svg.append(path);
  return svg;
}

export class ChatApp {
  /**
   * @param {{api: ReturnType<import("./api.js").createApi>, token: () => string|null, me: object,
   *   onSignOut: (notice?: string) => void}} options
   */
  constructor({ api, token, me, onSignOut }) {
    this.api = api;
    this.token = token;
    this.me = me;
    this.onSignOut = onSignOut;
    /** Room id -> the room as `GET /api/chat/rooms` lists it (with role, unreadCount, lastMessage). */
    this.rooms = new Map();
    /** Partner's id -> `{user, lastMessage, unreadCount}`. */
    this.conversations = new Map();
    /** User id -> user. */
    this.users = new Map();
    /** The open conversation: `{kind: "room"|"dm", id}`. */
    this.view = null;
    /** Bumped whenever the open conversation changes or reloads; stale answers are dropped. */
    this.viewGen = 0;
    this.syncGen = 0;
    this.loadingView = false;
    this.loadingOlder = false;
    this.hasMore = false;
    /** Live messages of the open conversation that came while its page was loading. */
    this.pending = [];
    /** Who types in the open room: user id -> the timer that fades the indicator. */
    this.typing = new Map();
    this.typingRoom = null;
    this.typingSentAt = 0;
    this.typingIdle = 0;
    this.readTimer = 0;
    this.usersTimer = 0;
    this.toastTimer = 0;
    this.reconnectTimer = 0;
    this.live = false;
    /** Rooms joined on the current connection. */
    this.joined = new Set();
    this.stopped = false;
    this.refused = false;
    this.aborter = new AbortController();
    this.list = new MessageList(byId("message-list"), {
      onEdit: (msg, content) => this.call("message:edit", { messageId: msg.id, content }).then((a) => this.onEdited(a.message)),
      onDelete: (msg) =>
        this.call("message:delete", { messageId: msg.id }).then(() => this.onDeleted({ messageId: msg.id, roomId: msg.roomId })),
    });
  }

  // ---- lifecycle ----

  start() {
    this.renderMe();
    this.renderSidebar();
    this.showWelcome("Connecting…");
    this.bindDom();
    this.connect();
  }

  /** Disconnects and lets go of the page (sign-out). */
  stop() {
    this.stopped = true;
    this.aborter.abort();
    for (const t of [this.typingIdle, this.readTimer, this.usersTimer, this.toastTimer, this.reconnectTimer]) clearTimeout(t);
    this.clearTyping();
    this.socket?.disconnect();
    this.socket?.removeAllListeners();
    this.list.reset([]);
    history.replaceState(null, "", location.pathname);
    byId("toast").hidden = true;
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  }

  /** Adds a DOM listener that sign-out removes. */
  on(target, type, listener) {
    target.addEventListener(type, listener, { signal: this.aborter.signal });
  }

  connect() {
    const socket = io({
      path: "/io",
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
    });
    this.socket = socket;
    socket.on("connect", () => socket.emit("authenticate", { token: this.token() }));
    socket.on("authenticated", () => {
      this.setLive(true);
      this.sync();
    });
    socket.on("unauthenticated", () => {
      this.refused = true;
      this.onSignOut("Your session has ended: sign in again.");
    });
    socket.on("disconnect", (reason) => {
      this.setLive(false);
      this.joined.clear();
      this.clearTyping();
      if (this.stopped || this.refused) return;
      // A server that closed the connection on purpose (a restart) is not retried by the
      // client on its own: ask again, and the client's backoff takes over from there.
      if (reason === "io server disconnect") {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => this.stopped || socket.connect(), 500);
      }
    });
    socket.on("connect_error", () => this.setLive(false));
    socket.on("message:new", (m) => this.onMessage(m));
    socket.on("message:edited", (m) => this.onEdited(m));
    socket.on("message:deleted", (d) => this.onDeleted(d));
    socket.on("dm:new", (dm) => this.onDm(dm));
    socket.on("typing:update", (t) => this.onTyping(t));
    socket.on("presence:changed", (p) => this.onPresence(p));
    socket.on("room:added", ({ room }) => {
      this.toast(`You were added to ${room?.name ?? "a room"}.`);
      this.refreshLists();
    });
    socket.connect();
  }

  setLive(live) {
    this.live = live;
    if (!this.stopped) byId("banner").hidden = live;
    const me = this.users.get(this.me.id);
    if (me) me.isOnline = live;
    this.renderMe();
  }

  /** An event with its acknowledgement: the answer, or an EventError. */
  async call(event, payload) {
    if (!this.live) throw new EventError("OFFLINE", "You are offline: try again once the connection is back.");
    let answer;
    try {
      answer = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
    } catch {
      throw new EventError("TIMEOUT", "The server did not answer in time: try again.");
    }
    if (!answer?.ok) throw new EventError(answer?.error?.code ?? "FAILED", answer?.error?.message ?? "The server refused this.");
    return answer;
  }

  /** Everything from the server again: lists, room channels, the open conversation. */
  async sync() {
    const gen = ++this.syncGen;
    try {
      const [rooms, conversations, users] = await Promise.all([
        this.api.rooms(),
        this.api.conversations(),
        this.api.users(),
      ]);
      if (gen !== this.syncGen) return;
      this.setRooms(rooms);
      this.setUsers(users);
      this.setConversations(conversations);
      this.renderSidebar();
      await this.joinRooms([...this.rooms.keys()]);
      if (gen !== this.syncGen) return;
      if (this.view) {
        this.renderHeader();
        await this.loadView();
      } else {
        this.route();
      }
    } catch (e) {
      // Lost connection: the next `authenticated` syncs again.
      if (!(e instanceof ApiError && e.status === 0)) this.toast(e.message);
    }
  }

  /** Rooms of the list that have changed (another device, an admin who added us), and their channels. */
  async refreshLists() {
    try {
      const [rooms, conversations] = await Promise.all([this.api.rooms(), this.api.conversations()]);
      this.setRooms(rooms);
      this.setConversations(conversations);
      this.renderSidebar();
      await this.joinRooms([...this.rooms.keys()]);
    } catch {
      // The next sync brings them.
    }
  }

  /** Joins the rooms' channels not joined on this connection yet. */
  async joinRooms(ids) {
    ids = ids.filter((id) => !this.joined.has(id));
    for (let i = 0; i < ids.length; i += JOIN_BATCH) {
      const batch = ids.slice(i, i + JOIN_BATCH);
      await Promise.all(
        batch.map((roomId) =>
          this.call("room:join", { roomId }).then(
            () => this.joined.add(roomId),
            (e) => {
              // Gone meanwhile (or no longer ours): drop it from the list.
              if (e.code === "NOT_FOUND" || e.code === "FORBIDDEN") {
                this.rooms.delete(roomId);
                this.renderRooms();
              }
            },
          ),
        ),
      );
    }
  }

  // ---- state ----

  setRooms(rooms) {
    this.rooms = new Map(rooms.map((r) => [r.id, r]));
  }

  setUsers(users) {
    this.users = new Map(users.map((u) => [u.id, u]));
    const me = this.users.get(this.me.id);
    if (me) {
      this.me = { ...this.me, ...me };
      me.isOnline = this.live;
    }
    this.renderMe();
  }

  setConversations(list) {
    this.conversations = new Map(list.map((c) => [c.user.id, c]));
    for (const c of list) if (!this.users.has(c.user.id)) this.users.set(c.user.id, c.user);
  }

  userOf(id) {
    if (id === this.me.id) return this.me;
    return this.users.get(id) ?? this.conversations.get(id)?.user ?? { id, username: "unknown", displayName: "Unknown user" };
  }

  /** A room message or a DM as the list shows it. */
  shown(m) {
    if ("roomId" in m) return { ...m, editable: m.senderId === this.me.id };
    return {
      id: m.id,
      senderId: m.senderId,
      sender: this.userOf(m.senderId),
      content: m.content,
      createdAt: m.createdAt,
      editedAt: null,
      editable: false,
    };
  }

  // ---- navigation ----

  go(view) {
    if (location.hash !== hashOf(view)) location.hash = hashOf(view);
    else this.route();
  }

  /** Opens what the address names, or the first room. */
  route() {
    const m = /^#\/(room|dm)\/(.+)$/.exec(location.hash);
    let view = null;
    if (m) {
      try {
        view = { kind: m[1], id: decodeURIComponent(m[2]) };
      } catch {
        view = null;
      }
    }
    if (!view) {
      const first = this.sortedRooms()[0];
      if (!first) {
        this.closeView();
        return;
      }
      view = { kind: "room", id: first.id };
      history.replaceState(null, "", hashOf(view));
    }
    if (sameView(view, this.view)) return;
    this.openView(view);
  }

  openView(view) {
    this.stopTyping();
    this.clearTyping();
    this.view = view;
    this.typingRoom = view.kind === "room" ? view.id : null;
    this.loadingOlder = false;
    this.hasMore = false;
    this.list.reset([]);
    byId("composer").hidden = false;
    byId("empty-state").hidden = true;
    this.renderHeader();
    this.renderSidebar();
    this.loadView();
    // The unread marker moves as soon as the conversation is shown.
    this.markRead(true);
  }

  closeView(message) {
    this.stopTyping();
    this.clearTyping();
    this.view = null;
    this.viewGen++;
    this.list.reset([]);
    this.renderSidebar();
    this.showWelcome(message);
  }

  showWelcome(message) {
    byId("conversation-title").replaceChildren(el("span", { "data-testid": "conversation-name" }, `Welcome, ${nameOf(this.me)}`));
    byId("conversation-subtitle").textContent = "";
    byId("add-member").hidden = true;
    byId("composer").hidden = true;
    byId("history-status").textContent = "";
    const empty = byId("empty-state");
    empty.hidden = false;
    empty.replaceChildren(
      el("p", {}, message ?? "Create a room, browse the public rooms, or pick someone under People to write to them."),
    );
  }

  /** Loads the open conversation's newest page. */
  async loadView() {
    const view = this.view;
    if (!view) return;
    const gen = ++this.viewGen;
    this.loadingView = true;
    this.pending = [];
    this.setStatus("Loading messages…");
    try {
      const page = view.kind === "room" ? await this.api.roomMessages(view.id, PAGE) : await this.api.dms(view.id, PAGE);
      if (gen !== this.viewGen) return;
      this.list.reset(page.reverse().map((m) => this.shown(m)));
      this.hasMore = page.length === PAGE;
      for (const m of this.pending) this.list.add(m);
      this.pending = [];
      this.loadingView = false;
      this.updateStatus();
      this.scrollToBottom();
      this.fillViewport();
    } catch (e) {
      if (gen !== this.viewGen) return;
      this.loadingView = false;
      if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
        history.replaceState(null, "", location.pathname);
        this.closeView(view.kind === "room" ? "That room is not one of yours (or no longer exists)." : "That person does not exist.");
      } else {
        this.setStatus(e instanceof ApiError && e.status === 0 ? "Waiting for the connection…" : "The messages could not be loaded.");
      }
    }
  }

  /** Loads the page before the oldest shown message. */
  async loadOlder() {
    const view = this.view;
    const oldest = this.list.oldest;
    if (!view || !oldest || !this.hasMore || this.loadingOlder || this.loadingView) return;
    const gen = this.viewGen;
    this.loadingOlder = true;
    this.setStatus("Loading older messages…");
    try {
      const page =
        view.kind === "room"
          ? await this.api.roomMessages(view.id, PAGE, oldest.id)
          : await this.api.dms(view.id, PAGE, oldest.id);
      if (gen !== this.viewGen) return;
      const box = byId("messages");
      const fromBottom = box.scrollHeight - box.scrollTop;
      this.list.prepend(page.reverse().map((m) => this.shown(m)));
      // The messages read stay where they were.
      box.scrollTop = box.scrollHeight - fromBottom;
      this.hasMore = page.length === PAGE;
      this.loadingOlder = false;
      this.updateStatus();
      this.fillViewport();
    } catch {
      if (gen !== this.viewGen) return;
      this.loadingOlder = false;
      this.setStatus("Older messages could not be loaded: scroll up to try again.");
    }
  }

  /** More history while the list does not fill its box (nothing to scroll yet). */
  fillViewport() {
    const box = byId("messages");
    if (this.hasMore && box.scrollHeight <= box.clientHeight + OLDER_MARGIN) this.loadOlder();
  }

  setStatus(text) {
    byId("history-status").textContent = text;
  }

  updateStatus() {
    const view = this.view;
    if (!view) return;
    const empty = byId("empty-state");
    empty.hidden = this.list.length > 0;
    if (this.list.length === 0) {
      empty.replaceChildren(el("p", {}, view.kind === "room" ? "No messages yet: say hello!" : "No messages yet: write the first one."));
    }
    if (this.hasMore) this.setStatus("");
    else if (this.list.length === 0) this.setStatus("");
    else if (view.kind === "room") this.setStatus(`This is the beginning of ${this.rooms.get(view.id)?.name ?? "this room"}.`);
    else this.setStatus(`This is the beginning of your conversation with ${nameOf(this.userOf(view.id))}.`);
  }

  nearBottom() {
    const box = byId("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < BOTTOM_MARGIN;
  }

  scrollToBottom() {
    const box = byId("messages");
    box.scrollTop = box.scrollHeight;
  }

  /** Moves the open conversation's read marker (debounced: a burst of messages is one call). */
  markRead(now = false) {
    const view = this.view;
    if (!view || document.hidden) return;
    const entry = view.kind === "room" ? this.rooms.get(view.id) : this.conversations.get(view.id);
    const hadUnread = (entry?.unreadCount ?? 0) > 0;
    if (entry) entry.unreadCount = 0;
    this.renderSidebar();
    if (view.kind === "dm" && !hadUnread && !now) return;
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(
      () => {
        const read = view.kind === "room" ? this.api.readRoom(view.id) : this.api.readDms(view.id);
        read.catch(() => {});
      },
      now ? 0 : 400,
    );
  }

  // ---- live events ----

  /** A live message of the open conversation: shown (or kept until its page is in). */
  showLive(msg, mine) {
    if (this.loadingView) {
      this.pending.push(msg);
      return;
    }
    const follow = mine || this.nearBottom();
    if (this.list.add(msg)) {
      this.updateStatus();
      if (follow) this.scrollToBottom();
    }
  }

  onMessage(m) {
    if (!m || typeof m.roomId !== "string") return;
    const room = this.rooms.get(m.roomId);
    if (room) room.lastMessage = m;
    if (this.view?.kind === "room" && this.view.id === m.roomId) {
      this.showLive(this.shown(m), m.senderId === this.me.id);
      this.dropTyping(m.senderId);
      if (m.senderId !== this.me.id) this.markRead();
    } else if (room && m.senderId !== this.me.id) {
      room.unreadCount = (room.unreadCount ?? 0) + 1;
    }
    this.renderRooms();
  }

  onEdited(m) {
    if (!m || typeof m.id !== "string") return;
    const room = this.rooms.get(m.roomId);
    if (room?.lastMessage?.id === m.id) room.lastMessage = m;
    if (this.view?.kind === "room" && this.view.id === m.roomId) {
      this.pending = this.pending.map((p) => (p.id === m.id ? this.shown(m) : p));
      this.list.update(this.shown(m));
    }
  }

  onDeleted(d) {
    if (!d || typeof d.messageId !== "string") return;
    if (this.view?.kind === "room" && this.view.id === d.roomId) {
      this.pending = this.pending.filter((p) => p.id !== d.messageId);
      this.list.remove(d.messageId);
      this.updateStatus();
    }
  }

  onDm(dm) {
    if (!dm || typeof dm.id !== "string") return;
    const mine = dm.senderId === this.me.id;
    const partner = mine ? dm.receiverId : dm.senderId;
    const conv = this.conversations.get(partner) ?? { user: this.userOf(partner), lastMessage: dm, unreadCount: 0 };
    conv.lastMessage = dm;
    // The latest conversation first.
    this.conversations.delete(partner);
    this.conversations = new Map([[partner, conv], ...this.conversations]);
    if (!this.users.has(partner) && partner !== this.me.id) this.refreshUsersSoon();
    if (this.view?.kind === "dm" && this.view.id === partner) {
      this.showLive(this.shown(dm), mine);
      if (!mine) {
        conv.unreadCount = 1;
        this.markRead();
      }
    } else if (!mine) {
      conv.unreadCount = (conv.unreadCount ?? 0) + 1;
    }
    this.renderConversations();
    this.updateTitle();
  }

  onTyping(t) {
    if (!t || t.userId === this.me.id || this.view?.kind !== "room" || this.view.id !== t.roomId) return;
    clearTimeout(this.typing.get(t.userId));
    if (t.isTyping) {
      this.typing.set(
        t.userId,
        setTimeout(() => this.dropTyping(t.userId), TYPING_SHOWN_MS),
      );
    } else {
      this.typing.delete(t.userId);
    }
    this.renderTyping();
  }

  dropTyping(userId) {
    if (!this.typing.has(userId)) return;
    clearTimeout(this.typing.get(userId));
    this.typing.delete(userId);
    this.renderTyping();
  }

  clearTyping() {
    for (const timer of this.typing.values()) clearTimeout(timer);
    this.typing.clear();
    this.renderTyping();
  }

  onPresence(p) {
    if (!p || typeof p.userId !== "string") return;
    if (p.userId === this.me.id) return;
    const user = this.users.get(p.userId);
    if (!user) {
      // Someone new: the list learns their name from the server.
      this.refreshUsersSoon();
      return;
    }
    user.isOnline = p.status === "online";
    user.lastSeenAt = p.lastSeenAt ?? user.lastSeenAt;
    const conv = this.conversations.get(p.userId);
    if (conv) conv.user = user;
    this.renderUsers();
    this.renderConversations();
    if (this.view?.kind === "dm" && this.view.id === p.userId) this.renderHeader();
  }

  refreshUsersSoon() {
    clearTimeout(this.usersTimer);
    this.usersTimer = setTimeout(async () => {
      try {
        this.setUsers(await this.api.users());
        this.renderSidebar();
      } catch {
        // The next sync brings them.
      }
    }, 300);
  }

  // ---- typing (ours) ----

  onComposerInput() {
    const input = byId("composer-input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
    const roomId = this.typingRoom;
    if (!roomId || !this.live) return;
    if (!input.value.trim()) {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (now - this.typingSentAt > TYPING_REPEAT_MS) {
      this.typingSentAt = now;
      this.socket.emit("typing:start", { roomId });
    }
    clearTimeout(this.typingIdle);
    this.typingIdle = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingIdle);
    if (this.typingSentAt && this.typingRoom && this.live) {
      this.socket.emit("typing:stop", { roomId: this.typingRoom });
    }
    this.typingSentAt = 0;
  }

  async send() {
    const view = this.view;
    const input = byId("composer-input");
    const content = input.value;
    if (!view || !content.trim()) return;
    if (!this.live) {
      this.toast("You are offline: the message was not sent. It will be here when the connection is back.");
      return;
    }
    input.value = "";
    this.onComposerInput();
    // The server stops our typing when the message is stored.
    clearTimeout(this.typingIdle);
    this.typingSentAt = 0;
    try {
      const answer =
        view.kind === "room"
          ? await this.call("message:send", { roomId: view.id, content })
          : await this.call("dm:send", { receiverId: view.id, content });
      if (sameView(view, this.view)) this.showLive(this.shown(answer.message), true);
    } catch (e) {
      if (!input.value) input.value = content;
      this.toast(e.message);
    }
  }

  // ---- rendering ----

  renderMe() {
    byId("me-name").textContent = nameOf(this.me);
    byId("me-username").textContent = `@${this.me.username}`;
    byId("me-avatar").replaceWith(Object.assign(avatar(this.me, this.live), { id: "me-avatar" }));
  }

  renderSidebar() {
    this.renderRooms();
    this.renderConversations();
    this.renderUsers();
  }

  sortedRooms() {
    return [...this.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  renderRooms() {
    const active = this.view?.kind === "room" ? this.view.id : null;
    const items = this.sortedRooms().map((r) => {
      const unread = r.unreadCount ?? 0;
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: `side-item${r.id === active ? " active" : ""}${unread ? " unread" : ""}`,
            "data-testid": "room-item",
            "data-room-id": r.id,
            "data-room-name": r.name,
            "aria-current": r.id === active ? "page" : null,
            onclick: () => this.go({ kind: "room", id: r.id }),
          },
          el("span", { class: "glyph" }, r.isPrivate ? lockIcon() : "#"),
          el("span", { class: "side-label" }, r.name),
          unread ? el("span", { class: "badge", "data-testid": "unread-badge", "aria-label": `${unread} unread` }, String(unread)) : null,
        ),
      );
    });
    byId("room-list").replaceChildren(...items);
    byId("rooms-empty").hidden = items.length > 0;
    this.updateTitle();
  }

  renderConversations() {
    const active = this.view?.kind === "dm" ? this.view.id : null;
    const items = [...this.conversations.values()].map((c) => {
      const user = this.users.get(c.user.id) ?? c.user;
      const unread = c.unreadCount ?? 0;
      const preview = `${c.lastMessage.senderId === this.me.id ? "You: " : ""}${c.lastMessage.content}`;
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: `side-item person${user.id === active ? " active" : ""}${unread ? " unread" : ""}`,
            "data-testid": "conversation-item",
            "data-user-id": user.id,
            "data-username": user.username,
            "aria-current": user.id === active ? "page" : null,
            onclick: () => this.go({ kind: "dm", id: user.id }),
          },
          avatar(user, !!user.isOnline),
          el("span", { class: "side-text" }, el("span", { class: "side-label" }, nameOf(user)), el("span", { class: "preview" }, preview)),
          unread ? el("span", { class: "badge", "data-testid": "unread-badge", "aria-label": `${unread} unread` }, String(unread)) : null,
        ),
      );
    });
    byId("conversation-list").replaceChildren(...items);
    byId("conversations-empty").hidden = items.length > 0;
    this.updateTitle();
  }

  renderUsers() {
    const others = [...this.users.values()]
      .filter((u) => u.id !== this.me.id)
      .sort((a, b) => Number(!!b.isOnline) - Number(!!a.isOnline) || nameOf(a).localeCompare(nameOf(b)));
    const items = others.map((u) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "side-item person",
            "data-testid": "user-item",
            "data-user-id": u.id,
            "data-username": u.username,
            title: u.isOnline ? "Online" : u.lastSeenAt ? `Last seen ${shortTime(u.lastSeenAt)}` : "Offline",
            "aria-label": `${nameOf(u)}, ${u.isOnline ? "online" : "offline"}: send a direct message`,
            onclick: () => this.go({ kind: "dm", id: u.id }),
          },
          avatar(u, !!u.isOnline),
          el("span", { class: "side-text" }, el("span", { class: "side-label" }, nameOf(u)), el("span", { class: "preview" }, `@${u.username}`)),
        ),
      ),
    );
    byId("user-list").replaceChildren(...items);
    byId("people-empty").hidden = items.length > 0;
  }

  renderHeader() {
    const view = this.view;
    if (!view) return;
    const title = byId("conversation-title");
    const subtitle = byId("conversation-subtitle");
    if (view.kind === "room") {
      const room = this.rooms.get(view.id);
      title.replaceChildren(
        el("span", { class: "glyph" }, room?.isPrivate ? lockIcon() : "#"),
        el("span", { "data-testid": "conversation-name" }, room?.name ?? "Room"),
      );
      subtitle.textContent = room?.description || (room?.isPrivate ? "Private room" : "Public room");
      byId("add-member").hidden = !(room?.isPrivate && room.role === "admin");
      byId("composer-input").placeholder = `Message ${room?.isPrivate ? "" : "#"}${room?.name ?? ""}`;
    } else {
      const user = this.userOf(view.id);
      title.replaceChildren(avatar(user, !!user.isOnline), el("span", { "data-testid": "conversation-name" }, nameOf(user)));
      subtitle.textContent = user.isOnline
        ? `@${user.username} · online`
        : `@${user.username}${user.lastSeenAt ? ` · last seen ${shortTime(user.lastSeenAt)}` : ""}`;
      byId("add-member").hidden = true;
      byId("composer-input").placeholder = `Message ${nameOf(user)}`;
    }
  }

  renderTyping() {
    const names = [...this.typing.keys()].map((id) => nameOf(this.userOf(id)));
    const text =
      names.length === 0
        ? ""
        : names.length === 1
          ? `${names[0]} is typing…`
          : names.length === 2
            ? `${names[0]} and ${names[1]} are typing…`
            : "Several people are typing…";
    byId("typing").textContent = text;
  }

  updateTitle() {
    let unread = 0;
    for (const r of this.rooms.values()) unread += r.unreadCount ?? 0;
    for (const c of this.conversations.values()) unread += c.unreadCount ?? 0;
    document.title = unread ? `(${unread}) Ignis chat` : "Ignis chat";
  }

  toast(message) {
    const toast = byId("toast");
    toast.textContent = message;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (toast.hidden = true), 5000);
  }

  // ---- dialogs ----

  openCreateRoom() {
    const dialog = byId("create-room-dialog");
    byId("room-name").value = "";
    byId("room-description").value = "";
    byId("room-private").checked = false;
    byId("create-room-error").textContent = "";
    dialog.showModal();
  }

  async createRoom(event) {
    event.preventDefault();
    const name = byId("room-name").value.trim();
    const error = byId("create-room-error");
    if (!name) {
      error.textContent = "Give the room a name.";
      byId("room-name").focus();
      return;
    }
    try {
      const room = await this.api.createRoom(name, byId("room-description").value.trim(), byId("room-private").checked);
      this.rooms.set(room.id, { ...room, role: "admin", unreadCount: 0, lastMessage: null });
      await this.joinRooms([room.id]);
      byId("create-room-dialog").close();
      this.go({ kind: "room", id: room.id });
    } catch (e) {
      error.textContent = e.message;
    }
  }

  async openBrowse() {
    const dialog = byId("browse-dialog");
    const list = byId("public-room-list");
    const status = byId("browse-status");
    list.replaceChildren();
    status.textContent = "Loading…";
    dialog.showModal();
    try {
      const rooms = await this.api.publicRooms();
      status.textContent = rooms.length ? "" : "There are no public rooms yet: create one.";
      list.replaceChildren(
        ...rooms.map((r) => {
          const member = this.rooms.has(r.id);
          return el(
            "li",
            { "data-testid": "public-room", "data-room-id": r.id, "data-room-name": r.name },
            el("div", { class: "public-room-text" }, el("strong", {}, `# ${r.name}`), r.description ? el("span", { class: "muted" }, r.description) : null),
            el(
              "button",
              {
                type: "button",
                class: member ? "ghost small" : "primary small",
                "data-testid": member ? "public-room-open" : "public-room-join",
                onclick: (e) => (member ? this.openJoined(r.id) : this.joinPublic(r, e.currentTarget)),
              },
              member ? "Open" : "Join",
            ),
          );
        }),
      );
    } catch (e) {
      status.textContent = e.message;
    }
  }

  openJoined(roomId) {
    byId("browse-dialog").close();
    this.go({ kind: "room", id: roomId });
  }

  async joinPublic(room, button) {
    button.disabled = true;
    try {
      const answer = await this.call("room:join", { roomId: room.id });
      this.joined.add(room.id);
      this.rooms.set(room.id, { ...answer.room, role: "member", unreadCount: 0, lastMessage: null });
      this.openJoined(room.id);
    } catch (e) {
      byId("browse-status").textContent = e.message;
      button.disabled = false;
    }
  }

  openAddMember() {
    const select = byId("add-member-user");
    const others = [...this.users.values()].filter((u) => u.id !== this.me.id).sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
    select.replaceChildren(...others.map((u) => el("option", { value: u.id }, `${nameOf(u)} (@${u.username})`)));
    byId("add-member-error").textContent = others.length ? "" : "Nobody else has an account yet.";
    byId("add-member-dialog").showModal();
  }

  async addMember(event) {
    event.preventDefault();
    const roomId = this.view?.kind === "room" ? this.view.id : null;
    const userId = byId("add-member-user").value;
    if (!roomId || !userId) return;
    try {
      await this.api.addMember(roomId, userId);
      byId("add-member-dialog").close();
      this.toast(`${nameOf(this.userOf(userId))} can now join this room.`);
    } catch (e) {
      byId("add-member-error").textContent = e.status === 409 ? "Already a member of this room." : e.message;
    }
  }

  // ---- DOM events ----

  bindDom() {
    this.on(byId("composer"), "submit", (e) => {
      e.preventDefault();
      this.send();
    });
    const input = byId("composer-input");
    this.on(input, "input", () => this.onComposerInput());
    this.on(input, "keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.send();
      }
    });
    this.on(input, "blur", () => this.stopTyping());
    this.on(byId("messages"), "scroll", () => {
      if (byId("messages").scrollTop < OLDER_MARGIN) this.loadOlder();
    });
    this.on(window, "hashchange", () => this.route());
    this.on(document, "visibilitychange", () => {
      if (document.hidden) return;
      this.markRead();
      if (this.live) this.refreshLists();
    });
    this.on(byId("new-room"), "click", () => this.openCreateRoom());
    this.on(byId("create-room-form"), "submit", (e) => this.createRoom(e));
    this.on(byId("browse-rooms"), "click", () => this.openBrowse());
    this.on(byId("add-member"), "click", () => this.openAddMember());
    this.on(byId("add-member-form"), "submit", (e) => this.addMember(e));
    for (const button of document.querySelectorAll("dialog [data-close]")) {
      this.on(button, "click", () => button.closest("dialog")?.close());
    }
  }
}
