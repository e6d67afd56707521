//! A client's request, parsed once into a typed value (mini-redis's `Command`).
//!
//! Both wire dialects carry the same requests: the gateway's own frame
//! `{"event", "data", "id"}` and a Socket.IO EVENT `[event, data]` with an ack id. Either is
//! read here, once, into a [`Command`]; the hubs dispatch on it and never look into a frame's
//! JSON again. A room shard forwards the parsed command to its room over the link, so a frame
//! is parsed once wherever its socket is held.
//!
//! A request whose data does not fit its event is still a command, [`Command::Invalid`], and
//! answered where the request would have been handled: a room checks membership first, and
//! counts an act (`send`, `edit`, `delete`) against the sender's rate before it answers, valid
//! or not. The messages are the ones clients have always seen.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::message::Content;
use crate::protocol::{FrameError, RequestId};

/// A request: its command, and where its answer goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: Option<RequestId>,
    pub command: Command,
}

impl Request {
    /// A frame of the gateway's own protocol, read once; what cannot be read is a `bad_frame`
    /// with the id when it could be recovered.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let frame = crate::protocol::parse_client_frame(text)?;
        Ok(Self {
            id: frame.id,
            command: Command::parse(&frame.event, frame.data),
        })
    }
}

/// One request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `ping`: answered `pong`.
    Ping,
    /// `sync {since}`: the next batch of a resume.
    Sync { since: i64 },
    /// `auth {token}`: a fresh token for the socket.
    Auth { token: String },
    /// `ack {seq}` (user socket): the device has everything through `seq`.
    Ack { seq: i64 },
    /// `message.send {to, body, …}` (user socket): a direct message; `direct::parse_send`
    /// reads its data, as REST does.
    MessageSend { data: Value },
    /// `send {body, type?, client_id?, …}` (room socket).
    Send { content: Content },
    /// `edit {id, body}` (room socket).
    Edit { id: String, body: String },
    /// `delete {id}` (room socket).
    Delete { id: String },
    /// `typing {active?}` (room socket).
    Typing { active: bool },
    /// `read {seq}` (room socket).
    Read { seq: i64 },
    /// An event the gateway has no meaning for: a backend hook's, on a Socket.IO connection.
    Unknown { event: String },
    /// A known request whose data does not fit it: `validation`, with this message.
    Invalid { event: String, message: String },
}

impl Command {
    /// Reads a request from its event and data. Never fails: what does not fit is
    /// [`Command::Invalid`] or [`Command::Unknown`].
    pub fn parse(event: &str, data: Value) -> Self {
        let parsed = match event {
            "ping" => Ok(Self::Ping),
            "sync" => whole(&data, "since", "sync").map(|since| Self::Sync { since }),
            "auth" => token(&data).map(|token| Self::Auth { token }),
            "ack" => whole(&data, "seq", "ack").map(|seq| Self::Ack { seq }),
            "message.send" => Ok(Self::MessageSend { data }),
            "send" => send(data),
            "edit" => edit(&data),
            "delete" => message_id(&data).map(|id| Self::Delete { id }),
            "typing" => typing(&data),
            "read" => whole(&data, "seq", "read").map(|seq| Self::Read { seq }),
            other => Ok(Self::Unknown {
                event: other.to_owned(),
            }),
        };
        parsed.unwrap_or_else(|message| Self::Invalid {
            event: event.to_owned(),
            message,
        })
    }

    /// The request's event, as the client named it.
    pub fn event(&self) -> &str {
        match self {
            Self::Ping => "ping",
            Self::Sync { .. } => "sync",
            Self::Auth { .. } => "auth",
            Self::Ack { .. } => "ack",
            Self::MessageSend { .. } => "message.send",
            Self::Send { .. } => "send",
            Self::Edit { .. } => "edit",
            Self::Delete { .. } => "delete",
            Self::Typing { .. } => "typing",
            Self::Read { .. } => "read",
            Self::Unknown { event } | Self::Invalid { event, .. } => event,
        }
    }

