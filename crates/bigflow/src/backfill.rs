//! Local backfills: a workflow run for every runtime its schedule produces in
//! a range, oldest first, with a run history under `.bigflow/runs/` so a
//! second call resumes where the first stopped.
//!
//! The history is one JSON Lines file per workflow
//! (`.bigflow/runs/<workflow_id>.jsonl`), appended after each runtime: the
//! runtime, the configuration environment, the status and when it finished.
//! A runtime counts as done for an environment when its latest record there
//! says `succeeded`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use bigflow_core::runtime::{Runtime, format_runtime, parse_runtime};

/// The most runtimes one backfill may have.
pub const MAX_RUNTIMES: usize = 10_000;

/// The directory of run histories, relative to the project directory.
pub const HISTORY_DIR: &str = ".bigflow/runs";

/// One line of a workflow's run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The runtime, `YYYY-MM-DD HH:MM:SS`.
    pub runtime: String,
    /// The configuration environment it ran with.
    pub config: String,
    /// `succeeded`, `failed`, `timed out`, `skipped` (a job's worst status).
    pub status: String,
    /// When the run ended (local time, `YYYY-MM-DD HH:MM:SS`).
    pub finished_at: String,
}

/// A workflow's run history on disk.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
    /// Latest status per (runtime, config).
    latest: HashMap<(String, String), String>,
}

impl History {
    /// The history of `workflow_id` under `project_dir`; missing means empty.
    /// Lines that are not records are skipped with a warning.
    pub fn load(project_dir: &Path, workflow_id: &str) -> std::io::Result<History> {
        let path = project_dir
            .join(HISTORY_DIR)
            .join(format!("{workflow_id}.jsonl"));
        let mut latest = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Record>(line) {
                        Ok(r) => {
                            latest.insert((r.runtime, r.config), r.status);
                        }
                        Err(e) => tracing::warn!(
                            "{}:{}: not a run record, ignored: {e}",
                            path.display(),
                            n + 1
                        ),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(History { path, latest })
    }

    /// The file the history lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the latest run of `runtime` with `config` succeeded.
    pub fn succeeded(&self, runtime: &Runtime, config: &str) -> bool {
        self.latest
            .get(&(format_runtime(runtime), config.to_string()))
            .is_some_and(|s| s == "succeeded")
    }

    /// Appends a record (and remembers it).
    pub fn record(&mut self, runtime: &Runtime, config: &str, status: &str) -> std::io::Result<()> {
        let record = Record {
            runtime: format_runtime(runtime),
            config: config.to_string(),
            status: status.to_string(),
            finished_at: format_runtime(&bigflow_core::runtime::now()),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_string(&record).map_err(std::io::Error::other)?;
        line.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?
            .write_all(line.as_bytes())?;
        self.latest
            .insert((record.runtime, record.config), record.status);
        Ok(())
    }
}

/// Parses a range bound given as `flag`; the error names the flag.
pub fn parse_bound(flag: &str, text: &str) -> Result<Runtime, String> {
    parse_runtime(text).map_err(|e| format!("{flag}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_latest_status_per_runtime_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let t = parse_runtime("2020-01-31").unwrap();
        let mut h = History::load(dir.path(), "wf").unwrap();
        assert!(!h.succeeded(&t, "dev"));
        h.record(&t, "dev", "failed").unwrap();
        h.record(&t, "dev", "succeeded").unwrap();
        h.record(&t, "prod", "failed").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(h.path())
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        let h = History::load(dir.path(), "wf").unwrap();
        assert!(h.succeeded(&t, "dev"));
        assert!(!h.succeeded(&t, "prod"));
        assert_eq!(h.path(), dir.path().join(".bigflow/runs/wf.jsonl"));
    }

    #[test]
    fn bounds_name_their_flag() {
        let e = parse_bound("--end-time", "2020-13-01").unwrap_err();
        assert!(
            e.starts_with("--end-time: invalid runtime '2020-13-01'"),
            "{e}"
        );
    }
}
