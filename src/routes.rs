//! The route table: every HTTP route the gateway answers, in one list ([`ROUTES`]), each row its
//! method, its pattern and the [`Route`] it makes; `api::handle` runs each.
//!
//! Matching is pure (method + path → [`Route`]) so it is unit-tested on the host, and the same
//! list is checked against the OpenAPI document, so the document can never miss a route.

/// A resolved route with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    OpenApi,
    DevToken,
    DevPush,
    /// A file of the built client (`client/dist`), served in development only.
    DevAsset {
        path: String,
    },
    DevUserAlarm {
        user_id: String,
    },
    DevRoomAlarm {
        room_id: String,
    },
    Connect,
    /// A Socket.IO client's upgrade (`socketio`).
    SocketIo,
    Presence,
    Me,
    InternalPush,
    InternalBroadcast,
    InternalOnline,
    /// Prometheus text: users online and this isolate's counters.
    InternalMetrics,
    /// The VAPID public key browsers subscribe with.
    PushPublicKey,
    Subscribe,
    Subscriptions,
    Unsubscribe {
        id: String,
    },
    /// A user's notification level for one room, read (GET) or set (PUT).
    RoomNotifications {
        room_id: String,
    },
    /// Account deletion: revoke, close, forget the user's notification state.
    InternalDeleteUser {
        user_id: String,
    },
    InternalDisconnect {
        user_id: String,
    },
    /// An operator's report on one user (`hubs::user::inspect`).
    InternalInspectUser {
        user_id: String,
    },
    /// An operator's numbers for one room (`hubs::room::inspect`).
    InternalRoomStats {
        room_id: String,
    },
    CreateRoom,
    ListRooms,
    GetRoom {
        room_id: String,
    },
    RenameRoom {
        room_id: String,
    },
    DeleteRoom {
        room_id: String,
    },
    AddMembers {
        room_id: String,
    },
    RemoveMember {
        room_id: String,
        user_id: String,
    },
    ListMembers {
        room_id: String,
    },
    RoomMessages {
        room_id: String,
    },
    SendRoomMessage {
        room_id: String,
    },
    ReadRoom {
        room_id: String,
    },
    EditRoomMessage {
        room_id: String,
        message_id: String,
    },
    DeleteRoomMessage {
        room_id: String,
        message_id: String,
    },
    Unread,
    InternalDeleteRoom {
        room_id: String,
    },
    RoomConnect {
        room_id: String,
    },
    InternalCreateRoom,
    InternalAddMembers {
        room_id: String,
    },
    InternalRemoveMember {
        room_id: String,
        user_id: String,
    },
    InternalPublish {
        room_id: String,
    },
    InternalRoomShards {
        room_id: String,
    },
    SendMessage,
    SentMessages,
    DeleteSent {
        id: String,
    },
    DeleteSentMany,
    ReceivedMessages,
    ReadMessage {
        id: String,
    },
    ReadMany,
    DeleteReceived {
        id: String,
    },
    DeleteReceivedMany,
    UnreadCount,
    AdminMessages,
    AdminDelete {
        id: String,
    },
}

/// The parameters of a matched path, in order.
pub type Params = std::vec::IntoIter<String>;

/// How a row's [`Route`] is made from its path's parameters.
pub type Build = fn(&mut Params) -> Option<Route>;

