//! Small HTTP helpers shared by the Worker handlers and the Durable Objects: JSON responses,
//! bounded JSON bodies, query parameters, and calls to Durable Objects with a deadline.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Delay, Headers, Method, Request, RequestInit, Response, Stub};

use crate::error::ApiError;

/// A Durable Object call that takes longer than this is answered with 503. A panicking DO can
/// leave the caller's future pending forever; the deadline bounds it.
pub const HUB_DEADLINE: Duration = Duration::from_secs(15);

pub fn json<T: Serialize>(status: u16, value: &T) -> worker::Result<Response> {
    Ok(Response::from_json(value)?.with_status(status))
}

pub fn error_response(err: &ApiError) -> Response {
    render_error(err, err.body())
}

/// [`error_response`] with the request's id in the body:
/// `{"error":{"code","message","request_id"}}`.
pub fn error_response_with_id(err: &ApiError, request_id: &str) -> Response {
    let mut body = err.body();
    body["error"]["request_id"] = serde_json::Value::from(request_id);
    render_error(err, body)
}

fn render_error(err: &ApiError, body: serde_json::Value) -> Response {
    let mut res = json(err.status, &body).unwrap_or_else(|_| {
        Response::error(err.message.clone(), err.status)
            .unwrap_or_else(|_| Response::empty().expect("an empty response can always be built"))
    });
    if let Some(seconds) = err.retry_after {
        let _ = res.headers_mut().set("retry-after", &seconds.to_string());
    }
    res
}

/// Reads a JSON body of at most `max_bytes`: 413 when larger, 400 when not JSON of the shape.
/// A body with a `Content-Length` within the limit is read in one piece (HTTP framing holds it
/// to that length); one without (chunked) is read as a stream and cut off at the limit, so it
/// cannot make the Worker hold more than `max_bytes`.
pub async fn read_json<T: DeserializeOwned>(
    req: &mut Request,
    max_bytes: usize,
) -> Result<T, ApiError> {
    let too_large = || ApiError::too_large(format!("the body is larger than {max_bytes} bytes"));
    if let Some(length) = header(req, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        if length > max_bytes {
            return Err(too_large());
        }
        let body = req.bytes().await.map_err(|_| unreadable())?;
        return parse_json(&body, max_bytes);
    }
    let mut body = Vec::new();
    // A request without a body has no stream: it reads as empty.
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| unreadable())?;
            if body.len().saturating_add(chunk.len()) > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
    }
    parse_json(&body, max_bytes)
}

/// Reads the JSON body of a request the Worker made to a hub: sized and checked by the Worker
/// already, so it is read in one piece rather than streamed.
pub async fn read_hub_json<T: DeserializeOwned>(req: &mut Request) -> Result<T, ApiError> {
    let body = req.bytes().await.map_err(|_| unreadable())?;
    parse_json(&body, usize::MAX)
}

fn unreadable() -> ApiError {
    ApiError::bad_request("bad_body", "the body could not be read")
}

/// The pure half of [`read_json`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], max_bytes: usize) -> Result<T, ApiError> {
    if bytes.len() > max_bytes {
        return Err(ApiError::too_large(format!(
            "the body is larger than {max_bytes} bytes"
        )));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        let code = if err.is_data() {
            "validation"
        } else {
            "bad_json"
        };
        ApiError::bad_request(code, format!("invalid body: {err}"))
    })
}

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// `limit` for a paged listing: 1 to `max`, `default` when absent.
pub fn page_limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_request("validation", format!("limit must be 1 to {max}"))
            }),
    }
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let url = req.url().ok()?;
    let value = url
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned());
    value
}

/// Builds a request to a Durable Object. The host is arbitrary; stubs need an absolute URL.
pub fn hub_request(
    method: Method,
    path: &str,
    headers: Headers,
    body: Option<String>,
) -> worker::Result<Request> {
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(body.into()));
    }
    Request::new_with_init(&format!("https://hub{path}"), &init)
}

/// Calls a Durable Object with [`HUB_DEADLINE`].
pub async fn call_hub(stub: &Stub, req: Request) -> Result<Response, ApiError> {
    match within(HUB_DEADLINE, stub.fetch_with_request(req)).await {
        Some(answer) => Ok(answer?),
        None => Err(ApiError::unavailable("a hub did not answer in time")),
    }
}

/// `work`'s outcome, or `None` when `deadline` passed first (what is left of `work` is dropped).
pub async fn within<T>(
    deadline: Duration,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    match select(Box::pin(work), Box::pin(Delay::from(deadline))).await {
        Either::Left((outcome, _)) => Some(outcome),
        Either::Right(_) => None,
    }
}

