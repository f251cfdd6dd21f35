//! The one request path of every Google API call: [`send`].
//!
//! - Credentials: the request's headers come from a [`TokenSource`] for every
//!   attempt, so a token that expired during a long job is never sent. An
//!   answer 401 makes the source refresh its token once, and the request is
//!   sent again with the new one.
//! - Retries: up to [`ATTEMPTS`] attempts on 408, 429 and 5xx answers, on
//!   answers whose error reason is `rateLimitExceeded` or `backendError`
//!   (BigQuery sends those with 403 and 400 too), and on failed connections.
//!   Between attempts: exponential backoff with *full jitter* (a random wait
//!   between 0 and 0.5 s, 1 s, 2 s, … capped at [`MAX_BACKOFF`]), so that
//!   clients failing together do not retry together; an answer's
//!   `Retry-After` (seconds or an HTTP date) is waited instead, up to
//!   [`MAX_RETRY_AFTER`].
//! - Failures are typed ([`ApiError`]: status, reason, the complete message,
//!   `Retry-After`); callers match on them (`is_not_found()`), never on text.

use std::time::{Duration, SystemTime};

use crate::token::TokenSource;

/// Attempts per call (a refresh after 401 is not counted).
pub const ATTEMPTS: u32 = 5;
/// The first backoff ceiling; it doubles per attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The largest backoff ceiling.
pub const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A Google API call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status of the last answer; `None` when no answer came (a
    /// failed connection) or no credentials could be had.
    pub status: Option<u16>,
    /// The error reason of a Google error body (`error.errors[0].reason`,
    /// e.g. `notFound`, `rateLimitExceeded`, or the reason of an `ErrorInfo`
    /// detail).
    pub reason: Option<String>,
    /// The canonical status of a Google error body (`error.status`, e.g.
    /// `NOT_FOUND`, `FAILED_PRECONDITION`).
    pub api_status: Option<String>,
    /// What went wrong, complete: Google's `error.message`, else the whole
    /// answer body, else the connection or credentials error.
    pub message: String,
    /// The last answer's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// How many times the request was sent.
    pub attempts: u32,
}

impl ApiError {
    /// The error of an answer with `status` and `body`.
    pub fn from_answer(status: u16, body: &[u8], retry_after: Option<Duration>) -> ApiError {
        let text = String::from_utf8_lossy(body);
        let json = serde_json::from_slice::<serde_json::Value>(body).ok();
        let error = json.as_ref().map(|v| &v["error"]);
        let string = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let message = error
            .and_then(|e| string(&e["message"]))
            // OAuth-style bodies: {"error": "invalid_token", "error_description": "…"}.
            .or_else(|| json.as_ref().and_then(|v| string(&v["error_description"])))
            .unwrap_or_else(|| {
                let text = text.trim();
                if text.is_empty() {
                    http::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("no message")
                        .to_string()
                } else {
                    text.to_string()
                }
            });
        let reason = error.and_then(|e| {
            string(&e["errors"][0]["reason"]).or_else(|| {
                e["details"].as_array().and_then(|details| {
                    details
                        .iter()
                        .find_map(|d| d["reason"].as_str().map(str::to_string))
                })
            })
        });
        ApiError {
            status: Some(status),
            reason,
            api_status: error.and_then(|e| string(&e["status"])),
            message,
            retry_after,
            attempts: 1,
        }
    }

