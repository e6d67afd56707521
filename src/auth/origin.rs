//! The `Origin` policy for browser upgrades and requests.
//!
//! `ALLOWED_ORIGINS` is a comma-separated list of exact origins (`https://app.example.com`), or
//! `*` for development. A request without an `Origin` header is not from a browser page and
//! passes: the token is what authenticates it; the Origin check only stops other sites' pages
//! from using a visitor's ambient credentials. A page served by the gateway itself (the
//! development demo) is same-origin and always passes.

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

    /// As [`Self::allows`], and also a page of the gateway's own origin (`own`, e.g.
    /// `https://gw.example.com`, taken from the request URL).
    pub fn allows_from(&self, origin: Option<&str>, own: &str) -> bool {
        self.allows(origin) || origin.is_some_and(|origin| normalize(origin) == normalize(own))
    }

    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (_, None) | (OriginPolicy::Any, _) => true,
            (OriginPolicy::List(list), Some(origin)) => list.contains(&normalize(origin)),
        }
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
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
    fn own_origin() {
        let none = OriginPolicy::parse("");
        assert!(none.allows_from(Some("http://127.0.0.1:8787"), "http://127.0.0.1:8787"));
        assert!(!none.allows_from(Some("http://127.0.0.1:9999"), "http://127.0.0.1:8787"));
        assert!(!none.allows_from(Some("null"), "http://127.0.0.1:8787"));
        assert!(none.allows_from(None, "http://127.0.0.1:8787"));
    }

    #[test]
    fn star_and_empty() {
        assert_eq!(OriginPolicy::parse(" * "), OriginPolicy::Any);
        let none = OriginPolicy::parse("");
        assert!(!none.allows(Some("https://a.example")));
        assert!(none.allows(None));
    }
}
