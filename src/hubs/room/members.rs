//! The room's members as the Worker changes them in D1: added (told `member.added`), given a
//! role, removed (their sockets closed, remembered as removed), disconnected or revoked — and a
//! member the room missed, learnt from D1 when they act. D1 owns membership; the room keeps a
//! mirror and checks it on every acting frame (docs/ARCHITECTURE.md, "Who owns what").

use serde_json::json;
use worker::Request;

use super::{not_a_member, Room};
use crate::error::ApiError;
use crate::hubs::common::object::Answer;
use crate::hubs::stubs::room::{DisconnectUser, MembersChange};
use crate::hubs::stubs::user::Disconnected;
use crate::protocol::ServerFrame;
use crate::store::rooms;

impl Room {
    /// Succeeds for a member, learning one the room missed from D1 unless it has seen them
    /// removed since (D1 may still list them for a moment); else 403 `not_a_member`.
    pub(super) async fn admit_member(&self, room_id: &str, user_id: &str) -> Result<(), ApiError> {
        if self.log().is_member(user_id)? {
            return Ok(());
        }
        if !self.log().is_removed(user_id)? {
            let db = crate::store::d1::db(&self.env)?;
            if let Some(member) = rooms::member(&db, room_id, user_id).await? {
                if !self.log().is_removed(user_id)? {
                    self.log().learn_member(user_id, member.read_seq)?;
                }
            }
        }
        if self.log().is_member(user_id)? {
            Ok(())
        } else {
            Err(not_a_member())
        }
    }
    pub(super) async fn change_members(&self, mut req: Request) -> Answer {
        let change: MembersChange = crate::http::read_hub_json(&mut req).await?;
        let log = self.log();
        let last_seq = log.last_seq()?;
        let member_event = |event: &str, user: &str, role: Option<&str>| {
            let mut data = json!({"user_id": user});
            if let Some(role) = role {
                data["role"] = json!(role);
            }
            self.broadcast(ServerFrame::event(event, data), None);
        };
        for user in &change.add {
            let joined = !log.is_member(user)?;
            log.add_member(user, last_seq)?;
            if joined {
                member_event("member.added", user, Some(&change.role));
            }
        }
        for user in &change.updated {
            member_event("member.updated", user, Some(&change.role));
        }
        for user in &change.remove {
            let was_member = log.is_member(user)?;
            log.remove_member(user)?;
            self.close_user(user, "removed from the room")?;
            if was_member {
                member_event("member.removed", user, None);
            }
        }
        self.schedule_alarm().await?;
        Ok(crate::http::json(200, &json!({"last_seq": last_seq}))?)
    }
    /// Closes one user's sockets (forced disconnect), recording a revocation cut-off first.
    pub(super) async fn disconnect(&self, mut req: Request) -> Answer {
        let body: DisconnectUser = crate::http::read_hub_json(&mut req).await?;
        if let Some(cutoff) = body.revoke_before {
            self.log().revoke(&body.user_id, cutoff)?;
        }
        let sockets = self.close_user(&body.user_id, &body.reason)?;
        self.schedule_alarm().await?;
        let answer = Disconnected { sockets };
        Ok(crate::http::json(200, &answer)?)
    }
}
