//! The REST API under `/api`: accounts (`/api/auth`) and the chat (`/api/chat`, bearer token
//! required).
//!
//! Bodies are parsed by hand from JSON so that every problem names its field: malformed JSON is
//! a 400, a missing or mistyped field a 422 `{error: {code: "VALIDATION", message, field}}`.
//! Unknown rooms, messages and users are 404s; nothing a client sends yields a 500.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Map as JsonMap, Value as Json_, json};

use crate::Chat;
use crate::auth::{dummy_hash, hash_password, verify_password};
use crate::model::{User, iso, now};
use crate::store::{StoreError, WriteError};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The page of history a request without `limit` gets.
pub const DEFAULT_PAGE: i64 = 50;
/// The largest page of history a client may ask for; larger `limit`s are cut to it.
pub const MAX_PAGE: i64 = 100;

/// An error answer: `{error: {code, message, field}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION", message)
        }
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the database is not available; try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "field": self.field }
        });
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The user a bearer token names.
pub struct AuthUser(pub User);

impl FromRequestParts<Arc<Chat>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, chat: &Arc<Chat>) -> ApiResult<Self> {
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        let id = chat
            .tokens
            .verify(token)
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
        // A token of a user the database no longer has (a database reset) is no token.
        let user = chat
            .store
            .user(&id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
        Ok(AuthUser(user))
    }
}

/// The routes, with the chat as their state.
pub fn router(chat: Arc<Chat>) -> Router {
    Router::new()
        .route("/api/auth/sign-up", post(sign_up))
        .route("/api/auth/sign-in", post(sign_in))
        .route("/api/auth/me", get(me))
        .route("/api/chat/rooms", get(my_rooms).post(create_room))
        .route("/api/chat/rooms/public", get(public_rooms))
        .route("/api/chat/rooms/{room_id}/members", post(add_member))
        .route("/api/chat/rooms/{room_id}/messages", get(room_messages))
        .route("/api/chat/rooms/{room_id}/read", post(read_room))
        .route("/api/chat/conversations", get(conversations))
        .route("/api/chat/dm/{user_id}", get(dms))
        .route("/api/chat/dm/{user_id}/read", post(read_dms))
        .route("/api/chat/users", get(users))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(chat)
}

// ---- body parsing ----

/// The body as a JSON object.
fn object(body: &Bytes) -> ApiResult<JsonMap<String, Json_>> {
    match serde_json::from_slice::<Json_>(body) {
        Ok(Json_::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("body", "the body must be a JSON object")),
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the body is not valid JSON",
        )),
    }
}

fn required_str<'a>(b: &'a JsonMap<String, Json_>, field: &'static str) -> ApiResult<&'a str> {
    match b.get(field) {
        Some(Json_::String(s)) => Ok(s),
        None | Some(Json_::Null) => Err(ApiError::invalid(field, format!("{field} is required"))),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn optional_str<'a>(
    b: &'a JsonMap<String, Json_>,
    field: &'static str,
) -> ApiResult<Option<&'a str>> {
    match b.get(field) {
        None | Some(Json_::Null) => Ok(None),
        Some(Json_::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be a string"),
        )),
    }
}

/// A text of `min..=max` characters (not bytes) that is not only blanks.
fn text_len(field: &'static str, s: &str, min: usize, max: usize) -> ApiResult<()> {
    if s.contains('\0') {
        return Err(no_nul(field));
    }
    let n = s.chars().count();
    if n < min || n > max || (min > 0 && s.trim().is_empty()) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be {min} to {max} characters"),
        ));
    }
    Ok(())
}

/// PostgreSQL text cannot hold U+0000: refused on either database, so that both behave alike and
/// a client's NUL is never a database failure.
fn no_nul(field: &'static str) -> ApiError {
    ApiError::invalid(field, format!("{field} must not contain NUL characters"))
}

/// An id from the path: one with a NUL character names nothing (and looking it up in PostgreSQL
/// would fail rather than find nothing).
fn path_id<'a>(id: &'a str, what: &str) -> ApiResult<&'a str> {
    if id.contains('\0') {
        return Err(ApiError::not_found(what));
    }
    Ok(id)
}

fn check_username(s: &str) -> ApiResult<()> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !(3..=50).contains(&s.len()) || !ok_chars {
        return Err(ApiError::invalid(
            "username",
            "username must be 3 to 50 characters of letters, digits, _, . and -",
        ));
    }
    Ok(())
}

