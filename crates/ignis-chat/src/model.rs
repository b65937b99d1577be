//! The records of the chat and their JSON shapes on the wire (camelCase, `null` for absent
//! values, times as ISO 8601 in UTC with milliseconds, like JavaScript's `toISOString`).

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// The current time, cut to the millisecond: what is stored is exactly what is sent.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2026-12-07T11:15:33.123Z`.
pub fn iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn ser_time<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*t))
}

fn ser_opt_time<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&iso(*t)),
        None => s.serialize_none(),
    }
}

/// A user as others see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar: Option<String>,
    pub is_online: bool,
    #[serde(serialize_with = "ser_opt_time")]
    pub last_seen_at: Option<OffsetDateTime>,
}

/// The sender of a message, as carried by the message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar: Option<String>,
}

impl From<&User> for Sender {
    fn from(u: &User) -> Self {
        Sender {
            id: u.id.clone(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            avatar: u.avatar.clone(),
        }
    }
}

/// A chat room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_private: bool,
    pub created_by: String,
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "ser_time")]
    pub modified_at: OffsetDateTime,
}

/// A room as its member lists it: with the unread count and the last message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    #[serde(flatten)]
    pub room: Room,
    pub role: String,
    pub unread_count: i64,
    pub last_message: Option<Message>,
}

/// A member of a room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    pub room_id: String,
    pub user_id: String,
    pub role: String,
    #[serde(serialize_with = "ser_time")]
    pub joined_at: OffsetDateTime,
    #[serde(serialize_with = "ser_opt_time")]
    pub last_read_at: Option<OffsetDateTime>,
}

/// A message of a room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub room_id: String,
    pub sender_id: String,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub metadata: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    pub edited_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "ser_opt_time")]
    pub deleted_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "ser_time")]
    pub modified_at: OffsetDateTime,
    pub sender: Sender,
}

/// A direct message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectMessage {
    pub id: String,
    pub sender_id: String,
    pub receiver_id: String,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub metadata: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    pub read_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "ser_opt_time")]
    pub deleted_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
}

/// One DM partner in the conversation list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub user: User,
    pub last_message: DirectMessage,
    pub unread_count: i64,
}

/// A fresh id: a UUID v7, so that new rows land at the end of the id indexes.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_is_javascripts() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(iso(t), "2023-11-14T22:13:20.123Z");
        let n = now();
        assert_eq!(n.nanosecond() % 1_000_000, 0);
    }
}
