//! The database: one [`Store`] over SQLite or PostgreSQL.
//!
//! Queries are plain SQL both databases understand (`$n` parameters, `RETURNING`, CTEs), run
//! with sqlx's runtime API, so no database is needed to build. Each call runs the same query on
//! whichever pool the store holds. The schema is created and upgraded by the migrations embedded
//! in the binary; a database whose schema is newer than the binary is refused.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::model::{
    Conversation, DirectMessage, Member, Message, Room, RoomSummary, Sender, User, new_id,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query failed (the connection was lost, a constraint other than uniqueness broke).
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(
        "the database schema is at version {found}, newer than this binary knows ({known}): \
         run a newer ignis-chat, or point --database-url at another database"
    )]
    /// The database was migrated by a newer ignis-chat; this one refuses to touch it.
    SchemaTooNew {
        /// The version recorded in the database.
        found: i64,
        /// The newest version this binary has migrations for.
        known: i64,
    },
    /// The database could not be opened or connected to.
    #[error("cannot open the database {url}: {error}")]
    Open {
        /// The database URL, as configured.
        url: String,
        /// Why connecting failed.
        error: sqlx::Error,
    },
    /// The store's writer task has stopped (at shutdown), so a write was not done.
    #[error("the database is closed")]
    Closed,
}

/// What a write ran into.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A unique key is taken (a username, a membership).
    #[error("already exists")]
    Conflict,
    /// Any other failure of the store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => WriteError::Conflict,
            _ => WriteError::Store(StoreError::Db(e)),
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One schema step, in each database's dialect.
struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "initial schema",
    sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
    postgres: include_str!("../migrations/postgres/0001_initial.sql"),
}];

/// The newest schema version this binary knows.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS chat_schema_migrations (
    version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_ms BIGINT NOT NULL)";

/// The database of the chat.
#[derive(Clone, Debug)]
pub enum Store {
    /// A file, several readers and one writer at a time.
    Sqlite(SqlitePool, MessageWriter),
    /// A server, shared by every node of a chat.
    Postgres(PgPool, MessageWriter),
}

/// Runs `$body` with `$pool` bound to whichever pool the store holds: the same SQL on both.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite($pool, _) => $body,
            Store::Postgres($pool, _) => $body,
        }
    };
}

/// Room messages waiting for the writer at most; past it, senders wait for room in the queue.
const WRITE_QUEUE: usize = 8192;
/// The most messages one transaction of the writer stores.
const MAX_BATCH: usize = 512;
/// On SQLite a batch is stored with multi-row `INSERT`s of these sizes (the largest first), so
/// that the few statement texts stay prepared on each connection.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The room messages' single writer: messages from every connection queue here, and each
/// transaction stores all that queued while the previous one committed (group commit). One
/// commit (one WAL write on SQLite, one WAL flush on PostgreSQL) then serves many messages, and
/// SQLite's writers never contend for its lock (a writer that finds it taken sleeps in its busy
/// handler). A message's sender hears back only once its transaction committed.
///
/// It also remembers who was found to be a member of which room: a message's sender is checked
/// for each message, and memberships are only ever added (no route removes one; a removal would
/// have to forget it here), so a membership seen once holds for good, on every node.
#[derive(Clone)]
pub struct MessageWriter {
    jobs: mpsc::Sender<WriteJob>,
    members: Arc<Mutex<KnownMembers>>,
}

/// Room id -> users known to be members, and how many pairs that is.
#[derive(Default)]
struct KnownMembers {
    rooms: HashMap<String, HashSet<String>>,
    count: usize,
}

/// Memberships remembered at most; past it, the memory starts again from nothing.
const MAX_KNOWN_MEMBERS: usize = 100_000;

impl std::fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageWriter")
    }
}

/// What the writer does with a message once the transaction holding it committed: a chat
/// sends it to its room. The writer publishes the messages of a transaction one after the other,
/// in storage order, before any of their senders hears back, so that they are delivered in the
/// order stored and, made together, reach each recipient together (the Socket.IO layer writes
/// broadcasts made meanwhile to the same recipients in one write). False: it could not be sent.
pub type Publish = Box<dyn FnOnce(&Message) -> bool + Send + Sync>;

/// A message row to store, what to do once it is, and who waits for it (told whether it was
/// published).
struct WriteJob {
    row: MessageRow,
    publish: Option<(Message, Publish)>,
    done: oneshot::Sender<Result<bool, sqlx::Error>>,
}

impl WriteJob {
    fn publish(&mut self) -> bool {
        self.publish
            .take()
            .is_none_or(|(message, publish)| publish(&message))
    }
}

