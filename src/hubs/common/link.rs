//! Shard links: the one WebSocket between a room and each of its shards.
//!
//! A shard (`hubs::room::shard`) opens it to the room before it accepts its first socket and holds
//! sockets only while it is open: if the link goes, the shard closes its sockets with 1012 and they
//! resume from the room's stream like any reconnecting client. Everything between the two travels
//! on it, one text per [`Down`] or [`Up`], so it arrives in the order it was sent: a message the
//! room delivers, the ack of the send that made it, the replay batch a resuming socket asked for
//! and the messages after that batch reach a shard's socket in exactly the order they reach a
//! socket the room holds itself. That order is the whole reason for a socket rather than a request
//! per delivery: requests from one object to another carry no order.
//!
//! A delivery — the link's hot path, one per room event — is the frame's text as the room
//! rendered it for its own sockets, behind one line saying whom it skips ([`Down::encode`]):
//! the shard sends it on as it is, with no JSON to read or write. Everything else is JSON.
//!
//! The room's end is a hibernatable socket tagged [`LINK_TAG`] whose attachment is a
//! [`LinkInfo`] (never a `SocketInfo`, so a link is never taken for a member's socket).

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use worker::{State, WebSocket, WebSocketPair};

use super::attachment::SocketInfo;
use super::sockets::Sockets;
use crate::command::Request;
use crate::error::ApiError;
use crate::store::local::Local;
use crate::store::room_shards::RoomShards;

/// The tag of a link socket in the room.
pub const LINK_TAG: &str = "shard-link";

/// What the room sends a shard.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Down {
    /// A frame's text for every open socket of the shard but `except`'s, as the room fans it
    /// out to its own; a stream entry (`stream`) skips sockets paging a resume. Sent as a line,
    /// not JSON ([`Down::encode`]).
    #[serde(skip)]
    Deliver {
        text: String,
        stream: bool,
        except: Option<String>,
    },
    /// A text for one socket: an answer, a replay entry.
    Answer {
        conn: String,
        text: String,
    },
    /// Close one socket, one user's sockets, or every socket.
    Close {
        conn: String,
        code: u16,
        reason: String,
    },
    CloseUser {
        user: String,
        code: u16,
        reason: String,
    },
    CloseAll {
        code: u16,
        reason: String,
    },
    /// A socket's changed state (`syncing` after a replay batch, expiry after `auth`).
    UpdateSocket {
        info: Box<SocketInfo>,
    },
}

/// What a shard sends the room.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Up {
    /// A request a socket sent, screened and read by the shard (open, within its rate and
    /// size, parsed once: the room does not read the frame again).
    Act { info: SocketInfo, request: Request },
    /// A socket the shard just accepted resumes after `since`: the client's, answered with a
    /// replay batch and `synced`; or (`synced: false`) the `ready` seq it was told, answered with
    /// what came after it while the connect travelled. `issued_at` is its token's `iat`: the
    /// room closes the socket instead when a removal or a revocation landed meanwhile.
    Resume {
        info: SocketInfo,
        since: i64,
        synced: bool,
        #[serde(default)]
        issued_at: Option<i64>,
    },
    /// How many sockets `user` now has in the shard after one closed or went: `sockets` open,
    /// `held` in all (closing ones the client has not let go of too).
    Count {
        user: String,
        sockets: usize,
        held: usize,
    },
}

/// The first character of a delivery's line (every other `Down` is a JSON object).
const DELIVER: char = 'D';

impl Down {
    /// The text on the link: a delivery as `D`, `s` (a stream entry) or `e`, the user it skips,
    /// a newline (ids have none), then the frame's text; anything else as JSON.
    pub fn encode(&self) -> String {
        match self {
            Down::Deliver {
                text,
                stream,
                except,
            } => Self::delivery(text, *stream, except.as_deref()),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }

    /// A delivery's line, made from the frame's text without copying it twice.
    pub fn delivery(text: &str, stream: bool, except: Option<&str>) -> String {
        let except = except.unwrap_or("");
        let mut line = String::with_capacity(text.len() + except.len() + 3);
        line.push(DELIVER);
        line.push(if stream { 's' } else { 'e' });
        line.push_str(except);
        line.push('\n');
        line.push_str(text);
        line
    }

    /// Reads what [`Down::encode`] wrote.
    pub fn decode(text: &str) -> Option<Down> {
        let Some(rest) = text.strip_prefix(DELIVER) else {
            return serde_json::from_str(text).ok();
        };
        let (head, text) = rest.split_once('\n')?;
        let mut head = head.chars();
        let stream = head.next()? == 's';
        let except = Some(head.as_str()).filter(|user| !user.is_empty());
        Some(Down::Deliver {
            text: text.to_owned(),
            stream,
            except: except.map(str::to_owned),
        })
    }

    pub fn send(&self, link: &WebSocket) {
        let _ = link.send_with_str(self.encode());
    }
}

impl Up {
    pub fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The attachment of a link socket in the room: which shard it leads to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkInfo {
    pub shard: u32,
    /// Tells a link from the one that replaced it.
    pub id: String,
}

impl LinkInfo {
    pub fn of(ws: &WebSocket) -> Option<LinkInfo> {
        ws.deserialize_attachment().ok().flatten()
    }
}

/// The room's ends of its links, kept in memory like `Sockets` keeps its roster (loaded once
/// per wake from the tagged sockets).
#[derive(Default)]
pub struct Links {
    roster: RefCell<Option<Vec<(LinkInfo, WebSocket)>>>,
}

impl Links {
    fn with<R>(
        &self,
        sockets: &Sockets,
        f: impl FnOnce(&mut Vec<(LinkInfo, WebSocket)>) -> R,
    ) -> R {
        let mut roster = self.roster.borrow_mut();
        let roster = roster.get_or_insert_with(|| {
            sockets
                .state()
                .get_websockets_with_tag(LINK_TAG)
                .into_iter()
                .filter_map(|ws| LinkInfo::of(&ws).map(|link| (link, ws)))
                .collect()
        });
        f(roster)
    }

