//! A Web Push endpoint: which ones the gateway may call, and the one spelling of each.
//!
//! A subscription's endpoint is a URL a client chooses and the gateway POSTs to. Two rules
//! follow. It must be a push service (`PUSH_SERVICE_HOSTS`, https, no credentials; `DEV_MODE`
//! adds local http): without that it would be a request-forgery primitive against any host.
//! And it has one spelling: what is checked, hashed into the subscription's id, stored and
//! fetched is the same canonical string, so spellings of one endpoint (host case, `:443`, `./`,
//! escapes) are one subscription, owned by one user, and a notification is one POST to it.

use worker::Url;

/// Push services browsers use today; `PUSH_SERVICE_HOSTS` replaces the list. A `*.` entry
/// matches any subdomain.
pub const DEFAULT_PUSH_SERVICE_HOSTS: &str = "fcm.googleapis.com,android.googleapis.com,updates.push.services.mozilla.com,web.push.apple.com,*.notify.windows.com";
/// Longest accepted subscription endpoint.
pub const MAX_ENDPOINT_CHARS: usize = 1024;

/// `http` to this machine: what tests and `make dev` use in place of a push service or backend.
pub fn is_local_http(url: &Url) -> bool {
    url.scheme() == "http" && matches!(url.host_str(), Some("127.0.0.1" | "localhost"))
}

/// Why an endpoint cannot be registered or called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointError {
    /// It has no single canonical spelling (`400 validation`).
    NotCanonical(&'static str),
    /// It is not a push service the gateway may call (`400 endpoint_not_allowed`).
    NotAllowed(&'static str),
}

impl EndpointError {
    /// The error code a client sees.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotCanonical(_) => "validation",
            Self::NotAllowed(_) => "endpoint_not_allowed",
        }
    }

    /// Why, in words a client can act on.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotCanonical(why) | Self::NotAllowed(why) => why,
        }
    }
}

/// A subscription endpoint that passed [`check_endpoint`]: on an allowed push service and in
/// its one canonical spelling, which is what the gateway hashes, stores and calls. Not `Debug`:
/// the endpoint is a capability and must not reach a log.
pub struct Endpoint(Url);

impl Endpoint {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The subscription's id: the first 16 bytes of the canonical endpoint's SHA-256, hex.
    /// Every spelling of one endpoint has the same id, so a browser that registers again gets
    /// it back, and the endpoint (a capability URL) need not appear in paths or logs.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.as_str().as_bytes())[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// Checks a subscription endpoint and brings it to its canonical spelling: an `https` URL on
/// one of the push service `hosts`, without credentials (in `DEV_MODE` also `http://127.0.0.1`
/// or `localhost`). The host check is what keeps the gateway from being made to POST to any
/// other host; the canonical spelling is what keeps one endpoint one subscription.
pub fn check_endpoint(
    raw: &str,
    hosts: &[String],
    dev_mode: bool,
) -> Result<Endpoint, EndpointError> {
    use EndpointError::NotAllowed;
    if raw.len() > MAX_ENDPOINT_CHARS {
        return Err(NotAllowed("endpoint is longer than 1024 characters"));
    }
    let url = Url::parse(raw).map_err(|_| NotAllowed("endpoint must be an absolute URL"))?;
    allowed(&url, hosts, dev_mode).map_err(NotAllowed)?;
    let canonical = canonical(url).map_err(EndpointError::NotCanonical)?;
    if canonical.as_str().len() > MAX_ENDPOINT_CHARS {
        return Err(NotAllowed("endpoint is longer than 1024 characters"));
    }
    Ok(Endpoint(canonical))
}

/// Whether the gateway may call `url`: no credentials, and `https` on a listed host (a `*.`
/// entry matches subdomains only), or local `http` in `DEV_MODE`.
fn allowed(url: &Url, hosts: &[String], dev_mode: bool) -> Result<(), &'static str> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err("endpoint must not carry credentials");
    }
    if dev_mode && is_local_http(url) {
        return Ok(());
    }
    if url.scheme() != "https" {
        return Err("endpoint must be https");
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let listed = hosts
        .iter()
        .any(|allowed| match allowed.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
            None => allowed == "*" || *allowed == host,
        });
    if !listed {
        return Err("endpoint is not on a known push service (PUSH_SERVICE_HOSTS)");
    }
    Ok(())
}