struct MessageRow {
    id: String,
    at: OffsetDateTime,
    room_id: String,
    sender_id: String,
    content: String,
    kind: String,
}

/// The pool the writer writes with (not a [`Store`], which holds the writer's queue: the task
/// ends when the last store is dropped).
enum WriterPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// `INSERT INTO messages … VALUES (…), (…)` for `rows` rows.
fn insert_messages_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO messages (id, created_at, modified_at, room_id, sender_id, content, type) \
         VALUES ",
    );
    for r in 0..rows {
        let p = r * 6;
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    sql
}

static INSERT_MESSAGES: std::sync::LazyLock<[String; CHUNKS.len()]> =
    std::sync::LazyLock::new(|| CHUNKS.map(insert_messages_sql));

impl MessageWriter {
    fn start(pool: WriterPool) -> MessageWriter {
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_messages(pool, queue));
        MessageWriter {
            jobs,
            members: Arc::default(),
        }
    }

    fn known_member(&self, room: &str, user: &str) -> bool {
        self.members
            .lock()
            .rooms
            .get(room)
            .is_some_and(|users| users.contains(user))
    }

    fn remember_member(&self, room: &str, user: &str) {
        let mut known = self.members.lock();
        if known.count >= MAX_KNOWN_MEMBERS {
            *known = KnownMembers::default();
        }
        if known
            .rooms
            .entry(room.to_string())
            .or_default()
            .insert(user.to_string())
        {
            known.count += 1;
        }
    }

    /// Stores the row; once committed, publishes the message. Whether it was published.
    async fn insert(&self, row: MessageRow, publish: Option<(Message, Publish)>) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(WriteJob { row, publish, done })
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(answer.await.map_err(|_| StoreError::Closed)??)
    }
}

async fn write_messages(pool: WriterPool, mut queue: mpsc::Receiver<WriteJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut published = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match insert_rows(&pool, &batch).await {
            Ok(()) => {
                // Every message published before any sender hears back (see [`Publish`]).
                published.extend(batch.iter_mut().map(WriteJob::publish));
                for (job, ok) in batch.drain(..).zip(published.drain(..)) {
                    let _ = job.done.send(Ok(ok));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.done.send(Err(e));
                }
            }
            // One bad row fails its own message only: each goes again in a transaction of its
            // own.
            Err(_) => {
                for mut job in batch.drain(..) {
                    let result = insert_rows(&pool, std::slice::from_ref(&job))
                        .await
                        .map(|()| job.publish());
                    let _ = job.done.send(result);
                }
            }
        }
    }
}

/// PostgreSQL stores a whole batch with one statement (one round trip, and one transaction
/// without `BEGIN` and `COMMIT` of their own): the rows as arrays, in the order given.
const PG_INSERT_MESSAGES: &str = "INSERT INTO messages \
    (id, created_at, modified_at, room_id, sender_id, content, type) \
    SELECT r.id, r.at, r.at, r.room_id, r.sender_id, r.content, r.type \
    FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[]) \
    WITH ORDINALITY AS r(id, at, room_id, sender_id, content, type, n) ORDER BY r.n";

/// Stores the jobs' rows in one transaction, in the order given: their `seq` follows it.
async fn insert_rows(pool: &WriterPool, jobs: &[WriteJob]) -> Result<(), sqlx::Error> {
    match pool {
        WriterPool::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            let mut rest = jobs;
            while !rest.is_empty() {
                let (size, sql) = CHUNKS
                    .iter()
                    .zip(INSERT_MESSAGES.iter())
                    .find(|(size, _)| **size <= rest.len())
                    .unwrap_or((&1, &INSERT_MESSAGES[CHUNKS.len() - 1]));
                let (chunk, more) = rest.split_at(*size);
                let mut query = sqlx::query(sql);
                for job in chunk {
                    let r = &job.row;
                    query = query
                        .bind(&r.id)
                        .bind(r.at)
                        .bind(&r.room_id)
                        .bind(&r.sender_id)
                        .bind(&r.content)
                        .bind(&r.kind);
                }
                query.execute(&mut *tx).await?;
                rest = more;
            }
            tx.commit().await
        }
        WriterPool::Postgres(pool) => {
            let column = |f: fn(&MessageRow) -> &String| {
                jobs.iter().map(|j| f(&j.row).clone()).collect::<Vec<_>>()
            };
            sqlx::query(PG_INSERT_MESSAGES)
                .bind(column(|r| &r.id))
                .bind(jobs.iter().map(|j| j.row.at).collect::<Vec<_>>())
                .bind(column(|r| &r.room_id))
                .bind(column(|r| &r.sender_id))
                .bind(column(|r| &r.content))
                .bind(column(|r| &r.kind))
                .execute(pool)
                .await?;
            Ok(())
        }
    }
}

