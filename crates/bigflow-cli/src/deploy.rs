//! `deploy-image`, `deploy-dags`: the image to its registry, the DAGs to
//! Composer's bucket.
//!
//! `deploy-dags` is ordered so that a failure never leaves Composer without
//! working DAGs: it first checks that every image the DAGs use exists in the
//! registry, then uploads every DAG file, and only then (with
//! `--clear-dags-folder`) removes stale files — BigFlow deletes first.
//!
//! Every value comes from the `[deployment]` environment of `bigflow.toml`
//! (with `bf_` environment variables for what it lacks) unless a flag gives
//! it. Credentials come from `bigflow-gcp` (its one auth-settings resolver
//! and a `TokenSource` that refreshes tokens): Cloud Storage asks for them on
//! every request; the registry gets the token of the moment as Artifact
//! Registry expects (`oauth2accesstoken` and the token), asked for again for
//! each push or check. They never appear in output.

use std::path::PathBuf;

use bigflow_core::ResolvedConfig;
use bigflow_gcp::{AuthFlags, AuthMethod, AuthSources, TokenSource, resolve_auth};
use bigflow_image::registry::{
    PushError, PushEvent, PushReport, PushTarget, RegistryCredentials, push_archive,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Result, ToolError};
use crate::project::{PROJECT_FILE, ProjectDir};
use crate::version::project_version;

/// Where a deploy command finds its settings and artefacts. In a project,
/// `bigflow.toml`; in CI, possibly only a directory holding `.image/` and
/// `.dags/`, with the settings from flags, `bf_` variables and an optional
/// `--deployment-config-path` file — no source checkout, no git.
#[derive(Debug, Clone)]
pub struct DeployContext {
    /// The directory holding `.image/` and `.dags/`.
    pub root: PathBuf,
    /// The deployment environments (possibly none).
    pub deployment: bigflow_core::Config,
    /// Whether `root` is a project (git may know its version).
    pub is_project: bool,
}

impl DeployContext {
    /// The context for `cwd`: `--deployment-config-path FILE` if given (a
    /// `bigflow.toml`, or a TOML file whose tables are the environments),
    /// else the project's `bigflow.toml` if there is one, else no config.
    pub fn discover(
        cwd: &std::path::Path,
        config_path: Option<&std::path::Path>,
    ) -> Result<DeployContext> {
        if let Some(path) = config_path {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ToolError::usage(format!("--deployment-config-path {}: {e}", path.display()))
            })?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| ToolError::usage(format!("{}: {e}", path.display())))?;
            let (deployment, location) = match table.get("deployment") {
                Some(toml::Value::Table(t)) => {
                    (t.clone(), format!("{} [deployment]", path.display()))
                }
                Some(_) => {
                    return Err(ToolError::usage(format!(
                        "{}: 'deployment' must be a table of environments",
                        path.display()
                    )));
                }
                None => (table, path.display().to_string()),
            };
            let deployment = bigflow_core::Config::from_toml(&deployment, &location)
                .map_err(ToolError::usage)?;
            let project = ProjectDir::discover(cwd).ok();
            return Ok(DeployContext {
                root: project
                    .as_ref()
                    .map_or_else(|| cwd.to_path_buf(), |p| p.root.clone()),
                deployment,
                is_project: project.is_some(),
            });
        }
        if cwd.ancestors().any(|d| d.join(PROJECT_FILE).is_file()) {
            let project = ProjectDir::discover(cwd)?;
            return Ok(DeployContext {
                root: project.root,
                deployment: project.deployment,
                is_project: true,
            });
        }
        Ok(DeployContext {
            root: cwd.to_path_buf(),
            deployment: bigflow_core::Config::default(),
            is_project: false,
        })
    }

    /// The environment's settings; with no config at all, an empty
    /// environment (named by `-c`, `bf_env` or `default`) whose values come
    /// from flags and `bf_` variables.
    pub fn resolve(&self, env: Option<&str>) -> Result<ResolvedConfig> {
        if self.deployment.env_names().next().is_none() {
            let name = env
                .map(str::to_string)
                .or_else(|| std::env::var("bf_env").ok().filter(|e| !e.is_empty()))
                .unwrap_or_else(|| "default".into());
            return Ok(ResolvedConfig::empty(&name));
        }
        self.deployment.resolve(env).map_err(ToolError::usage)
    }

    /// Where `--image-tar-path` points by default: the archive of the
    /// project's version (git), else the one `.dags/image_version.txt`
    /// names, else the only archive in `.image/`.
    fn default_archive(&self, dags_dir: Option<&std::path::Path>) -> Result<PathBuf> {
        let images = self.root.join(".image");
        if self.is_project
            && let Ok(version) = project_version(&self.root)
        {
            return Ok(images.join(format!("image-{version}.tar")));
        }
        let dags = dags_dir.map_or_else(|| self.root.join(".dags"), PathBuf::from);
        if let Ok(text) = std::fs::read_to_string(dags.join(crate::dags::IMAGE_LIST_FILE))
            && let Some(tag) = text
                .lines()
                .next()
                .and_then(|image| image.trim().rsplit_once(':'))
                .map(|(_, tag)| tag.to_string())
        {
            return Ok(images.join(format!("image-{tag}.tar")));
        }
        let archives: Vec<PathBuf> = std::fs::read_dir(&images)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("image-") && n.ends_with(".tar"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        match archives.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ToolError::usage(format!(
                "no image archive in {}; run `bigflow build-image` or pass --image-tar-path",
                images.display()
            ))),
            _ => Err(ToolError::usage(format!(
                "{} holds {} image archives; pass --image-tar-path to choose one",
                images.display(),
                archives.len()
            ))),
        }
    }
}

