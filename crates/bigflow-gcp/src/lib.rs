//! Google Cloud access shared by every client: credentials (registry pushes,
//! the DAG bucket, later BigQuery), the retry policy ([`retry`]) and a Cloud
//! Storage client ([`storage`]).
//!
//! - `local_account`: the developer's gcloud login (`gcloud auth
//!   print-access-token`), as BigFlow's `local_account` relies on gcloud.
//! - `vault`: BigFlow's Vault flow — `GET <endpoint>` with header
//!   `X-Vault-Token: <secret>` answers `{"data": {"token": "<OAuth token>"}}`.
//!
//! Tokens are [`Secret`]s: their `Debug` and `Display` never show the value,
//! and errors never include them.

pub mod retry;
pub mod storage;

use std::fmt;
use std::process::Command;
use std::time::Duration;

/// Makes `ring` the process's TLS crypto provider (idempotent). Every HTTP
/// client of bigflow needs one: `reqwest` is built without a default provider
/// to avoid compiling a second crypto library.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to get an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// No credentials (a local registry or emulator).
    None,
    /// The gcloud user's token.
    LocalAccount,
    /// A token from Vault.
    Vault {
        /// The Vault endpoint returning the token.
        endpoint: String,
        /// The Vault token sent as `X-Vault-Token`.
        secret: Secret,
    },
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// gcloud is missing or failed.
    #[error(
        "could not get a token from gcloud ({0}); run `gcloud auth login` or use --auth-method vault"
    )]
    Gcloud(String),
    /// The Vault endpoint could not be reached.
    #[error("cannot reach Vault at {endpoint}: {cause}")]
    VaultUnreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        cause: String,
    },
    /// Vault answered with an error status.
    #[error(
        "Vault at {endpoint} answered HTTP {status}; check --vault-secret and that the endpoint serves a token"
    )]
    VaultStatus {
        /// The endpoint.
        endpoint: String,
        /// The status code.
        status: u16,
    },
    /// Vault's answer had no `data.token`.
    #[error("Vault at {endpoint} answered without data.token")]
    VaultBody {
        /// The endpoint.
        endpoint: String,
    },
}

impl AuthMethod {
    /// An OAuth access token, or `None` for [`AuthMethod::None`].
    pub async fn access_token(&self) -> Result<Option<Secret>, AuthError> {
        match self {
            AuthMethod::None => Ok(None),
            AuthMethod::LocalAccount => {
                let out = Command::new("gcloud")
                    .args(["auth", "print-access-token"])
                    .output()
                    .map_err(|e| AuthError::Gcloud(e.to_string()))?;
                if !out.status.success() {
                    return Err(AuthError::Gcloud(
                        String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    ));
                }
                Ok(Some(Secret::new(
                    String::from_utf8_lossy(&out.stdout).trim(),
                )))
            }
            AuthMethod::Vault { endpoint, secret } => vault_token(endpoint, secret).await.map(Some),
        }
    }
}

/// BigFlow's Vault flow.
pub async fn vault_token(endpoint: &str, secret: &Secret) -> Result<Secret, AuthError> {
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| AuthError::VaultUnreachable {
            endpoint: endpoint.to_string(),
            cause: e.to_string(),
        })?;
    let response = client
        .get(endpoint)
        .header("X-Vault-Token", secret.expose())
        .send()
        .await
        .map_err(|e| AuthError::VaultUnreachable {
            endpoint: endpoint.to_string(),
            cause: e.without_url().to_string(),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(AuthError::VaultStatus {
            endpoint: endpoint.to_string(),
            status: status.as_u16(),
        });
    }
    let body: serde_json::Value = response.json().await.map_err(|_| AuthError::VaultBody {
        endpoint: endpoint.to_string(),
    })?;
    body["data"]["token"]
        .as_str()
        .map(Secret::new)
        .ok_or_else(|| AuthError::VaultBody {
            endpoint: endpoint.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        let m = AuthMethod::Vault {
            endpoint: "http://127.0.0.1:1/v".into(),
            secret: s,
        };
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
