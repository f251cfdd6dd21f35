//! The retry policy of every Google API call: up to 4 attempts, backing off
//! 250 ms, 500 ms, 1 s, on 408, 429 and 5xx answers, on answers whose error
//! reason is `rateLimitExceeded` or `backendError` (BigQuery sends those with
//! 403 and 400 too), and on failed connections.

use std::time::Duration;

/// Attempts per call.
pub const ATTEMPTS: u32 = 4;

/// A call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status of the last answer; `None` when no answer came.
    pub status: Option<u16>,
    /// The last answer's body (or the connection error).
    pub body: String,
}

impl Failure {
    /// The `error.message` of a Google error body, else the body's start.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.chars().take(300).collect())
    }

    /// The `error.errors[0].reason` of a Google error body.
    pub fn reason(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                v["error"]["errors"][0]["reason"]
                    .as_str()
                    .map(str::to_string)
            })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}: {}", self.message()),
            None => f.write_str(&self.body),
        }
    }
}

fn retryable(status: u16, body: &[u8]) -> bool {
    if matches!(status, 408 | 429) || (500..600).contains(&status) {
        return true;
    }
    let failure = Failure {
        status: Some(status),
        body: String::from_utf8_lossy(body).into_owned(),
    };
    matches!(
        failure.reason().as_deref(),
        Some("rateLimitExceeded" | "backendError")
    )
}

/// Sends the request `make()` builds until it succeeds or retries run out;
/// returns the body of a 2xx answer, or the last failure (never the request's
/// credentials).
pub async fn send(make: impl Fn() -> reqwest::RequestBuilder) -> Result<Vec<u8>, Failure> {
    let mut last = Failure {
        status: None,
        body: String::new(),
    };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 << (attempt - 1))).await;
        }
        match make().send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                if (200..300).contains(&status) {
                    return Ok(body);
                }
                let again = retryable(status, &body);
                last = Failure {
                    status: Some(status),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                if !again {
                    return Err(last);
                }
            }
            Err(e) => {
                last = Failure {
                    status: None,
                    body: format!("{} (after {ATTEMPTS} attempts)", e.without_url()),
                }
            }
        }
    }
    Err(last)
}

/// [`send`], with the failure described as text: `HTTP <status>: <body start>`.
pub async fn send_with_retry(
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Vec<u8>, String> {
    send(make).await.map_err(|f| match f.status {
        Some(status) => {
            let text: String = f.body.chars().take(300).collect();
            format!("HTTP {status}: {text}")
        }
        None => f.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_reasons_decide_retries() {
        let rate = br#"{"error":{"code":403,"message":"Exceeded rate limits","errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert!(retryable(403, rate));
        let denied = br#"{"error":{"code":403,"message":"Access Denied","errors":[{"reason":"accessDenied"}]}}"#;
        assert!(!retryable(403, denied));
        assert!(retryable(503, b""));
        assert!(!retryable(404, b"not json"));
        let f = Failure {
            status: Some(403),
            body: String::from_utf8_lossy(denied).into_owned(),
        };
        assert_eq!(f.to_string(), "HTTP 403: Access Denied");
        assert_eq!(f.reason().as_deref(), Some("accessDenied"));
    }
}
