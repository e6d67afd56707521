//! `GET /v1/connect`: the upgrade, admitted or refused before any Durable Object is addressed.
//!
//! Order of checks: a WebSocket upgrade (else 426), an allowed `Origin` (else 403), a token that
//! verifies (else 401), the user's connect rate (else 429), well-formed `since` and `device`
//! (else 400). Only then is the UserHub
//! called, with the verified identity in a header it alone trusts.

use serde_json::json;
use worker::{Env, Headers, Request, Response};

use super::call::{validation, Answer, Call};
use crate::auth::token::{self, Carrier, ExtractError, Extracted};
use crate::config::Config;
use crate::error::ApiError;
use crate::http::{header, query_param};
use crate::metrics::{self, Kind, Point};
use crate::quota::Rate;
use crate::routes::Route;
use crate::socketio::handshake::Handshake;

/// Set on a Socket.IO upgrade that was accepted only to refuse in band (`api::socketio`): the
/// code it refused with, for the log and for anyone looking at the handshake.
pub const REFUSAL_HEADER: &str = "x-switchboard-refusal";

/// Which kind of socket a request opens, if it is a connect: a connect route's upgrade (a
/// Socket.IO session's later requests, its polls and its move to a WebSocket, are not).
pub fn kind_of(route: &Route, req: &Request) -> Option<&'static str> {
    match route {
        Route::Connect => Some("user"),
        Route::RoomConnect { .. } => Some("room"),
        Route::SocketIo if is_upgrade(req) && query_param(req, "sid").is_none() => Some("socketio"),
        _ => None,
    }
}

/// Whether a request asks for a WebSocket.
pub fn is_upgrade(req: &Request) -> bool {
    header(req, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// How the request carries its token (`header`, `subprotocol`, `query` or `none`), without
/// verifying it: for the log, which never shows the token itself.
pub fn carrier_hint(req: &Request) -> &'static str {
    match extract_token(req).map(|extracted| extracted.carrier) {
        Ok(Carrier::Header) => "header",
        Ok(Carrier::Subprotocol) => "subprotocol",
        Ok(Carrier::Query) => "query",
        Ok(Carrier::Connect) | Err(_) => "none",
    }
}

/// Set on the 101 of a Socket.IO upgrade without a token (`api::lobby`): its outcome is not
/// known until its CONNECT, so the lobby logs it then.
pub const LOBBY_HEADER: &str = "x-switchboard-lobby";

/// Logs and counts a connect: `connect.accepted` (debug: the upgrade answered 101) or
/// `connect.refused` (info) with the code — an HTTP refusal, or a Socket.IO refusal made in band.
pub fn log_outcome(
    kind: &'static str,
    carrier: &'static str,
    origin: Option<&str>,
    result: &Result<Response, ApiError>,
    elapsed_ms: i64,
) {
    let header = |res: &Response, name| res.headers().get(name).ok().flatten();
    let refused = match result {
        Ok(res) if res.status_code() == 101 && header(res, LOBBY_HEADER).is_some() => return,
        Ok(res) if res.status_code() == 101 => header(res, REFUSAL_HEADER).map(|code| (101, code)),
        Ok(res) => Some((res.status_code(), "engine_error".to_owned())),
        Err(err) => Some((err.status, err.code.to_owned())),
    };
    log_decided(kind, carrier, origin, refused, elapsed_ms);
}

/// Logs and counts a connect once decided: admitted, or refused with `(status, code)`.
pub fn log_decided(
    kind: &'static str,
    carrier: &'static str,
    origin: Option<&str>,
    refused: Option<(u16, String)>,
    elapsed_ms: i64,
) {
    let fields = || json!({"kind": kind, "carrier": carrier, "origin": origin, "ms": elapsed_ms});
    match refused {
        None => {
            metrics::record(Point::new(Kind::Connect, kind).value(elapsed_ms as f64));
            if crate::log::enabled(crate::log::Level::Debug) {
                crate::log::debug("connect.accepted", fields());
            }
        }
        Some((status, code)) => {
            metrics::record(Point::new(Kind::Refusal, &code).value(f64::from(status)));
            let mut fields = fields();
            fields["status"] = json!(status);
            fields["code"] = json!(code);
            crate::log::info("connect.refused", fields);
        }
    }
}

pub async fn user(call: Call<'_>) -> Answer {
    let admitted = authenticate(&call).await?;
    let query = hub_query(&call)?;
    admitted.open_user_socket(call.env, &query, None).await
}

/// The object's connect query, carrying a validated `since` and `device`.
pub fn hub_query(call: &Call<'_>) -> Result<String, ApiError> {
    let mut query = String::new();
    if let Some(since) = parse_since(call.query("since").as_deref())? {
        query.push_str(&format!("since={since}&"));
    }
    if let Some(device) = call.query("device") {
        crate::ids::validate_device_id(&device).map_err(validation)?;
        query.push_str(&format!("device={device}"));
    }
    Ok(query)
}

/// A client that passed every check.
pub struct Admitted {
    pub identity: crate::auth::jwt::Identity,
    pub carrier: Carrier,
}

/// The checks every connect route shares: an upgrade, an allowed Origin, a token that
/// verifies, the user's connect rate.
pub async fn authenticate(call: &Call<'_>) -> Result<Admitted, ApiError> {
    let (req, config) = (&call.req, call.config);
    if !is_upgrade(req) {
        return Err(ApiError::new(
            426,
            "upgrade_required",
            "this route only accepts WebSocket upgrades",
        ));
    }
    let own = req.url()?.origin().ascii_serialization();
    if !config
        .origins
        .allows_from(header(req, "origin").as_deref(), &own)
    {
        return Err(ApiError::forbidden(
            "origin_not_allowed",
            "this Origin is not in ALLOWED_ORIGINS",
        ));
    }
    let extracted = extract_token(req).map_err(|err| match err {
        ExtractError::Missing => ApiError::unauthorized(
            "token_missing",
            "send a token: Authorization: Bearer, the subprotocol pair 'bearer, <jwt>', or ?token=",
        ),
        ExtractError::Malformed(why) => ApiError::unauthorized("token_malformed", why),
    })?;
    admit(call.env, config, extracted).await
}

/// A token that verifies, within the user's connect rate (a Socket.IO CONNECT's token comes
/// here from `api::lobby`).
pub async fn admit(env: &Env, config: &Config, extracted: Extracted) -> Result<Admitted, ApiError> {
    let identity = config
        .verifier
        .verify(&extracted.token, chrono::Utc::now())
        .map_err(|err| ApiError::unauthorized(err.code(), err.message()))?;
    crate::quota::check(env, Rate::Connect, &identity.user_id).await?;
    Ok(Admitted {
        identity,
        carrier: extracted.carrier,
    })
}

/// The connect token wherever the request carries it: `Authorization: Bearer`, the subprotocol
/// pair, or `?token=`.
fn extract_token(req: &Request) -> Result<Extracted, ExtractError> {
    token::extract(
        header(req, "authorization").as_deref(),
        header(req, "sec-websocket-protocol").as_deref(),
        query_param(req, "token").as_deref(),
    )
}

/// `since` is a whole number >= 0 when present.
pub fn parse_since(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| {
        raw.parse::<i64>()
            .ok()
            .filter(|since| *since >= 0)
            .ok_or_else(|| ApiError::bad_request("validation", "since must be a whole number >= 0"))
    })
    .transpose()
}

