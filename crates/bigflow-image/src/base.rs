//! Base images: the layers an image is built on when it is not `scratch`-like.
//!
//! A base comes from an OCI image layout on disk (`oci:DIR[:TAG]`, what
//! `skopeo copy` and `umoci` write) or from a registry (see
//! [`crate::registry::pull_base`]). Multi-platform indexes resolve to
//! linux/amd64. The base's layers are kept byte for byte, with their media
//! types and diff ids, so the result stays reproducible.

use std::path::Path;

use serde_json::Value;

use crate::ImageError;
use crate::layer::{Layer, sha256};

/// The layers and settings taken from a base image.
#[derive(Debug, Clone, Default)]
pub struct BaseImage {
    /// Layers, lowest first.
    pub layers: Vec<Layer>,
    /// The base's history entries.
    pub history: Vec<Value>,
    /// The base's environment.
    pub env: Vec<String>,
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn bad(what: &str, detail: impl std::fmt::Display) -> ImageError {
    ImageError::Io {
        what: format!("read the base image {what}"),
        cause: detail.to_string(),
    }
}

/// The manifest for linux/amd64 in an index, else the first one.
pub fn pick_platform(index: &Value) -> Option<String> {
    let manifests = index["manifests"].as_array()?;
    manifests
        .iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
        .or_else(|| manifests.first())
        .and_then(|m| m["digest"].as_str().map(String::from))
}

/// Builds a base from its manifest, fetching blobs by digest with `blob`.
pub fn from_manifest(
    manifest: &[u8],
    mut blob: impl FnMut(&str) -> Result<Vec<u8>, ImageError>,
) -> Result<BaseImage, ImageError> {
    let manifest: Value = serde_json::from_slice(manifest).map_err(|e| bad("manifest", e))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| bad("manifest", "no config"))?;
    let config: Value =
        serde_json::from_slice(&blob(config_digest)?).map_err(|e| bad("config", e))?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| bad("config", "no rootfs.diff_ids"))?
        .iter()
        .filter_map(|d| d.as_str().map(String::from))
        .collect();
    let descriptors = manifest["layers"]
        .as_array()
        .ok_or_else(|| bad("manifest", "no layers"))?;
    if descriptors.len() != diff_ids.len() {
        return Err(bad(
            "manifest",
            "layer count differs from the config's diff ids",
        ));
    }
    let mut layers = Vec::new();
    for (d, diff_id) in descriptors.iter().zip(diff_ids) {
        let digest = d["digest"]
            .as_str()
            .ok_or_else(|| bad("manifest", "a layer without digest"))?;
        let data = blob(digest)?;
        if sha256(&data) != digest {
            return Err(bad("layer", format!("{digest} does not match its content")));
        }
        layers.push(Layer {
            media_type: d["mediaType"]
                .as_str()
                .unwrap_or(crate::layer::MEDIA_LAYER_GZIP)
                .to_string(),
            digest: digest.to_string(),
            diff_id,
            blob: data,
        });
    }
    Ok(BaseImage {
        layers,
        history: config["history"].as_array().cloned().unwrap_or_default(),
        env: config["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Reads `tag` (or the only image) from the OCI layout at `dir`.
pub fn from_layout(dir: &Path, tag: Option<&str>) -> Result<BaseImage, ImageError> {
    let read_blob = |digest: &str| -> Result<Vec<u8>, ImageError> {
        let path = dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::read(&path).map_err(|e| bad(&format!("blob {}", path.display()), e))
    };
    let index: Value = serde_json::from_slice(
        &std::fs::read(dir.join("index.json"))
            .map_err(|e| bad(&format!("layout {}", dir.display()), e))?,
    )
    .map_err(|e| bad("index.json", e))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let entry = match tag {
        Some(t) => manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == t),
        None if manifests.len() == 1 => manifests.first(),
        None => None,
    }
    .ok_or_else(|| {
        bad(
            &format!("layout {}", dir.display()),
            format!("no image tagged {:?}; give oci:DIR:TAG", tag.unwrap_or("")),
        )
    })?;
    let mut digest = entry["digest"]
        .as_str()
        .ok_or_else(|| bad("index.json", "no digest"))?
        .to_string();
    let mut manifest = read_blob(&digest)?;
    let parsed: Value = serde_json::from_slice(&manifest).map_err(|e| bad("manifest", e))?;
    if INDEX_TYPES.contains(&parsed["mediaType"].as_str().unwrap_or_default())
        || entry["mediaType"] == INDEX_TYPES[0]
    {
        digest = pick_platform(&parsed).ok_or_else(|| bad("index", "no linux/amd64 image"))?;
        manifest = read_blob(&digest)?;
    }
    from_manifest(&manifest, read_blob)
}
