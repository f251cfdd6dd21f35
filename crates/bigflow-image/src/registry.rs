//! Pushing an exported image archive to an OCI registry (Artifact Registry in
//! production, any distribution-spec registry in tests).
//!
//! Blobs the registry already has are skipped; the manifest is pushed with
//! its original bytes so the digest is the one `build-image` printed, and is
//! read back from the registry to verify it. TLS always, except plain HTTP to
//! a loopback registry when the caller allows it.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

/// Why a push failed. `Config` errors are the caller's to fix (exit 2); the
/// others are remote failures (exit 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Bad archive, reference or option.
    #[error("{0}")]
    Config(String),
    /// The registry could not be reached.
    #[error("cannot reach registry {registry}: {cause}")]
    Unreachable {
        /// Registry host.
        registry: String,
        /// Why.
        cause: String,
    },
    /// The registry refused the credentials.
    #[error("registry {registry} rejected the credentials: {cause}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Its answer.
        cause: String,
    },
    /// Another registry error.
    #[error("registry {registry}: {cause}")]
    Registry {
        /// Registry host.
        registry: String,
        /// Its answer.
        cause: String,
    },
    /// The registry holds another digest under the tag after the push.
    #[error("after the push, {reference} has digest {found}, not {expected}")]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// What was pushed.
        expected: String,
        /// What the registry reports.
        found: String,
    },
}

/// A push destination.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// `host[:port]/path` of the repository.
    pub repository: String,
    /// The tag; `None` takes the archive's own tag (the version it was built for).
    pub tag: Option<String>,
    /// More tags for the same manifest, pushed once the main one is verified
    /// (BigFlow also tags every pushed image `latest`).
    pub extra_tags: Vec<String>,
    /// Allow plain HTTP when the registry is on loopback.
    pub plain_http_loopback: bool,
}

/// Credentials for the registry.
#[derive(Clone)]
pub enum RegistryCredentials {
    /// No credentials.
    Anonymous,
    /// User and password (Artifact Registry: `oauth2accesstoken` and an access token).
    Basic(String, String),
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryCredentials::Anonymous => f.write_str("Anonymous"),
            RegistryCredentials::Basic(user, _) => write!(f, "Basic({user}, ***)"),
        }
    }
}

/// What the push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// `repository:tag` pushed.
    pub reference: String,
    /// The manifest digest now under the tag.
    pub digest: String,
    /// Blobs uploaded.
    pub uploaded: Vec<String>,
    /// Blobs the registry already had.
    pub skipped: Vec<String>,
    /// The extra tags now pointing at the same manifest.
    pub also_tagged: Vec<String>,
}

/// A step of the push, for progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// A blob is about to be checked/uploaded: digest and size.
    Blob(String, u64),
    /// The blob was uploaded.
    Uploaded(String),
    /// The registry already had the blob.
    Skipped(String),
}

struct Archive {
    tag: Option<String>,
    manifest: Vec<u8>,
    digest: String,
    blobs: Vec<(String, Vec<u8>)>,
}

fn read_archive(path: &Path) -> Result<Archive, PushError> {
    let config = |m: String| PushError::Config(m);
    let file = std::fs::File::open(path).map_err(|e| {
        config(format!(
            "cannot open image archive {}: {e}; run `bigflow build-image` first",
            path.display()
        ))
    })?;
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tar = tar::Archive::new(file);
    for entry in tar
        .entries()
        .map_err(|e| config(format!("{} is not a tar archive: {e}", path.display())))?
    {
        let mut entry = entry.map_err(|e| config(format!("{}: {e}", path.display())))?;
        if entry.header().entry_type().is_file() {
            let name = entry
                .path()
                .map_err(|e| config(e.to_string()))?
                .to_string_lossy()
                .to_string();
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| config(e.to_string()))?;
            files.insert(name, data);
        }
    }
    let bad = || {
        config(format!(
            "{} is not an OCI image archive made by `bigflow build-image`",
            path.display()
        ))
    };
    let index: serde_json::Value =
        serde_json::from_slice(files.get("index.json").ok_or_else(bad)?).map_err(|_| bad())?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or_else(bad)?
        .to_string();
    let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .map(String::from);
    let blob = |d: &str| {
        files
            .get(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")))
            .cloned()
            .ok_or_else(bad)
    };
    let manifest = blob(&digest)?;
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).map_err(|_| bad())?;
    let mut digests: Vec<String> = parsed["layers"]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .filter_map(|l| l["digest"].as_str().map(String::from))
        .collect();
    digests.push(
        parsed["config"]["digest"]
            .as_str()
            .ok_or_else(bad)?
            .to_string(),
    );
    let blobs = digests
        .into_iter()
        .map(|d| blob(&d).map(|b| (d, b)))
        .collect::<Result<_, _>>()?;
    Ok(Archive {
        tag,
        manifest,
        digest,
        blobs,
    })
}

fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// A client for `registry`: TLS, or plain HTTP to a loopback registry when allowed.
fn client_for(registry: &str, plain_http_loopback: bool) -> Client {
    let protocol = if plain_http_loopback && is_loopback(registry) {
        ClientProtocol::HttpsExcept(vec![registry.to_string()])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        ..Default::default()
    })
}

impl RegistryCredentials {
    fn to_auth(&self) -> RegistryAuth {
        match self {
            RegistryCredentials::Anonymous => RegistryAuth::Anonymous,
            RegistryCredentials::Basic(u, p) => RegistryAuth::Basic(u.clone(), p.clone()),
        }
    }
}

fn classify(registry: &str, e: oci_client::errors::OciDistributionError) -> PushError {
    let cause = e.to_string();
    let lower = cause.to_lowercase();
    if lower.contains("unauthorized")
        || lower.contains("401")
        || lower.contains("authentication")
        || lower.contains("denied")
    {
        PushError::Unauthorized {
            registry: registry.to_string(),
            cause,
        }
    } else if lower.contains("error sending request")
        || lower.contains("connect")
        || lower.contains("dns")
    {
        let hint = if is_loopback(registry) && cause.contains("https://") {
            "; a local registry may speak plain HTTP: pass --plain-http"
        } else {
            ""
        };
        PushError::Unreachable {
            registry: registry.to_string(),
            cause: format!("{cause}{hint}"),
        }
    } else {
        PushError::Registry {
            registry: registry.to_string(),
            cause,
        }
    }
}

/// Pushes the archive at `archive` to `target`.
pub async fn push_archive(
    archive: &Path,
    target: &PushTarget,
    credentials: &RegistryCredentials,
    mut progress: impl FnMut(PushEvent),
) -> Result<PushReport, PushError> {
    let image = read_archive(archive)?;
    let tag = target
        .tag
        .clone()
        .or_else(|| image.tag.clone())
        .ok_or_else(|| PushError::Config(format!("{} has no tag; give one", archive.display())))?;
    let reference: Reference = format!("{}:{tag}", target.repository)
        .parse()
        .map_err(|e| {
            PushError::Config(format!(
                "'{}:{tag}' is not a valid image reference: {e}",
                target.repository
            ))
        })?;
    let registry = reference.registry().to_string();
    if target.plain_http_loopback && !is_loopback(&registry) {
        return Err(PushError::Config(format!(
            "plain HTTP is only allowed to a loopback registry, not {registry}; drop --plain-http"
        )));
    }
    let client = client_for(&registry, target.plain_http_loopback);
    let auth = credentials.to_auth();
    client
        .auth(&reference, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| classify(&registry, e))?;
    let mut report = PushReport {
        reference: reference.whole(),
        digest: image.digest.clone(),
        uploaded: Vec::new(),
        skipped: Vec::new(),
        also_tagged: Vec::new(),
    };
    for (digest, data) in &image.blobs {
        progress(PushEvent::Blob(digest.clone(), data.len() as u64));
        if client
            .blob_exists(&reference, digest)
            .await
            .map_err(|e| classify(&registry, e))?
        {
            progress(PushEvent::Skipped(digest.clone()));
            report.skipped.push(digest.clone());
            continue;
        }
        client
            .push_blob(&reference, data.clone(), digest)
            .await
            .map_err(|e| classify(&registry, e))?;
        progress(PushEvent::Uploaded(digest.clone()));
        report.uploaded.push(digest.clone());
    }
    // The manifest under its tag, read back and checked.
    let tag_and_verify = |reference: Reference| {
        let (client, auth, registry) = (&client, &auth, &registry);
        let (manifest, digest) = (image.manifest.clone(), image.digest.clone());
        async move {
            let content_type = "application/vnd.oci.image.manifest.v1+json"
                .parse()
                .map_err(|_| PushError::Config("invalid manifest media type".into()))?;
            client
                .push_manifest_raw(&reference, manifest, content_type)
                .await
                .map_err(|e| classify(registry, e))?;
            let found = client
                .fetch_manifest_digest(&reference, auth)
                .await
                .map_err(|e| classify(registry, e))?;
            if found != digest {
                return Err(PushError::DigestMismatch {
                    reference: reference.whole(),
                    expected: digest,
                    found,
                });
            }
            Ok(reference.whole())
        }
    };
    tag_and_verify(reference).await?;
    // Only after the version tag is verified: a failure here leaves that
    // tag correct and at most an extra tag pointing at an older image.
    for extra in &target.extra_tags {
        let other: Reference = format!("{}:{extra}", target.repository)
            .parse()
            .map_err(|e| {
                PushError::Config(format!(
                    "'{}:{extra}' is not a valid image reference: {e}",
                    target.repository
                ))
            })?;
        report.also_tagged.push(tag_and_verify(other).await?);
    }
    Ok(report)
}