/// The one spelling of a parsed endpoint. Parsing has already settled the scheme's and host's
/// case, the default port, IPv4 forms, `.` and `..` segments, `\` for `/`, and tabs or newlines
/// (RFC 3986 §6.2.2 and the URL Standard); here percent-escapes are settled too (see
/// [`normalise_escapes`]). Refused, because they have no spelling that is safely the same
/// endpoint: a fragment (never sent, so any fragment names the same endpoint), an empty path
/// segment (`//`: servers differ on whether it is one), an empty query (`?`), and a `%` that is
/// not an escape.
fn canonical(url: Url) -> Result<Url, &'static str> {
    if url.fragment().is_some() {
        return Err("endpoint must not have a fragment (#…): it is never sent, so it would be a second name for the same endpoint");
    }
    if url.path().contains("//") {
        return Err("endpoint must not have an empty path segment (//): push services differ on whether it is one, so it has no canonical form");
    }
    if url.query() == Some("") {
        return Err("endpoint must not end with an empty query (?)");
    }
    let spelled = normalise_escapes(url.as_str())
        .ok_or("endpoint has a % that is not followed by two hex digits")?;
    Url::parse(&spelled)
        .ok()
        .filter(|again| again.as_str() == spelled)
        .ok_or("endpoint has no canonical form")
}

/// `text` with every percent-escape of an unreserved character (`A-Z a-z 0-9 - . _ ~`)
/// decoded and every other escape in lowercase hex, so equivalent escapes (RFC 3986 §6.2.2.1-2)
/// are spelled one way. Lowercase because WNS, the one push service whose endpoints carry
/// escapes, hands them out so: what a browser gives stays as it is. `None` when a `%` is not
/// followed by two hex digits.
fn normalise_escapes(text: &str) -> Option<String> {
    let mut spelled = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'%' {
            spelled.push(byte);
            continue;
        }
        let (hex, tail) = rest.split_at_checked(2)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        rest = tail;
        let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            spelled.push(value);
        } else {
            spelled.extend_from_slice(format!("%{value:02x}").as_bytes());
        }
    }
    String::from_utf8(spelled).ok()
}