/// POSTs `body` to `url` once, following no redirect (a 3xx is the answer: what was meant for
/// one URL goes nowhere else), and reads the answer with `read`; `None` when the exchange took
/// longer than `deadline`. The request is then aborted, so its connection is freed.
pub async fn post_within<T, F>(
    url: &str,
    headers: &Headers,
    body: worker::wasm_bindgen::JsValue,
    deadline: Duration,
    read: impl FnOnce(worker::Result<Response>) -> F,
) -> worker::Result<Option<T>>
where
    F: std::future::Future<Output = T>,
{
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers.clone())
        .with_redirect(worker::RequestRedirect::Manual)
        .with_body(Some(body));
    let request = Request::new_with_init(url, &init)?;
    let controller = worker::AbortController::default();
    let signal = controller.signal();
    let exchange = async {
        let answer = worker::Fetch::Request(request)
            .send_with_signal(&signal)
            .await;
        read(answer).await
    };
    let outcome = within(deadline, exchange).await;
    controller.abort();
    Ok(outcome)
}

/// Calls a Durable Object with a JSON body and reads its JSON answer; a non-2xx answer that
/// carries an [`ApiError`] body is passed through.
pub async fn call_hub_json<T: DeserializeOwned>(
    stub: &Stub,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    call_hub_json_with(stub, method, path, Headers::new(), body).await
}

/// [`call_hub_json`] with extra request headers.
pub async fn call_hub_json_with<T: DeserializeOwned>(
    stub: &Stub,
    method: Method,
    path: &str,
    headers: Headers,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    headers.set("content-type", "application/json")?;
    let body = body
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let res = call_hub(stub, hub_request(method, path, headers, body)?).await?;
    let status = res.status_code();
    let text = body_text(res).await?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text)
            .map_err(|e| ApiError::internal(format!("hub answer: {e}")));
    }
    Err(hub_error(status, &text))
}

/// A hub's answer body as text, read in one piece (the `worker` crate reads a streamed body
/// chunk by chunk, each chunk a round trip through a stream reader).
async fn body_text(res: Response) -> Result<String, ApiError> {
    let res = worker::web_sys::Response::from(res);
    let text = async { worker::wasm_bindgen_futures::JsFuture::from(res.text()?).await }
        .await
        .map_err(worker::Error::from)?;
    text.as_string()
        .ok_or_else(|| ApiError::internal("a hub's answer was not text"))
}

/// The error a hub answered with (a non-2xx answer carrying an [`ApiError`] body).
pub async fn error_of(res: Response) -> ApiError {
    let status = res.status_code();
    match body_text(res).await {
        Ok(text) => hub_error(status, &text),
        Err(err) => err,
    }
}

fn hub_error(status: u16, text: &str) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(body) => ApiError::new(status, known_code(&body.error.code), body.error.message),
        Err(_) => ApiError::internal(format!("hub answered {status}")),
    }
}

/// Error codes are `&'static str`; a code coming back from a hub is mapped onto the known set.
fn known_code(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "validation",
        "not_found",
        "forbidden",
        "not_a_member",
        "conflict",
        "payload_too_large",
        "unavailable",
        "not_sender",
        "message_deleted",
        "recall_window_passed",
        "token_revoked",
        "too_many_sockets",
        "rate_limited",
    ];
    KNOWN
        .iter()
        .find(|known| **known == code)
        .copied()
        .unwrap_or("internal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Shape {
        a: u8,
    }

    #[test]
    fn json_bodies() {
        assert_eq!(parse_json::<Shape>(br#"{"a":1}"#, 100).unwrap().a, 1);
        assert_eq!(parse_json::<Shape>(b"{", 100).unwrap_err().code, "bad_json");
        assert_eq!(
            parse_json::<Shape>(br#"{"a":"x"}"#, 100).unwrap_err().code,
            "validation"
        );
        assert_eq!(
            parse_json::<Shape>(br#"{"a":1,"b":2}"#, 100)
                .unwrap_err()
                .code,
            "validation"
        );
        assert_eq!(
            parse_json::<Shape>(br#"{"a":1}"#, 3).unwrap_err().status,
            413
        );
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(None, 50, 100).unwrap(), 50);
        assert_eq!(page_limit(Some("100"), 50, 100).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", ""] {
            assert_eq!(page_limit(Some(bad), 50, 100).unwrap_err().status, 400);
        }
    }

    #[test]
    fn hub_errors_pass_through_known_codes() {
        let err = hub_error(404, r#"{"error":{"code":"not_found","message":"gone"}}"#);
        assert_eq!(
            (err.status, err.code, err.message.as_str()),
            (404, "not_found", "gone")
        );
        assert_eq!(hub_error(500, "boom").code, "internal");
    }
}
