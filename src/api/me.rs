//! `GET /v1/me`: who a token says the caller is, or exactly why it is refused.
//!
//! A browser cannot read the HTTP answer of a refused WebSocket upgrade (`new WebSocket` only
//! reports close 1006), so a client whose upgrade failed asks here with the same token: the 401
//! carries the same codes as the upgrade (`token_expired`, `token_revoked`, `token_invalid`, …)
//! and the client
//! can stop and surface the reason instead of reconnecting forever.

use serde_json::json;

use super::call::{ok, Answer, Call};

pub async fn me(call: Call<'_>) -> Answer {
    let identity = call.user().await?;
    ok(&json!({
        "user_id": identity.user_id,
        "roles": identity.roles,
        "expires_at": identity.expires_at,
    }))
}