/// `limit` and `before` of a history page.
fn page(query: &HashMap<String, String>) -> ApiResult<(i64, Option<&str>)> {
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(MAX_PAGE),
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    "limit must be a positive integer",
                ));
            }
        },
    };
    let before = match query.get("before") {
        None => None,
        Some(b) if b.is_empty() => None,
        Some(b) => Some(path_id(b, "message")?),
    };
    Ok((limit, before))
}

async fn hash(chat: &Chat, password: String) -> ApiResult<String> {
    let _permit = chat.hashing.acquire().await.map_err(|_| unavailable())?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(unavailable)
}

async fn verify(chat: &Chat, password: String, hash: String) -> ApiResult<bool> {
    let _permit = chat.hashing.acquire().await.map_err(|_| unavailable())?;
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|_| unavailable())
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the server cannot do this now; try again",
    )
}

fn session(chat: &Chat, user: &User) -> Json_ {
    json!({ "token": chat.tokens.issue(&user.id), "user": user })
}

// ---- accounts ----

async fn sign_up(State(chat): State<Arc<Chat>>, body: Bytes) -> ApiResult<Response> {
    let b = object(&body)?;
    let username = required_str(&b, "username")?;
    check_username(username)?;
    let password = required_str(&b, "password")?;
    text_len("password", password, 8, 200)?;
    let display_name = optional_str(&b, "displayName")?;
    if let Some(d) = display_name {
        text_len("displayName", d, 1, 100)?;
    }
    let hash = hash(&chat, password.to_string()).await?;
    let user = match chat.store.create_user(username, display_name, &hash).await {
        Ok(u) => u,
        Err(WriteError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                "this username is taken",
            ));
        }
        Err(WriteError::Store(e)) => return Err(e.into()),
    };
    Ok((StatusCode::CREATED, Json(session(&chat, &user))).into_response())
}

async fn sign_in(State(chat): State<Arc<Chat>>, body: Bytes) -> ApiResult<Json<Json_>> {
    let b = object(&body)?;
    let username = required_str(&b, "username")?;
    let password = required_str(&b, "password")?;
    let wrong = || ApiError::unauthorized("wrong username or password");
    // A username sign-up would refuse belongs to nobody.
    if check_username(username).is_err() || password.chars().count() > 200 {
        return Err(wrong());
    }
    let found = chat.store.credentials(username).await?;
    // An unknown username costs a hash check too: both failures look alike, timing included.
    let (user, stored) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, dummy_hash().to_string()),
    };
    let matches = verify(&chat, password.to_string(), stored).await?;
    match user {
        Some(user) if matches => Ok(Json(session(&chat, &user))),
        _ => Err(wrong()),
    }
}

async fn me(AuthUser(user): AuthUser) -> Json<User> {
    Json(user)
}

// ---- rooms ----

async fn my_rooms(State(chat): State<Arc<Chat>>, AuthUser(user): AuthUser) -> ApiResult<Response> {
    Ok(Json(chat.store.rooms_of(&user.id).await?).into_response())
}

async fn public_rooms(State(chat): State<Arc<Chat>>, _: AuthUser) -> ApiResult<Response> {
    Ok(Json(chat.store.public_rooms(500).await?).into_response())
}

async fn create_room(
    State(chat): State<Arc<Chat>>,
    AuthUser(user): AuthUser,
    body: Bytes,
) -> ApiResult<Response> {
    let b = object(&body)?;
    let name = required_str(&b, "name")?;
    text_len("name", name, 1, 100)?;
    let description = optional_str(&b, "description")?;
    if let Some(d) = description {
        text_len("description", d, 0, 2000)?;
    }
    let is_private = match b.get("isPrivate") {
        Some(Json_::Bool(v)) => *v,
        None | Some(Json_::Null) => {
            return Err(ApiError::invalid("isPrivate", "isPrivate is required"));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "isPrivate",
                "isPrivate must be a boolean",
            ));
        }
    };
    let room = chat
        .store
        .create_room(&user.id, name.trim(), description, is_private)
        .await?;
    Ok((StatusCode::CREATED, Json(room)).into_response())
}