/// Typed column access shared by both databases' rows.
trait Cols {
    fn text(&self, c: &str) -> Result<String>;
    fn opt_text(&self, c: &str) -> Result<Option<String>>;
    fn flag(&self, c: &str) -> Result<bool>;
    fn int(&self, c: &str) -> Result<i64>;
    fn opt_int(&self, c: &str) -> Result<Option<i64>>;
    fn time(&self, c: &str) -> Result<OffsetDateTime>;
    fn opt_time(&self, c: &str) -> Result<Option<OffsetDateTime>>;
}

macro_rules! cols {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, c: &str) -> Result<String> {
                Ok(self.try_get(c)?)
            }
            fn opt_text(&self, c: &str) -> Result<Option<String>> {
                Ok(self.try_get(c)?)
            }
            fn flag(&self, c: &str) -> Result<bool> {
                Ok(self.try_get(c)?)
            }
            fn int(&self, c: &str) -> Result<i64> {
                Ok(self.try_get(c)?)
            }
            fn opt_int(&self, c: &str) -> Result<Option<i64>> {
                Ok(self.try_get(c)?)
            }
            fn time(&self, c: &str) -> Result<OffsetDateTime> {
                Ok(self.try_get(c)?)
            }
            fn opt_time(&self, c: &str) -> Result<Option<OffsetDateTime>> {
                Ok(self.try_get(c)?)
            }
        }
    };
}
cols!(SqliteRow);
cols!(PgRow);

const USER_COLS: &str = "u.id AS u_id, u.username AS u_username, \
    u.display_name AS u_display_name, u.avatar AS u_avatar, u.is_online AS u_is_online, \
    u.last_seen_at AS u_last_seen_at";

fn user_from(r: &impl Cols) -> Result<User> {
    Ok(User {
        id: r.text("u_id")?,
        username: r.text("u_username")?,
        display_name: r.opt_text("u_display_name")?,
        avatar: r.opt_text("u_avatar")?,
        is_online: r.flag("u_is_online")?,
        last_seen_at: r.opt_time("u_last_seen_at")?,
    })
}

const ROOM_COLS: &str = "r.id AS r_id, r.name AS r_name, r.description AS r_description, \
    r.is_private AS r_is_private, r.created_by AS r_created_by, r.created_at AS r_created_at, \
    r.modified_at AS r_modified_at";

fn room_from(r: &impl Cols) -> Result<Room> {
    Ok(Room {
        id: r.text("r_id")?,
        name: r.text("r_name")?,
        description: r.opt_text("r_description")?,
        is_private: r.flag("r_is_private")?,
        created_by: r.text("r_created_by")?,
        created_at: r.time("r_created_at")?,
        modified_at: r.time("r_modified_at")?,
    })
}

/// A message's columns (`m`) and its sender's (`s`).
const MESSAGE_COLS: &str = "m.id AS m_id, m.room_id AS m_room_id, m.sender_id AS m_sender_id, \
    m.content AS m_content, m.type AS m_type, m.metadata AS m_metadata, \
    m.edited_at AS m_edited_at, m.deleted_at AS m_deleted_at, m.created_at AS m_created_at, \
    m.modified_at AS m_modified_at, s.id AS s_id, s.username AS s_username, \
    s.display_name AS s_display_name, s.avatar AS s_avatar";

fn message_from(r: &impl Cols) -> Result<Message> {
    Ok(Message {
        id: r.text("m_id")?,
        room_id: r.text("m_room_id")?,
        sender_id: r.text("m_sender_id")?,
        content: r.text("m_content")?,
        kind: r.text("m_type")?,
        metadata: r.opt_text("m_metadata")?,
        edited_at: r.opt_time("m_edited_at")?,
        deleted_at: r.opt_time("m_deleted_at")?,
        created_at: r.time("m_created_at")?,
        modified_at: r.time("m_modified_at")?,
        sender: Sender {
            id: r.text("s_id")?,
            username: r.text("s_username")?,
            display_name: r.opt_text("s_display_name")?,
            avatar: r.opt_text("s_avatar")?,
        },
    })
}

const DM_COLS: &str = "d.id AS d_id, d.sender_id AS d_sender_id, \
    d.receiver_id AS d_receiver_id, d.content AS d_content, d.type AS d_type, \
    d.metadata AS d_metadata, d.read_at AS d_read_at, d.deleted_at AS d_deleted_at, \
    d.created_at AS d_created_at";

