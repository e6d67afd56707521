//! CORS for the public REST API: which browser pages may call `/v1/...` and what they are told.
//!
//! Browsers only let a page on another origin read a response (or send `Authorization` at all)
//! when the gateway says so. The decision reuses `ALLOWED_ORIGINS` ([`OriginPolicy`]), the same
//! list that admits browser upgrades, so one setting governs a site's sockets and its REST calls.
//!
//! - Only `/v1/` paths and `/socket.io/` answer CORS; `/internal/v1/` is for backends and
//!   never does.
//! - An allowed origin is echoed back exactly (with `Vary: Origin`), never `*`, so a cached
//!   answer for one site is never served to another. No `Access-Control-Allow-Credentials` on
//!   `/v1/`: the API authenticates with a bearer token, not cookies. `/socket.io/` allows
//!   credentials: a socket.io client with `withCredentials: true` sends its long-polling
//!   requests with them and reads nothing unless allowed (the gateway itself reads no cookie).
//! - A disallowed origin, or a request without `Origin`, gets no CORS headers at all.
//! - A preflight (`OPTIONS`) is answered by the entry before route resolution, so it needs no
//!   route of its own: 204 with the methods, the headers the API reads and a max-age.

use crate::auth::origin::OriginPolicy;

/// Methods the public API's routes use, and the preflight itself (a unit test holds it to the
/// route table).
pub const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a page may send: the token and JSON bodies.
pub const ALLOW_HEADERS: &str = "authorization, content-type";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECS: &str = "600";

/// The Socket.IO endpoint, whose long-polling requests are CORS requests from another origin.
const SOCKET_IO: &str = "/socket.io/";

/// Whether `path` is part of the browser-facing API.
pub fn applies_to(path: &str) -> bool {
    path.starts_with("/v1/") || path == SOCKET_IO
}

/// The headers to add to an answer for `path` requested from `origin`; empty when none.
pub fn response_headers(
    policy: &OriginPolicy,
    path: &str,
    origin: Option<&str>,
) -> Vec<(&'static str, String)> {
    match origin {
        Some(origin) if applies_to(path) && policy.allows(Some(origin)) => {
            let mut headers = vec![
                ("access-control-allow-origin", origin.trim().to_string()),
                ("vary", "Origin".to_string()),
            ];
            if path == SOCKET_IO {
                headers.push(("access-control-allow-credentials", "true".to_string()));
            }
            headers
        }
        _ => Vec::new(),
    }
}

/// The headers of a preflight answer (status 204); only the `Vary` header when not allowed.
pub fn preflight_headers(
    policy: &OriginPolicy,
    path: &str,
    origin: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers = response_headers(policy, path, origin);
    if headers.is_empty() {
        return vec![("vary", "Origin".to_string())];
    }
    headers.extend([
        ("access-control-allow-methods", ALLOW_METHODS.to_string()),
        ("access-control-allow-headers", ALLOW_HEADERS.to_string()),
        ("access-control-max-age", MAX_AGE_SECS.to_string()),
    ]);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &[(&'static str, String)]) -> Vec<&'static str> {
        headers.iter().map(|(name, _)| *name).collect()
    }

    fn value<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A policy that allows one site, `https://app.test`.
    fn app() -> OriginPolicy {
        OriginPolicy::parse("https://app.test")
    }

    #[test]
    fn allowed_origin_is_echoed_never_star() {
        let headers = response_headers(&app(), "/v1/rooms", Some("https://app.test"));
        assert_eq!(
            value(&headers, "access-control-allow-origin"),
            Some("https://app.test")
        );
        assert_eq!(value(&headers, "vary"), Some("Origin"));
        let any = OriginPolicy::parse("*");
        let headers = response_headers(&any, "/v1/me", Some("https://x.test"));
        assert_eq!(
            value(&headers, "access-control-allow-origin"),
            Some("https://x.test")
        );
        assert!(!names(&headers).contains(&"access-control-allow-credentials"));
    }

    #[test]
    fn disallowed_missing_origin_and_other_paths_get_nothing() {
        let policy = app();
        assert!(response_headers(&policy, "/v1/rooms", Some("https://evil.test")).is_empty());
        assert!(response_headers(&policy, "/v1/rooms", None).is_empty());
        assert!(
            response_headers(&policy, "/internal/v1/push", Some("https://app.test")).is_empty()
        );
        assert!(response_headers(&policy, "/health", Some("https://app.test")).is_empty());
    }

    #[test]
    fn socket_io_polling_allows_credentials_and_the_api_does_not() {
        let headers = response_headers(&app(), "/socket.io/", Some("https://app.test"));
        assert_eq!(
            value(&headers, "access-control-allow-origin"),
            Some("https://app.test")
        );
        assert_eq!(
            value(&headers, "access-control-allow-credentials"),
            Some("true")
        );
        let api = response_headers(&app(), "/v1/me", Some("https://app.test"));
        assert_eq!(value(&api, "access-control-allow-credentials"), None);
        assert!(response_headers(&app(), "/socket.io/", Some("https://evil.test")).is_empty());
    }

    #[test]
    fn preflight_lists_methods_headers_and_max_age() {
        let headers = preflight_headers(&app(), "/v1/messages", Some("https://app.test"));
        assert_eq!(
            value(&headers, "access-control-allow-methods"),
            Some(ALLOW_METHODS)
        );
        let allowed = value(&headers, "access-control-allow-headers").unwrap();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"));
        assert_eq!(value(&headers, "access-control-max-age"), Some("600"));
        let refused = preflight_headers(&app(), "/v1/messages", Some("https://evil.test"));
        assert_eq!(names(&refused), vec!["vary"]);
    }

    #[test]
    fn the_methods_are_exactly_those_of_the_public_routes() {
        let mut used: Vec<&str> = crate::routes::ROUTES
            .iter()
            .filter(|(_, path, _)| applies_to(path))
            .map(|(method, _, _)| *method)
            .chain(["OPTIONS"])
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut listed: Vec<&str> = ALLOW_METHODS.split(", ").collect();
        listed.sort_unstable();
        assert_eq!(listed, used);
    }

    #[test]
    fn only_public_api_paths() {
        assert!(applies_to("/v1/me"));
        assert!(!applies_to("/internal/v1/push"));
        assert!(!applies_to("/v1"));
        assert!(!applies_to("/dev/token"));
    }
}
