// The REST API under /api: JSON in, JSON out, the bearer token on every call.

/** A failed call: the HTTP status (0 when the server could not be reached) and the API's error. */
export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const seg = encodeURIComponent;

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * @param {() => string|null} token the current session's token
 * @param {() => void} onExpired called when the server no longer accepts the token
 */
export function createApi(token, onExpired) {
  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, "NETWORK", "The chat server cannot be reached.");
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      // An answer that is not JSON (a proxy's error page): the status says enough.
    }
    if (!res.ok) {
      const e = data?.error ?? {};
      if (res.status === 401 && t) onExpired();
      throw new ApiError(res.status, e.code ?? "HTTP", e.message ?? `The server answered ${res.status}.`, e.field ?? null);
    }
    return data;
  }
  return {
    signIn: (username, password) => request("POST", "/api/auth/sign-in", { username, password }),
    signUp: (username, password, displayName) =>
      request("POST", "/api/auth/sign-up", { username, password, displayName: displayName || null }),
    me: () => request("GET", "/api/auth/me"),
    rooms: () => request("GET", "/api/chat/rooms"),
    publicRooms: () => request("GET", "/api/chat/rooms/public"),
    createRoom: (name, description, isPrivate) =>
      request("POST", "/api/chat/rooms", { name, description: description || null, isPrivate }),
    addMember: (roomId, userId) => request("POST", `/api/chat/rooms/${seg(roomId)}/members`, { userId }),
    roomMessages: (roomId, limit, before) =>
      request("GET", `/api/chat/rooms/${seg(roomId)}/messages${query({ limit, before })}`),
    readRoom: (roomId) => request("POST", `/api/chat/rooms/${seg(roomId)}/read`),
    conversations: () => request("GET", "/api/chat/conversations"),
    dms: (userId, limit, before) => request("GET", `/api/chat/dm/${seg(userId)}${query({ limit, before })}`),
    readDms: (userId) => request("POST", `/api/chat/dm/${seg(userId)}/read`),
    users: () => request("GET", "/api/chat/users"),
  };
}
