//! A thin Cloud Storage JSON API client: what deploying DAGs to Composer's
//! bucket and Beam pipelines' `gs://` files need.
//!
//! - objects: upload (one request, or a resumable session sent in chunks),
//!   list (with sizes), metadata, ranged download, server-side rewrite
//!   (copy), delete;
//! - every call goes through [`crate::retry::send`]: fresh credentials per
//!   request, backoff on 429 and 5xx answers and on dropped connections,
//!   typed errors ([`StorageError::is_not_found`]).
//!
//! Written on `reqwest` rather than a full SDK because these few calls are
//! all that is needed and the same code then works unchanged against the
//! storage emulator (`STORAGE_EMULATOR_HOST`, the variable Google's own
//! clients honour).
//!
//! Downloads ask for `Accept-Encoding: gzip`, so an object stored with
//! `Content-Encoding: gzip` comes as its stored (compressed) bytes and byte
//! ranges address those bytes; [`ObjectInfo::content_encoding`] says so.

use std::time::Duration;

use crate::TokenSource;
use crate::retry::{ApiError, send, send_answer};

/// The chunk size of resumable uploads: a multiple of 256 KiB, as Cloud
/// Storage requires of every chunk but the last.
pub const UPLOAD_CHUNK: usize = 8 << 20;

/// An object's metadata, as listings and [`Storage::object`] give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name in its bucket.
    pub name: String,
    /// Its size in bytes (as stored).
    pub size: u64,
    /// `Content-Encoding`, when set (`gzip`: the stored bytes are gzip).
    pub content_encoding: Option<String>,
}

impl ObjectInfo {
    fn from_json(v: &serde_json::Value) -> Option<ObjectInfo> {
        let size = match &v["size"] {
            serde_json::Value::String(s) => s.parse().ok()?,
            serde_json::Value::Number(n) => n.as_u64()?,
            _ => 0,
        };
        Some(ObjectInfo {
            name: v["name"].as_str()?.to_string(),
            size,
            content_encoding: v["contentEncoding"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(str::to_string),
        })
    }
}

/// An open resumable upload session ([`Storage::start_upload`]).
#[derive(Debug, Clone)]
pub struct ResumableUpload {
    /// The session URI chunks are sent to.
    url: String,
    bucket: String,
    name: String,
}

/// Where a resumable upload stands after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// The object is complete.
    Done,
    /// The server has the first this-many bytes; send the rest from there.
    Persisted(u64),
}

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
        /// upload, list, download, rewrite or delete.
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