    /// Accepts shard `shard`'s link; a link it held before is closed (it is gone or going).
    pub fn accept(&self, sockets: &Sockets, shard: u32) -> Result<WebSocketPair, ApiError> {
        let pair = WebSocketPair::new()?;
        self.with(sockets, |roster| {
            sockets
                .state()
                .accept_websocket_with_tags(&pair.server, &[LINK_TAG]);
            let link = LinkInfo {
                shard,
                id: uuid::Uuid::new_v4().to_string(),
            };
            pair.server.serialize_attachment(&link)?;
            for (_, old) in roster.iter().filter(|(old, _)| old.shard == shard) {
                let _ = old.close(Some(1000), Some("replaced"));
            }
            roster.retain(|(old, _)| old.shard != shard);
            roster.push((link, pair.server.clone()));
            Ok::<_, ApiError>(())
        })?;
        Ok(pair)
    }

    /// A link's close or error: it leaves the roster. True when it was the shard's current one.
    pub fn gone(&self, sockets: &Sockets, link: &LinkInfo) -> bool {
        self.with(sockets, |roster| {
            let before = roster.len();
            roster.retain(|(held, _)| held.id != link.id);
            roster.len() < before
        })
    }

    /// The link `ws` is, if it is one.
    pub fn find(&self, sockets: &Sockets, ws: &WebSocket) -> Option<LinkInfo> {
        self.with(sockets, |roster| {
            roster
                .iter()
                .find(|(_, link)| same_socket(link, ws))
                .map(|(info, _)| info.clone())
        })
    }

    /// Whether any shard is linked (asked for every frame the room fans out: no copy made).
    pub fn any(&self, sockets: &Sockets) -> bool {
        self.with(sockets, |roster| !roster.is_empty())
    }

    /// The shards with a link, in order.
    pub fn shards(&self, sockets: &Sockets) -> Vec<u32> {
        let mut shards: Vec<u32> = self.with(sockets, |roster| {
            roster.iter().map(|(link, _)| link.shard).collect()
        });
        shards.sort_unstable();
        shards
    }

    pub fn of(&self, sockets: &Sockets, shard: u32) -> Option<WebSocket> {
        self.with(sockets, |roster| {
            roster
                .iter()
                .find(|(link, _)| link.shard == shard)
                .map(|(_, ws)| ws.clone())
        })
    }

    /// Sends `down` to every shard; the text is made once.
    pub fn send_all(&self, sockets: &Sockets, down: &Down) {
        self.send_text_all(sockets, &down.encode());
    }

    /// Sends a link text to every shard.
    pub fn send_text_all(&self, sockets: &Sockets, text: &str) {
        self.with(sockets, |roster| {
            for (_, link) in roster.iter() {
                let _ = link.send_with_str(text);
            }
        });
    }
}

/// A shard holds sockets only while its link is open, and links (hibernatable on this side)
/// outlive everything but a restart of the object: rows of a shard without one are from before
/// the restart, when its sockets went too.
pub fn forget_unlinked_shards(local: &Local, state: &State) -> worker::Result<()> {
    let shards = RoomShards::new(local);
    let linked: Vec<u32> = state
        .get_websockets_with_tag(LINK_TAG)
        .iter()
        .filter_map(LinkInfo::of)
        .map(|link| link.shard)
        .collect();
    for load in shards.loads()? {
        if !linked.contains(&load.shard) {
            shards.drop_shard(load.shard)?;
        }
    }
    Ok(())
}

/// Whether two handles are the same JavaScript socket.
pub fn same_socket(a: &WebSocket, b: &WebSocket) -> bool {
    let a: &worker::web_sys::WebSocket = a.as_ref();
    let b: &worker::web_sys::WebSocket = b.as_ref();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerFrame;
    use serde_json::json;

    #[test]
    fn a_delivery_travels_with_its_seq_and_except() {
        let frame = ServerFrame::stream("message", 7, json!({"body": "hi"}));
        let down = Down::Deliver {
            text: frame.to_text(),
            stream: frame.seq.is_some(),
            except: Some("bob".into()),
        };
        let text = down.encode();
        let Some(Down::Deliver {
            text,
            stream,
            except,
        }) = Down::decode(&text)
        else {
            panic!("not a delivery: {text}");
        };
        assert_eq!(
            text,
            ServerFrame::stream("message", 7, json!({"body": "hi"})).to_text()
        );
        assert!(stream);
        assert_eq!(except.as_deref(), Some("bob"));
        let event = Down::Deliver {
            text: "x".into(),
            stream: false,
            except: None,
        };
        let again = Down::decode(&event.encode()).map(|down| down.encode());
        assert_eq!(again, Some(event.encode()));
        let close = Down::CloseAll {
            code: 4004,
            reason: "gone".into(),
        };
        assert_eq!(
            close.encode(),
            r#"{"op":"close_all","code":4004,"reason":"gone"}"#
        );
        assert!(matches!(
            Down::decode(&close.encode()),
            Some(Down::CloseAll { code: 4004, .. })
        ));
    }

    #[test]
    fn up_frames_are_tagged() {
        let up = Up::Count {
            user: "ann".into(),
            sockets: 0,
            held: 1,
        };
        assert_eq!(
            up.text(),
            r#"{"op":"count","user":"ann","sockets":0,"held":1}"#
        );
        assert!(serde_json::from_str::<Up>(r#"{"op":"nope"}"#).is_err());
    }
}
