//! Authentication and admission: everything the Worker decides before a socket or a Durable
//! Object exists.
//!
//! - [`token`] finds the bearer token in a request (header, subprotocol or query).
//! - [`jwt`] verifies it and yields an [`jwt::Identity`].
//! - [`origin`] applies the `ALLOWED_ORIGINS` policy to browser upgrades.
//! - [`internal`] checks the backends' shared secret in constant time.
//! - [`revocation`] decides whether a user's revocation cut-off refuses a token.

pub mod internal;
pub mod jwt;
pub mod origin;
pub mod revocation;
pub mod token;
