//! Direct messages: a message from one user to one or many receivers.
//!
//! This file is the pure half — the send body and its rules, the stored shape, the id rules for
//! management calls. Sending is `hubs::user::direct::send` (REST and the user socket both run it):
//! store the message and one receipt per receiver in D1 first, then push it through every
//! receiver's user stream (and the sender's, for their other devices) with the message id as the
//! idempotency key, so a retry never delivers twice and an offline receiver gets it on reconnect,
//! in order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::message::{Content, FieldError};

/// Receivers one message may have.
pub const MAX_RECEIVERS: usize = 100;
/// Ids one bulk call (mark read, delete many) may name.
pub const MAX_IDS: usize = 100;

/// `POST /v1/messages` and the socket's `message.send`: [`Content`] (the same fields and rules as
/// a room message) plus `to`, its receivers. Unknown fields are refused.
///
/// Returns the receivers (distinct, in the order given) and the content; every refusal names
/// its field.
pub fn parse_send(body: Value) -> Result<(Vec<String>, Content), FieldError> {
    let Value::Object(mut fields) = body else {
        return Err(FieldError::new("request", "must be a JSON object"));
    };
    let to = fields
        .remove("to")
        .ok_or_else(|| FieldError::new("to", "is required: the receivers' user ids"))?;
    let to: Vec<String> = serde_json::from_value(to)
        .map_err(|_| FieldError::new("to", "must be a list of user ids"))?;
    if to.is_empty() {
        return Err(FieldError::new("to", "name at least one receiver"));
    }
    if to.len() > MAX_RECEIVERS {
        return Err(FieldError::new(
            "to",
            format!("at most {MAX_RECEIVERS} receivers"),
        ));
    }
    let mut receivers: Vec<String> = Vec::with_capacity(to.len());
    for user in to {
        crate::ids::validate_user_id(&user).map_err(|why| FieldError::new("to", why))?;
        if !receivers.contains(&user) {
            receivers.push(user);
        }
    }
    Ok((receivers, Content::parse(fields)?))
}

/// A direct message as stored and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectMessage {
    pub id: String,
    pub sender_id: String,
    pub to: Vec<String>,
    #[serde(flatten)]
    pub content: Content,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When it was deleted for everyone (unix ms): only a retry of its `client_id` still finds
    /// it, as a tombstone — its content emptied, its receivers gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

impl DirectMessage {
    pub fn new(sender_id: &str, to: Vec<String>, content: Content, now_ms: i64) -> Self {
        Self {
            id: crate::message::new_id(),
            sender_id: sender_id.to_owned(),
            to,
            content,
            created_at: now_ms,
            deleted_at: None,
        }
    }

    /// Everyone whose user stream carries the message: the receivers and the sender (for their
    /// other devices), once each.
    pub fn audience(&self) -> Vec<String> {
        let mut users = self.to.clone();
        if !users.contains(&self.sender_id) {
            users.push(self.sender_id.clone());
        }
        users
    }

    /// The idempotency key of this message in a user stream.
    pub fn stream_key(&self) -> String {
        format!("dm:{}", self.id)
    }
}

/// A message id as [`crate::message::new_id`] makes them: `m_` and 32 lowercase hex digits.
pub fn validate_message_id(id: &str) -> Result<(), String> {
    let hex = id.strip_prefix("m_").unwrap_or("");
    if hex.len() == 32 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a message id (m_ and 32 hex digits)",
            id.escape_default()
        ))
    }
}

/// `{"ids": [...]}` of a bulk call: 1 to [`MAX_IDS`] message ids, distinct.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdsBody {
    pub ids: Vec<String>,
}

impl IdsBody {
    pub fn validate(self) -> Result<Vec<String>, FieldError> {
        if self.ids.is_empty() || self.ids.len() > MAX_IDS {
            return Err(FieldError::new(
                "ids",
                format!("name 1 to {MAX_IDS} message ids"),
            ));
        }
        let mut ids: Vec<String> = Vec::with_capacity(self.ids.len());
        for id in self.ids {
            validate_message_id(&id).map_err(|why| FieldError::new("ids", why))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(value: Value) -> String {
        parse_send(value).unwrap_err().field
    }

    #[test]
    fn a_valid_send_dedupes_receivers() {
        let (to, content) = parse_send(json!({"to": ["b", "c", "b"], "body": "hi"})).unwrap();
        assert_eq!(to, vec!["b", "c"]);
        assert_eq!(content.kind, "text");
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(field(json!({"to": [], "body": "x"})), "to");
        assert_eq!(field(json!({"to": ["a/b"], "body": "x"})), "to");
        let many: Vec<String> = (0..=MAX_RECEIVERS).map(|i| format!("u{i}")).collect();
        assert_eq!(field(json!({"to": many, "body": "x"})), "to");
        assert_eq!(field(json!({"to": ["b"], "body": ""})), "body");
        assert_eq!(field(json!({"to": ["b"], "type": "file"})), "url");
        assert_eq!(field(json!({"to": ["b"], "body": "x", "cc": []})), "cc");
        assert_eq!(field(json!({"body": "x"})), "to");
        assert_eq!(field(json!({"to": "b", "body": "x"})), "to");
        assert_eq!(field(json!([1])), "request");
    }

    #[test]
    fn the_audience_includes_the_sender_once() {
        let content = parse_send(json!({"to": ["b", "a"], "body": "x"}))
            .unwrap()
            .1;
        let message = DirectMessage::new("a", vec!["b".into(), "a".into()], content, 1);
        assert_eq!(message.audience(), vec!["b", "a"]);
        assert!(validate_message_id(&message.id).is_ok());
    }

    #[test]
    fn message_ids() {
        assert!(validate_message_id(&format!("m_{}", "a".repeat(32))).is_ok());
        for bad in [
            "",
            "m_",
            "x_0123",
            &format!("m_{}", "A".repeat(32)),
            &format!("m_{}", "a".repeat(33)),
        ] {
            assert!(validate_message_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bulk_ids() {
        let ok = IdsBody {
            ids: vec![format!("m_{}", "b".repeat(32)); 2],
        };
        assert_eq!(ok.validate().unwrap().len(), 1);
        assert!(IdsBody { ids: vec![] }.validate().is_err());
        assert!(IdsBody {
            ids: vec!["nope".into()]
        }
        .validate()
        .is_err());
    }
}