/// Whether `reference` (`repo:tag`) exists in its registry.
pub async fn image_exists(
    reference: &str,
    credentials: &RegistryCredentials,
    plain_http_loopback: bool,
) -> Result<bool, PushError> {
    let parsed: Reference = reference.parse().map_err(|e| {
        PushError::Config(format!("'{reference}' is not a valid image reference: {e}"))
    })?;
    let registry = parsed.registry().to_string();
    let client = client_for(&registry, plain_http_loopback);
    let auth = credentials.to_auth();
    match client.fetch_manifest_digest(&parsed, &auth).await {
        Ok(_) => Ok(true),
        Err(oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)) => Ok(false),
        Err(e) => {
            let err = classify(&registry, e);
            match &err {
                PushError::Registry { cause, .. }
                    if ["404", "not found", "manifest unknown", "manifest_unknown"]
                        .iter()
                        .any(|m| cause.to_lowercase().contains(m)) =>
                {
                    Ok(false)
                }
                _ => Err(err),
            }
        }
    }
}

/// Pulls a base image (`host/path:tag`) from a registry.
pub async fn pull_base(
    reference: &str,
    credentials: &RegistryCredentials,
    plain_http_loopback: bool,
) -> Result<crate::base::BaseImage, PushError> {
    const ACCEPTED: &[&str] = &[
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ];
    let parsed: Reference = reference.parse().map_err(|e| {
        PushError::Config(format!(
            "base image '{reference}' is not a valid reference: {e}"
        ))
    })?;
    let registry = parsed.registry().to_string();
    let client = client_for(&registry, plain_http_loopback);
    let auth = credentials.to_auth();
    let (mut manifest, _) = client
        .pull_manifest_raw(&parsed, &auth, ACCEPTED)
        .await
        .map_err(|e| classify(&registry, e))?;
    let top: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|e| PushError::Registry {
            registry: registry.clone(),
            cause: format!("unreadable manifest: {e}"),
        })?;
    if top["manifests"].is_array() {
        let digest = crate::base::pick_platform(&top).ok_or_else(|| PushError::Registry {
            registry: registry.clone(),
            cause: format!("{reference} has no linux/amd64 image"),
        })?;
        let by_digest = Reference::with_digest(
            parsed.registry().to_string(),
            parsed.repository().to_string(),
            digest,
        );
        manifest = client
            .pull_manifest_raw(&by_digest, &auth, ACCEPTED)
            .await
            .map_err(|e| classify(&registry, e))?
            .0;
    }
    let parsed_manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
    let mut digests: Vec<String> = vec![
        parsed_manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    digests.extend(
        parsed_manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["digest"].as_str().map(String::from)),
    );
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    for digest in digests {
        let mut data = Vec::new();
        client
            .pull_blob(&parsed, digest.as_str(), &mut data)
            .await
            .map_err(|e| classify(&registry, e))?;
        blobs.insert(digest, data);
    }
    crate::base::from_manifest(&manifest, |d| {
        blobs.remove(d).ok_or_else(|| crate::ImageError::Io {
            what: "read the base image".into(),
            cause: format!("blob {d} was not pulled"),
        })
    })
    .map_err(|e| PushError::Registry {
        registry,
        cause: e.to_string(),
    })
}
