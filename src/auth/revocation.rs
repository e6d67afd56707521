//! Revocation: "log this user out everywhere, now", and keep the old tokens out.
//!
//! A revocation records a cut-off per user in whole unix seconds: the second in which it was
//! made. Every token of that user whose `iat` is at or before the cut-off is refused with
//! `token_revoked`, and so is every token without `iat` (it cannot prove it is newer). A token
//! issued in a later second works. Whole seconds because `iat` is whole seconds: a token minted
//! in the same second as the revocation cannot be told apart from one minted just before it, so
//! it is refused, and an identity provider that re-issues after a password change must stamp the
//! new token at least one second after the revocation call returned.
//!
//! Where the cut-off lives (docs/ARCHITECTURE.md, "Revocation"): D1 (`revocations`, read by
//! REST and room connects), the user's UserHub (read on user connects and `auth`), and each of
//! the user's rooms (read on room accepts and `auth`), so no check adds a Durable Object round
//! trip to a request that did not already make one.

use crate::auth::jwt::Identity;
use crate::error::ApiError;

/// The stable error code of a revoked token.
pub const CODE: &str = "token_revoked";

/// The cut-off a revocation made at `now_ms` records: that whole second.
pub fn cutoff_at(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
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
    fn the_cut_off_is_the_whole_second_of_the_revocation() {
        assert_eq!(cutoff_at(1_700_000_000_999), 1_700_000_000);
        assert_eq!(cutoff_at(1_700_000_001_000), 1_700_000_001);
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