impl Admitted {
    /// Whether the client offered the `bearer` subprotocol (the 101 must select it).
    pub fn subprotocol(&self) -> bool {
        self.carrier == Carrier::Subprotocol
    }

    /// Opens a device socket in the user's UserHub (`query` the hub's: `since`, `device`,
    /// `dialect`), telling it how the token came (an operator's report shows it) and a
    /// Socket.IO connection's handshake.
    pub async fn open_user_socket(
        &self,
        env: &Env,
        query: &str,
        handshake: Option<&Handshake>,
    ) -> Answer {
        let headers = Headers::new();
        headers.set(crate::hubs::stubs::CARRIER_HEADER, self.carrier.as_str())?;
        if let Some(handshake) = handshake {
            crate::hubs::stubs::set_handshake(&headers, handshake)?;
        }
        crate::hubs::stubs::user::connect(env, &self.identity, query, self.subprotocol(), headers)
            .await
    }

    /// Opens a member socket in `room_id` (`query` the room's), through the room's admission.
    pub async fn open_room_socket(&self, env: &Env, room_id: &str, query: &str) -> Answer {
        let subprotocol = self.subprotocol();
        crate::hubs::stubs::room::open_socket(env, &self.identity, room_id, query, subprotocol)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_values() {
        assert_eq!(parse_since(None).unwrap(), None);
        assert_eq!(parse_since(Some("0")).unwrap(), Some(0));
        assert_eq!(parse_since(Some("42")).unwrap(), Some(42));
        assert_eq!(
            parse_since(Some("9223372036854775807")).unwrap(),
            Some(i64::MAX)
        );
        for bad in ["-1", "x", "", "1.5", "9223372036854775808"] {
            assert_eq!(parse_since(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
