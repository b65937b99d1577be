//! Logging in: a user name and a password checked against a bcrypt hash, then a session id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ignis_socketio::{ConnectError, SocketRef, Value};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::Semaphore;

use crate::AdminError;

/// How long a session id the UI got at login lets it reconnect without the password.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Sessions kept at most; past it the oldest goes.
const MAX_SESSIONS: usize = 1024;

/// Passwords checked at once. A bcrypt check is tens of milliseconds of CPU by design: without a
/// bound, anyone who reaches the server could keep every core busy with wrong passwords.
const CONCURRENT_CHECKS: usize = 2;

/// How long a login waits for its turn before it is refused.
const CHECK_WAIT: Duration = Duration::from_secs(5);

/// Where the middleware leaves the session id of a login for the connection handler to send.
pub(crate) const NEW_SESSION: &str = "ignis-admin:new-session";

/// The one user of the admin UI and the bcrypt hash of its password.
#[derive(Clone)]
pub struct BasicAuth {
    username: String,
    hash: Arc<str>,
    checks: Arc<Semaphore>,
}

impl BasicAuth {
    /// A user and the bcrypt hash of its password (`$2a$`, `$2b$`, `$2x$` or `$2y$`, as made by
    /// `htpasswd -B`, Node's `bcryptjs` or [`hash_password`]).
    pub fn new(username: impl Into<String>, hash: impl Into<String>) -> Result<Self, AdminError> {
        let username = username.into();
        let hash = hash.into();
        if username.is_empty() {
            return Err(AdminError::Credentials);
        }
        hash.parse::<bcrypt::HashParts>()
            .map_err(|e| AdminError::Hash(e.to_string()))?;
        Ok(BasicAuth {
            username,
            hash: Arc::from(hash),
            checks: Arc::new(Semaphore::new(CONCURRENT_CHECKS)),
        })
    }

    /// `user:bcrypt-hash`, split at the first `:`.
    pub fn parse(text: &str) -> Result<Self, AdminError> {
        let (user, hash) = text.split_once(':').ok_or(AdminError::Credentials)?;
        BasicAuth::new(user, hash)
    }

    /// The user name the UI must log in with.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether these are the credentials; false as well when too many checks are waiting.
    pub async fn verify(&self, username: &str, password: &str) -> bool {
        let Ok(Ok(_permit)) =
            tokio::time::timeout(CHECK_WAIT, self.checks.clone().acquire_owned()).await
        else {
            tracing::warn!("admin UI: login refused, too many password checks waiting");
            return false;
        };
        let hash = self.hash.clone();
        let password = password.to_string();
        // The hash is checked whatever the user name, so that timing does not tell a right name.
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        matches && username == self.username
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The bcrypt hash of `password` at `cost` (10 is the usual; each step doubles the work).
pub fn hash_password(password: &str, cost: u32) -> Result<String, AdminError> {
    bcrypt::hash(password, cost).map_err(|e| AdminError::Hash(e.to_string()))
}

/// Session ids given at login, with when they were given.
#[derive(Default)]
pub(crate) struct Sessions {
    issued: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    fn create(&self) -> String {
        let bytes: [u8; 16] = rand::rng().random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut issued = self.issued.lock();
        if issued.len() >= MAX_SESSIONS
            && let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| id.clone())
        {
            issued.remove(&oldest);
        }
        issued.insert(id.clone(), Instant::now());
        id
    }

    fn valid(&self, id: &str) -> bool {
        self.issued
            .lock()
            .get(id)
            .is_some_and(|at| at.elapsed() < SESSION_LIFETIME)
    }

    /// Forgets the sessions past their lifetime.
    pub(crate) fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        self.issued
            .lock()
            .retain(|_, at| now.saturating_duration_since(*at) < SESSION_LIFETIME);
    }
}

/// The middleware of the admin namespace: a session id from an earlier login, or the right
/// user name and password (`auth: {username, password}` of the CONNECT, as the UI sends them).
pub(crate) async fn check(
    auth: &BasicAuth,
    sessions: &Sessions,
    socket: &SocketRef,
) -> Result<(), ConnectError> {
    let given = &socket.handshake().auth;
    let text = |key: &str| given.get(key).and_then(Value::as_str).unwrap_or("");
    let session = text("sessionId");
    if !session.is_empty() && sessions.valid(session) {
        return Ok(());
    }
    if auth.verify(text("username"), text("password")).await {
        let id = sessions.create();
        socket.set_session_value(NEW_SESSION, Some(Value::from(id)));
        tracing::info!(address = %socket.handshake().address(), "admin UI: logged in");
        return Ok(());
    }
    tracing::info!(address = %socket.handshake().address(), "admin UI: invalid credentials");
    Err(ConnectError::new("invalid credentials"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_must_be_a_user_and_a_bcrypt_hash() {
        let hash = hash_password("s3cret", 4).unwrap();
        let auth = BasicAuth::parse(&format!("admin:{hash}")).unwrap();
        assert_eq!(auth.username(), "admin");
        assert!(matches!(
            BasicAuth::parse("admin"),
            Err(AdminError::Credentials)
        ));
        assert!(matches!(
            BasicAuth::parse(&format!(":{hash}")),
            Err(AdminError::Credentials)
        ));
        assert!(matches!(
            BasicAuth::parse("admin:plain-password"),
            Err(AdminError::Hash(_))
        ));
        // As htpasswd -B writes them.
        assert!(BasicAuth::new("a", hash.replacen("$2b$", "$2y$", 1)).is_ok());
    }

    #[tokio::test]
    async fn verify_checks_the_user_and_the_password() {
        let auth = BasicAuth::new("admin", hash_password("s3cret", 4).unwrap()).unwrap();
        assert!(auth.verify("admin", "s3cret").await);
        assert!(!auth.verify("admin", "wrong").await);
        assert!(!auth.verify("other", "s3cret").await);
        assert!(!auth.verify("", "").await);
    }

    #[test]
    fn sessions_are_random_bounded_and_expire() {
        let sessions = Sessions::default();
        let a = sessions.create();
        let b = sessions.create();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(sessions.valid(&a));
        assert!(!sessions.valid("not-a-session"));
        for _ in 0..MAX_SESSIONS {
            sessions.create();
        }
        assert_eq!(sessions.issued.lock().len(), MAX_SESSIONS);
        assert!(!sessions.valid(&a), "the oldest went first");
        sessions.prune_at(Instant::now() + SESSION_LIFETIME);
        assert!(sessions.issued.lock().is_empty());
    }
}
