//! Deterministic layers: a file tree written as a compressed tar.
//!
//! Entries are sorted, every parent directory is present, owners are root,
//! modes are normalized and timestamps fixed, and the compression is
//! deterministic too — zstd (the default) at a fixed level and always in
//! multithreaded mode, whose output does not depend on the number of worker
//! threads; gzip at a fixed level with no name or time in its header — so the
//! same files always give the same bytes, hence the same digest.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::GzBuilder;
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

/// The media type of gzip-compressed OCI layers.
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The media type of zstd-compressed OCI layers.
pub const MEDIA_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The zstd level of bigflow's layers: the best size for the build time on
/// large project binaries (see `docs/images.md` for the measurements). The
/// level is part of the digest: changing it changes every image's digest.
pub const ZSTD_LEVEL: i32 = 9;
/// The gzip level of bigflow's layers with [`Compression::Gzip`].
pub const GZIP_LEVEL: u32 = 6;
/// The most zstd worker threads a layer is compressed with.
const ZSTD_MAX_WORKERS: u32 = 4;

/// How bigflow compresses the layers it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// zstd ([`ZSTD_LEVEL`]), `application/vnd.oci.image.layer.v1.tar+zstd`:
    /// smaller and faster; read by containerd ≥ 1.5, Docker ≥ 23 and skopeo,
    /// not by Debian's umoci 0.4.7.
    #[default]
    Zstd,
    /// gzip ([`GZIP_LEVEL`]), `application/vnd.oci.image.layer.v1.tar+gzip`:
    /// for runtimes that cannot read zstd.
    Gzip,
}

impl Compression {
    /// Every compression, by name.
    pub const ALL: [Compression; 2] = [Compression::Zstd, Compression::Gzip];

    /// Its name: `zstd` or `gzip`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }

    /// The OCI media type of layers compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Zstd => MEDIA_LAYER_ZSTD,
            Compression::Gzip => MEDIA_LAYER_GZIP,
        }
    }

    /// Compresses `data` deterministically.
    pub fn compress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::Zstd => compress_zstd(data, ZSTD_LEVEL, zstd_workers()),
            Compression::Gzip => {
                let mut gz = GzBuilder::new()
                    .mtime(0)
                    .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
                gz.write_all(data)?;
                gz.finish()
            }
        }
    }
}

/// A zstd frame of `data` (with its content size and checksum) at `level`,
/// compressed in zstd's multithreaded mode by `workers` threads (at least
/// one). Multithreaded mode cuts the input into jobs by size and level alone,
/// so the frame is byte-identical for any number of workers (it differs from
/// single-threaded mode's, which bigflow never uses); inputs too small to
/// split are compressed in one job.
pub fn compress_zstd(data: &[u8], level: i32, workers: u32) -> std::io::Result<Vec<u8>> {
    use zstd::zstd_safe::CParameter;
    let mut zstd = zstd::bulk::Compressor::new(level)?;
    zstd.set_parameter(CParameter::ChecksumFlag(true))?;
    zstd.set_parameter(CParameter::NbWorkers(workers.max(1)))?;
    zstd.compress(data)
}

/// Worker threads for zstd: the machine's cores, within 1..=[`ZSTD_MAX_WORKERS`].
fn zstd_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .clamp(1, ZSTD_MAX_WORKERS)
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown layer compression {s:?}: expected zstd or gzip"))
    }
}

/// A built layer.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its media type (ours are zstd or gzip OCI layers; a base image's keep
    /// theirs).
    pub media_type: String,
    /// The compressed tar.
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

    /// The layer, compressed the default way ([`Compression::Zstd`]).
    pub fn build(&self) -> std::io::Result<Layer> {
        self.build_with(Compression::default())
    }

    /// The layer: compressed blob with its digests.
    pub fn build_with(&self, compression: Compression) -> std::io::Result<Layer> {
        let tar = self.to_tar()?;
        let diff_id = sha256(&tar);
        let blob = compression.compress(&tar)?;
        Ok(Layer {
            media_type: compression.media_type().to_string(),
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
        assert_eq!(a.media_type, MEDIA_LAYER_ZSTD);
        assert_eq!(zstd::decode_all(a.blob.as_slice()).unwrap(), {
            let mut t = LayerTree::default();
            t.file("/app/bin/x", b"binary".to_vec(), 0o755).file(
                "/app/resources/a.txt",
                b"a".to_vec(),
                0o644,
            );
            t.to_tar().unwrap()
        });
        let mut t = LayerTree::default();
        t.file("/app/bin/x", b"binary".to_vec(), 0o755);
        assert_eq!(
            t.paths().collect::<Vec<_>>(),
            ["app", "app/bin", "app/bin/x"]
        );
    }

    /// Compressible, not repetitive data: words drawn by a fixed generator.
    fn text(len: usize) -> Vec<u8> {
        let words: [&[u8]; 8] = [
            b"select ",
            b"from ",
            b"where ",
            b"bigflow ",
            b"12345 ",
            b"\n",
            b"job_id ",
            b"= ",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(words[(state % 8) as usize]);
            out.extend_from_slice(&state.to_le_bytes()[..(state >> 60) as usize % 3]);
        }
        out
    }

    /// zstd's multithreaded mode gives the same frame for any number of
    /// workers, also when the input is split into several jobs (2 MB each at
    /// level 1, 8 MB at level 3), and for small inputs (one job).
    #[test]
    fn zstd_frames_do_not_depend_on_the_worker_count() {
        for (data, level) in [
            (text(10_000_000), 1),
            (text(10_000_000), 3),
            (text(5_000), 9),
        ] {
            let frames: Vec<Vec<u8>> = [1, 2, 3, 7]
                .into_iter()
                .map(|w| compress_zstd(&data, level, w).unwrap())
                .collect();
            assert!(frames.iter().all(|f| f == &frames[0]), "level {level}");
            assert_eq!(zstd::decode_all(frames[0].as_slice()).unwrap(), data);
        }
    }
}
