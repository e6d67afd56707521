//! Storage. Each Durable Object keeps its own authoritative log in its SQLite storage
//! ([`user_log`], [`room_log`], [`online`]); D1 holds what is queried across users and rooms
//! ([`rooms`], [`direct`], [`revocations`]).

pub mod d1;
pub mod direct;
pub mod joined_rooms;
pub mod local;
pub mod notify_log;
pub mod online;
pub mod push_endpoints;
pub mod revocations;
pub mod room_log;
pub mod room_shards;
pub mod rooms;
pub mod user_log;
