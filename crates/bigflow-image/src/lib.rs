//! OCI images of BigFlow projects, built without a Docker daemon.
//!
//! An image has two layers: the runtime (the shared libraries the binary
//! loads, CA certificates, a non-root user) and the application
//! (`/app/bin/<binary>` and `/app/resources/`). With a base image ([`base`],
//! from an OCI layout or a registry) the base's layers replace the runtime
//! layer. Both are deterministic tars ([`layer`]), compressed with zstd by
//! default or gzip ([`ImageSpec::compression`]); the config and manifest are
//! written with fixed key order and the commit's timestamp, so the same
//! commit builds the same digest. The export is one tar that is both an OCI
//! image layout (`index.json`, `blobs/`) and a `docker load` archive
//! (`manifest.json`), so `skopeo`, `umoci` and Docker (≥ 23 for zstd layers,
//! which it recognizes by their magic number) all read it.
//!
//! The JSON documents are written with `serde_json` rather than `oci-spec`'s
//! types because those keep labels in `HashMap`s, whose order — and so the
//! digest — changes from run to run; the tests parse our output back with
//! `oci-spec` to keep it honest.

pub mod base;
pub mod layer;
pub mod registry;
pub mod runtime_deps;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub use layer::Compression;
use layer::{Layer, LayerTree, sha256};

/// Where the project binary lives in the image.
pub const APP_BIN_DIR: &str = "/app/bin";
/// Where Beam's runners (Dataflow) look for a container's worker boot program.
pub const BEAM_BOOT: &str = "/opt/apache/beam/boot";
/// Where `resources/` lives in the image (found by `bigflow`'s resource lookup).
pub const APP_RESOURCES_DIR: &str = "/app/resources";
/// The non-root user the image runs as.
pub const APP_USER: &str = "1000:1000";

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Why an image could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// A file operation failed.
    #[error("could not {what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        cause: String,
    },
    /// The binary needs a library this machine does not have.
    #[error("the project binary needs {0}, which ldd cannot find on this machine")]
    MissingLibrary(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |e| ImageError::Io {
        what,
        cause: e.to_string(),
    }
}

/// What goes into an image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The project name (image title).
    pub name: String,
    /// The project binary to ship.
    pub binary: PathBuf,
    /// Its name inside `/app/bin`.
    pub binary_name: String,
    /// The project's `resources/` directory, if any.
    pub resources: Option<PathBuf>,
    /// CA certificates bundle to ship (e.g. `/etc/ssl/certs/ca-certificates.crt`).
    pub ca_certificates: Option<PathBuf>,
    /// The version (the tag).
    pub version: String,
    /// The git commit.
    pub revision: String,
    /// RFC 3339 time recorded as `created` (the commit's time, for reproducibility).
    pub created: String,
    /// A base image; without one the image is `scratch`-like and carries the
    /// binary's shared libraries itself.
    pub base: Option<base::BaseImage>,
    /// How bigflow's own layers are compressed (a base image's layers are
    /// kept as they are, with their media types).
    pub compression: Compression,
}

/// A built image, in memory.
#[derive(Debug, Clone)]
pub struct Image {
    /// Layers, runtime first.
    pub layers: Vec<Layer>,
    /// The config JSON.
    pub config: Vec<u8>,
    /// The manifest JSON.
    pub manifest: Vec<u8>,
    /// `sha256:` digest of the manifest: the image's identity.
    pub digest: String,
}

impl Image {
    /// The compressed size of all layers plus config and manifest.
    pub fn compressed_size(&self) -> u64 {
        (self.layers.iter().map(|l| l.blob.len()).sum::<usize>()
            + self.config.len()
            + self.manifest.len()) as u64
    }

