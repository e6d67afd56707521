//! A chat message: what its sender chooses ([`Content`]: type, body, url, title, data,
//! client_id), the rules that content must meet, and the shape stored and delivered for rooms
//! ([`RoomMessage`]).
//!
//! Rooms and direct messages share the content and its rules, so a client validates one shape.
//! Every refusal names the field it is about, so a client can show it next to the input.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest text body, in characters.
pub const MAX_BODY_CHARS: usize = 4000;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest media URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Largest free `data` object, serialised.
pub const MAX_DATA_BYTES: usize = 8 * 1024;

/// The message types a sender may choose; `system` is only written by backends.
pub const SENDABLE_TYPES: &[&str] = &["text", "image", "video", "file"];
pub const SYSTEM_TYPE: &str = "system";

/// What a sender chooses: the part of a message that rooms and direct messages share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    #[serde(rename = "type", default = "text_type")]
    pub kind: String,
    #[serde(default)]
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Value::is_null", default)]
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
}

/// The fields a client may set in [`Content`]; anything else is refused, so a typo is not
/// silently dropped.
pub const CONTENT_FIELDS: &[&str] = &["type", "body", "url", "title", "data", "client_id"];

fn text_type() -> String {
    "text".into()
}

/// A refusal naming the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl Content {
    /// Reads a client's content: a JSON object with only [`CONTENT_FIELDS`], of the right types,
    /// meeting every rule of [`Content::validate`].
    pub fn parse(fields: serde_json::Map<String, Value>) -> Result<Content, FieldError> {
        if let Some(unknown) = fields
            .keys()
            .find(|key| !CONTENT_FIELDS.contains(&key.as_str()))
        {
            return Err(FieldError::new(
                unknown.as_str(),
                format!("unknown field; expected {}", CONTENT_FIELDS.join(", ")),
            ));
        }
        let content: Content = serde_json::from_value(Value::Object(fields))
            .map_err(|err| FieldError::new("content", err.to_string()))?;
        content.validate()?;
        Ok(content)
    }

    /// Reads a backend's room message: [`Content`] fields, from a member (`has_sender`: any
    /// type a member may send) or from nobody (a `system` message: `type` absent or `system`,
    /// with a text message's rules).
    pub fn parse_published(
        mut fields: serde_json::Map<String, Value>,
        has_sender: bool,
    ) -> Result<Content, FieldError> {
        if has_sender {
            return Content::parse(fields);
        }
        match fields.remove("type") {
            None => {}
            Some(Value::String(kind)) if kind == SYSTEM_TYPE => {}
            Some(_) => {
                return Err(FieldError::new(
                    "type",
                    "a message without a sender is a system message; name a sender (a member) to publish other types",
                ))
            }
        }
        let mut content = Content::parse(fields)?;
        content.kind = SYSTEM_TYPE.into();
        Ok(content)
    }

    /// Checks every rule: the type is sendable; text has a body; media has an http(s) URL;
    /// lengths are within the limits; `data` is an object or absent; `client_id` is a valid id.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !SENDABLE_TYPES.contains(&self.kind.as_str()) {
            return Err(FieldError::new(
                "type",
                format!("must be one of {}", SENDABLE_TYPES.join(", ")),
            ));
        }
        let body_chars = self.body.chars().count();
        if body_chars > MAX_BODY_CHARS {
            return Err(FieldError::new(
                "body",
                format!("must be at most {MAX_BODY_CHARS} characters"),
            ));
        }
        if self.kind == "text" {
            if self.body.trim().is_empty() {
                return Err(FieldError::new("body", "a text message needs a body"));
            }
            if self.url.is_some() {
                return Err(FieldError::new("url", "a text message has no url"));
            }
        } else {
            let url = self.url.as_deref().ok_or_else(|| {
                FieldError::new("url", format!("a {} message needs a url", self.kind))
            })?;
            validate_url(url)?;
        }
        if let Some(title) = &self.title {
            if title.chars().count() > MAX_TITLE_CHARS {
                return Err(FieldError::new(
                    "title",
                    format!("must be at most {MAX_TITLE_CHARS} characters"),
                ));
            }
        }
        validate_data(&self.data)?;
        if let Some(client_id) = &self.client_id {
            crate::ids::validate_client_id(client_id)
                .map_err(|why| FieldError::new("client_id", why))?;
        }
        Ok(())
    }
}

