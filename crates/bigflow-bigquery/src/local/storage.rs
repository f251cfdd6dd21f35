//! The warehouse's files: one directory per table, one manifest per table.
//!
//! ```text
//! <root>/<project>/<dataset>/<table>/_manifest.json   schema, partitioning, labels, data files
//!                                    data/*.parquet   files the manifest lists
//!                                    .tmp/            files being written
//!                                    .lock            taken while the manifest changes
//! ```
//!
//! A write stages its Parquet files under `.tmp/` without any lock, then,
//! holding the table's lock, moves them into `data/` and replaces the
//! manifest by writing a new one and renaming it over the old. Readers only
//! read the manifest, so they see the table before or after a write, never
//! in between; a process killed at any point leaves the previous manifest and
//! the files it lists. Writes to different tables never wait for each other;
//! writes to the same table (different partitions, or appends) wait only for
//! the short manifest update. Files a write replaces stay on disk for a grace
//! period so queries already reading them finish, then a later commit of the
//! same table deletes them along with files no manifest lists.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::backend::Partitioning;
use crate::error::{BqError, Result};
use crate::names::TableId;
use crate::schema::Field;

/// How long replaced files are kept for queries still reading them.
const GRACE: Duration = Duration::from_secs(600);

/// A data file of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// File name under `data/`.
    pub name: String,
    /// `YYYYMMDD`, `__NULL__`, or `None` in an unpartitioned table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Replaces `path` with `value` as JSON, atomically: written and synced
/// beside it under a temporary name, then renamed over it.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}", unique_name("json")));
    let json = serde_json::to_vec_pretty(value).map_err(|e| {
        BqError::io(
            &tmp,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    let mut f = File::create(&tmp).map_err(|e| BqError::io(&tmp, e))?;
    f.write_all(&json).map_err(|e| BqError::io(&tmp, e))?;
    f.sync_all().map_err(|e| BqError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| BqError::io(path, e))
}

/// A JSON file as `T`; `None` if there is no such file.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            BqError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BqError::io(path, e)),
    }
}

/// A view: its query, and the dataset its bare table names are in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    /// The `SELECT`.
    pub sql: String,
    /// Project of `dataset.table` names in it.
    pub default_project: String,
    /// Dataset of bare names in it.
    pub default_dataset: String,
}

/// A replaced file awaiting deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Garbage {
    /// File name under `data/`.
    pub name: String,
    /// When it was replaced (seconds since the epoch).
    pub since: u64,
}

/// A table's manifest: everything about it but the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Increases with every commit.
    pub version: u64,
    /// Columns.
    pub schema: Vec<Field>,
    /// Day partitioning.
    #[serde(default)]
    pub partitioning: Option<Partitioning>,
    /// Table labels.
    #[serde(default)]
    pub labels: IndexMap<String, String>,
    /// Current data files.
    #[serde(default)]
    pub files: Vec<DataFile>,
    /// Replaced files, deleted after the grace period.
    #[serde(default)]
    pub garbage: Vec<Garbage>,
}

impl Manifest {
    /// A new empty table.
    pub fn new(
        schema: Vec<Field>,
        partitioning: Option<Partitioning>,
        labels: IndexMap<String, String>,
    ) -> Self {
        Manifest {
            version: 0,
            schema,
            partitioning,
            labels,
            files: vec![],
            garbage: vec![],
        }
    }

    /// Rows in the table.
    pub fn num_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Moves the files of `partition` (all files when `None`) to the garbage list.
    pub fn drop_files(&mut self, partition: Option<&str>) {
        let now = now_secs();
        let (gone, kept): (Vec<DataFile>, Vec<DataFile>) = self
            .files
            .drain(..)
            .partition(|f| partition.is_none() || f.partition.as_deref() == partition);
        self.files = kept;
        self.garbage.extend(gone.into_iter().map(|f| Garbage {
            name: f.name,
            since: now,
        }));
    }
}

/// `new` replacing `old` (if any): the old files become garbage.
pub fn replace(old: Option<Manifest>, mut new: Manifest) -> Manifest {
    if let Some(mut old) = old {
        old.drop_files(None);
        new.garbage = old.garbage;
    }
    new
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A file written under `.tmp/`, not yet part of the table.
#[derive(Debug)]
pub struct Staged {
    /// Its path under `.tmp/`.
    pub path: PathBuf,
    /// Its entry once committed.
    pub file: DataFile,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Committed files were moved away; anything still here is abandoned.
        let _ = fs::remove_file(&self.path);
    }
}

