// DOM helpers. User content only ever reaches the page as text (Text nodes, textContent,
// attribute values): never as markup.

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/**
 * Builds an element. `props`: `class`, `text`, `dataset`, `on<event>` listeners, and attributes
 * (true: present, false/null/undefined: absent). Children: nodes or strings (as text).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** The name people see. */
export const nameOf = (user) => user?.displayName || user?.username || "Someone";

/** Up to two initials of a user's name. */
export function initials(user) {
  const words = nameOf(user).trim().split(/[\s._-]+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : nameOf(user).slice(0, 2);
  return letters.toUpperCase();
}

/** One of the avatar colours, from the username: the same for a user everywhere, every time. */
export function colourOf(key = "") {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return `c${h % 8}`;
}

/** A round avatar with initials, and an online dot when `online` is a boolean. */
export function avatar(user, online) {
  const node = el("span", { class: `avatar ${colourOf(user?.username)}`, "aria-hidden": "true" }, initials(user));
  if (typeof online === "boolean") node.append(dot(online));
  return node;
}

/** The presence dot; `data-online` says which for tests and styles. */
export function dot(online) {
  return el("span", { class: "dot", "data-testid": "presence-dot", "data-online": String(online) });
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** `14:05` today, `Mon 7 Dec 14:05` another day. */
export function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? timeFormat.format(d) : `${dayFormat.format(d)} ${timeFormat.format(d)}`;
}

export function fullTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : fullFormat.format(d);
}