    /// A failure without an answer (connection, body, credentials).
    pub fn without_answer(message: impl Into<String>) -> ApiError {
        ApiError {
            status: None,
            reason: None,
            api_status: None,
            message: message.into(),
            retry_after: None,
            attempts: 1,
        }
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// 409: the resource exists already (or the request conflicts with it).
    pub fn is_conflict(&self) -> bool {
        self.status == Some(409)
    }

    /// 401: the credentials were refused.
    pub fn is_unauthorized(&self) -> bool {
        self.status == Some(401)
    }

    /// 403: the credentials lack a permission.
    pub fn is_forbidden(&self) -> bool {
        self.status == Some(403)
    }

    /// 429, or a `rateLimitExceeded` reason.
    pub fn is_rate_limited(&self) -> bool {
        self.status == Some(429) || self.reason.as_deref() == Some("rateLimitExceeded")
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => {
                matches!(status, 408 | 429)
                    || (500..600).contains(&status)
                    || matches!(
                        self.reason.as_deref(),
                        Some("rateLimitExceeded" | "backendError")
                    )
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}: {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A `Retry-After` header: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The wait before retry number `retry` (0 for the first): the answer's
/// `Retry-After` (capped at [`MAX_RETRY_AFTER`], plus a little jitter), else
/// full jitter below the exponential ceiling.
pub fn delay(retry: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(wait) => wait.min(MAX_RETRY_AFTER) + FIRST_BACKOFF.mul_f64(fastrand::f64() / 4.0),
        None => {
            let ceiling = FIRST_BACKOFF
                .saturating_mul(1u32 << retry.min(16))
                .min(MAX_BACKOFF);
            ceiling.mul_f64(fastrand::f64())
        }
    }
}

/// A transport error with its causes (reqwest's own text is often just
/// "error sending request"), without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Sends the request `make()` builds, with `auth`'s headers, until it
/// succeeds or retries run out; returns the body of a 2xx answer, or the
/// last failure (never the request's credentials).
pub async fn send(
    auth: &TokenSource,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Vec<u8>, ApiError> {
    send_answer(auth, |status| (200..300).contains(&status), make)
        .await
        .map(|answer| answer.body)
}

/// A successful answer with its status and headers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The answer's headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// [`send`] for calls whose success is not only 2xx (Cloud Storage's
/// resumable uploads answer 308 to a chunk) or that need the answer's
/// headers: an answer whose status `accept` takes is returned whole.
pub async fn send_answer(
    auth: &TokenSource,
    accept: impl Fn(u16) -> bool,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Answer, ApiError> {
    let mut refreshed = false;
    let mut attempts = 0;
    loop {
        let headers = auth
            .headers()
            .await
            .map_err(|e| ApiError::without_answer(e.to_string()))?;
        attempts += 1;
        let mut error = match make().headers(headers.clone()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) if accept(status) => {
                        return Ok(Answer {
                            status,
                            headers,
                            body: body.to_vec(),
                        });
                    }
                    Ok(body) => ApiError::from_answer(status, &body, retry_after),
                    Err(e) => ApiError::without_answer(format!(
                        "the answer (HTTP {status}) broke off: {}",
                        describe(e)
                    )),
                }
            }
            Err(e) => ApiError::without_answer(describe(e)),
        };
        error.attempts = attempts;
        if error.is_unauthorized() && !refreshed {
            refreshed = true;
            let refresh = auth
                .refresh(&headers)
                .await
                .map_err(|e| ApiError::without_answer(e.to_string()))?;
            if refresh {
                attempts -= 1;
                continue;
            }
        }
        if !error.is_retryable() || attempts >= ATTEMPTS {
            return Err(error);
        }
        let wait = delay(attempts - 1, error.retry_after);
        tracing::debug!("retrying in {wait:?} after: {error}");
        tokio::time::sleep(wait).await;
    }
}

/// [`send`] with an optional JSON body; the JSON of the 2xx answer (`null`
/// when it is empty). The REST clients (Dataproc, Dataflow) call through it.
pub async fn call_json(
    auth: &TokenSource,
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    let bytes = send(auth, || {
        let request = http.request(method.clone(), url);
        match body {
            Some(b) => request.json(b),
            None => request,
        }
    })
    .await?;
    if bytes.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::without_answer(format!("{url} answered no JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &[u8]) -> ApiError {
        ApiError::from_answer(status, body, None)
    }

    #[test]
    fn google_error_reasons_decide_retries() {
        let rate = br#"{"error":{"code":403,"message":"Exceeded rate limits","errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert!(answer(403, rate).is_retryable());
        assert!(answer(403, rate).is_rate_limited());
        let denied = br#"{"error":{"code":403,"message":"Access Denied","errors":[{"reason":"accessDenied"}]}}"#;
        assert!(!answer(403, denied).is_retryable());
        assert!(answer(503, b"").is_retryable());
        assert!(!answer(404, b"not json").is_retryable());
        let f = answer(403, denied);
        assert_eq!(f.to_string(), "HTTP 403: Access Denied");
        assert_eq!(f.reason.as_deref(), Some("accessDenied"));
        assert!(f.is_forbidden());
    }

    #[test]
    fn messages_are_complete_and_statuses_typed() {
        let long = "x".repeat(1000);
        let body = serde_json::json!({"error": {"code": 400, "message": long, "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "BAD_THING"}]}});
        let e = answer(400, body.to_string().as_bytes());
        assert_eq!(e.message, long);
        assert_eq!(e.api_status.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(e.reason.as_deref(), Some("BAD_THING"));
        let html = format!("<html>{long}</html>");
        assert_eq!(answer(502, html.as_bytes()).message, html);
        assert_eq!(answer(404, b"").message, "Not Found");
        assert!(answer(404, b"").is_not_found());
        assert!(answer(409, b"").is_conflict());
        let oauth = br#"{"error": "invalid_token", "error_description": "Token expired"}"#;
        assert_eq!(answer(401, oauth).to_string(), "HTTP 401: Token expired");
    }

    #[test]
    fn retry_after_takes_seconds_and_dates_and_is_capped() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        let d = delay(0, Some(Duration::from_secs(3600)));
        assert!(d >= MAX_RETRY_AFTER && d <= MAX_RETRY_AFTER + FIRST_BACKOFF);
    }

    #[test]
    fn backoff_is_jittered_below_a_growing_capped_ceiling() {
        let waits: Vec<Duration> = (0..50).map(|_| delay(2, None)).collect();
        assert!(waits.iter().all(|w| *w <= FIRST_BACKOFF * 4));
        // Not all equal: jitter spreads them.
        assert!(waits.iter().any(|w| *w != waits[0]));
        assert!((0..50).all(|_| delay(30, None) <= MAX_BACKOFF));
    }
}
