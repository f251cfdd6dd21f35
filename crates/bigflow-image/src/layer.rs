//! Deterministic layers: a file tree written as a gzip-compressed tar.
//!
//! Entries are sorted, every parent directory is present, owners are root,
//! modes are normalized and timestamps fixed, and gzip carries no name or
//! time — so the same files always give the same bytes, hence the same digest.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

/// What a path in a layer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory with a mode.
    Dir(u32),
    /// A regular file: content and mode.
    File(Vec<u8>, u32),
    /// A symbolic link to a target.
    Symlink(String),
}

/// A file tree to become one layer; paths are absolute inside the image.
#[derive(Debug, Clone, Default)]
pub struct LayerTree {
    nodes: BTreeMap<String, Node>,
}

/// The media type of the layers bigflow writes.
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A built layer.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its media type (ours are gzip OCI layers; a base image's keep theirs).
    pub media_type: String,
    /// The gzip-compressed tar.
    pub blob: Vec<u8>,
    /// `sha256:` digest of the compressed blob.
    pub digest: String,
    /// `sha256:` digest of the uncompressed tar (the image config's diff id).
    pub diff_id: String,
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for b in hash.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn relative(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl LayerTree {
    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.parents(path);
        self.nodes.insert(relative(path), Node::Dir(mode));
        self
    }

    /// Adds a file (and its parent directories, mode 0755).
    pub fn file(&mut self, path: &str, content: Vec<u8>, mode: u32) -> &mut Self {
        self.parents(path);
        self.nodes.insert(relative(path), Node::File(content, mode));
        self
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.parents(path);
        self.nodes
            .insert(relative(path), Node::Symlink(target.to_string()));
        self
    }

    fn parents(&mut self, path: &str) {
        let rel = relative(path);
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.nodes.entry(prefix.clone()).or_insert(Node::Dir(0o755));
        }
    }

    /// Paths in the tree, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// The uncompressed tar.
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        for (path, node) in &self.nodes {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            match node {
                Node::Dir(mode) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Node::File(content, mode) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(content.len() as u64);
                    builder.append_data(&mut header, path, content.as_slice())?;
                }
                Node::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        builder.into_inner()
    }

    /// The layer: compressed blob with its digests.
    pub fn build(&self) -> std::io::Result<Layer> {
        let tar = self.to_tar()?;
        let diff_id = sha256(&tar);
        let mut gz = GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), Compression::new(6));
        gz.write_all(&tar)?;
        let blob = gz.finish()?;
        Ok(Layer {
            media_type: MEDIA_LAYER_GZIP.to_string(),
            digest: sha256(&blob),
            diff_id,
            blob,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_tree_same_digest_and_parents_present() {
        let make = || {
            let mut t = LayerTree::default();
            t.file("/app/bin/x", b"binary".to_vec(), 0o755).file(
                "/app/resources/a.txt",
                b"a".to_vec(),
                0o644,
            );
            t.build().unwrap()
        };
        let (a, b) = (make(), make());
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.blob, b.blob);
        let mut t = LayerTree::default();
        t.file("/app/bin/x", b"binary".to_vec(), 0o755);
        assert_eq!(
            t.paths().collect::<Vec<_>>(),
            ["app", "app/bin", "app/bin/x"]
        );
    }
}
