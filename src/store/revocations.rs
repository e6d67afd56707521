//! Revocation cut-offs in D1: the authoritative copy, written before any hub hears of a
//! revocation and read by the Worker for REST calls and room connects (see
//! `auth::revocation` for the rule and docs/ARCHITECTURE.md for where each copy lives).

use worker::D1Database;

use super::d1::{int, text};

/// The user's cut-off (unix seconds), if they were ever revoked.
pub async fn cutoff(db: &D1Database, user_id: &str) -> worker::Result<Option<i64>> {
    db.prepare("SELECT revoked_before FROM revocations WHERE user_id = ?")
        .bind(&[text(user_id)])?
        .first(Some("revoked_before"))
        .await
}

/// Records a cut-off; an earlier one never replaces a later one.
pub async fn revoke(
    db: &D1Database,
    user_id: &str,
    cutoff: i64,
    now_ms: i64,
) -> worker::Result<()> {
    db.prepare(
        "INSERT INTO revocations (user_id, revoked_before, revoked_at) VALUES (?, ?, ?)
         ON CONFLICT(user_id) DO UPDATE SET revoked_before = MAX(revoked_before, excluded.revoked_before), revoked_at = excluded.revoked_at",
    )
    .bind(&[text(user_id), int(cutoff), int(now_ms)])?
    .run()
    .await?;
    Ok(())
}
