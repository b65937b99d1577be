// The open conversation's messages: one <li> per message, kept in step with an array (oldest
// first) by small edits (append, prepend a page, replace, remove) rather than re-rendering all.
import { avatar, el, fullTime, nameOf, shortTime } from "./dom.js";

/** Messages of one sender closer than this share one header. */
const GROUP_MS = 5 * 60 * 1000;

/**
 * A message as the list shows it:
 * `{id, senderId, sender: {id, username, displayName}, content, createdAt, editedAt, editable}`.
 * @typedef {object} Shown
 */

function continues(prev, msg) {
  if (!prev || prev.senderId !== msg.senderId) return false;
  const gap = Date.parse(msg.createdAt) - Date.parse(prev.createdAt);
  const sameDay = new Date(msg.createdAt).toDateString() === new Date(prev.createdAt).toDateString();
  return gap >= 0 && gap < GROUP_MS && sameDay;
}

export class MessageList {
  /**
   * @param {HTMLOListElement} root
   * @param {{onEdit: (msg: Shown, content: string) => Promise<void>, onDelete: (msg: Shown) => Promise<void>}} actions
   *   each rejects with an Error whose message the list shows
   */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    /** @type {Shown[]} */
    this.messages = [];
    /** @type {Map<string, HTMLLIElement>} */
    this.nodes = new Map();
  }

  get length() {
    return this.messages.length;
  }

  get oldest() {
    return this.messages[0];
  }

  get newest() {
    return this.messages[this.messages.length - 1];
  }

  has(id) {
    return this.nodes.has(id);
  }

  /** Shows these messages (oldest first) instead of the current ones. */
  reset(messages) {
    this.messages = [];
    this.nodes.clear();
    const fragment = document.createDocumentFragment();
    for (const msg of messages) {
      if (this.nodes.has(msg.id)) continue;
      const node = this.render(msg, this.newest);
      this.messages.push(msg);
      this.nodes.set(msg.id, node);
      fragment.append(node);
    }
    this.root.replaceChildren(fragment);
  }

  /** Adds older messages (oldest first) before the current ones. */
  prepend(older) {
    const fresh = [];
    for (const msg of older) if (!this.nodes.has(msg.id)) fresh.push(msg);
    if (fresh.length === 0) return;
    const fragment = document.createDocumentFragment();
    let prev;
    for (const msg of fresh) {
      const node = this.render(msg, prev);
      this.nodes.set(msg.id, node);
      fragment.append(node);
      prev = msg;
    }
    this.root.prepend(fragment);
    this.messages = fresh.concat(this.messages);
    this.regroup(fresh.length);
  }

  /** Appends a new message; false if it is shown already. */
  add(msg) {
    if (this.nodes.has(msg.id)) return false;
    const node = this.render(msg, this.newest);
    this.messages.push(msg);
    this.nodes.set(msg.id, node);
    this.root.append(node);
    return true;
  }

  /** Shows the new version of a message (an edit). */
  update(msg) {
    const i = this.messages.findIndex((m) => m.id === msg.id);
    if (i < 0) return;
    this.messages[i] = msg;
    const node = this.render(msg, this.messages[i - 1]);
    this.nodes.get(msg.id)?.replaceWith(node);
    this.nodes.set(msg.id, node);
  }

  remove(id) {
    const i = this.messages.findIndex((m) => m.id === id);
    if (i < 0) return;
    this.messages.splice(i, 1);
    this.nodes.get(id)?.remove();
    this.nodes.delete(id);
    this.regroup(i);
  }

  /** Recomputes whether the message at `i` continues the one before it. */
  regroup(i) {
    const msg = this.messages[i];
    if (!msg) return;
    this.nodes.get(msg.id)?.classList.toggle("continued", continues(this.messages[i - 1], msg));
  }

  render(msg, prev) {
    const li = el("li", {
      class: `message${continues(prev, msg) ? " continued" : ""}${msg.editable ? " mine" : ""}`,
      "data-testid": "message",
      "data-id": msg.id,
      "data-sender": msg.sender.username,
      title: fullTime(msg.createdAt),
    });
    const text = el(
      "div",
      { class: "message-text" },
      el("p", { class: "content", "data-testid": "message-content" }, msg.content),
      msg.editedAt
        ? el("span", { class: "edited", "data-testid": "message-edited", title: `Edited ${fullTime(msg.editedAt)}` }, "(edited)")
        : null,
    );
    const body = el(
      "div",
      { class: "message-body" },
      el(
        "div",
        { class: "message-meta" },
        el("span", { class: "author" }, nameOf(msg.sender)),
        el("time", { datetime: msg.createdAt }, shortTime(msg.createdAt)),
      ),
      text,
    );
    li.append(avatar(msg.sender), body);
    if (msg.editable) li.append(this.actionsFor(msg, li, text));
    return li;
  }

  actionsFor(msg, li, text) {
    const actions = el("div", { class: "message-actions" });
    const normal = () =>
      actions.replaceChildren(
        el("button", { type: "button", class: "ghost small", "data-testid": "message-edit", onclick: () => this.edit(msg, li, text) }, "Edit"),
        el("button", { type: "button", class: "ghost small danger", "data-testid": "message-delete", onclick: confirm }, "Delete"),
      );
    const confirm = () => {
      const error = el("span", { class: "form-error", role: "alert" });
      const yes = el(
        "button",
        {
          type: "button",
          class: "small danger-solid",
          "data-testid": "message-delete-confirm",
          onclick: async () => {
            yes.disabled = true;
            try {
              await this.actions.onDelete(msg);
            } catch (e) {
              error.textContent = e.message;
              yes.disabled = false;
            }
          },
        },
        "Delete",
      );
      actions.replaceChildren(
        el("span", { class: "confirm-text" }, "Delete this message?"),
        yes,
        el("button", { type: "button", class: "ghost small", onclick: normal }, "Cancel"),
        error,
      );
      actions.classList.add("confirming");
      yes.focus();
    };
    normal();
    return actions;
  }

  edit(msg, li, text) {
    const input = el("textarea", { class: "edit-input", "data-testid": "message-edit-input", "aria-label": "Edit message", maxlength: "4000", rows: "2" });
    input.value = msg.content;
    const error = el("p", { class: "form-error", role: "alert" });
    const cancel = () => {
      form.replaceWith(text);
      li.classList.remove("editing");
    };
    const form = el(
      "form",
      { class: "edit-form" },
      input,
      el(
        "div",
        { class: "edit-actions" },
        el("button", { type: "submit", class: "primary small", "data-testid": "message-edit-save" }, "Save"),
        el("button", { type: "button", class: "ghost small", onclick: cancel }, "Cancel"),
        el("span", { class: "muted" }, "Enter to save, Escape to cancel"),
      ),
      error,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const content = input.value;
      if (content === msg.content) return cancel();
      if (!content.trim()) {
        error.textContent = "A message cannot be empty; delete it instead.";
        return;
      }
      try {
        await this.actions.onEdit(msg, content);
        // The edited message replaces this node; if it was already replaced, nothing to do.
        if (form.isConnected) cancel();
      } catch (e) {
        error.textContent = e.message;
      }
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        cancel();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    li.classList.add("editing");
    text.replaceWith(form);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
}
