//! The one way every caller (deploy, build-image, Dataproc) reads its auth
//! settings: [`resolve_auth`].
//!
//! Each setting is taken from the first place that has it:
//!
//! 1. a command-line flag (`--auth-method`, `--vault-endpoint`,
//!    `--vault-secret`, `--service-account-key`), or a job's own setting;
//! 2. the environment variable `<prefix><key>` (`bf_auth_method`, …);
//! 3. the config (`bigflow.toml`'s deployment environment, or a workflow's
//!    `Config`).
//!
//! | key | meaning | also accepted (older names) |
//! |---|---|---|
//! | `auth_method` | `local_account` (default), `service_account`, `vault`, `none` | `gcp_auth_method` |
//! | `service_account_key_file` | the key file of `service_account` | `service_account_key`, `gcp_service_account_key` |
//! | `vault_endpoint` | the Vault URL answering the token | |
//! | `vault_secret` | the `X-Vault-Token` sent to it | |

use crate::{AuthMethod, Secret};

/// The keys of the auth settings, each with its older names.
pub const AUTH_METHOD: &[&str] = &["auth_method", "gcp_auth_method"];
/// See [`AUTH_METHOD`].
pub const SERVICE_ACCOUNT_KEY_FILE: &[&str] = &[
    "service_account_key_file",
    "service_account_key",
    "gcp_service_account_key",
];
/// See [`AUTH_METHOD`].
pub const VAULT_ENDPOINT: &[&str] = &["vault_endpoint"];
/// See [`AUTH_METHOD`].
pub const VAULT_SECRET: &[&str] = &["vault_secret"];
/// The key of how Vault's certificate is checked.
pub const VAULT_ENDPOINT_VERIFY: &[&str] = &["vault_endpoint_verify"];

/// Settings given on a command line (or by a job), each `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFlags {
    /// `--auth-method`.
    pub auth_method: Option<String>,
    /// `--service-account-key`.
    pub service_account_key_file: Option<String>,
    /// `--vault-endpoint`.
    pub vault_endpoint: Option<String>,
    /// `--vault-secret`.
    pub vault_secret: Option<String>,
    /// `--vault-endpoint-verify`: `true` (default), `false` or a CA bundle's path.
    pub vault_endpoint_verify: Option<String>,
}

/// Where [`resolve_auth`] looks, in order.
pub struct AuthSources<'a> {
    /// Flags or a job's own settings.
    pub flags: &'a AuthFlags,
    /// Whether `flags` are command-line flags (then errors name them).
    pub command_line: bool,
    /// The prefix of the environment variables (`bf_`).
    pub env_prefix: &'a str,
    /// A config property as text, `None` when absent.
    pub config: &'a dyn Fn(&str) -> Option<String>,
    /// The config, as errors name it (`config 'dev'`).
    pub config_name: &'a str,
}

/// A setting that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthConfigError(pub String);

impl AuthSources<'_> {
    /// The value of the first of `keys` found, and where it was found.
    fn get(&self, flag: &Option<String>, keys: &[&str]) -> Option<(String, String)> {
        let present = |v: Option<String>| v.filter(|v| !v.is_empty());
        if let Some(v) = present(flag.clone()) {
            let place = if self.command_line {
                format!("--{}", keys[0].replace('_', "-"))
            } else {
                format!("the job's {}", keys[0])
            };
            return Some((v, place));
        }
        for key in keys {
            let var = format!("{}{key}", self.env_prefix);
            if let Some(v) = present(std::env::var(&var).ok()) {
                return Some((v, format!("variable {var}")));
            }
        }
        for key in keys {
            if let Some(v) = present((self.config)(key)) {
                return Some((v, format!("{key} in {}", self.config_name)));
            }
        }
        None
    }

    /// How to provide `keys[0]`, for an error message.
    fn how_to_set(&self, keys: &[&str], flag_value: &str) -> String {
        let key = keys[0];
        if self.command_line {
            format!(
                "--{} {flag_value} (or the variable {}{key}, or {key} in {})",
                key.replace('_', "-"),
                self.env_prefix,
                self.config_name
            )
        } else {
            format!(
                "{key} (in {}, or the variable {}{key})",
                self.config_name, self.env_prefix
            )
        }
    }
}

