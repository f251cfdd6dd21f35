//! Google Cloud access shared by every client: credentials (registry pushes,
//! the DAG bucket, BigQuery, Dataproc) asked for on every request
//! ([`TokenSource`]), the auth settings of every caller ([`settings`]), the
//! one request path with its retry policy and typed errors ([`retry`]), a
//! Cloud Storage client ([`storage`]) and a BigQuery REST client
//! ([`bigquery`]).
//!
//! - `local_account`: application default credentials, through Google's
//!   official `google-cloud-auth` crate: `GOOGLE_APPLICATION_CREDENTIALS`,
//!   then the gcloud user's `application_default_credentials.json`, then the
//!   metadata server (`GCE_METADATA_HOST` overrides its address).
//! - `service_account`: a service-account key file.
//! - `vault`: BigFlow's Vault flow — `GET <endpoint>` with header
//!   `X-Vault-Token: <secret>` answers `{"data": {"token": "<OAuth token>"}}`.
//!
//! Clients hold a [`TokenSource`], never a token: it hands out a valid token
//! for each request (google-cloud-auth refreshes its own before they
//! expire; Vault's is fetched again after a 401). Tokens are [`Secret`]s:
//! their `Debug` and `Display` never show the value, and errors never
//! include them.

pub mod bigquery;
pub mod retry;
pub mod settings;
pub mod storage;
pub mod token;

pub use retry::ApiError;
pub use settings::{AuthConfigError, AuthFlags, AuthSources, resolve_auth};
pub use token::TokenSource;

use std::fmt;
use std::time::Duration;

/// Whether `url` (`http://host:port/…`, `host:port`) points at this machine's
/// loopback: the only place plain HTTP (an emulator, a test double) may go.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

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
    /// Application default credentials.
    LocalAccount,
    /// A service-account key file (JSON).
    ServiceAccount {
        /// Path of the key file.
        key_file: std::path::PathBuf,
    },
    /// A token from Vault.
    Vault {
        /// The Vault endpoint returning the token.
        endpoint: String,
        /// The Vault token sent as `X-Vault-Token`.
        secret: Secret,
        /// How the endpoint's TLS certificate is checked.
        verify: VaultVerify,
    },
}

/// How the Vault endpoint's TLS certificate is checked (BigFlow's
/// `--vault-endpoint-verify`: `true`, `false` or a CA bundle's path).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VaultVerify {
    /// Against the system's trusted roots.
    #[default]
    System,
    /// Not at all (`false`): only for a test Vault.
    Insecure,
    /// Against the PEM certificates in this file (a private CA).
    CaBundle(std::path::PathBuf),
}

impl VaultVerify {
    /// `true`, `false` or a path.
    pub fn parse(text: &str) -> VaultVerify {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "true" | "yes" | "1" => VaultVerify::System,
            "false" | "no" | "0" => VaultVerify::Insecure,
            _ => VaultVerify::CaBundle(text.trim().into()),
        }
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Application default credentials are missing or failed.
    #[error(
        "no application default credentials ({0}); run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or use --auth-method vault"
    )]
    Adc(String),
    /// The service-account key could not be used.
    #[error("service-account key {file}: {cause}")]
    ServiceAccount {
        /// The key file.
        file: String,
        /// Why.
        cause: String,
    },
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

/// The OAuth scope of every bigflow client.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// BigFlow's Vault flow.
pub async fn vault_token(
    endpoint: &str,
    secret: &Secret,
    verify: &VaultVerify,
) -> Result<Secret, AuthError> {
    install_crypto_provider();
    let unreachable = |cause: String| AuthError::VaultUnreachable {
        endpoint: endpoint.to_string(),
        cause,
    };
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    match verify {
        VaultVerify::System => {}
        VaultVerify::Insecure => builder = builder.danger_accept_invalid_certs(true),
        VaultVerify::CaBundle(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                unreachable(format!("cannot read the CA bundle {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                unreachable(format!("{} is not a PEM CA bundle: {e}", path.display()))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
    }
    let client = builder.build().map_err(|e| AuthError::VaultUnreachable {
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
            verify: VaultVerify::parse("false"),
        };
        assert_eq!(VaultVerify::parse("TRUE"), VaultVerify::System);
        assert_eq!(
            VaultVerify::parse("/etc/ca.pem"),
            VaultVerify::CaBundle("/etc/ca.pem".into())
        );
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