fn dm_from(r: &impl Cols) -> Result<DirectMessage> {
    Ok(DirectMessage {
        id: r.text("d_id")?,
        sender_id: r.text("d_sender_id")?,
        receiver_id: r.text("d_receiver_id")?,
        content: r.text("d_content")?,
        kind: r.text("d_type")?,
        metadata: r.opt_text("d_metadata")?,
        read_at: r.opt_time("d_read_at")?,
        deleted_at: r.opt_time("d_deleted_at")?,
        created_at: r.time("d_created_at")?,
    })
}

const MEMBER_COLS: &str = "id, room_id, user_id, role, joined_at, last_read_at";

fn member_from(r: &impl Cols) -> Result<Member> {
    Ok(Member {
        id: r.text("id")?,
        room_id: r.text("room_id")?,
        user_id: r.text("user_id")?,
        role: r.text("role")?,
        joined_at: r.time("joined_at")?,
        last_read_at: r.opt_time("last_read_at")?,
    })
}

/// A message to store.
pub struct NewMessage<'a> {
    /// The room the message goes to.
    pub room_id: &'a str,
    /// The sending user, copied into the stored message's `sender`.
    pub sender: &'a User,
    /// The text, already validated.
    pub content: &'a str,
    /// The message's `type` (`text` unless the client says otherwise).
    pub kind: &'a str,
}

