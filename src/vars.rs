//! Reading the environment's variables: what `config`, `hook` and `notify` share when they parse
//! theirs.
//!
//! Every variable is read through a lookup (`name → value`) so the rules run on the host in unit
//! tests; a bad value is an error naming the variable and what it must be, never a silent
//! default.

/// The shortest secret accepted wherever one signs or guards something (`JWT_SECRET`,
/// `INTERNAL_API_TOKEN`, `EVENT_HOOK_SECRET`, `NOTIFY_WEBHOOK_SECRET`): a shorter key can be
/// guessed offline from one signed request, or one answer.
pub const MIN_SECRET_BYTES: usize = 32;

/// The number `name` holds, within `[min, max]`; `default` when it is not set.
pub fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(format!("{name} must be a whole number from {min} to {max}")),
    }
}

/// The switch `name` holds (`true` or `false`); `default` when it is not set.
pub fn switch(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
) -> Result<bool, String> {
    match get(name).as_deref().map(str::trim) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(format!("{name} must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_within_their_bounds() {
        let get = |name: &str| (name == "SET").then(|| " 7 ".to_owned());
        assert_eq!(number(&get, "SET", 1, 0, 10), Ok(7));
        assert_eq!(number(&get, "UNSET", 1, 0, 10), Ok(1));
        assert_eq!(
            number(&get, "SET", 1, 8, 10),
            Err("SET must be a whole number from 8 to 10".to_owned())
        );
    }

    #[test]
    fn switches_are_true_or_false() {
        let get = |name: &str| match name {
            "ON" => Some("true".to_owned()),
            "ODD" => Some("yes".to_owned()),
            _ => None,
        };
        assert_eq!(switch(&get, "ON", false), Ok(true));
        assert_eq!(switch(&get, "UNSET", false), Ok(false));
        assert!(switch(&get, "ODD", false).is_err());
    }
}
