//! The way into a handler: a [`Call`] is the request with the Worker's `env` and the loaded
//! configuration, and its methods are the steps handlers start with — who calls
//! ([`Call::user`]: a user's bearer JWT; [`Call::internal`]: a backend's `INTERNAL_API_TOKEN`),
//! the JSON body within its limit ([`Call::body`]), and the query ([`Call::query`],
//! [`Call::page`], [`Call::limit`]). Each step is a method the handler calls where it needs
//! it, so every handler keeps its own order of checks. A handler answers with [`ok`] (200 and
//! JSON), [`respond`] (another status) or [`listing`] (a page of a listing), and refuses a
//! broken rule with [`validation`].

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Request, Response};

use crate::auth::jwt::Identity;
use crate::config::Config;
use crate::cursor::PageCursor;
use crate::error::ApiError;

/// What a handler returns: its response, or the refusal the entry turns into JSON.
pub type Answer = Result<Response, ApiError>;

/// Default and largest page size of every listing.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;

/// One request to a handler, with what every handler may need to answer it.
pub struct Call<'a> {
    pub req: Request,
    pub env: &'a Env,
    pub config: &'a Config,
}

/// Where a listing continues and how much of it to return: `?cursor=&limit=`.
pub struct Page {
    pub cursor: Option<PageCursor>,
    pub limit: i64,
}

impl Call<'_> {
    /// Authenticates a REST call with the bearer JWT, counts it against the user's REST rate, and
    /// refuses a revoked token (one D1 read by primary key; no Durable Object is asked).
    pub async fn user(&self) -> Result<Identity, ApiError> {
        let header = self.header("authorization").ok_or_else(|| {
            ApiError::unauthorized("token_missing", "send Authorization: Bearer <jwt>")
        })?;
        let token = crate::auth::token::bearer_from_header(&header).map_err(|_| {
            ApiError::unauthorized("token_malformed", "Authorization must be 'Bearer <jwt>'")
        })?;
        let identity = self
            .config
            .verifier
            .verify(&token, chrono::Utc::now())
            .map_err(|err| ApiError::unauthorized(err.code(), err.message()))?;
        crate::quota::check(self.env, crate::quota::Rate::Rest, &identity.user_id).await?;
        self.not_revoked(&identity).await?;
        Ok(identity)
    }

    /// 401 `token_revoked` when the user's D1 cut-off refuses this identity's token.
    async fn not_revoked(&self, identity: &Identity) -> Result<(), ApiError> {
        let db = crate::store::d1::db(self.env)?;
        let cutoff = crate::store::revocations::cutoff(&db, &identity.user_id).await?;
        crate::auth::revocation::check(identity, cutoff)
    }

    /// Authenticates an internal call with `INTERNAL_API_TOKEN`.
    pub fn internal(&self) -> Result<(), ApiError> {
        let header = self.header("authorization");
        let token = self.config.internal_token.as_deref();
        if crate::auth::internal::is_authorized(header.as_deref(), token) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "unauthorized",
                "send Authorization: Bearer <INTERNAL_API_TOKEN>",
            ))
        }
    }

    /// The JSON body, of at most `MAX_BODY_BYTES` (`http::read_json`: 413 when larger, 400 when
    /// not JSON of the shape).
    pub async fn body<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let max_bytes = self.config.limits.max_body_bytes;
        self.body_within(max_bytes).await
    }

    /// [`Call::body`] for a route whose body is small whatever `MAX_BODY_BYTES` allows.
    pub async fn body_within<T: DeserializeOwned>(
        &mut self,
        max_bytes: usize,
    ) -> Result<T, ApiError> {
        crate::http::read_json(&mut self.req, max_bytes).await
    }

    pub fn header(&self, name: &str) -> Option<String> {
        crate::http::header(&self.req, name)
    }

    pub fn query(&self, name: &str) -> Option<String> {
        crate::http::query_param(&self.req, name)
    }

    /// `?cursor=&limit=` of a listing.
    pub fn page(&self) -> Result<Page, ApiError> {
        let cursor = self.cursor(PageCursor::decode)?;
        Ok(Page {
            cursor,
            limit: self.limit()?,
        })
    }

    /// `?limit=`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
    pub fn limit(&self) -> Result<i64, ApiError> {
        self.limit_within(DEFAULT_PAGE, MAX_PAGE)
    }

    /// `?limit=`: 1 to `max`, `default` when absent.
    pub fn limit_within(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        crate::http::page_limit(self.query("limit").as_deref(), default, max)
    }

    /// `?cursor=`, read by `decode`: 400 when it is not a cursor this API gave out.
    pub fn cursor<C>(&self, decode: impl FnOnce(&str) -> Option<C>) -> Result<Option<C>, ApiError> {
        self.query("cursor")
            .map(|raw| {
                decode(&raw).ok_or_else(|| validation("cursor: not a cursor this API gave out"))
            })
            .transpose()
    }
}

/// 200 with `value` as JSON.
pub fn ok(value: &impl Serialize) -> Answer {
    respond(200, value)
}

/// `status` with `value` as JSON.
pub fn respond(status: u16, value: &impl Serialize) -> Answer {
    Ok(crate::http::json(status, value)?)
}

/// 400 `validation`: a body or parameter that breaks a rule of its route.
pub fn validation(why: impl Into<String>) -> ApiError {
    ApiError::bad_request("validation", why)
}

/// 200 with one page of a listing as `{"<name>": [...], "next_cursor"}`; the cursor, of the
/// page's last row by `key`, only when the page is full (more may follow).
pub fn listing<T: Serialize>(
    name: &str,
    rows: &[T],
    limit: i64,
    key: impl Fn(&T) -> PageCursor,
) -> Answer {
    let next = PageCursor::next(rows, limit, key);
    ok(&serde_json::json!({ name: rows, "next_cursor": next }))
}
