//! HTTP errors as the wire contract spells them.
//!
//! Every refusal the gateway makes over HTTP is a JSON body
//! `{"error":{"code":"<snake_case>","message":"<human text>"}}` with a status that says what kind
//! of failure it is. Handlers return `Result<_, ApiError>` and the entry turns the error into a
//! response in one place, so no handler can forget the shape.

use serde_json::json;

/// A refusal: an HTTP status, a stable machine-readable code and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which a refused request may be retried (`Retry-After`, for 429s).
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: over a quota; retry after `seconds`.
    pub fn rate_limited(message: impl Into<String>, seconds: i64) -> Self {
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(429, "rate_limited", message)
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(401, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "unavailable", message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

/// Runtime failures (a binding missing, a DO call failing) become a 500 whose message does not
/// leak internals; the detail goes to the log.
impl From<worker::Error> for ApiError {
    fn from(err: worker::Error) -> Self {
        crate::log::error("internal", serde_json::json!({"error": err.to_string()}));
        Self::internal("the gateway failed to handle this request")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_and_message() {
        let err = ApiError::unauthorized("token_expired", "the token has expired");
        assert_eq!(err.status, 401);
        assert_eq!(
            err.body(),
            json!({"error": {"code": "token_expired", "message": "the token has expired"}})
        );
    }
}
