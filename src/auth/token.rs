//! Where a client's token comes from.
//!
//! Native clients send `Authorization: Bearer <jwt>`. Browsers cannot set headers on a
//! WebSocket, so they offer the subprotocol pair `bearer, <jwt>` (the 101 answer then selects
//! `bearer`), or put the token in `?token=`. The first carrier found wins, in that order. A
//! socket.io client sends its token in `auth` (`io(url, {auth: {token}})`), inside the CONNECT
//! packet once the socket is open: [`from_connect_auth`] reads it there (`api::lobby`).

use serde::{Deserialize, Serialize};

/// How the token arrived; the subprotocol carrier obliges the upgrade to select `bearer`. A
/// UserHub keeps it in the socket's attachment, for an operator's view of who uses which
/// (`GET /internal/v1/users/{id}`: a token in the query can end up in proxies' logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    Header,
    Subprotocol,
    Query,
    /// `auth.token` in a Socket.IO CONNECT packet.
    Connect,
}

impl Carrier {
    /// The name used on the wire between the Worker and a hub, and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Header => "header",
            Carrier::Subprotocol => "subprotocol",
            Carrier::Query => "query",
            Carrier::Connect => "connect",
        }
    }

    pub fn parse(name: &str) -> Option<Carrier> {
        [
            Carrier::Header,
            Carrier::Subprotocol,
            Carrier::Query,
            Carrier::Connect,
        ]
        .into_iter()
        .find(|carrier| carrier.as_str() == name)
    }
}

/// The subprotocol name that introduces a token in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "bearer";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    pub token: String,
    pub carrier: Carrier,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    Missing,
    Malformed(&'static str),
}

/// Finds the token given the raw `Authorization` header, the raw `Sec-WebSocket-Protocol`
/// header and the `token` query parameter.
pub fn extract(
    authorization: Option<&str>,
    subprotocols: Option<&str>,
    query_token: Option<&str>,
) -> Result<Extracted, ExtractError> {
    if let Some(header) = authorization {
        return bearer_from_header(header).map(|token| Extracted {
            token,
            carrier: Carrier::Header,
        });
    }
    if let Some(token) = subprotocols.and_then(bearer_from_subprotocols) {
        return Ok(Extracted {
            token,
            carrier: Carrier::Subprotocol,
        });
    }
    match query_token {
        Some("") => Err(ExtractError::Malformed(
            "the token query parameter is empty",
        )),
        Some(token) => Ok(Extracted {
            token: token.to_owned(),
            carrier: Carrier::Query,
        }),
        None => Err(ExtractError::Missing),
    }
}

/// `Bearer <token>`, scheme case-insensitive.
pub fn bearer_from_header(header: &str) -> Result<String, ExtractError> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').ok_or(ExtractError::Malformed(
        "Authorization must be 'Bearer <token>'",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ExtractError::Malformed(
            "Authorization must use the Bearer scheme",
        ));
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(ExtractError::Malformed(
            "Authorization must be 'Bearer <token>'",
        ));
    }
    Ok(token.to_owned())
}

/// The token in a CONNECT packet's `auth`: `{"token": "<jwt>"}` or `{"token": "Bearer <jwt>"}`
/// (the NestJS habit of sending the header's value).
pub fn from_connect_auth(auth: Option<&serde_json::Value>) -> Result<String, ExtractError> {
    let token = match auth.and_then(|auth| auth.get("token")) {
        None | Some(serde_json::Value::Null) => return Err(ExtractError::Missing),
        Some(serde_json::Value::String(token)) => token.trim(),
        Some(_) => return Err(ExtractError::Malformed("auth.token must be a string")),
    };
    let token = match token.split_once(' ') {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case(SUBPROTOCOL) => bearer_from_header(token)
            .map_err(|_| ExtractError::Malformed("auth.token must be '<jwt>' or 'Bearer <jwt>'"))?,
        Some(_) => {
            return Err(ExtractError::Malformed(
                "auth.token must be '<jwt>' or 'Bearer <jwt>'",
            ))
        }
        None if token.is_empty() || token.eq_ignore_ascii_case(SUBPROTOCOL) => {
            return Err(ExtractError::Malformed("auth.token is empty"));
        }
        None => token.to_owned(),
    };
    Ok(token)
}