fn validate_url(url: &str) -> Result<(), FieldError> {
    if url.len() > MAX_URL_BYTES {
        return Err(FieldError::new(
            "url",
            format!("must be at most {MAX_URL_BYTES} bytes"),
        ));
    }
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.chars().any(char::is_whitespace) {
        return Err(FieldError::new(
            "url",
            "must be an http(s) URL without spaces",
        ));
    }
    Ok(())
}

/// `data` is free JSON, but an object (or absent) and small.
pub fn validate_data(data: &Value) -> Result<(), FieldError> {
    if !(data.is_null() || data.is_object()) {
        return Err(FieldError::new("data", "must be a JSON object"));
    }
    if data.to_string().len() > MAX_DATA_BYTES {
        return Err(FieldError::new(
            "data",
            format!("must be at most {MAX_DATA_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A room message as stored, acked and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomMessage {
    pub id: String,
    pub seq: i64,
    pub room_id: String,
    /// `None` for system messages a backend published.
    pub sender_id: Option<String>,
    #[serde(flatten)]
    pub content: Content,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When the sender last edited the body (unix ms).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub edited_at: Option<i64>,
    /// When the message was recalled or deleted (unix ms): its content is gone, its seq stays.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deleted_at: Option<i64>,
}

/// Characters of a body a preview keeps.
pub const PREVIEW_CHARS: usize = 100;

impl RoomMessage {
    /// What a room list shows of the newest message: who, what kind, and the first
    /// [`PREVIEW_CHARS`] characters of the body.
    pub fn preview(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "seq": self.seq,
            "sender_id": self.sender_id,
            "type": self.content.kind,
            "preview": self.content.body.chars().take(PREVIEW_CHARS).collect::<String>(),
            "created_at": self.created_at,
        })
    }
}

/// A sender may take a message back (delete it for everyone) within `window_secs` of sending
/// it (`RECALL_WINDOW_SECONDS`); after that, 403 `recall_window_passed`.
pub fn within_recall_window(
    sent_at_ms: i64,
    now_ms: i64,
    window_secs: i64,
) -> Result<(), crate::error::ApiError> {
    if now_ms.saturating_sub(sent_at_ms) <= window_secs.saturating_mul(1000) {
        Ok(())
    } else {
        Err(crate::error::ApiError::forbidden(
            "recall_window_passed",
            format!("a message can be recalled within {window_secs} s of sending it"),
        ))
    }
}

/// An edit or a recall of a room message: an entry of the room's stream with its own seq,
/// delivered as `message.updated` / `message.deleted`, so a resume replays it in order with the
/// messages around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomChange {
    pub seq: i64,
    pub message_seq: i64,
    pub message_id: String,
    /// [`RoomChange::UPDATED`] or [`RoomChange::DELETED`].
    pub kind: String,
    /// The body an edit set; `None` once the message is recalled (its content is gone).
    pub body: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

impl RoomChange {
    pub const UPDATED: &'static str = "updated";
    pub const DELETED: &'static str = "deleted";

    /// The stream event: its name and data.
    pub fn event(&self, room_id: &str) -> (&'static str, Value) {
        let mut data = serde_json::json!({
            "id": self.message_id,
            "seq": self.message_seq,
            "room_id": room_id,
        });
        if self.kind == Self::DELETED {
            data["deleted_at"] = self.at.into();
            ("message.deleted", data)
        } else {
            data["body"] = self.body.clone().unwrap_or_default().into();
            data["edited_at"] = self.at.into();
            ("message.updated", data)
        }
    }
}

/// A room message as a table row (the Room DO's log and D1 have the same columns).
#[derive(Debug, Deserialize)]
pub struct MessageRow {
    seq: i64,
    id: String,
    sender_id: Option<String>,
    #[serde(flatten)]
    content: ContentColumns,
    created_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
}

/// A message's content as table columns hold it (a room's log, D1's rooms and direct messages).
#[derive(Debug, Deserialize)]
pub struct ContentColumns {
    #[serde(rename = "type")]
    kind: String,
    body: String,
    url: Option<String>,
    title: Option<String>,
    data: Option<String>,
    client_id: Option<String>,
}

impl From<ContentColumns> for Content {
    fn from(columns: ContentColumns) -> Self {
        Content {
            kind: columns.kind,
            body: columns.body,
            url: columns.url,
            title: columns.title,
            data: data_from_column(columns.data),
            client_id: columns.client_id,
        }
    }
}

impl MessageRow {
    pub fn into_message(self, room_id: &str) -> RoomMessage {
        RoomMessage {
            id: self.id,
            seq: self.seq,
            room_id: room_id.to_owned(),
            sender_id: self.sender_id,
            content: self.content.into(),
            created_at: self.created_at,
            edited_at: self.edited_at,
            deleted_at: self.deleted_at,
        }
    }
}

/// A message's free `data` as a table column holds it: JSON text, or NULL when absent.
pub fn data_column(data: &Value) -> Option<String> {
    (!data.is_null()).then(|| data.to_string())
}

/// The inverse of [`data_column`].
fn data_from_column(column: Option<String>) -> Value {
    column
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .unwrap_or(Value::Null)
}

/// The columns a [`MessageRow`] is selected from.
pub const MESSAGE_COLUMNS: &str =
    "seq, id, sender_id, type, body, url, title, data, client_id, created_at, edited_at, deleted_at";

/// A new message id: `m_` and 32 hex digits.
pub fn new_id() -> String {
    format!("m_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Content, FieldError> {
        match value {
            Value::Object(fields) => Content::parse(fields),
            _ => panic!("test content must be an object"),
        }
    }

    fn field_of(value: Value) -> String {
        parse(value).unwrap_err().field
    }

    #[test]
    fn a_text_message_defaults_its_type() {
        let content = parse(json!({"body": "hi", "client_id": "c1"})).unwrap();
        assert_eq!(content.kind, "text");
    }

    #[test]
    fn media_needs_a_url() {
        assert_eq!(field_of(json!({"type": "image", "body": "cat"})), "url");
        assert_eq!(field_of(json!({"type": "file", "url": "ftp://x/y"})), "url");
        assert!(parse(json!({"type": "video", "url": "https://cdn.test/v.mp4"})).is_ok());
    }

    #[test]
    fn refusals_name_their_field() {
        assert_eq!(field_of(json!({"type": "system", "body": "x"})), "type");
        assert_eq!(field_of(json!({"body": "  "})), "body");
        assert_eq!(
            field_of(json!({"body": "x".repeat(MAX_BODY_CHARS + 1)})),
            "body"
        );
        assert_eq!(field_of(json!({"body": "x", "url": "https://a"})), "url");
        assert_eq!(
            field_of(json!({"body": "x", "title": "t".repeat(MAX_TITLE_CHARS + 1)})),
            "title"
        );
        assert_eq!(field_of(json!({"body": "x", "data": [1]})), "data");
        assert_eq!(
            field_of(json!({"body": "x", "client_id": "has space"})),
            "client_id"
        );
    }

    #[test]
    fn body_limit_counts_characters_not_bytes() {
        assert!(parse(json!({"body": "é".repeat(MAX_BODY_CHARS)})).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert_eq!(field_of(json!({"body": "x", "colour": "red"})), "colour");
        assert_eq!(field_of(json!({"body": 5})), "content");
    }

    #[test]
    fn published_content_is_system_without_a_sender() {
        let fields = |value: Value| match value {
            Value::Object(fields) => fields,
            _ => panic!("an object"),
        };
        let system = Content::parse_published(fields(json!({"body": "deploy done"})), false);
        assert_eq!(system.unwrap().kind, SYSTEM_TYPE);
        let explicit =
            Content::parse_published(fields(json!({"type": "system", "body": "x"})), false);
        assert_eq!(explicit.unwrap().kind, SYSTEM_TYPE);
        let image = json!({"type": "image", "url": "https://cdn.example/a.png"});
        assert_eq!(
            Content::parse_published(fields(image.clone()), false)
                .unwrap_err()
                .field,
            "type"
        );
        assert_eq!(
            Content::parse_published(fields(image), true).unwrap().kind,
            "image"
        );
        let as_member = json!({"type": "system", "body": "x"});
        assert!(Content::parse_published(fields(as_member), true).is_err());
        assert!(Content::parse_published(fields(json!({"body": " "})), false).is_err());
    }

    #[test]
    fn changes_become_updated_and_deleted_events() {
        let mut change = RoomChange {
            seq: 9,
            message_seq: 7,
            message_id: "m_1".into(),
            kind: RoomChange::UPDATED.into(),
            body: Some("edited".into()),
            at: 5,
        };
        let (event, data) = change.event("team");
        assert_eq!(event, "message.updated");
        assert_eq!(
            data,
            json!({"id": "m_1", "seq": 7, "room_id": "team", "body": "edited", "edited_at": 5})
        );
        change.kind = RoomChange::DELETED.into();
        change.body = None;
        let (event, data) = change.event("team");
        assert_eq!(event, "message.deleted");
        assert_eq!(
            data,
            json!({"id": "m_1", "seq": 7, "room_id": "team", "deleted_at": 5})
        );
    }
}