async fn add_member(
    State(chat): State<Arc<Chat>>,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let room_id = path_id(&room_id, "room")?;
    let b = object(&body)?;
    let new_member = required_str(&b, "userId")?;
    if new_member.contains('\0') {
        return Err(ApiError::invalid("userId", "userId must be a valid id"));
    }
    let room = chat
        .store
        .room(room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let admin = chat
        .store
        .member(room_id, &user.id)
        .await?
        .is_some_and(|m| m.role == "admin");
    if !admin {
        return Err(ApiError::forbidden(
            "only an admin of the room adds members",
        ));
    }
    if chat.store.user(new_member).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    match chat.store.add_member(room_id, new_member, "member").await {
        Ok(m) => {
            crate::socket::announce_room_added(&chat, new_member, &room, &user.id);
            Ok((StatusCode::CREATED, Json(m)).into_response())
        }
        Err(WriteError::Conflict) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            "already a member",
        )),
        Err(WriteError::Store(e)) => Err(e.into()),
    }
}

/// The room exists (404) and `user` is a member (403).
async fn member_of(chat: &Chat, room_id: &str, user: &User) -> ApiResult<()> {
    path_id(room_id, "room")?;
    if chat.store.member(room_id, &user.id).await?.is_some() {
        return Ok(());
    }
    match chat.store.room(room_id).await? {
        Some(_) => Err(ApiError::forbidden("not a member of this room")),
        None => Err(ApiError::not_found("room")),
    }
}

async fn room_messages(
    State(chat): State<Arc<Chat>>,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (limit, before) = page(&query)?;
    member_of(&chat, &room_id, &user).await?;
    let before = match before {
        None => None,
        Some(id) => match chat.store.message(id).await? {
            Some((m, seq)) if m.room_id == room_id => Some(seq),
            _ => return Err(ApiError::not_found("message")),
        },
    };
    Ok(Json(chat.store.messages(&room_id, before, limit).await?).into_response())
}

async fn read_room(
    State(chat): State<Arc<Chat>>,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> ApiResult<Json<Json_>> {
    member_of(&chat, &room_id, &user).await?;
    let at = now();
    chat.store.mark_room_read(&room_id, &user.id, at).await?;
    Ok(Json(
        json!({ "roomId": room_id, "lastReadAt": iso(at), "unreadCount": 0 }),
    ))
}

// ---- direct messages ----

async fn conversations(
    State(chat): State<Arc<Chat>>,
    AuthUser(user): AuthUser,
) -> ApiResult<Response> {
    Ok(Json(chat.store.conversations(&user.id).await?).into_response())
}

async fn dms(
    State(chat): State<Arc<Chat>>,
    AuthUser(user): AuthUser,
    Path(other): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (limit, before) = page(&query)?;
    let other = path_id(&other, "user")?;
    if chat.store.user(other).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let before = match before {
        None => None,
        Some(id) => Some(
            chat.store
                .dm_seq(id, &user.id, other)
                .await?
                .ok_or_else(|| ApiError::not_found("message"))?,
        ),
    };
    Ok(Json(chat.store.dms(&user.id, other, before, limit).await?).into_response())
}

async fn read_dms(
    State(chat): State<Arc<Chat>>,
    AuthUser(user): AuthUser,
    Path(other): Path<String>,
) -> ApiResult<Json<Json_>> {
    let other = path_id(&other, "user")?;
    if chat.store.user(other).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let at = now();
    let count = chat.store.mark_dms_read(&user.id, other, at).await?;
    Ok(Json(
        json!({ "userId": other, "readAt": iso(at), "count": count }),
    ))
}

// ---- users ----

async fn users(
    State(chat): State<Arc<Chat>>,
    _: AuthUser,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let online = match query.get("online").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("online", "online must be true or false")),
    };
    Ok(Json(chat.store.users(online, 500).await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "a.b-c_d", &"x".repeat(50)] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "with space",
            "ünï",
            &"x".repeat(51),
            "a'; DROP TABLE users;--",
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(page(&q(&[])).unwrap(), (50, None));
        assert_eq!(page(&q(&[("limit", "500")])).unwrap(), (100, None));
        assert_eq!(
            page(&q(&[("limit", "3"), ("before", "x")])).unwrap(),
            (3, Some("x"))
        );
        for bad in ["0", "-1", "ten", "1.5"] {
            assert_eq!(
                page(&q(&[("limit", bad)])).unwrap_err().field,
                Some("limit")
            );
        }
    }
}
