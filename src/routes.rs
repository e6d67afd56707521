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
    /// A backend's operation on Socket.IO sockets (`api::sockets`): `emit`, `join`, `leave`,
    /// `disconnect` or `fetch`.
    InternalSockets {
        op: String,
    },
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

/// A row of [`ROUTES`] whose [`Route`] takes the path's parameters, in order, as its fields:
/// `row!(GET "/v1/rooms/{id}" => GetRoom { room_id })`.
macro_rules! row {
    ($method:ident $pattern:literal => $route:ident) => {
        (stringify!($method), $pattern, |_| Some(Route::$route))
    };
    ($method:ident $pattern:literal => $route:ident { $($field:ident),+ }) => {
        (stringify!($method), $pattern, |p| {
            Some(Route::$route { $($field: p.next()?),+ })
        })
    };
}

/// The [`Route::DevAsset`] of a file of the built client.
fn asset(path: impl Into<String>) -> Option<Route> {
    Some(Route::DevAsset { path: path.into() })
}

/// Every route, each once: its method, its path pattern (`{name}` is a parameter) and how its
/// [`Route`] is made from the parameters.
pub const ROUTES: &[(&str, &str, Build)] = &[
    row!(GET "/health" => Health),
    row!(GET "/openapi.json" => OpenApi),
    row!(POST "/dev/token" => DevToken),
    row!(POST "/dev/push" => DevPush),
    ("GET", "/client.js", |_| asset("/switchboard.js")),
    ("GET", "/demo/", |_| asset("/demo/index.html")),
    ("GET", "/demo/{file}", |p| {
        asset(format!("/demo/{}", p.next()?))
    }),
    ("GET", "/ops/", |_| asset("/ops/index.html")),
    ("GET", "/ops/{file}", |p| {
        asset(format!("/ops/{}", p.next()?))
    }),
    row!(GET "/dev/users/{id}/alarm" => DevUserAlarm { user_id }),
    row!(GET "/dev/rooms/{id}/alarm" => DevRoomAlarm { room_id }),
    row!(GET "/v1/connect" => Connect),
    row!(GET "/socket.io/" => SocketIo),
    row!(POST "/socket.io/" => SocketIo),
    row!(GET "/v1/presence" => Presence),
    row!(GET "/v1/me" => Me),
    row!(POST "/internal/v1/push" => InternalPush),
    row!(POST "/internal/v1/broadcast" => InternalBroadcast),
    row!(GET "/internal/v1/online" => InternalOnline),
    row!(POST "/internal/v1/socketio/{op}" => InternalSockets { op }),
    row!(GET "/internal/v1/metrics" => InternalMetrics),
    row!(POST "/internal/v1/users/{id}/disconnect" => InternalDisconnect { user_id }),
    row!(DELETE "/internal/v1/users/{id}" => InternalDeleteUser { user_id }),
    row!(GET "/internal/v1/users/{id}" => InternalInspectUser { user_id }),
    row!(GET "/v1/push/public-key" => PushPublicKey),
    row!(POST "/v1/push-subscriptions" => Subscribe),
    row!(GET "/v1/push-subscriptions" => Subscriptions),
    row!(DELETE "/v1/push-subscriptions/{id}" => Unsubscribe { id }),
    row!(GET "/v1/rooms/{id}/notifications" => RoomNotifications { room_id }),
    row!(PUT "/v1/rooms/{id}/notifications" => RoomNotifications { room_id }),
    row!(POST "/v1/rooms" => CreateRoom),
    row!(GET "/v1/rooms" => ListRooms),
    row!(GET "/v1/rooms/{id}" => GetRoom { room_id }),
    row!(PATCH "/v1/rooms/{id}" => RenameRoom { room_id }),
    row!(DELETE "/v1/rooms/{id}" => DeleteRoom { room_id }),
    row!(POST "/v1/rooms/{id}/members" => AddMembers { room_id }),
    row!(DELETE "/v1/rooms/{id}/members/{user}" => RemoveMember { room_id, user_id }),
    row!(GET "/v1/rooms/{id}/members" => ListMembers { room_id }),
    row!(GET "/v1/rooms/{id}/messages" => RoomMessages { room_id }),
    row!(POST "/v1/rooms/{id}/messages" => SendRoomMessage { room_id }),
    row!(PATCH "/v1/rooms/{id}/messages/{message}" => EditRoomMessage { room_id, message_id }),
    row!(DELETE "/v1/rooms/{id}/messages/{message}" => DeleteRoomMessage { room_id, message_id }),
    row!(POST "/v1/rooms/{id}/read" => ReadRoom { room_id }),
    row!(GET "/v1/unread" => Unread),
    row!(GET "/v1/rooms/{id}/connect" => RoomConnect { room_id }),
    row!(POST "/internal/v1/rooms" => InternalCreateRoom),
    row!(DELETE "/internal/v1/rooms/{id}" => InternalDeleteRoom { room_id }),
    row!(POST "/internal/v1/rooms/{id}/members" => InternalAddMembers { room_id }),
    row!(DELETE "/internal/v1/rooms/{id}/members/{user}" =>
        InternalRemoveMember { room_id, user_id }),
    row!(POST "/internal/v1/rooms/{id}/publish" => InternalPublish { room_id }),
    row!(GET "/internal/v1/rooms/{id}/shards" => InternalRoomShards { room_id }),
    row!(GET "/internal/v1/rooms/{id}/stats" => InternalRoomStats { room_id }),
    row!(POST "/v1/messages" => SendMessage),
    row!(GET "/v1/messages/sent" => SentMessages),
    row!(DELETE "/v1/messages/sent/{id}" => DeleteSent { id }),
    row!(POST "/v1/messages/sent/delete" => DeleteSentMany),
    row!(GET "/v1/messages/received" => ReceivedMessages),
    row!(GET "/v1/messages/received/{id}" => ReadMessage { id }),
    row!(POST "/v1/messages/received/read" => ReadMany),
    row!(DELETE "/v1/messages/received/{id}" => DeleteReceived { id }),
    row!(POST "/v1/messages/received/delete" => DeleteReceivedMany),
    row!(GET "/v1/messages/unread-count" => UnreadCount),
    row!(GET "/v1/admin/messages" => AdminMessages),
    row!(DELETE "/v1/admin/messages/{id}" => AdminDelete { id }),
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
    use Resolution::{Found, MethodNotAllowed, NotFound};

    /// Resolves each `(method, path)` and checks that it gives its resolution.
    fn check(cases: Vec<(&str, &str, Resolution)>) {
        for (method, path, expected) in cases {
            assert_eq!(resolve(method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn resolves_static_and_parameterised_routes() {
        check(vec![
            ("GET", "/health", Found(Route::Health)),
            ("GET", "/v1/me", Found(Route::Me)),
            (
                "POST",
                "/internal/v1/users/al%40ice/disconnect",
                Found(Route::InternalDisconnect {
                    user_id: "al@ice".into(),
                }),
            ),
        ]);
    }

    #[test]
    fn room_routes_take_their_parameters_in_order() {
        check(vec![
            (
                "DELETE",
                "/v1/rooms/team.a/members/bob",
                Found(Route::RemoveMember {
                    room_id: "team.a".into(),
                    user_id: "bob".into(),
                }),
            ),
            ("GET", "/v1/rooms", Found(Route::ListRooms)),
            ("POST", "/v1/rooms", Found(Route::CreateRoom)),
            ("PUT", "/v1/rooms/x/members", MethodNotAllowed),
        ]);
    }

    #[test]
    fn message_routes_with_fixed_and_parameter_segments() {
        check(vec![
            ("POST", "/v1/messages/received/read", Found(Route::ReadMany)),
            (
                "GET",
                "/v1/messages/received/m_1",
                Found(Route::ReadMessage { id: "m_1".into() }),
            ),
            (
                "DELETE",
                "/v1/messages/received/m_1",
                Found(Route::DeleteReceived { id: "m_1".into() }),
            ),
        ]);
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        check(vec![
            ("POST", "/health", MethodNotAllowed),
            ("GET", "/nope", NotFound),
            ("POST", "/internal/v1/users//disconnect", NotFound),
            ("POST", "/internal/v1/users/%zz/disconnect", NotFound),
        ]);
    }

    #[test]
    fn inspection_routes_and_the_operator_page() {
        let asset = |path: &str| Found(Route::DevAsset { path: path.into() });
        check(vec![
            (
                "GET",
                "/internal/v1/users/al%40ice",
                Found(Route::InternalInspectUser {
                    user_id: "al@ice".into(),
                }),
            ),
            (
                "DELETE",
                "/internal/v1/users/alice",
                Found(Route::InternalDeleteUser {
                    user_id: "alice".into(),
                }),
            ),
            ("POST", "/internal/v1/users/alice", MethodNotAllowed),
            (
                "GET",
                "/internal/v1/rooms/team/stats",
                Found(Route::InternalRoomStats {
                    room_id: "team".into(),
                }),
            ),
            ("POST", "/internal/v1/rooms/team/stats", MethodNotAllowed),
            ("GET", "/ops/", asset("/ops/index.html")),
            ("GET", "/ops/ops.js", asset("/ops/ops.js")),
            ("GET", "/ops", NotFound),
        ]);
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
