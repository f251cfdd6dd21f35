//! Credentials asked for on every request: [`TokenSource`].
//!
//! A client never keeps a token string: it holds a `TokenSource` and asks it
//! for the request's headers each time it sends (see [`crate::retry::send`]).
//!
//! - Application default credentials and service-account keys: the source
//!   keeps google-cloud-auth's `Credentials`, which cache the token and
//!   refresh it in the background before it expires, so a job that runs for
//!   hours keeps working. The headers are asked for with the entity tag of
//!   the last answer; `NotModified` means the last headers are still good.
//! - Vault: the token carries no expiry, so it is cached until an answer
//!   says 401.
//! - None: no header at all (emulators, local registries).
//!
//! After a 401 the request path calls [`TokenSource::refresh`] once and sends
//! the request again: Vault is asked for a new token, and Google credentials
//! are built anew (google-cloud-auth has no "refresh now"; new credentials
//! fetch a new token at once).

use std::sync::Arc;

use google_cloud_auth::credentials::{CacheableResource, Credentials, EntityTag};
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderValue};
use tokio::sync::Mutex;

use crate::{AuthError, AuthMethod, CLOUD_PLATFORM_SCOPE, Secret};

/// Where requests get their credentials; cheap to clone (clones share the
/// cache). Build it inside the tokio runtime that sends the requests: Google
/// credentials refresh their token on a task of that runtime.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

enum Inner {
    None,
    Google {
        method: AuthMethod,
        state: Mutex<GoogleState>,
    },
    Vault {
        endpoint: String,
        secret: Secret,
        verify: crate::VaultVerify,
        token: Mutex<Option<Secret>>,
    },
}

struct GoogleState {
    credentials: Credentials,
    /// The last headers and the entity tag they came with.
    last: Option<(EntityTag, HeaderMap)>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.inner {
            Inner::None => "none",
            Inner::Google { method, .. } => match method {
                AuthMethod::ServiceAccount { .. } => "service_account",
                _ => "local_account",
            },
            Inner::Vault { .. } => "vault",
        };
        write!(f, "TokenSource({kind})")
    }
}

impl TokenSource {
    /// A source that sends no credentials.
    pub fn none() -> TokenSource {
        TokenSource {
            inner: Arc::new(Inner::None),
        }
    }

    /// A source for `method`. Fetches the first token at once, so that wrong
    /// credentials are reported before any work starts.
    pub async fn new(method: &AuthMethod) -> Result<TokenSource, AuthError> {
        let inner = match method {
            AuthMethod::None => Inner::None,
            AuthMethod::LocalAccount | AuthMethod::ServiceAccount { .. } => Inner::Google {
                method: method.clone(),
                state: Mutex::new(GoogleState {
                    credentials: build_credentials(method)?,
                    last: None,
                }),
            },
            AuthMethod::Vault {
                endpoint,
                secret,
                verify,
            } => Inner::Vault {
                endpoint: endpoint.clone(),
                secret: secret.clone(),
                verify: verify.clone(),
                token: Mutex::new(None),
            },
        };
        let source = TokenSource {
            inner: Arc::new(inner),
        };
        source.headers().await?;
        Ok(source)
    }

    /// Whether this source sends credentials at all.
    pub fn is_none(&self) -> bool {
        matches!(&*self.inner, Inner::None)
    }

    /// The headers that authenticate one request (empty for
    /// [`TokenSource::none`]); a valid token, refreshed when needed.
    pub async fn headers(&self) -> Result<HeaderMap, AuthError> {
        match &*self.inner {
            Inner::None => Ok(HeaderMap::new()),
            Inner::Google { method, state } => {
                let mut state = state.lock().await;
                let mut extensions = Extensions::new();
                if let Some((tag, _)) = &state.last {
                    extensions.insert(tag.clone());
                }
                let answer = state
                    .credentials
                    .headers(extensions)
                    .await
                    .map_err(|e| google_error(method, e.to_string()))?;
                match answer {
                    CacheableResource::New { entity_tag, data } => {
                        state.last = Some((entity_tag, data.clone()));
                        Ok(data)
                    }
                    CacheableResource::NotModified => match &state.last {
                        Some((_, headers)) => Ok(headers.clone()),
                        // Not possible: NotModified answers a tag we sent.
                        None => Err(google_error(
                            method,
                            "the credentials answered 'not modified' to a first request".into(),
                        )),
                    },
                }
            }
            Inner::Vault {
                endpoint,
                secret,
                verify,
                token,
            } => {
                let mut token = token.lock().await;
                let current = match &*token {
                    Some(t) => t.clone(),
                    None => {
                        let fresh = crate::vault_token(endpoint, secret, verify).await?;
                        *token = Some(fresh.clone());
                        fresh
                    }
                };
                bearer_headers(endpoint, &current)
            }
        }
    }

