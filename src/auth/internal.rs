//! The backends' shared secret for `/internal/v1/`.
//!
//! Compared in constant time so the time a refusal takes says nothing about how much of a
//! guessed token was right.

use super::token::bearer_from_header;

/// True when `authorization` is `Bearer <expected>`. An unset or empty secret admits nobody.
pub fn is_authorized(authorization: Option<&str>, expected: Option<&str>) -> bool {
    let (Some(header), Some(expected)) = (authorization, expected) else {
        return false;
    };
    if expected.is_empty() {
        return false;
    }
    match bearer_from_header(header) {
        Ok(given) => constant_time_eq(given.as_bytes(), expected.as_bytes()),
        Err(_) => false,
    }
}

/// Equality whose running time depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn authorization() {
        assert!(is_authorized(Some("Bearer s3cret"), Some("s3cret")));
        assert!(!is_authorized(Some("Bearer s3cre"), Some("s3cret")));
        assert!(!is_authorized(Some("s3cret"), Some("s3cret")));
        assert!(!is_authorized(None, Some("s3cret")));
        assert!(!is_authorized(Some("Bearer x"), None));
        assert!(!is_authorized(Some("Bearer x"), Some("")));
    }
}
