//! The retry policy of every Google API call: up to 4 attempts, backing off
//! 250 ms, 500 ms, 1 s, on 408, 429 and 5xx answers and on failed connections.

use std::time::Duration;

/// Attempts per call.
pub const ATTEMPTS: u32 = 4;

fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status)
}

/// Sends the request `make()` builds until it succeeds or retries run out;
/// returns the body of a 2xx answer, or a description of the last failure
/// (status and the start of the body, never the request's credentials).
pub async fn send_with_retry(
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Vec<u8>, String> {
    let mut last = String::new();
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
                let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                last = format!("HTTP {status}: {text}");
                if !retryable(status) {
                    return Err(last);
                }
            }
            Err(e) => last = e.without_url().to_string(),
        }
    }
    Err(format!("{last} (after {ATTEMPTS} attempts)"))
}
