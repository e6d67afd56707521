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
    Connect,
    Presence,
    InternalPush,
    InternalDisconnect { user_id: String },
}

/// Every route as (method, path pattern). `{name}` is a path parameter.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("POST", "/dev/token"),
    ("GET", "/v1/connect"),
    ("GET", "/v1/presence"),
    ("POST", "/internal/v1/push"),
    ("POST", "/internal/v1/users/{id}/disconnect"),
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
        if let Some(route) = build(pattern, params) {
            return Resolution::Found(route);
        }
    }
    if path_matched {
        Resolution::MethodNotAllowed
    } else {
        Resolution::NotFound
    }
}

fn build(pattern: &str, params: Vec<String>) -> Option<Route> {
    let mut params = params.into_iter();
    Some(match pattern {
        "/health" => Route::Health,
        "/openapi.json" => Route::OpenApi,
        "/dev/token" => Route::DevToken,
        "/v1/connect" => Route::Connect,
        "/v1/presence" => Route::Presence,
        "/internal/v1/push" => Route::InternalPush,
        "/internal/v1/users/{id}/disconnect" => Route::InternalDisconnect {
            user_id: params.next()?,
        },
        _ => return None,
    })
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
        assert_eq!(
            resolve("POST", "/internal/v1/users/al%40ice/disconnect"),
            Resolution::Found(Route::InternalDisconnect {
                user_id: "al@ice".into()
            })
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
    fn every_pattern_builds_a_route() {
        for (method, pattern) in ROUTES {
            let path = pattern.replace("{id}", "x");
            assert!(
                matches!(resolve(method, &path), Resolution::Found(_)),
                "{method} {pattern}"
            );
        }
    }
}