/// The deployment config file, for every deploy command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigPathArg {
    /// A TOML file with the deployment environments (a bigflow.toml, or
    /// tables per environment) instead of the project's bigflow.toml.
    #[arg(long, value_name = "FILE")]
    pub deployment_config_path: Option<PathBuf>,
}

/// How to authenticate, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMethodName {
    /// Application default credentials (gcloud user, GOOGLE_APPLICATION_CREDENTIALS, metadata server).
    #[value(name = "local_account")]
    LocalAccount,
    /// A service-account key file (`--service-account-key`).
    #[value(name = "service_account")]
    ServiceAccount,
    /// A token from Vault (`--vault-endpoint`, `--vault-secret`).
    Vault,
    /// No credentials (local registries and emulators).
    None,
}

/// Authentication flags shared by the deploy commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// local_account (default), service_account, vault or none; default from the config's auth_method.
    #[arg(long, short = 'a', value_enum)]
    pub auth_method: Option<AuthMethodName>,
    /// Vault endpoint returning the access token (default: config vault_endpoint).
    #[arg(long, value_name = "URL")]
    pub vault_endpoint: Option<String>,
    /// Vault token (default: config vault_secret or $bf_vault_secret).
    #[arg(long, value_name = "SECRET")]
    pub vault_secret: Option<String>,
    /// How Vault's TLS certificate is checked: true (default), false, or a CA bundle file.
    #[arg(long, value_name = "true|false|CA_FILE")]
    pub vault_endpoint_verify: Option<String>,
    /// Service-account key file for --auth-method service_account (default: config service_account_key_file).
    #[arg(long, value_name = "FILE")]
    pub service_account_key: Option<String>,
    /// Allow plain HTTP to a loopback registry or emulator.
    #[arg(long)]
    pub plain_http: bool,
}

/// Flags of `deploy-image`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeployImageArgs {
    /// Deployment environment of bigflow.toml.
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    /// The image archive (default: .image/image-<version>.tar).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub image_tar_path: Option<PathBuf>,
    /// Repository to push to (default: config docker_repository).
    #[arg(long, short = 'r', value_name = "REPO")]
    pub docker_repository: Option<String>,
    /// Do not also tag the pushed image `latest`.
    #[arg(long)]
    pub no_latest: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub config_path: ConfigPathArg,
}

/// A deployment setting: the flag, else the variable `bf_<key>` (the config's
/// prefix), else the `bigflow.toml` environment's property.
pub fn setting(flag: &Option<String>, config: &ResolvedConfig, key: &str) -> Option<String> {
    flag.clone()
        .or_else(|| std::env::var(format!("{}{key}", config.env_var_prefix())).ok())
        .or_else(|| config.get_str(key).ok())
        .filter(|s| !s.is_empty())
}

