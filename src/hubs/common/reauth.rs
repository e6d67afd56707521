//! A token refreshed in band: `auth {token}` on an open socket, in either dialect and either
//! kind of object, and a Socket.IO CONNECT's `auth.token`.
//!
//! The token must verify, name the socket's own user, and not be revoked since (the cut-off
//! as the object holding the socket knows it). Then the socket lives on to the new token's
//! expiry.

use serde_json::{json, Value};

use super::attachment::SocketInfo;
use super::peer::Peer;
use super::sockets::Sockets;
use crate::auth::jwt::Identity;
use crate::config::Config;
use crate::error::ApiError;
use crate::protocol::code;

/// `auth {token}`: extends a socket's life with a fresh token for the same user, unless the
/// token was issued before the user's revocation cut-off (`revoked_before`, unix seconds);
/// the ack's data.
pub fn refresh(
    sockets: &Sockets,
    peer: &Peer,
    mut info: SocketInfo,
    token: &str,
    config: &Config,
    revoked_before: Option<i64>,
) -> Result<Value, ApiError> {
    let identity = verify_for(token, &info.user_id, config, revoked_before)?;
    info.expires_at = identity.expires_at;
    info.admin = identity.is_admin();
    if let Some(session) = info.sio.as_mut() {
        session.identity = identity;
    }
    peer.save(sockets, &info)?;
    Ok(json!({"expires_at": info.expires_at}))
}

/// Verifies a token presented on an open socket: valid, for the socket's own user, and not
/// revoked since (`revoked_before`, unix seconds).
pub fn verify_for(
    token: &str,
    user_id: &str,
    config: &Config,
    revoked_before: Option<i64>,
) -> Result<Identity, ApiError> {
    let identity = config
        .verifier
        .verify(token, chrono::Utc::now())
        .map_err(|err| ApiError::unauthorized(err.code(), err.message()))?;
    if identity.user_id != user_id {
        return Err(ApiError::forbidden(
            code::FORBIDDEN,
            "the token is for another user",
        ));
    }
    crate::auth::revocation::check(&identity, revoked_before)?;
    Ok(identity)
}