/// The token that follows `bearer` in a `Sec-WebSocket-Protocol` list, if the list has one.
fn bearer_from_subprotocols(header: &str) -> Option<String> {
    let mut offered = header.split(',').map(str::trim);
    while let Some(protocol) = offered.next() {
        if protocol.eq_ignore_ascii_case(SUBPROTOCOL) {
            return offered
                .next()
                .filter(|token| !token.is_empty())
                .map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_packets_auth_token_with_or_without_bearer() {
        use serde_json::json;
        let cases: &[(serde_json::Value, Result<&str, ()>)] = &[
            (json!({"token": "x.y.z"}), Ok("x.y.z")),
            (json!({"token": "Bearer x.y.z"}), Ok("x.y.z")),
            (json!({"token": " bearer  x.y.z "}), Ok("x.y.z")),
            (json!({"token": ""}), Err(())),
            (json!({"token": "Bearer"}), Err(())),
            (json!({"token": "Basic abc"}), Err(())),
            (json!({"token": "Bearer a b"}), Err(())),
            (json!({"token": 7}), Err(())),
        ];
        for (auth, want) in cases {
            let got = from_connect_auth(Some(auth));
            match want {
                Ok(token) => assert_eq!(got.as_deref(), Ok(*token), "{auth}"),
                Err(()) => assert!(matches!(got, Err(ExtractError::Malformed(_))), "{auth}"),
            }
        }
        for missing in [
            None,
            Some(json!({})),
            Some(json!({"token": null})),
            Some(json!("x")),
        ] {
            assert_eq!(
                from_connect_auth(missing.as_ref()),
                Err(ExtractError::Missing)
            );
        }
    }

    #[test]
    fn header_wins() {
        let got = extract(Some("Bearer aaa"), Some("bearer, bbb"), Some("ccc")).unwrap();
        assert_eq!(got.token, "aaa");
        assert_eq!(got.carrier, Carrier::Header);
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(bearer_from_header("bearer x.y.z").unwrap(), "x.y.z");
        assert_eq!(bearer_from_header("  BEARER   x.y.z ").unwrap(), "x.y.z");
    }

    #[test]
    fn other_schemes_and_shapes_are_malformed() {
        for header in ["Basic abc", "Bearer", "Bearer ", "token", "Bearer a b"] {
            assert!(
                matches!(bearer_from_header(header), Err(ExtractError::Malformed(_))),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_present_but_bad_header_is_not_skipped() {
        assert!(matches!(
            extract(Some("Basic abc"), None, Some("t")),
            Err(ExtractError::Malformed(_))
        ));
    }

    #[test]
    fn subprotocol_pair() {
        let got = extract(None, Some("bearer, x.y.z"), None).unwrap();
        assert_eq!(got.token, "x.y.z");
        assert_eq!(got.carrier, Carrier::Subprotocol);
        let got = extract(None, Some("chat, Bearer,x.y.z"), None).unwrap();
        assert_eq!(got.token, "x.y.z");
    }

    #[test]
    fn subprotocols_without_bearer_fall_through_to_query() {
        let got = extract(None, Some("chat, v2"), Some("q")).unwrap();
        assert_eq!(got.carrier, Carrier::Query);
        assert_eq!(
            extract(None, Some("bearer"), None),
            Err(ExtractError::Missing)
        );
    }

    #[test]
    fn carrier_names_round_trip() {
        for carrier in [Carrier::Header, Carrier::Subprotocol, Carrier::Query] {
            assert_eq!(Carrier::parse(carrier.as_str()), Some(carrier));
            assert_eq!(
                serde_json::to_value(carrier).unwrap(),
                serde_json::json!(carrier.as_str())
            );
        }
        assert_eq!(Carrier::parse("cookie"), None);
    }

    #[test]
    fn query_and_missing() {
        assert_eq!(
            extract(None, None, Some("q")).unwrap().carrier,
            Carrier::Query
        );
        assert!(matches!(
            extract(None, None, Some("")),
            Err(ExtractError::Malformed(_))
        ));
        assert_eq!(extract(None, None, None), Err(ExtractError::Missing));
    }
}