/// Every route, each once: its method, its path pattern (`{name}` is a parameter) and how its
/// [`Route`] is made from the parameters.
pub const ROUTES: &[(&str, &str, Build)] = &[
    ("GET", "/health", |_| Some(Route::Health)),
    ("GET", "/openapi.json", |_| Some(Route::OpenApi)),
    ("POST", "/dev/token", |_| Some(Route::DevToken)),
    ("POST", "/dev/push", |_| Some(Route::DevPush)),
    ("GET", "/client.js", |_| {
        Some(Route::DevAsset {
            path: "/switchboard.js".into(),
        })
    }),
    ("GET", "/demo/", |_| {
        Some(Route::DevAsset {
            path: "/demo/index.html".into(),
        })
    }),
    ("GET", "/demo/{file}", |p| {
        Some(Route::DevAsset {
            path: format!("/demo/{}", p.next()?),
        })
    }),
    ("GET", "/ops/", |_| {
        Some(Route::DevAsset {
            path: "/ops/index.html".into(),
        })
    }),
    ("GET", "/ops/{file}", |p| {
        Some(Route::DevAsset {
            path: format!("/ops/{}", p.next()?),
        })
    }),
    ("GET", "/dev/users/{id}/alarm", |p| {
        Some(Route::DevUserAlarm { user_id: p.next()? })
    }),
    ("GET", "/dev/rooms/{id}/alarm", |p| {
        Some(Route::DevRoomAlarm { room_id: p.next()? })
    }),
    ("GET", "/v1/connect", |_| Some(Route::Connect)),
    ("GET", "/socket.io/", |_| Some(Route::SocketIo)),
    ("GET", "/v1/presence", |_| Some(Route::Presence)),
    ("GET", "/v1/me", |_| Some(Route::Me)),
    ("POST", "/internal/v1/push", |_| Some(Route::InternalPush)),
    ("POST", "/internal/v1/broadcast", |_| {
        Some(Route::InternalBroadcast)
    }),
    ("GET", "/internal/v1/online", |_| {
        Some(Route::InternalOnline)
    }),
    ("GET", "/internal/v1/metrics", |_| {
        Some(Route::InternalMetrics)
    }),
    ("POST", "/internal/v1/users/{id}/disconnect", |p| {
        Some(Route::InternalDisconnect { user_id: p.next()? })
    }),
    ("DELETE", "/internal/v1/users/{id}", |p| {
        Some(Route::InternalDeleteUser { user_id: p.next()? })
    }),
    ("GET", "/internal/v1/users/{id}", |p| {
        Some(Route::InternalInspectUser { user_id: p.next()? })
    }),
    ("GET", "/v1/push/public-key", |_| Some(Route::PushPublicKey)),
    ("POST", "/v1/push-subscriptions", |_| Some(Route::Subscribe)),
    ("GET", "/v1/push-subscriptions", |_| {
        Some(Route::Subscriptions)
    }),
    ("DELETE", "/v1/push-subscriptions/{id}", |p| {
        Some(Route::Unsubscribe { id: p.next()? })
    }),
    ("GET", "/v1/rooms/{id}/notifications", |p| {
        Some(Route::RoomNotifications { room_id: p.next()? })
    }),
    ("PUT", "/v1/rooms/{id}/notifications", |p| {
        Some(Route::RoomNotifications { room_id: p.next()? })
    }),
    ("POST", "/v1/rooms", |_| Some(Route::CreateRoom)),
    ("GET", "/v1/rooms", |_| Some(Route::ListRooms)),
    ("GET", "/v1/rooms/{id}", |p| {
        Some(Route::GetRoom { room_id: p.next()? })
    }),
    ("PATCH", "/v1/rooms/{id}", |p| {
        Some(Route::RenameRoom { room_id: p.next()? })
    }),
    ("DELETE", "/v1/rooms/{id}", |p| {
        Some(Route::DeleteRoom { room_id: p.next()? })
    }),
    ("POST", "/v1/rooms/{id}/members", |p| {
        Some(Route::AddMembers { room_id: p.next()? })
    }),
    ("DELETE", "/v1/rooms/{id}/members/{user}", |p| {
        Some(Route::RemoveMember {
            room_id: p.next()?,
            user_id: p.next()?,
        })
    }),
    ("GET", "/v1/rooms/{id}/members", |p| {
        Some(Route::ListMembers { room_id: p.next()? })
    }),
    ("GET", "/v1/rooms/{id}/messages", |p| {
        Some(Route::RoomMessages { room_id: p.next()? })
    }),
    ("POST", "/v1/rooms/{id}/messages", |p| {
        Some(Route::SendRoomMessage { room_id: p.next()? })
    }),
    ("PATCH", "/v1/rooms/{id}/messages/{message}", |p| {
        Some(Route::EditRoomMessage {
            room_id: p.next()?,
            message_id: p.next()?,
        })
    }),
    ("DELETE", "/v1/rooms/{id}/messages/{message}", |p| {
        Some(Route::DeleteRoomMessage {
            room_id: p.next()?,
            message_id: p.next()?,
        })
    }),
    ("POST", "/v1/rooms/{id}/read", |p| {
        Some(Route::ReadRoom { room_id: p.next()? })
    }),
    ("GET", "/v1/unread", |_| Some(Route::Unread)),
    ("GET", "/v1/rooms/{id}/connect", |p| {
        Some(Route::RoomConnect { room_id: p.next()? })
    }),
    ("POST", "/internal/v1/rooms", |_| {
        Some(Route::InternalCreateRoom)
    }),
    ("DELETE", "/internal/v1/rooms/{id}", |p| {
        Some(Route::InternalDeleteRoom { room_id: p.next()? })
    }),
    ("POST", "/internal/v1/rooms/{id}/members", |p| {
        Some(Route::InternalAddMembers { room_id: p.next()? })
    }),
    ("DELETE", "/internal/v1/rooms/{id}/members/{user}", |p| {
        Some(Route::InternalRemoveMember {
            room_id: p.next()?,
            user_id: p.next()?,
        })
    }),
    ("POST", "/internal/v1/rooms/{id}/publish", |p| {
        Some(Route::InternalPublish { room_id: p.next()? })
    }),
    ("GET", "/internal/v1/rooms/{id}/shards", |p| {
        Some(Route::InternalRoomShards { room_id: p.next()? })
    }),
    ("GET", "/internal/v1/rooms/{id}/stats", |p| {
        Some(Route::InternalRoomStats { room_id: p.next()? })
    }),
    ("POST", "/v1/messages", |_| Some(Route::SendMessage)),
    ("GET", "/v1/messages/sent", |_| Some(Route::SentMessages)),
    ("DELETE", "/v1/messages/sent/{id}", |p| {
        Some(Route::DeleteSent { id: p.next()? })
    }),
    ("POST", "/v1/messages/sent/delete", |_| {
        Some(Route::DeleteSentMany)
    }),
    ("GET", "/v1/messages/received", |_| {
        Some(Route::ReceivedMessages)
    }),
    ("GET", "/v1/messages/received/{id}", |p| {
        Some(Route::ReadMessage { id: p.next()? })
    }),
    ("POST", "/v1/messages/received/read", |_| {
        Some(Route::ReadMany)
    }),
    ("DELETE", "/v1/messages/received/{id}", |p| {
        Some(Route::DeleteReceived { id: p.next()? })
    }),
    ("POST", "/v1/messages/received/delete", |_| {
        Some(Route::DeleteReceivedMany)
    }),
    ("GET", "/v1/messages/unread-count", |_| {
        Some(Route::UnreadCount)
    }),
    ("GET", "/v1/admin/messages", |_| Some(Route::AdminMessages)),
    ("DELETE", "/v1/admin/messages/{id}", |p| {
        Some(Route::AdminDelete { id: p.next()? })
    }),
];

