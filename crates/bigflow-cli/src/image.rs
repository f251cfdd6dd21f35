//! `build-image`: the project's OCI image, without Docker.
//!
//! The project binary (release build), `resources/` and the machine's CA
//! certificates go into a two-layer image assembled by `bigflow-image`,
//! labelled with the version and commit and dated at the commit's time, so
//! the same commit gives the same digest. Its layers are zstd-compressed
//! unless `--layer-compression gzip` (or `layer_compression = "gzip"` in the
//! deployment config) asks for gzip. Exported to
//! `.image/image-<version>.tar` (an OCI layout that `docker load` also reads).

use std::path::{Path, PathBuf};

use bigflow_image::{Compression, ImageSpec, build_image, export_archive};
use chrono::DateTime;

use crate::error::{Result, ToolError};
use crate::project::ProjectDir;
use crate::version::{head_commit, project_version};

/// The CA bundle shipped in images when the machine has it.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Options of `build-image` (its command-line flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildImageOptions {
    /// Deployment environment whose docker_repository tags the archive.
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    /// Do not write the archive.
    #[arg(long)]
    pub no_export: bool,
    /// Use this prebuilt project binary instead of `cargo build --release`.
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// Directory of the archive (default: .image in the project).
    #[arg(long, value_name = "DIR")]
    pub image_dir: Option<PathBuf>,
    /// Repository tag of the archive (default: $bf_docker_repository, then the config's).
    #[arg(long, value_name = "REPO")]
    pub docker_repository: Option<String>,
    /// Base image: oci:DIR[:TAG] or a registry reference (default: config base_image; none = scratch-like).
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,
    /// Compression of bigflow's layers: zstd (default; containerd ≥ 1.5, Docker ≥ 23) or gzip
    /// for older runtimes (default: config layer_compression, then zstd).
    #[arg(long, value_name = "zstd|gzip", value_parser = ["zstd", "gzip"])]
    pub layer_compression: Option<String>,
    #[command(flatten)]
    pub auth: crate::deploy::AuthArgs,
}

/// What `build-image` made.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The manifest digest.
    pub digest: String,
    /// The version tag.
    pub version: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// How bigflow's layers were compressed.
    pub compression: Compression,
    /// The exported archive, if written.
    pub archive: Option<PathBuf>,
}

/// Builds (and by default exports) the project's image.
pub fn build_project_image(
    project: &ProjectDir,
    options: &BuildImageOptions,
) -> Result<BuiltImage> {
    let version = project_version(&project.root)?;
    let (revision, commit_time) = head_commit(&project.root)?;
    let deployment = project
        .deployment
        .resolve(options.config.as_deref())
        .map_err(ToolError::usage)?;
    let repository = match crate::deploy::setting(
        &options.docker_repository,
        &deployment,
        "docker_repository",
    ) {
        Some(r) => {
            bigflow_airflow::image_reference(&r, &version).map_err(ToolError::usage)?;
            Some(r)
        }
        None => None,
    };
    let binary = match &options.binary {
        Some(b) if b.is_file() => b.clone(),
        Some(b) => {
            return Err(ToolError::usage(format!(
                "--binary {}: no such file",
                b.display()
            )));
        }
        None => project.build_binary(true)?,
    };
    let created = DateTime::from_timestamp(commit_time, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let compression = match crate::deploy::setting(
        &options.layer_compression,
        &deployment,
        "layer_compression",
    ) {
        None => Compression::default(),
        Some(name) => name
            .parse::<Compression>()
            .map_err(|e| ToolError::usage(format!("layer_compression: {e}")))?,
    };
    let base = match crate::deploy::setting(&options.base_image, &deployment, "base_image") {
        None => None,
        Some(spec) => Some(load_base(&spec, options, &deployment)?),
    };
    let spec = ImageSpec {
        name: project.meta.name.clone(),
        binary,
        binary_name: project.binary_name().to_string(),
        resources: Some(project.root.join("resources")).filter(|p| p.is_dir()),
        ca_certificates: Some(PathBuf::from(CA_BUNDLE)).filter(|p| p.is_file()),
        version: version.clone(),
        revision,
        created,
        base,
        compression,
    };
    if spec.ca_certificates.is_none() && spec.base.is_none() {
        eprintln!(
            "warning: {CA_BUNDLE} not found; the image will have no CA certificates (install ca-certificates)"
        );
    }
    let image = build_image(&spec).map_err(ToolError::failed)?;
    let archive = if options.no_export {
        None
    } else {
        let dir = options
            .image_dir
            .clone()
            .unwrap_or_else(|| project.root.join(".image"));
        let path = dir.join(format!("image-{version}.tar"));
        let repo_tag = repository.map(|r| format!("{r}:{version}"));
        export_archive(&image, &version, repo_tag.as_deref(), &path).map_err(ToolError::failed)?;
        Some(path)
    };
    Ok(BuiltImage {
        digest: image.digest.clone(),
        size: image.compressed_size(),
        compression,
        version,
        archive,
    })
}

/// Loads `oci:DIR[:TAG]` from disk or pulls a registry reference.
fn load_base(
    spec: &str,
    options: &BuildImageOptions,
    config: &bigflow_core::ResolvedConfig,
) -> Result<bigflow_image::base::BaseImage> {
    if let Some(layout) = spec.strip_prefix("oci:") {
        // DIR may contain ':' only before the last one, which separates the tag.
        let (dir, tag) = match layout.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') => (d, Some(t)),
            _ => (layout, None),
        };
        return bigflow_image::base::from_layout(Path::new(dir), tag).map_err(ToolError::usage);
    }
    let method = crate::deploy::auth_method(&options.auth, config)?;
    let rt = crate::deploy::runtime()?;
    rt.block_on(async {
        let auth = bigflow_gcp::TokenSource::new(&method)
            .await
            .map_err(ToolError::failed)?;
        let credentials = crate::deploy::registry_credentials(&auth).await?;
        bigflow_image::registry::pull_base(spec, &credentials, options.auth.plain_http)
            .await
            .map_err(crate::deploy::push_error)
    })
}

/// A human summary line.
pub fn describe(image: &BuiltImage, root: &Path) -> String {
    let archive = image
        .archive
        .as_ref()
        .map(|p| format!(" -> {}", p.strip_prefix(root).unwrap_or(p).display()))
        .unwrap_or_default();
    format!(
        "image {} {} ({:.1} MB compressed, {}){archive}",
        image.version,
        image.digest,
        image.size as f64 / 1e6,
        image.compression
    )
}
