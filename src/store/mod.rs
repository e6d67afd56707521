//! Storage. Each Durable Object keeps its own authoritative log in its SQLite storage
//! ([`user_log`]); D1 holds what is queried across users and rooms.

pub mod user_log;
