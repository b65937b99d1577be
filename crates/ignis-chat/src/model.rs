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
    /// The user's id (a UUID v7), stable for the account's life.
    pub id: String,
    /// The login name: unique without regard to case, at most 50 characters.
    pub username: String,
    /// The name to show instead of the username, if the user set one.
    pub display_name: Option<String>,
    /// The URL of the user's picture, if set.
    pub avatar: Option<String>,
    /// Whether the user has a connection open on some node; they go offline a grace period after
    /// their last one closes.
    pub is_online: bool,
    /// When the user last went offline; `None` if never.
    #[serde(serialize_with = "ser_opt_time")]
    pub last_seen_at: Option<OffsetDateTime>,
}

/// The sender of a message, as carried by the message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    /// The sender's user id.
    pub id: String,
    /// The sender's login name.
    pub username: String,
    /// The sender's display name, if set.
    pub display_name: Option<String>,
    /// The URL of the sender's picture, if set.
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
    /// The room's id (a UUID v7).
    pub id: String,
    /// The room's name, at most 100 characters.
    pub name: String,
    /// What the room is about, if its creator said.
    pub description: Option<String>,
    /// A private room is not listed and cannot be joined; an admin adds members.
    pub is_private: bool,
    /// The id of the user who created the room.
    pub created_by: String,
    /// When the room was created.
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    /// When the room was last changed.
    #[serde(serialize_with = "ser_time")]
    pub modified_at: OffsetDateTime,
}

/// A room as its member lists it: with the unread count and the last message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    /// The room itself; its fields appear at the top level of the JSON.
    #[serde(flatten)]
    pub room: Room,
    /// The listing user's role in the room: `admin` or `member`.
    pub role: String,
    /// Messages stored since the user last read the room, deleted ones excluded.
    pub unread_count: i64,
    /// The newest message not deleted; `None` in an empty room.
    pub last_message: Option<Message>,
}

/// A member of a room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The membership's id.
    pub id: String,
    /// The room.
    pub room_id: String,
    /// The member.
    pub user_id: String,
    /// `admin` (may add members and delete any message) or `member`.
    pub role: String,
    /// When the user joined the room.
    #[serde(serialize_with = "ser_time")]
    pub joined_at: OffsetDateTime,
    /// When the user last marked the room read; `None` if never.
    #[serde(serialize_with = "ser_opt_time")]
    pub last_read_at: Option<OffsetDateTime>,
}

/// A message of a room.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The message's id (a UUID v7).
    pub id: String,
    /// The room it was sent to.
    pub room_id: String,
    /// The id of the user who sent it.
    pub sender_id: String,
    /// The text of the message.
    pub content: String,
    /// The client-chosen type (`text` by default): 1 to 20 letters, digits, `_` and `-`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free-form data attached to the message, as stored; `None` if none.
    pub metadata: Option<String>,
    /// When the content was last edited; `None` if never.
    #[serde(serialize_with = "ser_opt_time")]
    pub edited_at: Option<OffsetDateTime>,
    /// When the message was deleted; deleted messages stay stored but leave history.
    #[serde(serialize_with = "ser_opt_time")]
    pub deleted_at: Option<OffsetDateTime>,
    /// When the message was stored.
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    /// When the row last changed (an edit or a deletion).
    #[serde(serialize_with = "ser_time")]
    pub modified_at: OffsetDateTime,
    /// Who sent it, so clients need not look the user up.
    pub sender: Sender,
}

/// A direct message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectMessage {
    /// The message's id (a UUID v7).
    pub id: String,
    /// The id of the user who sent it.
    pub sender_id: String,
    /// The id of the user it was sent to.
    pub receiver_id: String,
    /// The text of the message.
    pub content: String,
    /// The message's type (`text` by default).
    #[serde(rename = "type")]
    pub kind: String,
    /// Free-form data attached to the message, as stored; `None` if none.
    pub metadata: Option<String>,
    /// When the receiver read it; `None` while unread.
    #[serde(serialize_with = "ser_opt_time")]
    pub read_at: Option<OffsetDateTime>,
    /// When the message was deleted; `None` if it was not.
    #[serde(serialize_with = "ser_opt_time")]
    pub deleted_at: Option<OffsetDateTime>,
    /// When the message was stored.
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
}

/// One DM partner in the conversation list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// The other user of the conversation.
    pub user: User,
    /// The newest message between the two, in either direction.
    pub last_message: DirectMessage,
    /// Messages from the other user the listing user has not read.
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
