//! A thin Cloud Storage JSON API client: upload, list, delete — what deploying
//! DAGs to Composer's bucket needs.
//!
//! Written on `reqwest` rather than a full SDK because those three calls are
//! all that is needed and the same code then works unchanged against the
//! storage emulator (`STORAGE_EMULATOR_HOST`, the variable Google's own
//! clients honour). Every call goes through [`crate::retry::send`]: fresh
//! credentials per request, backoff on 429 and 5xx answers and on dropped
//! connections, typed errors.

use std::time::Duration;

use crate::TokenSource;
use crate::retry::{ApiError, send};

/// Google's endpoint.
pub const STORAGE_ENDPOINT: &str = "https://storage.googleapis.com";

/// A Cloud Storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The endpoint is not acceptable.
    #[error("{0}")]
    Config(String),
    /// The request failed.
    #[error("Cloud Storage {operation} of gs://{bucket}/{object}: {cause}")]
    Request {
        /// upload, list or delete.
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The object or prefix.
        object: String,
        /// Why.
        #[source]
        cause: Box<ApiError>,
    },
}

/// A client for one endpoint and credentials.
#[derive(Debug, Clone)]
pub struct Storage {
    http: reqwest::Client,
    endpoint: String,
    auth: TokenSource,
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl Storage {
    /// A client for `endpoint` (default: `$STORAGE_EMULATOR_HOST`, else Google's).
    /// Plain HTTP is accepted only for a loopback emulator.
    pub fn new(endpoint: Option<&str>, auth: TokenSource) -> Result<Storage, StorageError> {
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| {
                std::env::var("STORAGE_EMULATOR_HOST")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| STORAGE_ENDPOINT.to_string());
        let endpoint = if endpoint.contains("://") {
            endpoint
        } else {
            format!("http://{endpoint}")
        };
        if endpoint.starts_with("http://") && !is_loopback_url(&endpoint) {
            return Err(StorageError::Config(format!(
                "plain HTTP to {endpoint} refused: only a loopback emulator may be reached without TLS"
            )));
        }
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| StorageError::Config(format!("cannot create an HTTP client: {e}")))?;
        Ok(Storage {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            auth,
        })
    }

    fn failure(
        operation: &'static str,
        bucket: &str,
        object: &str,
        cause: ApiError,
    ) -> StorageError {
        StorageError::Request {
            operation,
            bucket: bucket.to_string(),
            object: object.to_string(),
            cause: Box::new(cause),
        }
    }

    /// Uploads `data` as `gs://bucket/name`.
    pub async fn upload(
        &self,
        bucket: &str,
        name: &str,
        data: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            self.endpoint,
            encode(bucket),
            encode(name)
        );
        send(&self.auth, || {
            self.http
                .post(&url)
                .header("Content-Type", content_type)
                .body(data.clone())
        })
        .await
        .map(|_| ())
        .map_err(|cause| Self::failure("upload", bucket, name, cause))
    }

    /// Names of the objects under `prefix`.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?prefix={}",
                self.endpoint,
                encode(bucket),
                encode(prefix)
            );
            if let Some(token) = &page {
                url.push_str(&format!("&pageToken={}", encode(token)));
            }
            let body = send(&self.auth, || self.http.get(&url))
                .await
                .map_err(|cause| Self::failure("list", bucket, prefix, cause))?;
            let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                let cause = ApiError::without_answer(format!("unreadable answer: {e}"));
                Self::failure("list", bucket, prefix, cause)
            })?;
            names.extend(
                json["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i["name"].as_str().map(String::from)),
            );
            match json["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page = Some(t.to_string()),
                _ => return Ok(names),
            }
        }
    }

    /// Deletes `gs://bucket/name`.
    pub async fn delete(&self, bucket: &str, name: &str) -> Result<(), StorageError> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            encode(bucket),
            encode(name)
        );
        send(&self.auth, || self.http.delete(&url))
            .await
            .map(|_| ())
            .map_err(|cause| Self::failure("delete", bucket, name, cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_object_names_and_refuses_remote_plain_http() {
        assert_eq!(encode("dags/a b_dag.py"), "dags%2Fa%20b_dag.py");
        let none = TokenSource::none;
        assert!(Storage::new(Some("http://storage.example.com"), none()).is_err());
        assert!(Storage::new(Some("http://127.0.0.1:9023"), none()).is_ok());
        assert!(Storage::new(Some("127.0.0.1:9023"), none()).is_ok());
    }
}