/// The credentials the flags and config describe, resolved like every
/// caller's ([`bigflow_gcp::resolve_auth`]: flag, `bf_<key>`, config).
pub fn auth_method(args: &AuthArgs, config: &ResolvedConfig) -> Result<AuthMethod> {
    let name = args.auth_method.map(|n| match n {
        AuthMethodName::LocalAccount => "local_account",
        AuthMethodName::ServiceAccount => "service_account",
        AuthMethodName::Vault => "vault",
        AuthMethodName::None => "none",
    });
    let flags = AuthFlags {
        auth_method: name.map(String::from),
        service_account_key_file: args.service_account_key.clone(),
        vault_endpoint: args.vault_endpoint.clone(),
        vault_secret: args.vault_secret.clone(),
        vault_endpoint_verify: args.vault_endpoint_verify.clone(),
    };
    let lookup = |key: &str| config.get_str(key).ok();
    resolve_auth(&AuthSources {
        flags: &flags,
        command_line: true,
        env_prefix: config.env_var_prefix(),
        config: &lookup,
        config_name: &format!("bigflow.toml [deployment.{}]", config.env()),
    })
    .map_err(ToolError::usage)
}

/// Registry credentials with the token of the moment (ask again for each
/// push or check: tokens expire).
pub async fn registry_credentials(auth: &TokenSource) -> Result<RegistryCredentials> {
    Ok(match auth.bearer().await.map_err(ToolError::failed)? {
        Some(token) => {
            RegistryCredentials::Basic("oauth2accesstoken".into(), token.expose().to_string())
        }
        None => RegistryCredentials::Anonymous,
    })
}

/// Maps a push error to the exit code it deserves.
pub fn push_error(e: PushError) -> ToolError {
    match e {
        PushError::Config(m) => ToolError::usage(m),
        other => ToolError::failed(other),
    }
}

/// A runtime for the async clients.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    bigflow_gcp::install_crypto_provider();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ToolError::failed(format!("cannot start the async runtime: {e}")))
}

/// Pushes the image, tagged with its version and (as BigFlow does) `latest`.
pub fn deploy_image(project: &DeployContext, args: &DeployImageArgs) -> Result<PushReport> {
    let config = project.resolve(args.config.as_deref())?;
    let repository = setting(&args.docker_repository, &config, "docker_repository").ok_or_else(|| {
        ToolError::usage(format!(
            "no docker_repository for environment '{}'; add it to bigflow.toml [deployment.{}] or pass --docker-repository",
            config.env(),
            config.env()
        ))
    })?;
    let archive = match &args.image_tar_path {
        Some(p) => p.clone(),
        None => project.default_archive(None)?,
    };
    let method = auth_method(&args.auth, &config)?;
    let target = PushTarget {
        repository,
        tag: None,
        extra_tags: if args.no_latest {
            Vec::new()
        } else {
            vec!["latest".to_string()]
        },
        plain_http_loopback: args.auth.plain_http,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let auth = TokenSource::new(&method).await.map_err(ToolError::failed)?;
        let credentials = registry_credentials(&auth).await?;
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message("pushing");
        let mut current = 0u64;
        let result = push_archive(&archive, &target, &credentials, |event| match event {
            PushEvent::Blob(_, size) => {
                current = size;
                bar.inc_length(size);
            }
            PushEvent::Uploaded(_) | PushEvent::Skipped(_) => bar.inc(current),
        })
        .await;
        bar.finish_and_clear();
        result.map_err(push_error)
    })
}

/// The flags `deploy-dags` and `deploy` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DagsTargetArgs {
    /// Directory with the DAG files (default: .dags).
    #[arg(long, value_name = "DIR")]
    pub dags_dir: Option<PathBuf>,
    /// Composer's bucket (default: config dags_bucket).
    #[arg(long, short = 'b', value_name = "BUCKET")]
    pub dags_bucket: Option<String>,
    /// The Google Cloud project of Composer; checked for typos (the bucket names where the DAGs go).
    #[arg(long, short = 'p', value_name = "PROJECT")]
    pub gcp_project_id: Option<String>,
    /// After every upload succeeded, delete other files under dags/ (never airflow_monitoring.py).
    #[arg(long)]
    pub clear_dags_folder: bool,
}

