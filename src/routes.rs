//! The route table: every HTTP route the gateway answers, in one list.
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
    /// An operator's report on one user (`hubs::inspect`).
    InternalInspectUser {
        user_id: String,
    },
    /// An operator's numbers for one room (`hubs::inspect`).
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

/// Every route as (method, path pattern). `{name}` is a path parameter.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("POST", "/dev/token"),
    ("POST", "/dev/push"),
    ("GET", "/client.js"),
    ("GET", "/demo/"),
    ("GET", "/demo/{file}"),
    ("GET", "/ops/"),
    ("GET", "/ops/{file}"),
    ("GET", "/dev/users/{id}/alarm"),
    ("GET", "/dev/rooms/{id}/alarm"),
    ("GET", "/v1/connect"),
    ("GET", "/socket.io/"),
    ("GET", "/v1/presence"),
    ("GET", "/v1/me"),
    ("POST", "/internal/v1/push"),
    ("POST", "/internal/v1/broadcast"),
    ("GET", "/internal/v1/online"),
    ("GET", "/internal/v1/metrics"),
    ("POST", "/internal/v1/users/{id}/disconnect"),
    ("DELETE", "/internal/v1/users/{id}"),
    ("GET", "/internal/v1/users/{id}"),
    ("GET", "/v1/push/public-key"),
    ("POST", "/v1/push-subscriptions"),
    ("GET", "/v1/push-subscriptions"),
    ("DELETE", "/v1/push-subscriptions/{id}"),
    ("GET", "/v1/rooms/{id}/notifications"),
    ("PUT", "/v1/rooms/{id}/notifications"),
    ("POST", "/v1/rooms"),
    ("GET", "/v1/rooms"),
    ("GET", "/v1/rooms/{id}"),
    ("PATCH", "/v1/rooms/{id}"),
    ("DELETE", "/v1/rooms/{id}"),
    ("POST", "/v1/rooms/{id}/members"),
    ("DELETE", "/v1/rooms/{id}/members/{user}"),
    ("GET", "/v1/rooms/{id}/members"),
    ("GET", "/v1/rooms/{id}/messages"),
    ("POST", "/v1/rooms/{id}/messages"),
    ("PATCH", "/v1/rooms/{id}/messages/{message}"),
    ("DELETE", "/v1/rooms/{id}/messages/{message}"),
    ("POST", "/v1/rooms/{id}/read"),
    ("GET", "/v1/unread"),
    ("GET", "/v1/rooms/{id}/connect"),
    ("POST", "/internal/v1/rooms"),
    ("DELETE", "/internal/v1/rooms/{id}"),
    ("POST", "/internal/v1/rooms/{id}/members"),
    ("DELETE", "/internal/v1/rooms/{id}/members/{user}"),
    ("POST", "/internal/v1/rooms/{id}/publish"),
    ("GET", "/internal/v1/rooms/{id}/shards"),
    ("GET", "/internal/v1/rooms/{id}/stats"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/messages/sent"),
    ("DELETE", "/v1/messages/sent/{id}"),
    ("POST", "/v1/messages/sent/delete"),
    ("GET", "/v1/messages/received"),
    ("GET", "/v1/messages/received/{id}"),
    ("POST", "/v1/messages/received/read"),
    ("DELETE", "/v1/messages/received/{id}"),
    ("POST", "/v1/messages/received/delete"),
    ("GET", "/v1/messages/unread-count"),
    ("GET", "/v1/admin/messages"),
    ("DELETE", "/v1/admin/messages/{id}"),
];

#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    Found(Route),
    MethodNotAllowed,
    NotFound,
}

pub fn resolve(method: &str, path: &str) -> Resolution {
    let mut path_matched = false;
    for (route_method, pattern) in ROUTES {
        let Some(params) = match_path(pattern, path) else {
            continue;
        };
        path_matched = true;
        if *route_method != method {
            continue;
        }
        if let Some(route) = build(method, pattern, params) {
            return Resolution::Found(route);
        }
    }
    if path_matched {
        Resolution::MethodNotAllowed
    } else {
        Resolution::NotFound
    }
}

