//! The `Origin` policy for browser upgrades and requests.
//!
//! `ALLOWED_ORIGINS` is a comma-separated list of exact origins (`https://app.example.com`), or
//! `*` for development. A request without an `Origin` header is not from a browser page and
//! passes: the token is what authenticates it; the Origin check only stops other sites' pages
//! from using a visitor's ambient credentials.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    Any,
    List(Vec<String>),
}

impl OriginPolicy {
    pub fn parse(raw: &str) -> Self {
        let entries: Vec<String> = raw
            .split(',')
            .map(|entry| entry.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.iter().any(|entry| entry == "*") {
            OriginPolicy::Any
        } else {
            OriginPolicy::List(entries)
        }
    }

    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (_, None) | (OriginPolicy::Any, _) => true,
            (OriginPolicy::List(list), Some(origin)) => {
                let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
                list.contains(&origin)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list() {
        let policy = OriginPolicy::parse("https://a.example, http://localhost:3000/");
        assert!(policy.allows(Some("https://a.example")));
        assert!(policy.allows(Some("HTTPS://A.EXAMPLE")));
        assert!(policy.allows(Some("http://localhost:3000")));
        assert!(!policy.allows(Some("https://evil.example")));
        assert!(!policy.allows(Some("https://a.example.evil")));
        assert!(policy.allows(None));
    }

    #[test]
    fn star_and_empty() {
        assert_eq!(OriginPolicy::parse(" * "), OriginPolicy::Any);
        let none = OriginPolicy::parse("");
        assert!(!none.allows(Some("https://a.example")));
        assert!(none.allows(None));
    }
}