    /// Whether it changes the room's stream in the sender's name: counted against the send
    /// rate, in one queue so that arrival order is kept (valid or not).
    pub fn is_act(&self) -> bool {
        matches!(self.event(), "send" | "edit" | "delete")
    }
}

/// `data.<field>`, a whole number >= 0.
fn whole(data: &Value, field: &str, event: &str) -> Result<i64, String> {
    data.get(field)
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("{event} needs data.{field}, a whole number >= 0"))
}

fn token(data: &Value) -> Result<String, String> {
    data.get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "auth needs data.token".to_owned())
}

fn send(data: Value) -> Result<Command, String> {
    let Value::Object(fields) = data else {
        return Err("send needs data, a JSON object".to_owned());
    };
    content(fields).map(|content| Command::Send { content })
}

fn content(fields: Map<String, Value>) -> Result<Content, String> {
    Content::parse(fields).map_err(|err| err.to_string())
}

fn edit(data: &Value) -> Result<Command, String> {
    let id = message_id(data)?;
    let body = data
        .get("body")
        .and_then(Value::as_str)
        .ok_or("edit needs data.body, a string")?;
    Ok(Command::Edit {
        id,
        body: body.to_owned(),
    })
}

/// `data.id` of an `edit` or `delete`: a message id.
fn message_id(data: &Value) -> Result<String, String> {
    data.get("id")
        .and_then(Value::as_str)
        .filter(|id| crate::direct::validate_message_id(id).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| "data.id must be a message id (m_…)".to_owned())
}

fn typing(data: &Value) -> Result<Command, String> {
    match data.get("active") {
        None => Ok(Command::Typing { active: true }),
        Some(Value::Bool(active)) => Ok(Command::Typing { active: *active }),
        Some(_) => Err("typing data.active must be true or false".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "m_0123456789abcdef0123456789abcdef";

    #[test]
    fn requests_become_commands() {
        assert_eq!(Command::parse("ping", Value::Null), Command::Ping);
        assert_eq!(
            Command::parse("sync", json!({"since": 4})),
            Command::Sync { since: 4 }
        );
        assert_eq!(
            Command::parse("typing", Value::Null),
            Command::Typing { active: true }
        );
        assert_eq!(
            Command::parse("edit", json!({"id": ID, "body": "b"})),
            Command::Edit {
                id: ID.into(),
                body: "b".into()
            }
        );
        assert_eq!(
            Command::parse("room.secret", json!({})),
            Command::Unknown {
                event: "room.secret".into()
            }
        );
        assert!(matches!(
            Command::parse("send", json!({"body": "hi"})),
            Command::Send { .. }
        ));
    }

    #[test]
    fn data_that_does_not_fit_is_invalid_with_the_message_clients_know() {
        let invalid = |event: &str, data: Value| {
            let command = Command::parse(event, data);
            match &command {
                Command::Invalid { message, .. } => (command.is_act(), message.clone()),
                other => panic!("{event}: {other:?}"),
            }
        };
        assert_eq!(
            invalid("sync", json!({"since": -1})),
            (false, "sync needs data.since, a whole number >= 0".into())
        );
        assert_eq!(
            invalid("send", json!([1])),
            (true, "send needs data, a JSON object".into())
        );
        assert_eq!(
            invalid("delete", json!({"id": "x"})),
            (true, "data.id must be a message id (m_…)".into())
        );
        assert_eq!(
            invalid("edit", json!({"id": ID})),
            (true, "edit needs data.body, a string".into())
        );
        assert_eq!(
            invalid("typing", json!({"active": 1})),
            (false, "typing data.active must be true or false".into())
        );
        assert!(Command::parse("edit", json!({})).is_act());
        assert!(!Command::parse("read", json!({})).is_act());
    }

    #[test]
    fn a_command_travels_a_link_and_back() {
        let command = Command::parse("send", json!({"body": "hi", "client_id": "c1"}));
        let text = serde_json::to_string(&command).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), command);
    }
}