fn build(method: &str, pattern: &str, params: Vec<String>) -> Option<Route> {
    let mut params = params.into_iter();
    let mut param = || params.next();
    Some(match (method, pattern) {
        ("POST", "/v1/rooms") => Route::CreateRoom,
        ("GET", "/v1/rooms") => Route::ListRooms,
        ("GET", "/v1/rooms/{id}") => Route::GetRoom { room_id: param()? },
        ("PATCH", "/v1/rooms/{id}") => Route::RenameRoom { room_id: param()? },
        (_, "/v1/rooms/{id}") => Route::DeleteRoom { room_id: param()? },
        ("POST", "/v1/rooms/{id}/members") => Route::AddMembers { room_id: param()? },
        ("GET", "/v1/rooms/{id}/members") => Route::ListMembers { room_id: param()? },
        (_, "/v1/rooms/{id}/members/{user}") => Route::RemoveMember {
            room_id: param()?,
            user_id: param()?,
        },
        ("GET", "/v1/rooms/{id}/messages") => Route::RoomMessages { room_id: param()? },
        (_, "/v1/rooms/{id}/messages") => Route::SendRoomMessage { room_id: param()? },
        ("PATCH", "/v1/rooms/{id}/messages/{message}") => Route::EditRoomMessage {
            room_id: param()?,
            message_id: param()?,
        },
        (_, "/v1/rooms/{id}/messages/{message}") => Route::DeleteRoomMessage {
            room_id: param()?,
            message_id: param()?,
        },
        (_, "/v1/rooms/{id}/read") => Route::ReadRoom { room_id: param()? },
        (_, "/v1/unread") => Route::Unread,
        (_, "/v1/rooms/{id}/connect") => Route::RoomConnect { room_id: param()? },
        (_, "/internal/v1/rooms") => Route::InternalCreateRoom,
        (_, "/internal/v1/rooms/{id}") => Route::InternalDeleteRoom { room_id: param()? },
        (_, "/internal/v1/rooms/{id}/members") => Route::InternalAddMembers { room_id: param()? },
        (_, "/internal/v1/rooms/{id}/members/{user}") => Route::InternalRemoveMember {
            room_id: param()?,
            user_id: param()?,
        },
        (_, "/internal/v1/rooms/{id}/publish") => Route::InternalPublish { room_id: param()? },
        (_, "/internal/v1/rooms/{id}/shards") => Route::InternalRoomShards { room_id: param()? },
        (_, "/internal/v1/rooms/{id}/stats") => Route::InternalRoomStats { room_id: param()? },
        ("GET", "/internal/v1/users/{id}") => Route::InternalInspectUser { user_id: param()? },
        ("POST", "/v1/push-subscriptions") => Route::Subscribe,
        ("GET", "/v1/push-subscriptions") => Route::Subscriptions,
        (_, "/v1/push-subscriptions/{id}") => Route::Unsubscribe { id: param()? },
        (_, "/v1/rooms/{id}/notifications") => Route::RoomNotifications { room_id: param()? },
        (_, "/v1/messages") => Route::SendMessage,
        (_, "/v1/messages/sent") => Route::SentMessages,
        (_, "/v1/messages/sent/{id}") => Route::DeleteSent { id: param()? },
        (_, "/v1/messages/sent/delete") => Route::DeleteSentMany,
        (_, "/v1/messages/received") => Route::ReceivedMessages,
        ("GET", "/v1/messages/received/{id}") => Route::ReadMessage { id: param()? },
        (_, "/v1/messages/received/{id}") => Route::DeleteReceived { id: param()? },
        (_, "/v1/messages/received/read") => Route::ReadMany,
        (_, "/v1/messages/received/delete") => Route::DeleteReceivedMany,
        (_, "/v1/messages/unread-count") => Route::UnreadCount,
        (_, "/v1/admin/messages") => Route::AdminMessages,
        (_, "/v1/admin/messages/{id}") => Route::AdminDelete { id: param()? },
        (_, pattern) => return build_user_route(pattern, params),
    })
}

fn build_user_route(pattern: &str, mut params: std::vec::IntoIter<String>) -> Option<Route> {
    Some(match pattern {
        "/health" => Route::Health,
        "/openapi.json" => Route::OpenApi,
        "/dev/token" => Route::DevToken,
        "/dev/push" => Route::DevPush,
        "/client.js" => Route::DevAsset {
            path: "/switchboard.js".into(),
        },
        "/demo/" => Route::DevAsset {
            path: "/demo/index.html".into(),
        },
        "/demo/{file}" => Route::DevAsset {
            path: format!("/demo/{}", params.next()?),
        },
        "/ops/" => Route::DevAsset {
            path: "/ops/index.html".into(),
        },
        "/ops/{file}" => Route::DevAsset {
            path: format!("/ops/{}", params.next()?),
        },
        "/dev/users/{id}/alarm" => Route::DevUserAlarm {
            user_id: params.next()?,
        },
        "/dev/rooms/{id}/alarm" => Route::DevRoomAlarm {
            room_id: params.next()?,
        },
        "/v1/connect" => Route::Connect,
        "/socket.io/" => Route::SocketIo,
        "/v1/presence" => Route::Presence,
        "/v1/me" => Route::Me,
        "/internal/v1/push" => Route::InternalPush,
        "/internal/v1/broadcast" => Route::InternalBroadcast,
        "/internal/v1/online" => Route::InternalOnline,
        "/internal/v1/metrics" => Route::InternalMetrics,
        "/internal/v1/users/{id}/disconnect" => Route::InternalDisconnect {
            user_id: params.next()?,
        },
        "/internal/v1/users/{id}" => Route::InternalDeleteUser {
            user_id: params.next()?,
        },
        "/v1/push/public-key" => Route::PushPublicKey,
        _ => return None,
    })
}

/// The route pattern `path` matches (`/v1/rooms/{id}`), for logs: searchable, and never a
/// client's raw path. `unknown` when none does.
pub fn pattern_of(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|(_, pattern)| match_path(pattern, path).is_some())
        .map_or("unknown", |(_, pattern)| *pattern)
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
        for (method, pattern) in ROUTES {
            let path = pattern.replace("{id}", "x").replace("{user}", "y");
            assert!(
                matches!(resolve(method, &path), Resolution::Found(_)),
                "{method} {pattern}"
            );
        }
    }
}
