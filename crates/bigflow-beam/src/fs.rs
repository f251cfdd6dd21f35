//! Where pipelines' files live: local paths and Cloud Storage
//! (`gs://bucket/object`), behind the few operations the text and Parquet
//! sources and sinks need, so that they read and write both the same way on
//! the DirectRunner and on a runner's workers.
//!
//! | operation | local path | `gs://bucket/object` |
//! |---|---|---|
//! | [`expand`] a glob | files matching it | objects listed under the glob's literal prefix whose names match it (`*` stops at `/`, `**` crosses it) |
//! | [`open`] at an offset | the file, seeked | ranged downloads, the next range fetched while one is read |
//! | [`create`] | the file | a local temporary file, uploaded by [`Output::commit`] (one request up to 8 MiB, else a resumable upload in 8 MiB chunks): the object appears only complete |
//! | [`rename`] | `rename(2)` | server-side rewrite, then delete |
//! | [`TempDir`] | a directory | an object prefix; its objects are deleted when it is dropped |
//!
//! Paths are [`Path`]s in both cases: a `gs://` URL is kept as its text
//! (`Path::join` and `Path::parent` work on it as on a local path). Other
//! URL schemes are refused with an error.
//!
//! Cloud Storage (feature `gcs`) is bigflow-gcp's client: retries with
//! backoff, typed errors. Blocking pipeline code calls it on one
//! process-wide tokio runtime of two threads. Credentials: none when
//! `STORAGE_EMULATOR_HOST` names an emulator (as Google's own clients do);
//! otherwise bigflow's auth settings from the environment (`bf_auth_method`,
//! `bf_service_account_key_file`, `bf_vault_*`), by default application
//! default credentials — the gcloud user on a laptop, the worker's service
//! account on Dataflow.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

/// A file a glob matched.
#[derive(Debug, Clone)]
pub(crate) struct FileInfo {
    pub path: PathBuf,
    /// Bytes (as stored).
    pub size: u64,
    /// Whether the bytes are gzip: a `.gz` name, or a Cloud Storage object
    /// stored with `Content-Encoding: gzip`.
    pub gzip: bool,
}

/// Whether `path` is a Cloud Storage URL.
pub(crate) fn is_gcs(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("gs://"))
}

