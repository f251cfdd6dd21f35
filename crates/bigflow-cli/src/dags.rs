//! `build-dags`: one Airflow DAG file per workflow in `.dags/`.
//!
//! The project binary is built and asked for its manifest; the deployment
//! config (`bigflow.toml`) gives the Docker repository; the version comes
//! from git. Files are written to a temporary directory next to the target
//! and swapped in only when every DAG rendered, so a failure never leaves a
//! partial `.dags/`. `image_version.txt` lists the image the DAGs use, so a
//! deploy can check it exists before the DAGs go live.

use std::path::{Path, PathBuf};

use bigflow_airflow::{COMPOSER_NAMESPACE, DagSettings, image_reference, render_dag};
use bigflow_core::runtime::{format_runtime, parse_runtime};
use chrono::{Local, NaiveDateTime, Timelike};

use crate::error::{Result, ToolError};
use crate::project::ProjectDir;
use crate::version::project_version;

/// Where the project binary lives inside the image (resources in `/app/resources`).
pub const IMAGE_BIN_DIR: &str = "/app/bin";

/// The file listing the images the DAGs use.
pub const IMAGE_LIST_FILE: &str = "image_version.txt";

/// Options of `build-dags` (its command-line flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildDagsOptions {
    /// Only this workflow (ALL: every workflow, the default).
    #[arg(long, short = 'w')]
    pub workflow: Option<String>,
    /// The DAGs' start time, 'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD' or NOW (default: the current hour).
    #[arg(long, short = 't')]
    pub start_time: Option<String>,
    /// Deployment environment of bigflow.toml (default: its default environment).
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    /// Output directory (default: .dags in the project).
    #[arg(long, value_name = "DIR")]
    pub dags_dir: Option<PathBuf>,
    /// Use this prebuilt project binary instead of building it with Cargo.
    #[arg(long, value_name = "FILE", conflicts_with = "release")]
    pub binary: Option<PathBuf>,
    /// Build the project binary with --release.
    #[arg(long)]
    pub release: bool,
    /// Repository of the image the DAGs run (default: $bf_docker_repository, then the config's).
    #[arg(long, value_name = "REPO")]
    pub docker_repository: Option<String>,
}

/// The current local hour, BigFlow's default start time.
fn current_hour() -> NaiveDateTime {
    let now = Local::now().naive_local();
    now.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now)
}

