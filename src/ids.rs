//! Identifiers that cross trust boundaries: user ids from tokens, room ids and device ids from
//! URLs. They name Durable Objects and appear in URLs and SQL, so they are held to a small,
//! predictable alphabet: 1 to 128 characters of `A-Z a-z 0-9 _ - . : @`, and never `.` or `..`
//! (a URL path cannot name those: clients and proxies resolve them as dot-segments, so a user or
//! room with such an id could never be disconnected, revoked or deleted).

pub const MAX_ID_LEN: usize = 128;

fn validate(kind: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("{kind} must be 1 to {MAX_ID_LEN} characters"));
    }
    if id == "." || id == ".." {
        return Err(format!("{kind} may not be '.' or '..'"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@')))
    {
        return Err(format!(
            "{kind} contains '{}', outside A-Z a-z 0-9 _ - . : @",
            bad.escape_default()
        ));
    }
    Ok(())
}

pub fn validate_user_id(id: &str) -> Result<(), String> {
    validate("user id", id)
}

pub fn validate_device_id(id: &str) -> Result<(), String> {
    validate("device id", id)
}

pub fn validate_room_id(id: &str) -> Result<(), String> {
    validate("room id", id)
}

/// A client's idempotency key for a message it sends.
pub fn validate_client_id(id: &str) -> Result<(), String> {
    validate("client_id", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_shapes() {
        for id in [
            "alice",
            "u_123",
            "auth0|x".replace('|', ":").as_str(),
            "a@b.example",
            "...",
            ".a",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert!(validate_user_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        for id in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a\nb",
            "é",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(validate_user_id(id).is_err(), "{id:?}");
        }
        assert!(validate_device_id("phone 1").is_err());
    }
}