    /// After an answer 401 to a request sent with `rejected`: drops the
    /// token so that the next [`TokenSource::headers`] gets a new one.
    /// Returns whether there is anything to refresh (not for
    /// [`TokenSource::none`]). When another request already refreshed it,
    /// the current token is kept.
    pub async fn refresh(&self, rejected: &HeaderMap) -> Result<bool, AuthError> {
        let rejected = rejected.get(AUTHORIZATION);
        match &*self.inner {
            Inner::None => Ok(false),
            Inner::Google { method, state } => {
                let mut state = state.lock().await;
                let current = state.last.as_ref().and_then(|(_, h)| h.get(AUTHORIZATION));
                if current.is_none() || current == rejected {
                    tracing::info!("the access token was refused (401); getting a new one");
                    state.credentials = build_credentials(method)?;
                    state.last = None;
                }
                Ok(true)
            }
            Inner::Vault { token, .. } => {
                let mut token = token.lock().await;
                let current = token.as_ref().map(|t| format!("Bearer {}", t.expose()));
                if current.is_none()
                    || current.as_deref().map(str::as_bytes) == rejected.map(|r| r.as_bytes())
                {
                    tracing::info!("the Vault token was refused (401); asking Vault again");
                    *token = None;
                }
                Ok(true)
            }
        }
    }

    /// The bearer token, for the few places that take a token rather than
    /// headers (registry credentials, Spark Connect URLs). Ask again for
    /// every use: tokens expire.
    pub async fn bearer(&self) -> Result<Option<Secret>, AuthError> {
        let headers = self.headers().await?;
        Ok(headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(Secret::new))
    }
}

/// `Authorization: Bearer <token>`, marked sensitive; a Vault token that is
/// no valid header value is refused like a missing one.
fn bearer_headers(endpoint: &str, token: &Secret) -> Result<HeaderMap, AuthError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        AuthError::VaultBody {
            endpoint: endpoint.to_string(),
        }
    })?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    Ok(headers)
}

fn google_error(method: &AuthMethod, cause: String) -> AuthError {
    match method {
        AuthMethod::ServiceAccount { key_file } => AuthError::ServiceAccount {
            file: key_file.display().to_string(),
            cause,
        },
        _ => AuthError::Adc(cause),
    }
}

/// google-cloud-auth's credentials for ADC or a key file. Needs a tokio
/// runtime: the credentials start their refresh task on it.
fn build_credentials(method: &AuthMethod) -> Result<Credentials, AuthError> {
    crate::install_crypto_provider();
    match method {
        AuthMethod::ServiceAccount { key_file } => {
            let fail = |cause: String| AuthError::ServiceAccount {
                file: key_file.display().to_string(),
                cause,
            };
            let text = std::fs::read_to_string(key_file).map_err(|e| fail(e.to_string()))?;
            let key: serde_json::Value =
                serde_json::from_str(&text).map_err(|_| fail("not a JSON key file".into()))?;
            google_cloud_auth::credentials::service_account::Builder::new(key)
                .with_access_specifier(
                    google_cloud_auth::credentials::service_account::AccessSpecifier::from_scopes(
                        [CLOUD_PLATFORM_SCOPE],
                    ),
                )
                .build()
                .map_err(|e| fail(e.to_string()))
        }
        _ => google_cloud_auth::credentials::Builder::default()
            .with_scopes([CLOUD_PLATFORM_SCOPE])
            .build()
            .map_err(|e| AuthError::Adc(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn none_sends_nothing_and_has_nothing_to_refresh() {
        let source = TokenSource::new(&AuthMethod::None).await.unwrap();
        assert!(source.is_none());
        assert!(source.headers().await.unwrap().is_empty());
        assert_eq!(source.bearer().await.unwrap(), None);
        assert!(!source.refresh(&HeaderMap::new()).await.unwrap());
        assert_eq!(format!("{source:?}"), "TokenSource(none)");
    }

    #[tokio::test]
    async fn a_missing_key_file_says_which() {
        let e = TokenSource::new(&AuthMethod::ServiceAccount {
            key_file: "/nonexistent/key.json".into(),
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/key.json"), "{e}");
    }
}
