//! What every Durable Object uses: the socket attachment ([`attachment`]) and the roster kept
//! of it ([`sockets`]), the gate every frame passes ([`gate`]), the one seam between the two
//! wire dialects ([`dialect`]), the alarm ([`alarm`]), replays and their budgets ([`replay`]),
//! the socket a room answers wherever it is held ([`peer`]), the link between a room and its
//! shards ([`link`]), a token refreshed in band ([`reauth`]), and the few steps every object
//! takes the same way ([`object`]).
//!
//! Nothing authoritative lives only in memory: an object may hibernate between any two
//! events, so per-socket state is in the socket attachment and everything else in storage.
//! What is in memory (the roster, rate buckets, the alarm last set) is a copy or may be lost.

pub mod alarm;
pub mod attachment;
pub mod dialect;
pub mod gate;
pub mod link;
pub mod object;
pub mod peer;
pub mod reauth;
pub mod replay;
pub mod sockets;