/// Flags of `deploy-dags`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeployDagsArgs {
    /// Deployment environment of bigflow.toml.
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    #[command(flatten)]
    pub target: DagsTargetArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub config_path: ConfigPathArg,
}

/// What `deploy-dags` did.
#[derive(Debug, Clone, Default)]
pub struct DagsReport {
    /// Images verified in the registry.
    pub images: Vec<String>,
    /// Objects uploaded.
    pub uploaded: Vec<String>,
    /// Stale objects removed.
    pub removed: Vec<String>,
}

/// Composer's own DAG, never removed.
const AIRFLOW_MONITORING: &str = "dags/airflow_monitoring.py";

/// Verifies the images, uploads the DAGs, then (if asked) removes stale files.
pub fn deploy_dags(project: &DeployContext, args: &DeployDagsArgs) -> Result<DagsReport> {
    let config = project.resolve(args.config.as_deref())?;
    // The bucket names where DAGs go; a project id given as a flag (BigFlow's
    // CI scripts pass one) is checked so that a typo is not silently ignored.
    if let Some(id) = &args.target.gcp_project_id
        && !is_project_id(id)
    {
        return Err(ToolError::usage(format!(
            "--gcp-project-id '{id}' is not a Google Cloud project id (6 to 30 lower-case letters, digits and '-', starting with a letter)"
        )));
    }
    let bucket = setting(&args.target.dags_bucket, &config, "dags_bucket").ok_or_else(|| {
        ToolError::usage(format!(
            "no dags_bucket for environment '{}'; add it to bigflow.toml [deployment.{}] or pass --dags-bucket",
            config.env(),
            config.env()
        ))
    })?;
    let dir = args
        .target
        .dags_dir
        .clone()
        .unwrap_or_else(|| project.root.join(".dags"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            ToolError::usage(format!(
                "cannot read {}: {e}; run `bigflow build-dags` first",
                dir.display()
            ))
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ToolError::usage(format!(
            "no DAG files in {}; run `bigflow build-dags` first",
            dir.display()
        )));
    }
    let images: Vec<String> = std::fs::read_to_string(dir.join(crate::dags::IMAGE_LIST_FILE))
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let method = auth_method(&args.auth, &config)?;
    let rt = runtime()?;
    rt.block_on(async {
        let auth = TokenSource::new(&method).await.map_err(ToolError::failed)?;
        for image in &images {
            let credentials = registry_credentials(&auth).await?;
            let exists = bigflow_image::registry::image_exists(image, &credentials, args.auth.plain_http)
                .await
                .map_err(push_error)?;
            if !exists {
                return Err(ToolError::failed(format!(
                    "image {image} used by the DAGs is not in the registry; run `bigflow deploy-image` first (no DAG was uploaded)"
                )));
            }
        }
        let storage = bigflow_gcp::storage::Storage::new(None, auth).map_err(ToolError::usage)?;
        let mut report = DagsReport {
            images: images.clone(),
            ..Default::default()
        };
        for file in &files {
            let name = format!("dags/{}", file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
            let data = std::fs::read(file).map_err(|e| {
                ToolError::failed(format!("cannot read {}: {e}; nothing was removed from gs://{bucket}/dags/", file.display()))
            })?;
            storage
                .upload(&bucket, &name, data, "text/x-python")
                .await
                .map_err(|e| ToolError::failed(format!("{e}; nothing was removed from gs://{bucket}/dags/")))?;
            report.uploaded.push(name);
        }
        if args.target.clear_dags_folder {
            for name in storage.list(&bucket, "dags/").await.map_err(ToolError::failed)? {
                if name != AIRFLOW_MONITORING && !report.uploaded.contains(&name) {
                    storage.delete(&bucket, &name).await.map_err(ToolError::failed)?;
                    report.removed.push(name);
                }
            }
        }
        Ok(report)
    })
}

/// Google Cloud project ids: 6–30 characters, lower-case letters, digits and
/// hyphens, starting with a letter, not ending with a hyphen (a domain-scoped
/// `example.com:my-project` is accepted too).
fn is_project_id(id: &str) -> bool {
    let id = id.rsplit_once(':').map_or(id, |(_, p)| p);
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