impl Store {
    /// Opens the database at `url` (`sqlite:…` or `postgres://…`), creating an SQLite file if
    /// needed, and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        let open = |error| StoreError::Open {
            url: redact(url),
            error,
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(open)?;
            return Self::open_sqlite(options, url.to_string()).await;
        }
        let mut options = PgConnectOptions::from_str(url)
            .map_err(open)?
            .disable_statement_logging();
        // A commit does not wait for its WAL to reach the disk, as on SQLite (see
        // `open_sqlite`): a crash of the database server may lose the last fraction of a second
        // of writes, never the database's consistency. The flush was most of a message's time
        // from `message:send` to `message:new` in a busy room (docs/BENCHMARKS.md, "Chat"). A
        // URL that sets `synchronous_commit` keeps its own choice.
        if !url.contains("synchronous_commit") {
            options = options.options([("synchronous_commit", "off")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(open)?;
        let writer = MessageWriter::start(WriterPool::Postgres(pool.clone()));
        let store = Store::Postgres(pool, writer);
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating it if needed) the SQLite file at `path`: a path, not a URL, so that any
    /// file name works.
    pub async fn open_sqlite_file(path: &std::path::Path) -> Result<Store> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_sqlite(options, path.display().to_string()).await
    }

    async fn open_sqlite(options: SqliteConnectOptions, label: String) -> Result<Store> {
        let options = options
            .create_if_missing(true)
            // Readers do not wait for the writer, and a commit does not wait for the disk (a
            // power cut may lose the last commits, never the database's consistency).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|error| StoreError::Open { url: label, error })?;
        let writer = MessageWriter::start(WriterPool::Sqlite(pool.clone()));
        let store = Store::Sqlite(pool, writer);
        store.migrate().await?;
        Ok(store)
    }

    /// Which database this is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(..) => "SQLite",
            Store::Postgres(..) => "PostgreSQL",
        }
    }

    /// Closes every connection; calls after this fail.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// Applies the migrations this database lacks, each in one transaction; refuses a schema
    /// newer than the binary's.
    async fn migrate(&self) -> Result<()> {
        let known = schema_version();
        let now = crate::model::unix_ms(crate::model::now());
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if matches!(self, Store::Postgres(..)) {
                // Two nodes starting together on one database take turns.
                sqlx::query("SELECT pg_advisory_xact_lock(7253346001)")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(MIGRATIONS_TABLE).execute(&mut *tx).await?;
            let found: Option<i64> =
                sqlx::query("SELECT MAX(version) AS v FROM chat_schema_migrations")
                    .fetch_one(&mut *tx)
                    .await?
                    .opt_int("v")?;
            let found = found.unwrap_or(0);
            if found > known {
                return Err(StoreError::SchemaTooNew { found, known });
            }
            for m in MIGRATIONS.iter().filter(|m| m.version > found) {
                let sql = match self {
                    Store::Sqlite(..) => m.sqlite,
                    Store::Postgres(..) => m.postgres,
                };
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO chat_schema_migrations (version, description, applied_ms) \
                     VALUES ($1, $2, $3)",
                )
                .bind(m.version)
                .bind(m.description)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tracing::info!(version = m.version, m.description, "schema migrated");
            }
            tx.commit().await?;
            Ok(())
        })
    }

    // ---- users ----

    /// Stores a new user; a username taken in any letter case is a conflict.
    pub async fn create_user(
        &self,
        username: &str,
        display_name: Option<&str>,
        password_hash: &str,
    ) -> Result<User, WriteError> {
        let id = new_id();
        let now = crate::model::now();
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO users (id, created_at, modified_at, username, display_name, \
                 is_online, password_hash) VALUES ($1, $2, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(now)
            .bind(username)
            .bind(display_name)
            .bind(false)
            .bind(password_hash)
            .execute(pool)
            .await?;
        });
        Ok(User {
            id,
            username: username.to_string(),
            display_name: display_name.map(String::from),
            avatar: None,
            is_online: false,
            last_seen_at: None,
        })
    }

    /// A user and their password hash, by username in any letter case.
    pub async fn credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        let sql = format!(
            "SELECT {USER_COLS}, u.password_hash AS u_hash FROM users u \
             WHERE lower(u.username) = lower($1)"
        );
        on_pool!(self, |pool| {
            match sqlx::query(&sql)
                .bind(username)
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Ok(Some((user_from(&row)?, row.text("u_hash")?))),
                None => Ok(None),
            }
        })
    }

    /// The user with this id; `None` if there is none.
    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1");
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| user_from(&r))
                .transpose()
        })
    }

    /// Users by username, the online ones only if asked; at most `limit`.
    pub async fn users(&self, online_only: bool, limit: i64) -> Result<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users u WHERE ($1 = false OR u.is_online = true) \
             ORDER BY lower(u.username) LIMIT $2"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(online_only)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(user_from)
                .collect()
        })
    }

    // ---- rooms ----

    /// Creates a room; its creator is its first member, an `admin`.
    pub async fn create_room(
        &self,
        creator: &str,
        name: &str,
        description: Option<&str>,
        is_private: bool,
    ) -> Result<Room> {
        let room = Room {
            id: new_id(),
            name: name.to_string(),
            description: description.map(String::from),
            is_private,
            created_by: creator.to_string(),
            created_at: crate::model::now(),
            modified_at: crate::model::now(),
        };
        let room = Room {
            modified_at: room.created_at,
            ..room
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO rooms (id, created_at, modified_at, name, description, is_private, \
                 created_by) VALUES ($1, $2, $2, $3, $4, $5, $6)",
            )
            .bind(&room.id)
            .bind(room.created_at)
            .bind(&room.name)
            .bind(&room.description)
            .bind(room.is_private)
            .bind(&room.created_by)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO room_members (id, room_id, user_id, role, joined_at, last_read_seq) \
                 VALUES ($1, $2, $3, 'admin', $4, 0)",
            )
            .bind(new_id())
            .bind(&room.id)
            .bind(creator)
            .bind(room.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(room)
    }

    /// The room with this id; `None` if there is none.
    pub async fn room(&self, id: &str) -> Result<Option<Room>> {
        let sql = format!("SELECT {ROOM_COLS} FROM rooms r WHERE r.id = $1");
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| room_from(&r))
                .transpose()
        })
    }

    /// Public rooms, newest first, at most `limit`.
    pub async fn public_rooms(&self, limit: i64) -> Result<Vec<Room>> {
        let sql = format!(
            "SELECT {ROOM_COLS} FROM rooms r WHERE r.is_private = $1 \
             ORDER BY r.created_at DESC, r.id DESC LIMIT $2"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(false)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(room_from)
                .collect()
        })
    }

    /// The rooms `user` belongs to, with what they have not read and the last message.
    pub async fn rooms_of(&self, user: &str) -> Result<Vec<RoomSummary>> {
        let sql = format!(
            "WITH mine AS ( \
               SELECT rm.room_id, rm.role, rm.last_read_seq, rm.joined_at, \
                 (SELECT COUNT(*) FROM messages x WHERE x.room_id = rm.room_id \
                    AND x.seq > rm.last_read_seq AND x.deleted_at IS NULL \
                    AND x.sender_id <> $1) AS unread, \
                 (SELECT MAX(x.seq) FROM messages x WHERE x.room_id = rm.room_id \
                    AND x.deleted_at IS NULL) AS last_seq \
               FROM room_members rm WHERE rm.user_id = $1) \
             SELECT {ROOM_COLS}, mine.role AS role, mine.unread AS unread, \
               m.id AS has_last, {MESSAGE_COLS} \
             FROM mine JOIN rooms r ON r.id = mine.room_id \
             LEFT JOIN messages m ON m.seq = mine.last_seq \
             LEFT JOIN users s ON s.id = m.sender_id \
             ORDER BY COALESCE(mine.last_seq, 0) DESC, mine.joined_at DESC"
        );
        on_pool!(self, |pool| {
            let rows = sqlx::query(&sql).bind(user).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let last_message = match row.opt_text("has_last")? {
                        Some(_) => Some(message_from(row)?),
                        None => None,
                    };
                    Ok(RoomSummary {
                        room: room_from(row)?,
                        role: row.text("role")?,
                        unread_count: row.int("unread")?,
                        last_message,
                    })
                })
                .collect()
        })
    }

    /// The membership of `user` in `room`; `None` if they are not a member.
    pub async fn member(&self, room: &str, user: &str) -> Result<Option<Member>> {
        let sql =
            format!("SELECT {MEMBER_COLS} FROM room_members WHERE room_id = $1 AND user_id = $2");
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(room)
                .bind(user)
                .fetch_optional(pool)
                .await?
                .map(|r| member_from(&r))
                .transpose()
        })
    }

    /// Whether `user` is a member of `room`: from memory once seen (see [`MessageWriter`]).
    pub async fn is_member(&self, room: &str, user: &str) -> Result<bool> {
        let known = self.writer();
        if known.known_member(room, user) {
            return Ok(true);
        }
        let member = self.member(room, user).await?.is_some();
        if member {
            known.remember_member(room, user);
        }
        Ok(member)
    }

    fn writer(&self) -> &MessageWriter {
        match self {
            Store::Sqlite(_, w) | Store::Postgres(_, w) => w,
        }
    }

    /// Adds a member; one who already is is a conflict.
    pub async fn add_member(
        &self,
        room: &str,
        user: &str,
        role: &str,
    ) -> Result<Member, WriteError> {
        let member = Member {
            id: new_id(),
            room_id: room.to_string(),
            user_id: user.to_string(),
            role: role.to_string(),
            joined_at: crate::model::now(),
            last_read_at: None,
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO room_members (id, room_id, user_id, role, joined_at, last_read_seq) \
                 VALUES ($1, $2, $3, $4, $5, 0)",
            )
            .bind(&member.id)
            .bind(room)
            .bind(user)
            .bind(role)
            .bind(member.joined_at)
            .execute(pool)
            .await?;
        });
        Ok(member)
    }

    /// Marks everything stored in the room so far as read by `user`; false if not a member.
    pub async fn mark_room_read(&self, room: &str, user: &str, at: OffsetDateTime) -> Result<bool> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE room_members SET last_read_at = $3, last_read_seq = \
                   COALESCE((SELECT MAX(seq) FROM messages WHERE room_id = $1), 0) \
                 WHERE room_id = $1 AND user_id = $2",
            )
            .bind(room)
            .bind(user)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    // ---- messages ----

    /// Stores a message of `sender`, who must be a member (checked by the caller). It goes
    /// through the [`MessageWriter`]: this returns once the transaction that holds it committed.
    pub async fn insert_message(&self, new: NewMessage<'_>) -> Result<Message> {
        let message = Self::new_message(new);
        self.writer().insert(Self::row(&message), None).await?;
        Ok(message)
    }

    /// Stores a message as [`Store::insert_message`] does, and once its transaction committed,
    /// `publish`es it, in storage order with the others of the transaction and before any of
    /// their senders hears back. The message, and whether `publish` said it was sent.
    pub async fn insert_message_then(
        &self,
        new: NewMessage<'_>,
        publish: Publish,
    ) -> Result<(Message, bool)> {
        let message = Self::new_message(new);
        let published = self
            .writer()
            .insert(Self::row(&message), Some((message.clone(), publish)))
            .await?;
        Ok((message, published))
    }

    fn new_message(new: NewMessage<'_>) -> Message {
        let now = crate::model::now();
        Message {
            id: new_id(),
            room_id: new.room_id.to_string(),
            sender_id: new.sender.id.clone(),
            content: new.content.to_string(),
            kind: new.kind.to_string(),
            metadata: None,
            edited_at: None,
            deleted_at: None,
            created_at: now,
            modified_at: now,
            sender: Sender::from(new.sender),
        }
    }

    fn row(message: &Message) -> MessageRow {
        MessageRow {
            id: message.id.clone(),
            at: message.created_at,
            room_id: message.room_id.clone(),
            sender_id: message.sender_id.clone(),
            content: message.content.clone(),
            kind: message.kind.clone(),
        }
    }

    /// A message by id, deleted or not, with its storage position.
    pub async fn message(&self, id: &str) -> Result<Option<(Message, i64)>> {
        let sql = format!(
            "SELECT {MESSAGE_COLS}, m.seq AS m_seq FROM messages m \
             JOIN users s ON s.id = m.sender_id WHERE m.id = $1"
        );
        on_pool!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(row) => Ok(Some((message_from(&row)?, row.int("m_seq")?))),
                None => Ok(None),
            }
        })
    }

    /// The room's messages not deleted, newest first, stored before position `before`.
    pub async fn messages(
        &self,
        room: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages m JOIN users s ON s.id = m.sender_id \
             WHERE m.room_id = $1 AND m.deleted_at IS NULL AND m.seq < $2 \
             ORDER BY m.seq DESC LIMIT $3"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(room)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(message_from)
                .collect()
        })
    }

    /// Replaces a message's content; false if it is gone.
    pub async fn edit_message(&self, id: &str, content: &str, at: OffsetDateTime) -> Result<bool> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE messages SET content = $2, edited_at = $3, modified_at = $3 \
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(content)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Soft-deletes a message; false if it already was.
    pub async fn delete_message(&self, id: &str, at: OffsetDateTime) -> Result<bool> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE messages SET deleted_at = $2, modified_at = $2 \
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    // ---- direct messages ----

    /// Stores a direct message of type `text` from `sender` to `receiver`, unread, and returns it.
    pub async fn insert_dm(
        &self,
        sender: &str,
        receiver: &str,
        content: &str,
    ) -> Result<DirectMessage> {
        let now = crate::model::now();
        let dm = DirectMessage {
            id: new_id(),
            sender_id: sender.to_string(),
            receiver_id: receiver.to_string(),
            content: content.to_string(),
            kind: "text".into(),
            metadata: None,
            read_at: None,
            deleted_at: None,
            created_at: now,
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO direct_messages (id, created_at, modified_at, sender_id, \
                 receiver_id, content, type) VALUES ($1, $2, $2, $3, $4, $5, $6)",
            )
            .bind(&dm.id)
            .bind(now)
            .bind(sender)
            .bind(receiver)
            .bind(content)
            .bind(&dm.kind)
            .execute(pool)
            .await?;
        });
        Ok(dm)
    }

    /// The storage position of a DM between `a` and `b` (either direction).
    pub async fn dm_seq(&self, id: &str, a: &str, b: &str) -> Result<Option<i64>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT seq FROM direct_messages WHERE id = $1 AND \
                 ((sender_id = $2 AND receiver_id = $3) OR (sender_id = $3 AND receiver_id = $2))",
            )
            .bind(id)
            .bind(a)
            .bind(b)
            .fetch_optional(pool)
            .await?
            .map(|r| r.int("seq"))
            .transpose()
        })
    }

    /// The DMs between `a` and `b`, both directions, not deleted, newest first, stored before
    /// position `before`.
    pub async fn dms(
        &self,
        a: &str,
        b: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DirectMessage>> {
        let sql = format!(
            "SELECT {DM_COLS} FROM direct_messages d WHERE \
             ((d.sender_id = $1 AND d.receiver_id = $2) OR (d.sender_id = $2 AND d.receiver_id = $1)) \
             AND d.deleted_at IS NULL AND d.seq < $3 ORDER BY d.seq DESC LIMIT $4"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(a)
                .bind(b)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(dm_from)
                .collect()
        })
    }

    /// Marks the DMs `from` sent to `me` read; how many were unread.
    pub async fn mark_dms_read(&self, me: &str, from: &str, at: OffsetDateTime) -> Result<u64> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE direct_messages SET read_at = $3, modified_at = $3 \
                 WHERE receiver_id = $1 AND sender_id = $2 AND read_at IS NULL",
            )
            .bind(me)
            .bind(from)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// One entry per DM partner of `me`: the partner, the last message, what `me` has not read;
    /// the most recent conversation first.
    pub async fn conversations(&self, me: &str) -> Result<Vec<Conversation>> {
        let sql = format!(
            "WITH c AS ( \
               SELECT CASE WHEN x.sender_id = $1 THEN x.receiver_id ELSE x.sender_id END \
                   AS partner, \
                 MAX(x.seq) AS last_seq, \
                 SUM(CASE WHEN x.receiver_id = $1 AND x.read_at IS NULL THEN 1 ELSE 0 END) \
                   AS unread \
               FROM direct_messages x \
               WHERE (x.sender_id = $1 OR x.receiver_id = $1) AND x.deleted_at IS NULL \
               GROUP BY CASE WHEN x.sender_id = $1 THEN x.receiver_id ELSE x.sender_id END) \
             SELECT {USER_COLS}, {DM_COLS}, c.unread AS unread FROM c \
             JOIN users u ON u.id = c.partner JOIN direct_messages d ON d.seq = c.last_seq \
             ORDER BY c.last_seq DESC"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(me)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(Conversation {
                        user: user_from(row)?,
                        last_message: dm_from(row)?,
                        unread_count: row.int("unread")?,
                    })
                })
                .collect()
        })
    }

    // ---- presence ----

    /// Records that this node is alive (and registers it on first call).
    pub async fn node_heartbeat(&self, node: &str, now_ms: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO chat_nodes (node_id, heartbeat_ms) VALUES ($1, $2) \
                 ON CONFLICT (node_id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
            )
            .bind(node)
            .bind(now_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records that this node is alive if it is still registered; false if it was swept.
    pub async fn node_heartbeat_existing(&self, node: &str, now_ms: i64) -> Result<bool> {
        on_pool!(self, |pool| {
            let done = sqlx::query("UPDATE chat_nodes SET heartbeat_ms = $2 WHERE node_id = $1")
                .bind(node)
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Records that `node` holds connections of `user`, then marks the user online; true if
    /// they were offline (the caller announces it).
    pub async fn user_connected(&self, node: &str, user: &str, at: OffsetDateTime) -> Result<bool> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO node_presence (node_id, user_id) VALUES ($1, $2) \
                 ON CONFLICT (node_id, user_id) DO NOTHING",
            )
            .bind(node)
            .bind(user)
            .execute(pool)
            .await?;
            // Conditional, so that of several nodes only one announces the change.
            let done = sqlx::query(
                "UPDATE users SET is_online = $2, last_seen_at = $3 \
                 WHERE id = $1 AND is_online = $4",
            )
            .bind(user)
            .bind(true)
            .bind(at)
            .bind(false)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Forgets that `node` holds connections of `user`; marks the user offline unless another
    /// node holds some. True if they went offline (the caller announces it).
    pub async fn user_disconnected(
        &self,
        node: &str,
        user: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM node_presence WHERE node_id = $1 AND user_id = $2")
                .bind(node)
                .bind(user)
                .execute(pool)
                .await?;
            let done = sqlx::query(
                "UPDATE users SET is_online = $2, last_seen_at = $3 \
                 WHERE id = $1 AND is_online = $4 \
                 AND NOT EXISTS (SELECT 1 FROM node_presence p WHERE p.user_id = $1)",
            )
            .bind(user)
            .bind(false)
            .bind(at)
            .bind(true)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Forgets a node that stops and what it held.
    pub async fn remove_node(&self, node: &str) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM node_presence WHERE node_id = $1")
                .bind(node)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM chat_nodes WHERE node_id = $1")
                .bind(node)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets nodes silent since `stale_before_ms` and what they held, then marks offline every
    /// user no live node holds; returns those users (the caller announces them).
    pub async fn sweep_presence(
        &self,
        stale_before_ms: i64,
        at: OffsetDateTime,
    ) -> Result<Vec<String>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM node_presence WHERE node_id NOT IN \
                 (SELECT node_id FROM chat_nodes WHERE heartbeat_ms >= $1)",
            )
            .bind(stale_before_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM chat_nodes WHERE heartbeat_ms < $1")
                .bind(stale_before_ms)
                .execute(&mut *tx)
                .await?;
            // `is_online = TRUE` as a literal, so that the planner can use the partial index of
            // online users (a bound value would not match its predicate in a generic plan).
            let rows = sqlx::query(
                "UPDATE users SET is_online = FALSE, last_seen_at = $1 WHERE is_online = TRUE \
                 AND NOT EXISTS (SELECT 1 FROM node_presence p WHERE p.user_id = users.id) \
                 RETURNING id",
            )
            .bind(at)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter().map(|r| r.text("id")).collect()
        })
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SHOW synchronous_commit` on a connection of the store's pool.
    async fn commit_mode(store: &Store) -> String {
        let Store::Postgres(pool, _) = store else {
            panic!("not PostgreSQL")
        };
        sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(pool)
            .await
            .expect("SHOW")
    }

    /// Commits do not wait for the WAL flush unless the URL asks them to (the test needs the
    /// PostgreSQL server the crate's other tests use).
    #[tokio::test]
    async fn postgres_commits_do_not_wait_for_the_disk_unless_asked() {
        let admin_url = std::env::var("IGNIS_CHAT_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("ignis_chat_commit_mode_{}", std::process::id());
        let admin = PgPool::connect(&admin_url).await.expect("PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create");
        let url = format!("{}/{name}", admin_url.rsplit_once('/').expect("url").0);
        let store = Store::open(&url).await.expect("open");
        let default = commit_mode(&store).await;
        store.close().await;
        let store = Store::open(&format!("{url}?options[synchronous_commit]=on"))
            .await
            .expect("open");
        let asked = commit_mode(&store).await;
        store.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin)
            .await;
        assert_eq!(default, "off");
        assert_eq!(asked, "on");
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://chat:hunter2@db:5432/chat"),
            "postgres://chat:***@db:5432/chat"
        );
        assert_eq!(redact("postgres://chat@db/chat"), "postgres://chat@db/chat");
        assert_eq!(redact("sqlite://./data/chat.db"), "sqlite://./data/chat.db");
    }
}