#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    Found(Route),
    MethodNotAllowed,
    NotFound,
}

pub fn resolve(method: &str, path: &str) -> Resolution {
    let mut path_matched = false;
    for (route_method, pattern, build) in ROUTES {
        let Some(params) = match_path(pattern, path) else {
            continue;
        };
        path_matched = true;
        if *route_method != method {
            continue;
        }
        if let Some(route) = build(&mut params.into_iter()) {
            return Resolution::Found(route);
        }
    }
    if path_matched {
        Resolution::MethodNotAllowed
    } else {
        Resolution::NotFound
    }
}

/// The route pattern `path` matches (`/v1/rooms/{id}`), for logs: searchable, and never a
/// client's raw path. `unknown` when none does.
pub fn pattern_of(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|(_, pattern, _)| match_path(pattern, path).is_some())
        .map_or("unknown", |(_, pattern, _)| *pattern)
}

/// Matches `path` against `pattern`, returning the decoded parameters in order.
fn match_path(pattern: &str, path: &str) -> Option<Vec<String>> {
    let pattern_parts: Vec<&str> = pattern.split('/').collect();
    let path_parts: Vec<&str> = path.split('/').collect();
    if pattern_parts.len() != path_parts.len() {
        return None;
    }
    let mut params = Vec::new();
    for (want, got) in pattern_parts.iter().zip(&path_parts) {
        if want.starts_with('{') {
            if got.is_empty() {
                return None;
            }
            params.push(percent_decode(got)?);
        } else if want != got {
            return None;
        }
    }
    Some(params)
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_static_and_parameterised_routes() {
        assert_eq!(resolve("GET", "/health"), Resolution::Found(Route::Health));
        assert_eq!(resolve("GET", "/v1/me"), Resolution::Found(Route::Me));
        assert_eq!(
            resolve("POST", "/internal/v1/users/al%40ice/disconnect"),
            Resolution::Found(Route::InternalDisconnect {
                user_id: "al@ice".into()
            })
        );
    }

    #[test]
    fn room_routes_take_their_parameters_in_order() {
        assert_eq!(
            resolve("DELETE", "/v1/rooms/team.a/members/bob"),
            Resolution::Found(Route::RemoveMember {
                room_id: "team.a".into(),
                user_id: "bob".into()
            })
        );
        assert_eq!(
            resolve("GET", "/v1/rooms"),
            Resolution::Found(Route::ListRooms)
        );
        assert_eq!(
            resolve("POST", "/v1/rooms"),
            Resolution::Found(Route::CreateRoom)
        );
        assert_eq!(
            resolve("PUT", "/v1/rooms/x/members"),
            Resolution::MethodNotAllowed
        );
    }

    #[test]
    fn message_routes_with_fixed_and_parameter_segments() {
        assert_eq!(
            resolve("POST", "/v1/messages/received/read"),
            Resolution::Found(Route::ReadMany)
        );
        assert_eq!(
            resolve("GET", "/v1/messages/received/m_1"),
            Resolution::Found(Route::ReadMessage { id: "m_1".into() })
        );
        assert_eq!(
            resolve("DELETE", "/v1/messages/received/m_1"),
            Resolution::Found(Route::DeleteReceived { id: "m_1".into() })
        );
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        assert_eq!(resolve("POST", "/health"), Resolution::MethodNotAllowed);
        assert_eq!(resolve("GET", "/nope"), Resolution::NotFound);
        assert_eq!(
            resolve("POST", "/internal/v1/users//disconnect"),
            Resolution::NotFound
        );
        assert_eq!(
            resolve("POST", "/internal/v1/users/%zz/disconnect"),
            Resolution::NotFound
        );
    }

    #[test]
    fn inspection_routes_and_the_operator_page() {
        assert_eq!(
            resolve("GET", "/internal/v1/users/al%40ice"),
            Resolution::Found(Route::InternalInspectUser {
                user_id: "al@ice".into()
            })
        );
        assert_eq!(
            resolve("DELETE", "/internal/v1/users/alice"),
            Resolution::Found(Route::InternalDeleteUser {
                user_id: "alice".into()
            })
        );
        assert_eq!(
            resolve("POST", "/internal/v1/users/alice"),
            Resolution::MethodNotAllowed
        );
        assert_eq!(
            resolve("GET", "/internal/v1/rooms/team/stats"),
            Resolution::Found(Route::InternalRoomStats {
                room_id: "team".into()
            })
        );
        assert_eq!(
            resolve("POST", "/internal/v1/rooms/team/stats"),
            Resolution::MethodNotAllowed
        );
        assert_eq!(
            resolve("GET", "/ops/"),
            Resolution::Found(Route::DevAsset {
                path: "/ops/index.html".into()
            })
        );
        assert_eq!(
            resolve("GET", "/ops/ops.js"),
            Resolution::Found(Route::DevAsset {
                path: "/ops/ops.js".into()
            })
        );
        assert_eq!(resolve("GET", "/ops"), Resolution::NotFound);
    }

    #[test]
    fn every_pattern_builds_a_route() {
        for (method, pattern, _) in ROUTES {
            let path = pattern.replace("{id}", "x").replace("{user}", "y");
            assert!(
                matches!(resolve(method, &path), Resolution::Found(_)),
                "{method} {pattern}"
            );
        }
    }
}