/// The auth method the settings describe; `local_account` when none is set.
pub fn resolve_auth(sources: &AuthSources<'_>) -> Result<AuthMethod, AuthConfigError> {
    let flags = sources.flags;
    let (name, place) = sources
        .get(&flags.auth_method, AUTH_METHOD)
        .unwrap_or_else(|| ("local_account".into(), "the default".into()));
    let named = |method: &str| {
        if sources.command_line {
            format!("--auth-method {method}")
        } else {
            format!("auth_method = {method}")
        }
    };
    Ok(match name.as_str() {
        "local_account" => AuthMethod::LocalAccount,
        "none" => AuthMethod::None,
        "service_account" => {
            let (file, _) = sources
                .get(&flags.service_account_key_file, SERVICE_ACCOUNT_KEY_FILE)
                .ok_or_else(|| {
                    AuthConfigError(format!(
                        "{} needs the key file: {}",
                        named("service_account"),
                        sources.how_to_set(&["service_account_key"], "FILE")
                    ))
                })?;
            AuthMethod::ServiceAccount {
                key_file: file.into(),
            }
        }
        "vault" => {
            let (endpoint, _) = sources
                .get(&flags.vault_endpoint, VAULT_ENDPOINT)
                .ok_or_else(|| {
                    AuthConfigError(format!(
                        "{} needs {}",
                        named("vault"),
                        sources.how_to_set(VAULT_ENDPOINT, "URL")
                    ))
                })?;
            let (secret, _) = sources
                .get(&flags.vault_secret, VAULT_SECRET)
                .ok_or_else(|| {
                    AuthConfigError(format!(
                        "{} needs {}",
                        named("vault"),
                        sources.how_to_set(VAULT_SECRET, "SECRET")
                    ))
                })?;
            let verify = sources
                .get(&flags.vault_endpoint_verify, VAULT_ENDPOINT_VERIFY)
                .map(|(v, _)| crate::VaultVerify::parse(&v))
                .unwrap_or_default();
            AuthMethod::Vault {
                endpoint,
                secret: Secret::new(secret),
                verify,
            }
        }
        other => {
            return Err(AuthConfigError(format!(
                "auth_method '{other}' ({place}) is not one of local_account, service_account, vault, none"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resolve(
        flags: &AuthFlags,
        command_line: bool,
        config: &[(&str, &str)],
    ) -> Result<AuthMethod, AuthConfigError> {
        let config: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |key: &str| config.get(key).cloned();
        resolve_auth(&AuthSources {
            flags,
            command_line,
            // A prefix no environment has: these tests do not depend on it.
            env_prefix: "bigflow_settings_unit_test_",
            config: &lookup,
            config_name: "config 'dev'",
        })
    }

    #[test]
    fn flags_win_over_the_config_and_old_keys_still_work() {
        let flags = AuthFlags {
            auth_method: Some("none".into()),
            ..AuthFlags::default()
        };
        assert_eq!(
            resolve(&flags, true, &[("auth_method", "vault")]).unwrap(),
            AuthMethod::None
        );
        assert_eq!(
            resolve(&AuthFlags::default(), false, &[]).unwrap(),
            AuthMethod::LocalAccount
        );
        assert_eq!(
            resolve(
                &AuthFlags::default(),
                false,
                &[
                    ("gcp_auth_method", "service_account"),
                    ("gcp_service_account_key", "/k.json")
                ]
            )
            .unwrap(),
            AuthMethod::ServiceAccount {
                key_file: "/k.json".into()
            }
        );
        // The new key wins over an old one in the same place.
        assert_eq!(
            resolve(
                &AuthFlags::default(),
                false,
                &[("auth_method", "none"), ("gcp_auth_method", "vault")]
            )
            .unwrap(),
            AuthMethod::None
        );
    }

    #[test]
    fn errors_say_what_is_missing_and_where_to_set_it() {
        let vault = AuthFlags {
            auth_method: Some("vault".into()),
            ..AuthFlags::default()
        };
        let e = resolve(&vault, true, &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("--auth-method vault needs --vault-endpoint URL"),
            "{e}"
        );
        assert!(
            e.contains("bigflow_settings_unit_test_vault_endpoint"),
            "{e}"
        );
        let e = resolve(
            &AuthFlags::default(),
            false,
            &[("auth_method", "vault"), ("vault_endpoint", "https://v")],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "auth_method = vault needs vault_secret (in config 'dev', or the variable bigflow_settings_unit_test_vault_secret)"
        );
        let e = resolve(
            &AuthFlags::default(),
            false,
            &[("gcp_auth_method", "password")],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "auth_method 'password' (gcp_auth_method in config 'dev') is not one of local_account, service_account, vault, none"
        );
    }
}
