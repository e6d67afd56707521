//! Authentication and admission: everything the Worker decides before a socket or a Durable
//! Object exists.
//!
//! - [`token`] finds the bearer token in a request (header, subprotocol or query).
//! - [`jwt`] verifies it and yields an [`jwt::Identity`].
//! - [`origin`] applies the `ALLOWED_ORIGINS` policy to browser upgrades.
//! - [`cors`] decides which pages may call the REST API and what they are told.
//! - [`internal`] checks the backends' shared secret in constant time.
//! - [`revocation`] decides whether a user's revocation cut-off refuses a token.

pub mod cors;
pub mod internal;
pub mod jwt;
pub mod origin;
pub mod revocation;
pub mod token;