/// Whether a name ends in `.gz`.
pub(crate) fn has_gz_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Refuses URLs of schemes other than `gs://` (they would be read as
/// relative local paths).
fn check_scheme(path: &str) -> Result<()> {
    if let Some((scheme, _)) = path.split_once("://")
        && scheme != "gs"
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+')
    {
        bail!("'{path}': {scheme}:// is not supported; use a local path or gs://bucket/path");
    }
    Ok(())
}

/// The files matching `pattern` (a path or glob, local or `gs://`), sorted
/// by path; an error if none.
pub(crate) fn expand(label: &str, pattern: &str) -> Result<Vec<FileInfo>> {
    check_scheme(pattern).map_err(|e| anyhow!("transform '{label}': {e}"))?;
    let files = if pattern.starts_with("gs://") {
        gcs::expand(label, pattern)?
    } else {
        expand_local(label, pattern)?
    };
    if files.is_empty() {
        if pattern.starts_with("gs://") {
            bail!(
                "transform '{label}': no objects match '{pattern}'; check the bucket and the object names"
            );
        }
        bail!(
            "transform '{label}': no files match '{pattern}'; check the path (relative paths are relative to the working directory)"
        );
    }
    Ok(files)
}

fn expand_local(label: &str, pattern: &str) -> Result<Vec<FileInfo>> {
    let paths = glob::glob(pattern)
        .map_err(|e| anyhow!("transform '{label}': invalid file pattern '{pattern}': {e}"))?;
    let mut files = Vec::new();
    for p in paths {
        let p = p.map_err(|e| {
            anyhow!(
                "transform '{label}': cannot read {}: {}",
                e.path().display(),
                e.error()
            )
        })?;
        if p.is_file() {
            let size = std::fs::metadata(&p)
                .map_err(|e| anyhow!("transform '{label}': cannot read {}: {e}", p.display()))?
                .len();
            let gzip = has_gz_extension(&p);
            files.push(FileInfo {
                path: p,
                size,
                gzip,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Reads `path` from byte `offset`; `until` is where the caller expects
/// to stop (it may read a little further), to size remote reads.
pub(crate) fn open(path: &Path, offset: u64, until: u64) -> std::io::Result<Box<dyn Read + Send>> {
    if is_gcs(path) {
        return gcs::open(path, offset, until);
    }
    let mut file = std::fs::File::open(path)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    Ok(Box::new(file))
}

/// A file being written; it exists under its name only after
/// [`Output::commit`] (for Cloud Storage: a dropped output uploads nothing).
pub(crate) struct Output {
    file: std::fs::File,
    /// For Cloud Storage: the object to upload the local file to.
    upload: Option<(PathBuf, tempfile::TempPath)>,
}

/// Creates (or truncates) `path` for writing.
pub(crate) fn create(path: &Path) -> Result<Output> {
    check_scheme(&path.to_string_lossy())?;
    if is_gcs(path) {
        gcs::split(path)?;
        let (file, temp) = tempfile::Builder::new()
            .prefix(".bigflow-upload-")
            .tempfile()
            .map_err(|e| anyhow!("cannot create a local temporary file to upload: {e}"))?
            .into_parts();
        return Ok(Output {
            file,
            upload: Some((path.to_path_buf(), temp)),
        });
    }
    Ok(Output {
        file: std::fs::File::create(path)?,
        upload: None,
    })
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Output {
    /// Finishes the file: for Cloud Storage, uploads it.
    pub fn commit(mut self) -> Result<()> {
        self.file.flush()?;
        match self.upload.take() {
            None => Ok(()),
            Some((dest, _temp)) => gcs::upload(&mut self.file, &dest),
        }
    }
}

/// Creates a local directory and its parents; nothing for Cloud Storage,
/// which has no directories.
pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    if is_gcs(path) {
        gcs::split(path)?;
        return Ok(());
    }
    Ok(std::fs::create_dir_all(path)?)
}

/// Moves `from` to `to` (replacing it), both local or both `gs://`.
#[cfg_attr(not(feature = "portable"), allow(dead_code))]
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    rename_all(&[(from.to_path_buf(), to.to_path_buf())])
}

/// Moves each `(from, to)`; Cloud Storage moves run concurrently.
pub(crate) fn rename_all(moves: &[(PathBuf, PathBuf)]) -> Result<()> {
    let mut remote = Vec::new();
    for (from, to) in moves {
        match (is_gcs(from), is_gcs(to)) {
            (false, false) => std::fs::rename(from, to)?,
            (true, true) => remote.push((from.clone(), to.clone())),
            _ => bail!(
                "cannot move {} to {}: both must be local or both gs://",
                from.display(),
                to.display()
            ),
        }
    }
    if !remote.is_empty() {
        gcs::rename_all(remote)?;
    }
    Ok(())
}

/// Removes a directory and what it holds (for Cloud Storage: every object
/// under `path/`). A missing directory is no error.
#[cfg_attr(not(feature = "portable"), allow(dead_code))]
pub(crate) fn remove_dir_all(path: &Path) -> Result<()> {
    if is_gcs(path) {
        return gcs::remove_prefix(path);
    }
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A uniquely named temporary directory in `dir`, removed with what it
/// holds when dropped.
pub(crate) enum TempDir {
    Local(tempfile::TempDir),
    Gcs(PathBuf),
}

impl TempDir {
    /// A new directory `dir/<prefix><random>`.
    pub fn new_in(dir: &Path, prefix: &str) -> Result<TempDir> {
        if is_gcs(dir) {
            gcs::split(dir)?;
            let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
            return Ok(TempDir::Gcs(dir.join(name)));
        }
        Ok(TempDir::Local(
            tempfile::Builder::new().prefix(prefix).tempdir_in(dir)?,
        ))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        match self {
            TempDir::Local(t) => t.path(),
            TempDir::Gcs(p) => p,
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let TempDir::Gcs(p) = self
            && let Err(e) = gcs::remove_prefix(p)
        {
            tracing::warn!(
                "cannot remove the temporary objects {}/: {e:#}",
                p.display()
            );
        }
    }
}

/// Cloud Storage through bigflow-gcp.
#[cfg(feature = "gcs")]
mod gcs {
    use std::future::Future;
    use std::io::{Read, Seek, SeekFrom};
    use std::path::{Path, PathBuf};
    use std::sync::mpsc::{Receiver, sync_channel};
    use std::sync::{Arc, Mutex, OnceLock};

    use anyhow::{Result, anyhow, bail};
    use bigflow_gcp::storage::{Storage, StorageError, UPLOAD_CHUNK, UploadState};
    use bigflow_gcp::{AuthFlags, AuthSources, TokenSource, resolve_auth};

    use super::FileInfo;

    /// The most bytes one download asks for.
    const MAX_FETCH: u64 = 8 << 20;
    /// Read past a range's end to finish its last line.
    const LOOKAHEAD: u64 = 64 << 10;
    /// Downloads after a range's end (finishing a long last line).
    const TAIL_FETCH: u64 = 256 << 10;
    /// Moves and deletes at a time.
    const CONCURRENCY: usize = 16;

    /// The runtime every Cloud Storage call runs on.
    fn runtime() -> Result<&'static tokio::runtime::Runtime> {
        static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
            OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("bigflow-gcs")
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| anyhow!("cannot start the Cloud Storage client's runtime: {e}"))
    }

    /// Starts `f` on the runtime; its result arrives on the receiver.
    fn start<T: Send + 'static>(
        f: impl Future<Output = T> + Send + 'static,
    ) -> Result<Receiver<T>> {
        let (tx, rx) = sync_channel(1);
        runtime()?.spawn(async move {
            let _ = tx.send(f.await);
        });
        Ok(rx)
    }

    /// Runs `f` on the runtime and waits for it: callable from any thread,
    /// also one inside another tokio runtime.
    fn block<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Result<T> {
        start(f)?
            .recv()
            .map_err(|_| anyhow!("a Cloud Storage request stopped without an answer"))
    }

    /// The client for the current endpoint (built once per endpoint).
    fn client() -> Result<Storage> {
        static CLIENT: Mutex<Option<(Option<String>, std::result::Result<Storage, String>)>> =
            Mutex::new(None);
        let emulator = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        let mut cached = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((endpoint, client)) = &*cached
            && *endpoint == emulator
        {
            return client.clone().map_err(anyhow::Error::msg);
        }
        let client = build_client(emulator.as_deref()).map_err(|e| format!("{e:#}"));
        *cached = Some((emulator, client.clone()));
        client.map_err(anyhow::Error::msg)
    }

    fn build_client(emulator: Option<&str>) -> Result<Storage> {
        let auth = if emulator.is_some() {
            TokenSource::none()
        } else {
            let flags = AuthFlags::default();
            let method = resolve_auth(&AuthSources {
                flags: &flags,
                command_line: false,
                env_prefix: "bf_",
                config: &|_| None,
                config_name: "the environment",
            })?;
            // Built on the runtime that refreshes its tokens.
            block(async move { TokenSource::new(&method).await })?
                .map_err(|e| anyhow!("Cloud Storage credentials: {e}"))?
        };
        Ok(Storage::new(emulator, auth)?)
    }

    /// `gs://bucket/object` → (`bucket`, `object`); the object may be empty.
    pub(super) fn split(path: &Path) -> Result<(String, String)> {
        let text = path.to_string_lossy();
        let rest = text
            .strip_prefix("gs://")
            .ok_or_else(|| anyhow!("'{text}' is not a gs:// path"))?;
        let (bucket, object) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("'{text}' names no bucket (gs://bucket/path)");
        }
        Ok((bucket.to_string(), object.to_string()))
    }

    fn info(bucket: &str, o: bigflow_gcp::storage::ObjectInfo) -> FileInfo {
        let path = PathBuf::from(format!("gs://{bucket}/{}", o.name));
        let gzip = super::has_gz_extension(&path)
            || o.content_encoding
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        FileInfo {
            path,
            size: o.size,
            gzip,
        }
    }

    pub(super) fn expand(label: &str, pattern: &str) -> Result<Vec<FileInfo>> {
        let (bucket, object) = split(Path::new(pattern))?;
        let storage = client()?;
        let Some(wild) = object.find(['*', '?', '[']) else {
            // One object: its metadata.
            let (s, b, o) = (storage, bucket.clone(), object.clone());
            return match block(async move { s.object(&b, &o).await })? {
                Ok(o) => Ok(vec![info(&bucket, o)]),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(anyhow!("transform '{label}': {e}")),
            };
        };
        let glob = glob::Pattern::new(&object)
            .map_err(|e| anyhow!("transform '{label}': invalid file pattern '{pattern}': {e}"))?;
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let prefix = object[..wild].to_string();
        let (s, b) = (storage, bucket.clone());
        let objects = block(async move { s.list_objects(&b, &prefix).await })?
            .map_err(|e| anyhow!("transform '{label}': {e}"))?;
        Ok(objects
            .into_iter()
            .filter(|o| !o.name.ends_with('/') && glob.matches_with(&o.name, options))
            .map(|o| info(&bucket, o))
            .collect())
    }

    pub(super) fn open(
        path: &Path,
        offset: u64,
        until: u64,
    ) -> std::io::Result<Box<dyn Read + Send>> {
        let (bucket, object) = split(path).map_err(std::io::Error::other)?;
        let storage = client().map_err(std::io::Error::other)?;
        let mut reader = RemoteReader {
            storage,
            bucket,
            object,
            pos: offset,
            until: until.max(offset),
            buf: Vec::new(),
            at: 0,
            next: None,
            eof: false,
        };
        reader.prefetch().map_err(std::io::Error::other)?;
        Ok(Box::new(reader))
    }

    type Fetch = Receiver<std::result::Result<Vec<u8>, StorageError>>;

    /// An object read from an offset by ranged downloads, one ahead.
    pub(super) struct RemoteReader {
        storage: Storage,
        bucket: String,
        object: String,
        /// Where the next download starts.
        pos: u64,
        /// Where the caller expects to stop.
        until: u64,
        buf: Vec<u8>,
        at: usize,
        /// The download under way: its length and answer.
        next: Option<(u64, Fetch)>,
        eof: bool,
    }

    impl RemoteReader {
        /// Starts the next download unless the end is reached.
        fn prefetch(&mut self) -> Result<()> {
            if self.eof || self.next.is_some() {
                return Ok(());
            }
            let len = if self.pos < self.until {
                (self.until - self.pos)
                    .saturating_add(LOOKAHEAD)
                    .min(MAX_FETCH)
            } else {
                TAIL_FETCH
            };
            let (s, b, o, pos) = (
                self.storage.clone(),
                self.bucket.clone(),
                self.object.clone(),
                self.pos,
            );
            let rx = start(async move { s.download_range(&b, &o, pos, len).await })?;
            self.next = Some((len, rx));
            self.pos += len;
            Ok(())
        }
    }

    impl Read for RemoteReader {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.at == self.buf.len() {
                if self.next.is_none() {
                    self.prefetch().map_err(std::io::Error::other)?;
                }
                let Some((len, rx)) = self.next.take() else {
                    return Ok(0);
                };
                let data = rx
                    .recv()
                    .map_err(|_| std::io::Error::other("a download stopped without an answer"))?
                    .map_err(std::io::Error::other)?;
                // A short answer: the object ends there.
                self.eof = (data.len() as u64) < len;
                self.buf = data;
                self.at = 0;
                // Read ahead within the range the caller wants (a whole
                // file: to its end); past it, fetch only on demand.
                if self.pos < self.until {
                    self.prefetch().map_err(std::io::Error::other)?;
                }
                if self.buf.is_empty() {
                    return Ok(0);
                }
            }
            let n = out.len().min(self.buf.len() - self.at);
            out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// The content type an object gets from its name.
    fn content_type(object: &str) -> &'static str {
        let lower = object.to_ascii_lowercase();
        if lower.ends_with(".gz") {
            "application/gzip"
        } else if lower.ends_with(".parquet") {
            "application/vnd.apache.parquet"
        } else if lower.ends_with(".json") || lower.ends_with(".ndjson") {
            "application/x-ndjson"
        } else {
            "text/plain"
        }
    }

    /// Uploads the local file `file` as `dest`.
    pub(super) fn upload(file: &mut std::fs::File, dest: &Path) -> Result<()> {
        let (bucket, object) = split(dest)?;
        if object.is_empty() || object.ends_with('/') {
            bail!("'{}' names no object", dest.display());
        }
        let storage = client()?;
        let size = file.metadata()?.len();
        file.seek(SeekFrom::Start(0))?;
        let kind = content_type(&object);
        if size <= UPLOAD_CHUNK as u64 {
            let mut data = Vec::with_capacity(size as usize);
            file.read_to_end(&mut data)?;
            block(async move { storage.upload(&bucket, &object, data, kind).await })??;
            return Ok(());
        }
        let (s, b, o) = (storage.clone(), bucket.clone(), object.clone());
        let session = block(async move { s.start_upload(&b, &o, kind).await })??;
        let session = Arc::new(session);
        let mut offset = 0u64;
        let mut stalled = 0;
        loop {
            let n = (size - offset).min(UPLOAD_CHUNK as u64);
            let mut chunk = vec![0; n as usize];
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut chunk)?;
            let last = offset + n == size;
            let (s, up) = (storage.clone(), session.clone());
            let state = block(async move {
                s.upload_chunk(&up, offset, chunk, last.then_some(size))
                    .await
            })??;
            match state {
                UploadState::Done if last => return Ok(()),
                UploadState::Done => bail!(
                    "Cloud Storage upload of {}: the server ended the upload at byte {} of {size}",
                    dest.display(),
                    offset + n
                ),
                UploadState::Persisted(p) => {
                    stalled = if p > offset { 0 } else { stalled + 1 };
                    if stalled > 3 || p > size {
                        bail!(
                            "Cloud Storage upload of {}: the server keeps {p} of {size} bytes and takes no more",
                            dest.display()
                        );
                    }
                    if p == size {
                        // Everything is there: complete the upload.
                        let (s, up) = (storage.clone(), session.clone());
                        let state = block(async move {
                            s.upload_chunk(&up, size, Vec::new(), Some(size)).await
                        })??;
                        if state == UploadState::Done {
                            return Ok(());
                        }
                        stalled += 1;
                    }
                    offset = p.min(size);
                }
            }
        }
    }

    /// Runs `op` on every item, [`CONCURRENCY`] at a time; the first error.
    fn for_each<I: Send + 'static, F>(
        items: Vec<I>,
        op: impl Fn(Storage, I) -> F + Send + Sync + 'static,
    ) -> Result<()>
    where
        F: Future<Output = std::result::Result<(), StorageError>> + Send + 'static,
    {
        let storage = client()?;
        block(async move {
            let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
            let mut tasks = tokio::task::JoinSet::new();
            for item in items {
                let permit = limit.clone().acquire_owned().await;
                let work = op(storage.clone(), item);
                tasks.spawn(async move {
                    let _permit = permit;
                    work.await
                });
            }
            let mut first: Option<anyhow::Error> = None;
            while let Some(done) = tasks.join_next().await {
                let outcome = done
                    .map_err(|e| anyhow!("a Cloud Storage task failed: {e}"))
                    .and_then(|r| r.map_err(anyhow::Error::from));
                if let Err(e) = outcome {
                    first.get_or_insert(e);
                }
            }
            first.map_or(Ok(()), Err)
        })?
    }

    pub(super) fn rename_all(moves: Vec<(PathBuf, PathBuf)>) -> Result<()> {
        let mut named = Vec::with_capacity(moves.len());
        for (from, to) in moves {
            let (fb, fo) = split(&from)?;
            let (tb, to_name) = split(&to)?;
            if to_name.is_empty() || to_name.ends_with('/') {
                bail!("'{}' names no object", to.display());
            }
            named.push((fb, fo, tb, to_name));
        }
        for_each(named, |s, (fb, fo, tb, to)| async move {
            s.rewrite(&fb, &fo, &tb, &to).await?;
            match s.delete(&fb, &fo).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        })
    }

    pub(super) fn remove_prefix(path: &Path) -> Result<()> {
        let (bucket, object) = split(path)?;
        let prefix = if object.is_empty() || object.ends_with('/') {
            object
        } else {
            format!("{object}/")
        };
        let storage = client()?;
        let b = bucket.clone();
        let objects = block(async move { storage.list_objects(&b, &prefix).await })??;
        let names: Vec<(String, String)> = objects
            .into_iter()
            .map(|o| (bucket.clone(), o.name))
            .collect();
        for_each(names, |s, (b, o)| async move {
            match s.delete(&b, &o).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        })
    }

    /// An object for Parquet's reader: its size and ranged reads.
    #[cfg(feature = "parquet")]
    pub(crate) struct RemoteFile {
        storage: Storage,
        path: PathBuf,
        bucket: String,
        object: String,
        size: u64,
    }

    #[cfg(feature = "parquet")]
    impl RemoteFile {
        pub fn open(path: &Path, size: u64) -> Result<RemoteFile> {
            let (bucket, object) = split(path)?;
            Ok(RemoteFile {
                storage: client()?,
                path: path.to_path_buf(),
                bucket,
                object,
                size,
            })
        }

        pub fn size(&self) -> u64 {
            self.size
        }

        pub fn reader(&self, start: u64) -> std::io::Result<Box<dyn Read + Send>> {
            open(&self.path, start, self.size)
        }

        pub fn bytes(&self, start: u64, len: usize) -> Result<Vec<u8>> {
            let (s, b, o) = (
                self.storage.clone(),
                self.bucket.clone(),
                self.object.clone(),
            );
            let data = block(async move { s.download_range(&b, &o, start, len as u64).await })??;
            if data.len() != len {
                bail!(
                    "{}: {len} bytes at {start} asked for, {} came",
                    self.path.display(),
                    data.len()
                );
            }
            Ok(data)
        }
    }
}

/// Without the `gcs` feature: every `gs://` path is an error saying so.
#[cfg(not(feature = "gcs"))]
mod gcs {
    use std::io::Read;
    use std::path::{Path, PathBuf};

    use anyhow::{Result, bail};

    use super::FileInfo;

    fn unsupported<T>(path: &Path) -> Result<T> {
        bail!(
            "'{}': reading and writing gs:// needs bigflow-beam's 'gcs' feature, which this binary was built without",
            path.display()
        )
    }

    pub(super) fn split(path: &Path) -> Result<(String, String)> {
        unsupported(path)
    }
    pub(super) fn expand(_label: &str, pattern: &str) -> Result<Vec<FileInfo>> {
        unsupported(Path::new(pattern))
    }
    pub(super) fn open(
        path: &Path,
        _offset: u64,
        _until: u64,
    ) -> std::io::Result<Box<dyn Read + Send>> {
        unsupported(path).map_err(std::io::Error::other)
    }
    pub(super) fn upload(_file: &mut std::fs::File, dest: &Path) -> Result<()> {
        unsupported(dest)
    }
    pub(super) fn rename_all(moves: Vec<(PathBuf, PathBuf)>) -> Result<()> {
        unsupported(moves.first().map_or(Path::new("gs://"), |m| &m.0))
    }
    pub(super) fn remove_prefix(path: &Path) -> Result<()> {
        unsupported(path)
    }
}

#[cfg(all(feature = "gcs", feature = "parquet"))]
pub(crate) use gcs::RemoteFile;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_text_through_path_operations() {
        let shard = PathBuf::from("gs://bucket/out/counts-00000-of-00002");
        assert!(is_gcs(&shard));
        let dir = shard.parent().unwrap();
        assert_eq!(dir, Path::new("gs://bucket/out"));
        assert_eq!(
            dir.join(".bigflow-temp-x")
                .join("shard-0")
                .display()
                .to_string(),
            "gs://bucket/out/.bigflow-temp-x/shard-0"
        );
        assert!(!is_gcs(Path::new("out/gs://x")));
    }

    #[test]
    fn other_schemes_are_refused() {
        let e = expand("Read", "s3://bucket/x.txt").unwrap_err().to_string();
        assert!(e.contains("s3:// is not supported"), "{e}");
        assert!(create(Path::new("hdfs://nn/x")).is_err());
        assert!(check_scheme("C:/data/x.txt").is_ok());
    }

    #[test]
    fn cloud_storage_globs_match_as_local_ones() {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let m = |p: &str, name: &str| glob::Pattern::new(p).unwrap().matches_with(name, options);
        assert!(m("in/*.txt", "in/a.txt"));
        assert!(!m("in/*.txt", "in/sub/a.txt"));
        assert!(m("in/**/*.txt", "in/sub/deeper/a.txt"));
        assert!(m("in/**/*.txt", "in/a.txt"));
        assert!(m("in/part-?????", "in/part-00001"));
        assert!(!m("in/*", "in/.bigflow-temp-1/shard-0"));
    }

    #[cfg(feature = "gcs")]
    #[test]
    fn bucket_and_object_come_apart() {
        assert_eq!(
            gcs::split(Path::new("gs://b/a/c.txt")).unwrap(),
            ("b".to_string(), "a/c.txt".to_string())
        );
        assert_eq!(
            gcs::split(Path::new("gs://b")).unwrap(),
            ("b".to_string(), String::new())
        );
        assert!(gcs::split(Path::new("gs:///x")).is_err());
    }
}
