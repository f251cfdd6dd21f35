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
    /// Only this workflow.
    #[arg(long, short = 'w')]
    pub workflow: Option<String>,
    /// The DAGs' start time, 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD' (default: the current hour).
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
    let start = match &options.start_time {
        Some(t) => parse_runtime(t).map_err(|e| ToolError::usage(format!("--start-time: {e}")))?,
        None => current_hour(),
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
    let workflows: Vec<_> = match &options.workflow {
        Some(id) => {
            let wf = manifest
                .workflows
                .iter()
                .find(|w| &w.workflow_id == id)
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

/// Replaces `dir` with exactly `files`, never leaving a partial directory.
fn write_atomically(dir: &Path, files: &[(String, String)]) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| ".dags".into());
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        ToolError::failed(format!("cannot {what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(parent).map_err(|e| fail("create", parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = (|| -> Result<()> {
        std::fs::create_dir(&tmp).map_err(|e| fail("create", &tmp, e))?;
        for (file, text) in files {
            let path = tmp.join(file);
            std::fs::write(&path, text).map_err(|e| fail("write", &path, e))?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old).map_err(|e| fail("move aside", dir, e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail("move into place", dir, e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
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
        let names: Vec<_> = std::fs::read_dir(&dags)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a_dag.py"]);
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [".dags"]);
    }
}