impl StorageError {
    /// The bucket or object does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::Request { cause, .. } if cause.is_not_found())
    }
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
        if endpoint.starts_with("http://") && !crate::is_loopback_url(&endpoint) {
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
        Ok(self
            .list_objects(bucket, prefix)
            .await?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    /// The objects under `prefix`, with their sizes, in name order.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut objects = Vec::new();
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
            objects.extend(
                json["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(ObjectInfo::from_json),
            );
            match json["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page = Some(t.to_string()),
                _ => {
                    objects.sort_by(|a, b| a.name.cmp(&b.name));
                    return Ok(objects);
                }
            }
        }
    }

    fn object_url(&self, bucket: &str, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            encode(bucket),
            encode(name)
        )
    }

    /// The metadata of `gs://bucket/name` ([`StorageError::is_not_found`]
    /// when there is no such object).
    pub async fn object(&self, bucket: &str, name: &str) -> Result<ObjectInfo, StorageError> {
        let url = self.object_url(bucket, name);
        let body = send(&self.auth, || self.http.get(&url))
            .await
            .map_err(|cause| Self::failure("metadata read", bucket, name, cause))?;
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .as_ref()
            .and_then(ObjectInfo::from_json)
            .ok_or_else(|| {
                let cause = ApiError::without_answer("unreadable object metadata");
                Self::failure("metadata read", bucket, name, cause)
            })
    }

    /// Up to `len` bytes of `gs://bucket/name` from byte `start`: fewer at
    /// the end of the object, none from its end on.
    pub async fn download_range(
        &self,
        bucket: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>, StorageError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let url = format!("{}?alt=media", self.object_url(bucket, name));
        let range = format!("bytes={start}-{}", start.saturating_add(len - 1));
        // 416: the range starts at or after the end.
        let answer = send_answer(
            &self.auth,
            |status| (200..300).contains(&status) || status == 416,
            || {
                self.http
                    .get(&url)
                    .header("Range", &range)
                    .header("Accept-Encoding", "gzip")
            },
        )
        .await
        .map_err(|cause| Self::failure("download", bucket, name, cause))?;
        let mut body = match answer.status {
            416 => Vec::new(),
            // A server that ignored the range sent the whole object.
            200 => {
                let from = usize::try_from(start)
                    .unwrap_or(usize::MAX)
                    .min(answer.body.len());
                answer.body[from..].to_vec()
            }
            _ => answer.body,
        };
        body.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(body)
    }

    /// Copies `gs://src_bucket/src` to `gs://dst_bucket/dst` on the server
    /// (objects.rewrite, repeated until done: large objects take several calls).
    pub async fn rewrite(
        &self,
        src_bucket: &str,
        src: &str,
        dst_bucket: &str,
        dst: &str,
    ) -> Result<(), StorageError> {
        let base = format!(
            "{}/rewriteTo/b/{}/o/{}",
            self.object_url(src_bucket, src),
            encode(dst_bucket),
            encode(dst)
        );
        let mut token: Option<String> = None;
        loop {
            let url = match &token {
                Some(t) => format!("{base}?rewriteToken={}", encode(t)),
                None => base.clone(),
            };
            // No body: the copy keeps the source's metadata.
            let body = send(&self.auth, || self.http.post(&url).body(Vec::<u8>::new()))
                .await
                .map_err(|cause| Self::failure("rewrite", src_bucket, src, cause))?;
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if json["done"].as_bool() != Some(false) {
                return Ok(());
            }
            match json["rewriteToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => {
                    let cause = ApiError::without_answer(
                        "the rewrite is not done and gave no rewriteToken to continue",
                    );
                    return Err(Self::failure("rewrite", src_bucket, src, cause));
                }
            }
        }
    }

    /// Opens a resumable upload of `gs://bucket/name`; send the bytes with
    /// [`Storage::upload_chunk`]. The object appears only when complete.
    pub async fn start_upload(
        &self,
        bucket: &str,
        name: &str,
        content_type: &str,
    ) -> Result<ResumableUpload, StorageError> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}",
            self.endpoint,
            encode(bucket),
            encode(name)
        );
        let answer = send_answer(
            &self.auth,
            |status| (200..300).contains(&status),
            || {
                self.http
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("X-Upload-Content-Type", content_type)
                    .body("{}")
            },
        )
        .await
        .map_err(|cause| Self::failure("upload", bucket, name, cause))?;
        let session = answer
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with("https://") || v.starts_with("http://"))
            .ok_or_else(|| {
                let cause = ApiError::without_answer("no session URI (Location) in the answer");
                Self::failure("upload", bucket, name, cause)
            })?;
        Ok(ResumableUpload {
            url: session.to_string(),
            bucket: bucket.to_string(),
            name: name.to_string(),
        })
    }

    /// Sends `data` as the bytes from `offset` of a resumable upload;
    /// `total` is the object's size with the last chunk (then the object is
    /// complete), `None` before. Every chunk but the last must be a
    /// multiple of 256 KiB ([`UPLOAD_CHUNK`] is).
    pub async fn upload_chunk(
        &self,
        upload: &ResumableUpload,
        offset: u64,
        data: Vec<u8>,
        total: Option<u64>,
    ) -> Result<UploadState, StorageError> {
        let size = total.map_or("*".to_string(), |t| t.to_string());
        let range = if data.is_empty() {
            format!("bytes */{size}")
        } else {
            format!("bytes {offset}-{}/{size}", offset + data.len() as u64 - 1)
        };
        let answer = send_answer(
            &self.auth,
            |status| (200..300).contains(&status) || status == 308,
            || {
                self.http
                    .put(&upload.url)
                    .header("Content-Range", &range)
                    .body(data.clone())
            },
        )
        .await
        .map_err(|cause| Self::failure("upload", &upload.bucket, &upload.name, cause))?;
        if answer.status != 308 {
            return Ok(UploadState::Done);
        }
        // `Range: bytes=0-N`: N + 1 bytes persisted; no header: none yet.
        let persisted = answer
            .headers
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes=0-"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map_or(0, |n| n + 1);
        Ok(UploadState::Persisted(persisted))
    }

    /// Deletes `gs://bucket/name` ([`StorageError::is_not_found`] when it
    /// is not there).
    pub async fn delete(&self, bucket: &str, name: &str) -> Result<(), StorageError> {
        let url = self.object_url(bucket, name);
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

    #[test]
    fn object_metadata_reads_sizes_as_strings_or_numbers() {
        let listed =
            serde_json::json!({"name": "in/a.gz", "size": "1234", "contentEncoding": "gzip"});
        assert_eq!(
            ObjectInfo::from_json(&listed),
            Some(ObjectInfo {
                name: "in/a.gz".into(),
                size: 1234,
                content_encoding: Some("gzip".into()),
            })
        );
        let bare = serde_json::json!({"name": "b", "size": 7, "contentEncoding": ""});
        assert_eq!(ObjectInfo::from_json(&bare).unwrap().size, 7);
        assert_eq!(ObjectInfo::from_json(&bare).unwrap().content_encoding, None);
        assert_eq!(
            ObjectInfo::from_json(&serde_json::json!({"size": "1"})),
            None
        );
        let missing = StorageError::Request {
            operation: "download",
            bucket: "b".into(),
            object: "o".into(),
            cause: Box::new(ApiError::from_answer(404, b"", None)),
        };
        assert!(missing.is_not_found());
        assert!(!StorageError::Config("x".into()).is_not_found());
    }
}