/// The URL as logs may show it: scheme and host. A push endpoint's path is its capability (whoever
/// has it can address that browser), and a webhook's path or query may carry a key.
pub fn shown(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spelled(raw: &str) -> Result<String, EndpointError> {
        check_endpoint(raw, &hosts(), true).map(|endpoint| endpoint.as_str().to_owned())
    }

    fn hosts() -> Vec<String> {
        DEFAULT_PUSH_SERVICE_HOSTS
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn endpoints_must_be_known_push_services() {
        let hosts = hosts();
        assert!(check_endpoint("https://fcm.googleapis.com/fcm/send/abc", &hosts, false).is_ok());
        assert!(
            check_endpoint("https://db5p.notify.windows.com/w/?token=x", &hosts, false).is_ok()
        );
        assert!(check_endpoint("https://notify.windows.com/w", &hosts, false).is_err());
        assert!(check_endpoint("https://evil.example/fcm.googleapis.com", &hosts, false).is_err());
        assert!(
            check_endpoint("https://fcm.googleapis.com.evil.example/x", &hosts, false).is_err()
        );
        assert!(check_endpoint("http://fcm.googleapis.com/x", &hosts, false).is_err());
        assert!(check_endpoint("https://u:p@fcm.googleapis.com/x", &hosts, false).is_err());
        assert!(check_endpoint("http://127.0.0.1:9/push/1", &hosts, false).is_err());
        assert!(check_endpoint("http://127.0.0.1:9/push/1", &hosts, true).is_ok());
        assert!(check_endpoint("http://10.0.0.1/push/1", &hosts, true).is_err());
        assert!(check_endpoint("https://anything.example/x", &["*".into()], false).is_ok());
    }

    #[test]
    fn every_spelling_of_an_endpoint_is_one_canonical_string_and_one_id() {
        let fcm = "https://fcm.googleapis.com/fcm/send/abc:APA91b-x_y~z";
        for spelling in [
            fcm,
            "HTTPS://FCM.GoogleAPIs.com/fcm/send/abc:APA91b-x_y~z",
            "https://fcm.googleapis.com:443/fcm/send/abc:APA91b-x_y~z",
            "https://fcm.googleapis.com/fcm/./send/abc:APA91b-x_y~z",
            "https://fcm.googleapis.com/fcm/x/../send/abc:APA91b-x_y~z",
            "https://fcm.googleapis.com/fcm/%2E/send/abc:APA91b-x_y~z",
            "https://fcm.googleapis.com/fcm/send/%61bc:APA91b%2Dx%5fy%7Ez",
            "https://fcm.googleapis.com/fcm/se\tnd/abc:APA91b-x_y~z",
            "https:\\\\fcm.googleapis.com\\fcm\\send\\abc:APA91b-x_y~z",
            "https://@fcm.googleapis.com/fcm/send/abc:APA91b-x_y~z",
            " https://fcm%2Egoogleapis.com/fcm/send/abc:APA91b-x_y~z ",
        ] {
            assert_eq!(spelled(spelling).as_deref(), Ok(fcm), "{spelling:?}");
        }
        let id = |raw| check_endpoint(raw, &hosts(), false).unwrap().id();
        assert_eq!(
            id(fcm),
            id("HTTPS://fcm.googleapis.com:443/fcm/./send/abc:APA91b-x_y~z")
        );
        assert_eq!(id(fcm).len(), 32);
        assert_ne!(
            id(fcm),
            id("https://fcm.googleapis.com/fcm/send/abd:APA91b-x_y~z")
        );
        for (spelling, expected) in [
            ("http://0x7f.0.0.1:9/push/1", "http://127.0.0.1:9/push/1"),
            ("http://127.1:09/push/1", "http://127.0.0.1:9/push/1"),
            ("http://2130706433:9/push/1", "http://127.0.0.1:9/push/1"),
            ("HTTP://LOCALHOST:80/push/1", "http://localhost/push/1"),
        ] {
            assert_eq!(spelled(spelling).as_deref(), Ok(expected), "{spelling:?}");
        }
    }

    #[test]
    fn escapes_are_decoded_when_unreserved_and_lowercase_otherwise() {
        for (raw, canonical) in [
            (
                "https://db5p.notify.windows.com/w/?token=AB%2B%2fc%3D%41",
                "https://db5p.notify.windows.com/w/?token=AB%2b%2fc%3dA",
            ),
            (
                "https://fcm.googleapis.com/a b/\u{e9}",
                "https://fcm.googleapis.com/a%20b/%c3%a9",
            ),
        ] {
            assert_eq!(spelled(raw).as_deref(), Ok(canonical), "{raw:?}");
        }
        for (raw, normal) in [
            ("%7e%7E%25%2F", Some("~~%25%2f")),
            ("%", None),
            ("%4", None),
            ("%zz", None),
            ("%+f", None),
            ("%4g", None),
        ] {
            assert_eq!(normalise_escapes(raw).as_deref(), normal, "{raw}");
        }
    }

    #[test]
    fn endpoints_a_browser_gives_are_already_canonical() {
        for endpoint in [
            "https://fcm.googleapis.com/fcm/send/cXk3:APA91bGx-_Zr",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk-_x",
            "https://web.push.apple.com/QGmZ5x-_y",
            "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAAG%2bdPt%2f2SJ%3d",
        ] {
            assert_eq!(spelled(endpoint).as_deref(), Ok(endpoint));
        }
    }

    #[test]
    fn endpoints_without_one_spelling_are_refused_saying_why() {
        let refused = |raw: &str| spelled(raw).unwrap_err();
        let base = "https://fcm.googleapis.com/fcm/send/abc";
        for (raw, why) in [
            (format!("{base}#x"), "fragment"),
            (format!("{base}#"), "fragment"),
            (
                "https://fcm.googleapis.com/fcm//send/abc".to_owned(),
                "empty path segment",
            ),
            (
                "https://fcm.googleapis.com//fcm/send/abc".to_owned(),
                "empty path segment",
            ),
            (format!("{base}/\\x"), "empty path segment"),
            (format!("{base}?"), "empty query"),
            (format!("{base}%zz"), "two hex digits"),
            (format!("{base}%2"), "two hex digits"),
        ] {
            let err = refused(&raw);
            assert_eq!(err.code(), "validation", "{raw}");
            assert!(err.reason().contains(why), "{raw}: {}", err.reason());
        }
        let long = format!("{base}/{}", "a".repeat(MAX_ENDPOINT_CHARS));
        assert_eq!(refused(&long).code(), "endpoint_not_allowed");
        let grows = format!("{base}/{}x", " ".repeat(MAX_ENDPOINT_CHARS / 2));
        assert_eq!(
            refused(&grows).code(),
            "endpoint_not_allowed",
            "checked once canonical"
        );
        assert_eq!(
            refused("https://fcm.googleapis.com./x").code(),
            "endpoint_not_allowed"
        );
    }
}
