//! The Durable Objects, and the ways in to them.
//!
//! | object | one per | holds | file |
//! |---|---|---|---|
//! | [`user::UserHub`] | user | the user's device sockets (both dialects), their event stream, push subscriptions and notifications; the rooms a Socket.IO connection joined, relayed | `user/` |
//! | [`room::Room`] | room | the room's message stream, cursors and membership mirror, its first sockets, its D1 copy | `room/` |
//! | [`room::shard::RoomShard`] | room and index | a large room's sockets beyond the room's own object | `room/shard.rs` |
//! | [`directory::Directory`] | shard of users | who is online, for broadcasts | `directory.rs` |
//!
//! Layers, each pointing only down: the objects (`user/`, `room/`, `directory.rs`) use the
//! Socket.IO engine they share ([`socketio`]) and what every object uses ([`common`]); every
//! call into an object goes through [`stubs`], one typed function per call, which imports no
//! object. Each object's file opens with its table: what arrives, what is stored, what is sent.

pub mod common;
pub mod directory;
pub mod room;
pub mod socketio;
pub mod stubs;
pub mod user;
