//! Which user holds each Web Push endpoint, in D1 (migrations/0008_push_endpoints.sql): the
//! subscriptions themselves live in each user's UserHub, and this table is what makes one
//! endpoint belong to one user across hubs.

use worker::D1Database;

use super::d1::{int, text};

/// Records that `user_id` holds endpoint `id`; returns the user who held it before, if another.
pub async fn claim(
    db: &D1Database,
    id: &str,
    user_id: &str,
    now_ms: i64,
) -> worker::Result<Option<String>> {
    let before: Option<String> = db
        .prepare("SELECT user_id FROM push_endpoints WHERE id = ?")
        .bind(&[text(id)])?
        .first(Some("user_id"))
        .await?;
    db.prepare(
        "INSERT INTO push_endpoints (id, user_id, claimed_at) VALUES (?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, claimed_at = excluded.claimed_at",
    )
    .bind(&[text(id), text(user_id), int(now_ms)])?
    .run()
    .await?;
    Ok(before.filter(|before| before != user_id))
}

/// Forgets endpoints `user_id` held (all of them when `ids` is `None`).
pub async fn release(db: &D1Database, user_id: &str, ids: Option<&[String]>) -> worker::Result<()> {
    match ids {
        None => {
            db.prepare("DELETE FROM push_endpoints WHERE user_id = ?")
                .bind(&[text(user_id)])?
                .run()
                .await?;
        }
        Some(ids) => {
            for id in ids {
                db.prepare("DELETE FROM push_endpoints WHERE id = ? AND user_id = ?")
                    .bind(&[text(id), text(user_id)])?
                    .run()
                    .await?;
            }
        }
    }
    Ok(())
}
