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

/// The separator in a socket id: outside the id alphabet, so a name with it is never a room.
pub const SOCKET_ID_SEPARATOR: char = '~';

/// A new socket id for one of `user`'s sockets: `<user>~<32 hex digits>`. It names its user,
/// so a backend's call for a socket (`api::sockets`) reaches the one hub that holds it without
/// a lookup; the random part makes it unguessable and unique.
pub fn new_socket_id(user: &str) -> String {
    format!(
        "{user}{SOCKET_ID_SEPARATOR}{}",
        uuid::Uuid::new_v4().simple()
    )
}

/// The user a socket id names, when `id` has the shape [`new_socket_id`] gives.
pub fn socket_owner(id: &str) -> Option<&str> {
    let (user, random) = id.rsplit_once(SOCKET_ID_SEPARATOR)?;
    let random_ok = random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit());
    (random_ok && validate_user_id(user).is_ok()).then_some(user)
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

    #[test]
    fn a_socket_id_names_its_user_and_is_never_a_room() {
        let id = new_socket_id("a@b.example");
        assert_eq!(socket_owner(&id), Some("a@b.example"));
        assert!(validate_room_id(&id).is_err());
        for bad in [
            "alice",
            "alice~",
            "~0123456789abcdef0123456789abcdef",
            "alice~xyz",
        ] {
            assert_eq!(socket_owner(bad), None, "{bad}");
        }
    }
}
