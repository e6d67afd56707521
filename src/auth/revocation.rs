//! Revocation: "log this user out everywhere, now", and keep the old tokens out.
//!
//! A revocation records a cut-off per user in whole unix seconds, and every token of that user
//! whose `iat` is at or before it is refused with `token_revoked`, and so is every token without
//! `iat` (it cannot prove it is newer). The cut-off is the second of the call plus
//! [`IAT_LEEWAY_SECS`], because verification accepts an `iat` up to that far ahead of the
//! gateway's clock: an issuer whose clock runs ahead may have stamped a token it minted before
//! the call with a later second, and that token must fall too. The price is that a token minted
//! in those few seconds after the revocation is refused as well; the revoking call answers the
//! cut-off (`revoked_before`), so an identity provider that signs the user in again at once can
//! stamp the new token `iat = revoked_before + 1` (accepted as soon as that is within the skew),
//! or simply retry a moment later. Whole seconds because `iat` is whole seconds.
//!
//! Where the cut-off lives (docs/ARCHITECTURE.md, "Revocation"): D1 (`revocations`, read by
//! REST and room connects), the user's UserHub (read on user connects and `auth`), and each room
//! the user has a socket in (told on revocation, and by every room connect, so a room created
//! after the revocation learns it before it accepts the user's first socket; read on room
//! accepts and `auth`), so no check adds a Durable Object round trip to a request that did not
//! already make one.

use crate::auth::jwt::{Identity, IAT_LEEWAY_SECS};
use crate::error::ApiError;

/// The stable error code of a revoked token.
pub const CODE: &str = "token_revoked";

/// The cut-off a revocation made at `now_ms` records: that whole second, plus the skew an
/// `iat` may have.
pub fn cutoff_at(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000) + IAT_LEEWAY_SECS
}

/// True when a token issued at `issued_at` falls under the cut-off `revoked_before`.
pub fn is_revoked(issued_at: Option<i64>, revoked_before: Option<i64>) -> bool {
    match (revoked_before, issued_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(cutoff), Some(iat)) => iat <= cutoff,
    }
}

/// 401 `token_revoked` when `identity`'s token falls under the cut-off.
pub fn check(identity: &Identity, revoked_before: Option<i64>) -> Result<(), ApiError> {
    if is_revoked(identity.issued_at, revoked_before) {
        return Err(ApiError::unauthorized(
            CODE,
            "this token was revoked: sign in again for a new one",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_is_the_whole_second_of_the_revocation_plus_the_iat_skew() {
        assert_eq!(
            cutoff_at(1_700_000_000_999),
            1_700_000_000 + IAT_LEEWAY_SECS
        );
        assert_eq!(
            cutoff_at(1_700_000_001_000),
            1_700_000_001 + IAT_LEEWAY_SECS
        );
    }

    #[test]
    fn tokens_at_or_before_the_cut_off_are_revoked() {
        assert!(!is_revoked(Some(10), None));
        assert!(!is_revoked(None, None));
        assert!(is_revoked(None, Some(10)));
        assert!(is_revoked(Some(9), Some(10)));
        assert!(is_revoked(Some(10), Some(10)));
        assert!(!is_revoked(Some(11), Some(10)));
    }

    #[test]
    fn check_answers_401_token_revoked() {
        let identity = Identity {
            user_id: "a".into(),
            expires_at: 100,
            issued_at: Some(5),
            roles: vec![],
        };
        let err = check(&identity, Some(5)).unwrap_err();
        assert_eq!((err.status, err.code), (401, CODE));
        assert!(check(&identity, Some(4)).is_ok());
    }
}
