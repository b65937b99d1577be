-- The chat's schema (spec §15.1 plus the password hash), PostgreSQL flavour. `seq` is the order
-- rows were stored in, the cursor of history pages.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    modified_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    username VARCHAR(50) NOT NULL UNIQUE,
    display_name VARCHAR(100),
    avatar TEXT,
    is_online BOOLEAN NOT NULL DEFAULT false,
    last_seen_at TIMESTAMPTZ,
    password_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
-- The sweep of every node, every few seconds, reads the online users only.
CREATE INDEX users_online ON users (id) WHERE is_online;

CREATE TABLE rooms (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    modified_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    name VARCHAR(100) NOT NULL,
    description TEXT,
    is_private BOOLEAN NOT NULL DEFAULT false,
    created_by TEXT NOT NULL REFERENCES users (id)
);
CREATE INDEX rooms_public ON rooms (is_private, created_at);

CREATE TABLE room_members (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role VARCHAR(20) NOT NULL DEFAULT 'member',
    joined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_read_at TIMESTAMPTZ,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    UNIQUE (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE messages (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    modified_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    room_id TEXT NOT NULL REFERENCES rooms (id),
    sender_id TEXT NOT NULL REFERENCES users (id),
    content TEXT NOT NULL,
    type VARCHAR(20) NOT NULL DEFAULT 'text',
    metadata TEXT,
    edited_at TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX messages_room_seq ON messages (room_id, seq);

CREATE TABLE direct_messages (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    modified_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sender_id TEXT NOT NULL REFERENCES users (id),
    receiver_id TEXT NOT NULL REFERENCES users (id),
    content TEXT NOT NULL,
    type VARCHAR(20) NOT NULL DEFAULT 'text',
    metadata TEXT,
    read_at TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX direct_messages_pair ON direct_messages (sender_id, receiver_id, seq);
CREATE INDEX direct_messages_receiver ON direct_messages (receiver_id, seq);

-- Presence across nodes: each running node's heartbeat, and which users it holds connections of.
CREATE TABLE chat_nodes (
    node_id TEXT PRIMARY KEY,
    heartbeat_ms BIGINT NOT NULL
);
CREATE TABLE node_presence (
    node_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (node_id, user_id)
);
CREATE INDEX node_presence_user ON node_presence (user_id);