/// Builds the DAG files; returns the paths written.
pub fn build_dags(project: &ProjectDir, options: &BuildDagsOptions) -> Result<Vec<PathBuf>> {
    if let Some(dir) = &options.dags_dir {
        // Before the build, so a wrong --dags-dir fails in a second, not minutes.
        check_replaceable(dir)?;
    }
    // BigFlow's CI spelling: `-t NOW` is the default, `-w ALL` every workflow.
    let start = match options.start_time.as_deref() {
        None | Some("NOW") => current_hour(),
        Some(t) => parse_runtime(t).map_err(|e| ToolError::usage(format!("--start-time: {e}")))?,
    };
    let deployment = project
        .deployment
        .resolve(options.config.as_deref())
        .map_err(ToolError::usage)?;
    let repository = crate::deploy::setting(&options.docker_repository, &deployment, "docker_repository").ok_or_else(|| {
        ToolError::usage(format!(
            "{} has no docker_repository for environment '{}'; add docker_repository = \"REGION-docker.pkg.dev/PROJECT/REPO/IMAGE\" under [deployment.{}] (or the master environment), or pass --docker-repository",
            project.root.join(crate::project::PROJECT_FILE).display(),
            deployment.env(),
            deployment.env()
        ))
    })?;
    let version = project_version(&project.root)?;
    let image = image_reference(&repository, &version).map_err(ToolError::usage)?;
    let binary = match &options.binary {
        Some(b) if b.is_file() => b.clone(),
        Some(b) => {
            return Err(ToolError::usage(format!(
                "--binary {}: no such file; build the project first or drop --binary",
                b.display()
            )));
        }
        None => project.build_binary(options.release)?,
    };
    let manifest = project.manifest(&binary, Some(&format_runtime(&start)))?;
    let workflows: Vec<_> = match options.workflow.as_deref().filter(|w| *w != "ALL") {
        Some(id) => {
            let wf = manifest
                .workflows
                .iter()
                .find(|w| w.workflow_id == id)
                .ok_or_else(|| {
                    ToolError::usage(format!(
                        "unknown workflow '{id}'; known workflows: {}",
                        manifest
                            .workflows
                            .iter()
                            .map(|w| w.workflow_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            vec![wf]
        }
        None => manifest.workflows.iter().collect(),
    };
    if workflows.is_empty() {
        return Err(ToolError::usage(
            "the project has no workflows; add one in src/lib.rs",
        ));
    }
    let settings = DagSettings {
        image: image.clone(),
        version,
        build_start: start,
        binary_in_image: format!("{IMAGE_BIN_DIR}/{}", project.binary_name()),
        namespace: COMPOSER_NAMESPACE.to_string(),
    };
    let mut files = Vec::new();
    for wf in workflows {
        let dag = render_dag(wf, &settings).map_err(ToolError::usage)?;
        files.push((dag.file_name, dag.source));
    }
    files.push((IMAGE_LIST_FILE.to_string(), format!("{image}\n")));
    let target = options
        .dags_dir
        .clone()
        .unwrap_or_else(|| project.root.join(".dags"));
    write_atomically(&target, &files)?;
    Ok(files.iter().map(|(name, _)| target.join(name)).collect())
}

/// The file that marks a directory as made by `build-dags`: only a directory
/// holding it (or one that is empty, or holds nothing but DAG files and the
/// image list, as older versions left it) is ever replaced.
pub const DAGS_MARKER: &str = ".bigflow-dags";

/// Replaces `dir` with exactly `files` (plus the marker), never leaving a
/// partial directory, and only if `dir` is absent or was made by bigflow.
fn write_atomically(dir: &Path, files: &[(String, String)]) -> Result<()> {
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        ToolError::failed(format!("cannot {what} {}: {e}", path.display()))
    };
    let existed = check_replaceable(dir)?;
    // Canonical when it exists, so '.', '..' and '/' name a real directory.
    let dir = if existed {
        dir.canonicalize().map_err(|e| fail("resolve", dir, e))?
    } else {
        dir.to_path_buf()
    };
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(refuse(&dir, "it is the file system's root"));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = name.to_string_lossy();
    std::fs::create_dir_all(parent).map_err(|e| fail("create", parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = (|| -> Result<()> {
        std::fs::create_dir(&tmp).map_err(|e| fail("create", &tmp, e))?;
        let marker = (
            DAGS_MARKER.to_string(),
            "Made by `bigflow build-dags`, which replaces this directory on every build.\n"
                .to_string(),
        );
        for (file, text) in files.iter().chain([&marker]) {
            let path = tmp.join(file);
            std::fs::write(&path, text).map_err(|e| fail("write", &path, e))?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if existed {
        std::fs::rename(&dir, &old).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            fail("move aside", &dir, e)
        })?;
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        if existed {
            let _ = std::fs::rename(&old, &dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail("move into place", &dir, e));
    }
    if existed {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Whether `dir` exists (and may be replaced); an error if it exists and
/// bigflow did not make it.
fn check_replaceable(dir: &Path) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(ToolError::usage(format!(
                "cannot inspect the DAG directory {}: {e}",
                dir.display()
            )));
        }
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(dir, "it is a symbolic link"));
    }
    if !meta.is_dir() {
        return Err(refuse(dir, "it is not a directory"));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ToolError::usage(format!(
            "cannot read the DAG directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut foreign = Vec::new();
    let mut marked = false;
    for entry in entries {
        let entry = entry.map_err(|e| {
            ToolError::usage(format!(
                "cannot read the DAG directory {}: {e}",
                dir.display()
            ))
        })?;
        let name = entry.file_name().to_string_lossy().to_string();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if name == DAGS_MARKER && is_file {
            marked = true;
        } else if !(is_file && (name.ends_with("_dag.py") || name == IMAGE_LIST_FILE)) {
            foreign.push(name);
        }
    }
    if marked || foreign.is_empty() {
        return Ok(true);
    }
    foreign.sort();
    let shown = foreign
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join("', '");
    let more = if foreign.len() > 3 {
        format!(" and {} more", foreign.len() - 3)
    } else {
        String::new()
    };
    Err(refuse(
        dir,
        &format!("it holds files bigflow did not make ('{shown}'{more})"),
    ))
}

fn refuse(dir: &Path, why: &str) -> ToolError {
    ToolError::usage(format!(
        "refusing to replace {} with DAG files: {why}; build-dags replaces only a directory it made. Pass --dags-dir with a new or empty directory (default: .dags in the project)",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dags = tmp.path().join(".dags");
        std::fs::create_dir(&dags).unwrap();
        std::fs::write(dags.join("stale_dag.py"), "old").unwrap();
        write_atomically(&dags, &[("a_dag.py".into(), "new".into())]).unwrap();
        assert_eq!(names(&dags), [DAGS_MARKER, "a_dag.py"]);
        assert_eq!(names(tmp.path()), [".dags"]);
        // A directory with the marker is bigflow's, whatever else it holds.
        std::fs::write(dags.join("notes.txt"), "x").unwrap();
        write_atomically(&dags, &[("b_dag.py".into(), "new".into())]).unwrap();
        assert_eq!(names(&dags), [DAGS_MARKER, "b_dag.py"]);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    fn refused(dir: &Path) -> String {
        let e = write_atomically(dir, &[("a_dag.py".into(), "new".into())]).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn refuses_what_bigflow_did_not_make_and_touches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(root.join("bigflow.toml"), "[project]").unwrap();
        std::fs::create_dir(root.join("src")).unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        let before = names(root);

        let e = refused(&root.join("src"));
        assert!(
            e.contains("holds files bigflow did not make ('main.rs')"),
            "{e}"
        );
        assert!(e.contains("refusing to replace"), "{e}");
        let e = refused(root);
        assert!(e.contains("('bigflow.toml', 'src')"), "{e}");
        let e = refused(&root.join("bigflow.toml"));
        assert!(e.contains("it is not a directory"), "{e}");
        let e = refused(Path::new("/dev/null"));
        assert!(e.contains("it is not a directory"), "{e}");
        let e = refused(Path::new("/"));
        assert!(e.contains("refusing to replace /"), "{e}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("src"), root.join("link")).unwrap();
            let e = refused(&root.join("link"));
            assert!(e.contains("symbolic link"), "{e}");
            std::fs::remove_file(root.join("link")).unwrap();
        }
        assert_eq!(names(root), before, "nothing was added or removed");
        assert_eq!(names(&root.join("src")), ["main.rs"]);
    }

    #[test]
    fn accepts_an_empty_directory_and_one_older_versions_made() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = tmp.path().join("out");
        std::fs::create_dir(&empty).unwrap();
        write_atomically(&empty, &[("a_dag.py".into(), "x".into())]).unwrap();
        let old = tmp.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("wf_dag.py"), "x").unwrap();
        std::fs::write(old.join(IMAGE_LIST_FILE), "img").unwrap();
        write_atomically(&old, &[("a_dag.py".into(), "y".into())]).unwrap();
        assert_eq!(names(&old), [DAGS_MARKER, "a_dag.py"]);
        // A new directory's parents are made.
        let nested = tmp.path().join("a/b/dags");
        write_atomically(&nested, &[("a_dag.py".into(), "x".into())]).unwrap();
        assert_eq!(names(&nested), [DAGS_MARKER, "a_dag.py"]);
    }
}