    /// `sha256:` digest of the config.
    pub fn config_digest(&self) -> String {
        sha256(&self.config)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(io(format!("read {}", path.display())))
}

fn add_dir_recursively(tree: &mut LayerTree, src: &Path, dest: &str) -> Result<(), ImageError> {
    tree.dir(dest, 0o755);
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(io(format!("read {}", src.display())))?
        .collect::<Result<_, _>>()
        .map_err(io(format!("read {}", src.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let target = format!("{dest}/{name}");
        let meta = std::fs::metadata(&path).map_err(io(format!("read {}", path.display())))?;
        if meta.is_dir() {
            add_dir_recursively(tree, &path, &target)?;
        } else if meta.is_file() {
            tree.file(&target, read(&path)?, 0o644);
        }
    }
    Ok(())
}

/// The runtime layer: libraries, certificates, user and group files, `/tmp`.
fn runtime_layer(spec: &ImageSpec) -> Result<Layer, ImageError> {
    let mut tree = LayerTree::default();
    for lib in runtime_deps::shared_libraries(&spec.binary)? {
        let text = lib.to_string_lossy().to_string();
        tree.file(&text, read(&lib)?, 0o755);
    }
    if let Some(certs) = &spec.ca_certificates {
        tree.file("/etc/ssl/certs/ca-certificates.crt", read(certs)?, 0o644);
    }
    tree.file(
        "/etc/passwd",
        b"root:x:0:0:root:/root:/sbin/nologin\nbigflow:x:1000:1000:bigflow:/app:/sbin/nologin\n"
            .to_vec(),
        0o644,
    );
    tree.file(
        "/etc/group",
        b"root:x:0:\nbigflow:x:1000:\n".to_vec(),
        0o644,
    );
    tree.dir("/tmp", 0o1777);
    tree.build_with(spec.compression)
        .map_err(io("write the runtime layer"))
}

/// The application layer: the binary and `resources/`.
fn app_layer(spec: &ImageSpec) -> Result<Layer, ImageError> {
    let mut tree = LayerTree::default();
    tree.file(
        &format!("{APP_BIN_DIR}/{}", spec.binary_name),
        read(&spec.binary)?,
        0o755,
    );
    // Dataflow starts a custom SDK container's `/opt/apache/beam/boot` with
    // Beam's boot flags; the binary serves as the SDK worker when it sees
    // them, while Composer's pods keep running it with a command.
    tree.symlink(BEAM_BOOT, &format!("{APP_BIN_DIR}/{}", spec.binary_name));
    match &spec.resources {
        Some(dir) if dir.is_dir() => add_dir_recursively(&mut tree, dir, APP_RESOURCES_DIR)?,
        _ => {
            tree.dir(APP_RESOURCES_DIR, 0o755);
        }
    }
    tree.build_with(spec.compression)
        .map_err(io("write the application layer"))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialize")
}

/// Assembles the image.
pub fn build_image(spec: &ImageSpec) -> Result<Image, ImageError> {
    let (mut layers, mut history, mut env) = match &spec.base {
        Some(base) => (base.layers.clone(), base.history.clone(), base.env.clone()),
        None => (
            vec![runtime_layer(spec)?],
            vec![
                json!({"created": spec.created, "created_by": "bigflow build-image: runtime libraries, certificates, user"}),
            ],
            Vec::new(),
        ),
    };
    layers.push(app_layer(spec)?);
    history.push(json!({"created": spec.created, "created_by": "bigflow build-image: project binary and resources"}));
    env.retain(|e| !e.starts_with("PATH=") && !e.starts_with("SSL_CERT_FILE="));
    env.push(format!("PATH={APP_BIN_DIR}:/usr/local/bin:/usr/bin:/bin"));
    env.push("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_string());
    // Deployed runs: Cloud Logging JSON (read by Composer's logging agent)
    // and a marker the local warehouse refuses to run under.
    env.retain(|e| {
        !e.starts_with("BIGFLOW_IN_IMAGE=")
            && !e.starts_with("BIGFLOW_LOG_FORMAT=")
            && !e.starts_with("BIGFLOW_IMAGE_VERSION=")
    });
    env.push("BIGFLOW_IN_IMAGE=1".to_string());
    // Which image a job runs in: a Beam job on Dataflow uses the same one
    // for its workers (`use_docker_image`).
    env.push(format!("BIGFLOW_IMAGE_VERSION={}", spec.version));
    env.push("BIGFLOW_LOG_FORMAT=json".to_string());
    let entrypoint = format!("{APP_BIN_DIR}/{}", spec.binary_name);
    let config = json!({
        "created": spec.created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": APP_USER,
            "Env": env,
            "Entrypoint": [entrypoint],
            "WorkingDir": "/app",
            "Labels": {
                "org.opencontainers.image.title": spec.name,
                "org.opencontainers.image.version": spec.version,
                "org.opencontainers.image.revision": spec.revision,
                "org.opencontainers.image.created": spec.created,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        "history": history,
    });
    let config = to_bytes(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.blob.len()})).collect::<Vec<_>>(),
        "annotations": {
            "org.opencontainers.image.title": spec.name,
            "org.opencontainers.image.version": spec.version,
            "org.opencontainers.image.revision": spec.revision,
        },
    });
    let manifest = to_bytes(&manifest);
    Ok(Image {
        digest: sha256(&manifest),
        layers,
        config,
        manifest,
    })
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Writes the image as one tar: an OCI layout tagged `tag` plus Docker's
/// `manifest.json` with `repo_tag` (e.g. `europe-docker.pkg.dev/p/r/x:1.0`).
/// The file is written next to `path` and renamed into place.
pub fn export_archive(
    image: &Image,
    tag: &str,
    repo_tag: Option<&str>,
    path: &Path,
) -> Result<(), ImageError> {
    let mut tree = LayerTree::default();
    tree.file(
        "/oci-layout",
        to_bytes(&json!({"imageLayoutVersion": "1.0.0"})),
        0o644,
    );
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": image.digest,
            "size": image.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    tree.file("/index.json", to_bytes(&index), 0o644);
    let docker = json!([{
        "Config": blob_path(&image.config_digest()),
        "RepoTags": repo_tag.map(|t| vec![t.to_string()]).unwrap_or_default(),
        "Layers": image.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
    }]);
    tree.file("/manifest.json", to_bytes(&docker), 0o644);
    tree.file(
        &format!("/{}", blob_path(&image.config_digest())),
        image.config.clone(),
        0o644,
    );
    tree.file(
        &format!("/{}", blob_path(&image.digest)),
        image.manifest.clone(),
        0o644,
    );
    for layer in &image.layers {
        tree.file(
            &format!("/{}", blob_path(&layer.digest)),
            layer.blob.clone(),
            0o644,
        );
    }
    let tar = tree.to_tar().map_err(io("assemble the image archive"))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Only a regular file (an earlier archive) is ever replaced.
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.file_type().is_file()
    {
        return Err(ImageError::Io {
            what: format!("replace {}", path.display()),
            cause: "it is not a regular file (a directory, link or device); bigflow replaces only the archives it wrote. Remove it or pass another --image-dir".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, tar).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("move the archive to {}", path.display())))
}

#[cfg(test)]
mod tests;