/// The warehouse directory.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other writer uses: process id, time, counter.
pub fn unique_name(ext: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}.{ext}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Storage {
    /// The warehouse at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Storage { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A dataset's directory.
    pub fn dataset_dir(&self, project: &str, dataset: &str) -> PathBuf {
        self.root.join(project).join(dataset)
    }

    /// A table's directory.
    pub fn table_dir(&self, id: &TableId) -> PathBuf {
        self.dataset_dir(&id.project, &id.dataset).join(&id.table)
    }

    /// The path of a committed data file.
    pub fn data_path(&self, id: &TableId, name: &str) -> PathBuf {
        self.table_dir(id).join("data").join(name)
    }

    /// The table's manifest, `None` if the table does not exist.
    pub fn read_manifest(&self, id: &TableId) -> Result<Option<Manifest>> {
        read_json(&self.table_dir(id).join("_manifest.json"))
    }

    /// Checks that every data file `m` lists is there, readable, with the
    /// size it was written with: a missing file must not read as an empty
    /// table (and then be overwritten by the next write), so every read and
    /// write of a damaged table fails with [`BqError::Damaged`].
    pub fn check_files(&self, id: &TableId, m: &Manifest) -> Result<()> {
        for f in &m.files {
            let path = self.data_path(id, &f.name);
            let damaged = |problem: String| BqError::Damaged {
                table: id.to_string(),
                file: path.display().to_string(),
                problem,
            };
            let len = match File::open(&path).and_then(|file| file.metadata()) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(damaged("is missing".into()));
                }
                Err(e) => return Err(damaged(format!("cannot be read ({e})"))),
            };
            // Files of old manifests may not have their size (0).
            if f.bytes != 0 && len != f.bytes {
                return Err(damaged(format!(
                    "has {len} bytes, but {} were written",
                    f.bytes
                )));
            }
        }
        Ok(())
    }

    /// A view's definition, `None` if there is no view of that name.
    pub fn read_view(&self, id: &TableId) -> Result<Option<ViewDef>> {
        read_json(&self.table_dir(id).join("_view.json"))
    }

    /// Writes (atomically, by rename) or, with `None`, removes a view.
    pub fn write_view(&self, id: &TableId, view: Option<&ViewDef>) -> Result<()> {
        let dir = self.table_dir(id);
        let path = dir.join("_view.json");
        let Some(view) = view else {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BqError::io(&path, e)),
                _ => Ok(()),
            };
        };
        fs::create_dir_all(&dir).map_err(|e| BqError::io(&dir, e))?;
        write_json(&path, view)
    }

    /// A path under the table's `.tmp/` for a new file.
    pub fn staging_path(&self, id: &TableId) -> Result<PathBuf> {
        let dir = self.table_dir(id).join(".tmp");
        fs::create_dir_all(&dir).map_err(|e| BqError::io(&dir, e))?;
        Ok(dir.join(unique_name("parquet")))
    }

    /// Holding the table's lock: reads the manifest, lets `change` edit it
    /// (`None` for a table that does not exist yet), moves `staged` files into
    /// `data/` and the manifest into place. `change` returning `Ok(None)`
    /// deletes the table.
    pub fn commit<T>(
        &self,
        id: &TableId,
        staged: Vec<Staged>,
        change: impl FnOnce(Option<Manifest>) -> Result<(Option<Manifest>, T)>,
    ) -> Result<T> {
        let dir = self.table_dir(id);
        fs::create_dir_all(dir.join("data")).map_err(|e| BqError::io(&dir, e))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| BqError::io(&lock_path, e))?;
        lock.lock().map_err(|e| BqError::io(&lock_path, e))?;
        let current = self.read_manifest(id)?;
        let existed = current.is_some();
        let previous_version = current.as_ref().map(|m| m.version).unwrap_or(0);
        // A damaged table may only be deleted: any other commit would
        // replace the files it names or put them on the garbage list.
        let damage = match &current {
            Some(m) => self.check_files(id, m).err(),
            None => None,
        };
        let (next, out) = change(current)?;
        let manifest_path = dir.join("_manifest.json");
        if let (Some(e), Some(_)) = (damage, &next) {
            return Err(e);
        }
        match next {
            Some(mut m) => {
                m.version = previous_version + 1;
                for s in &staged {
                    let target = dir.join("data").join(&s.file.name);
                    fs::rename(&s.path, &target).map_err(|e| BqError::io(&target, e))?;
                    m.files.push(s.file.clone());
                }
                let now = now_secs();
                let (expired, kept): (Vec<Garbage>, Vec<Garbage>) = m
                    .garbage
                    .drain(..)
                    .partition(|g| now.saturating_sub(g.since) >= GRACE.as_secs());
                m.garbage = kept;
                write_json(&manifest_path, &m)?;
                // Only now is it safe to delete: expired garbage and files no
                // manifest lists; never a file the new manifest still lists.
                for g in expired {
                    if !m.files.iter().any(|f| f.name == g.name) {
                        let _ = fs::remove_file(dir.join("data").join(&g.name));
                    }
                }
                self.remove_orphans(&dir, &m);
            }
            None => {
                if existed {
                    // Renaming the manifest away deletes the table in one step.
                    let trash = dir.join(format!(".deleted-{}", unique_name("json")));
                    fs::rename(&manifest_path, &trash)
                        .map_err(|e| BqError::io(&manifest_path, e))?;
                    drop(lock);
                    let _ = fs::remove_dir_all(&dir);
                    return Ok(out);
                }
            }
        }
        drop(staged);
        drop(lock);
        Ok(out)
    }

    fn remove_orphans(&self, dir: &Path, m: &Manifest) {
        let Ok(entries) = fs::read_dir(dir.join("data")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let listed =
                m.files.iter().any(|f| f.name == name) || m.garbage.iter().any(|g| g.name == name);
            if !listed {
                let _ = fs::remove_file(entry.path());
            }
        }
        // Staged files of killed writers: older than a day.
        if let Ok(entries) = fs::read_dir(dir.join(".tmp")) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(86_400));
                if old {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Tables of a dataset, sorted.
    pub fn list_tables(&self, project: &str, dataset: &str) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.dataset_dir(project, dataset))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.path().join("_manifest.json").is_file() || e.path().join("_view.json").is_file()
            })
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        out.sort();
        out
    }

    /// Deletes a dataset directory: renamed away first, so it disappears at once.
    pub fn delete_dataset(&self, project: &str, dataset: &str) -> Result<()> {
        let dir = self.dataset_dir(project, dataset);
        if !dir.exists() {
            return Ok(());
        }
        let trash = self
            .root
            .join(project)
            .join(format!(".deleted-{}", unique_name("d")));
        fs::rename(&dir, &trash).map_err(|e| BqError::io(&dir, e))?;
        fs::remove_dir_all(&trash).map_err(|e| BqError::io(&trash, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_manifest_and_cleans_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        let id = TableId::new("p", "d", "t").unwrap();
        assert!(s.read_manifest(&id).unwrap().is_none());
        s.commit(&id, vec![], |m| {
            assert!(m.is_none());
            Ok((
                Some(Manifest::new(
                    vec![Field::new("a", "INT64")],
                    None,
                    IndexMap::new(),
                )),
                (),
            ))
        })
        .unwrap();
        let m = s.read_manifest(&id).unwrap().unwrap();
        assert_eq!(m.version, 1);
        // An orphan (a file of a killed writer that reached data/) is removed by the next commit.
        fs::write(s.table_dir(&id).join("data").join("orphan.parquet"), b"x").unwrap();
        s.commit(&id, vec![], |m| Ok((m, ()))).unwrap();
        assert!(
            !s.table_dir(&id)
                .join("data")
                .join("orphan.parquet")
                .exists()
        );
        assert_eq!(s.list_tables("p", "d"), ["t"]);
        s.commit(&id, vec![], |_| Ok((None, ()))).unwrap();
        assert!(s.read_manifest(&id).unwrap().is_none());
    }

    #[test]
    fn a_damaged_table_is_only_deleted_and_listed_files_are_never_collected() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        let id = TableId::new("p", "d", "t").unwrap();
        let file = |name: &str| DataFile {
            name: name.into(),
            partition: None,
            rows: 1,
            bytes: 1,
        };
        s.commit(&id, vec![], |_| {
            let mut m = Manifest::new(vec![Field::new("a", "INT64")], None, IndexMap::new());
            m.files = vec![file("a.parquet"), file("b.parquet")];
            // A garbage entry, long expired, that names a file still listed.
            m.garbage = vec![Garbage {
                name: "a.parquet".into(),
                since: 0,
            }];
            Ok((Some(m), ()))
        })
        .unwrap();
        let data = s.table_dir(&id).join("data");
        fs::write(data.join("a.parquet"), b"x").unwrap();
        // b.parquet is missing: the table is damaged.
        let m = s.read_manifest(&id).unwrap().unwrap();
        let e = s.check_files(&id, &m).unwrap_err().to_string();
        assert!(
            e.contains("table `p.d.t` is damaged: file") && e.contains("b.parquet is missing"),
            "{e}"
        );
        let e = s.commit(&id, vec![], |m| Ok((m, ()))).unwrap_err();
        assert!(e.to_string().contains("is damaged"), "{e}");
        assert_eq!(s.read_manifest(&id).unwrap().unwrap().version, 1);
        // Back in one piece, a commit keeps a.parquet although its garbage entry expired.
        fs::write(data.join("b.parquet"), b"y").unwrap();
        s.commit(&id, vec![], |m| Ok((m, ()))).unwrap();
        assert!(data.join("a.parquet").exists() && data.join("b.parquet").exists());
        // Deleting a damaged table works.
        fs::remove_file(data.join("b.parquet")).unwrap();
        s.commit(&id, vec![], |_| Ok((None, ()))).unwrap();
        assert!(s.read_manifest(&id).unwrap().is_none());
    }

    #[test]
    fn failed_change_leaves_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        let id = TableId::new("p", "d", "t").unwrap();
        s.commit(&id, vec![], |_| {
            Ok((
                Some(Manifest::new(
                    vec![Field::new("a", "INT64")],
                    None,
                    IndexMap::new(),
                )),
                (),
            ))
        })
        .unwrap();
        let r: Result<()> = s.commit(&id, vec![], |_| Err(BqError::Engine("boom".into())));
        assert!(r.is_err());
        assert_eq!(s.read_manifest(&id).unwrap().unwrap().version, 1);
    }
}
