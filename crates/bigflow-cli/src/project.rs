//! A BigFlow project on disk: `bigflow.toml`, building its binary, running it.
//!
//! `bigflow.toml` holds the project name (and optionally the Cargo binary
//! that holds its workflows and the Cargo features to build it with) and the
//! `[deployment]` configuration, readable without compiling anything.
//! Commands that need the workflows build the binary with Cargo and ask it
//! (`run`, `list`, `manifest`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bigflow_core::Config;
use bigflow_core::manifest::Manifest;
use serde::Deserialize;

use crate::error::{Result, ToolError};

/// The project file's name.
pub const PROJECT_FILE: &str = "bigflow.toml";

/// A project found on disk.
#[derive(Debug, Clone)]
pub struct ProjectDir {
    /// The directory holding `bigflow.toml`.
    pub root: PathBuf,
    /// The `[project]` table.
    pub meta: ProjectMeta,
    /// The `[deployment]` table.
    pub deployment: Config,
}

/// The `[project]` table of `bigflow.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectMeta {
    /// The project's name.
    pub name: String,
    /// The Cargo binary with the workflows (default: the name).
    pub binary: Option<String>,
    /// Cargo features to build with (`BIGFLOW_FEATURES`, a comma- or
    /// space-separated list, overrides it).
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether the package's default features are on (default true;
    /// `BIGFLOW_NO_DEFAULT_FEATURES=1` turns them off).
    pub default_features: Option<bool>,
}

#[derive(Deserialize)]
struct ProjectFile {
    project: ProjectMeta,
    #[serde(default)]
    deployment: toml::Table,
}

impl ProjectDir {
    /// Finds `bigflow.toml` in `start` or its ancestors and reads it.
    pub fn discover(start: &Path) -> Result<ProjectDir> {
        let root = start
            .ancestors()
            .find(|d| d.join(PROJECT_FILE).is_file())
            .ok_or_else(|| {
                ToolError::usage(format!(
                    "no {PROJECT_FILE} in {} or any parent directory; run this inside a BigFlow project or create one with `bigflow start-project NAME`",
                    start.display()
                ))
            })?
            .to_path_buf();
        Self::load(&root)
    }

    /// Reads `root/bigflow.toml`.
    pub fn load(root: &Path) -> Result<ProjectDir> {
        let path = root.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ToolError::usage(format!("cannot read {}: {e}", path.display())))?;
        let file: ProjectFile = toml::from_str(&text)
            .map_err(|e| ToolError::usage(format!("{}: {e}", path.display())))?;
        let deployment = Config::from_toml(
            &file.deployment,
            &format!("{} [deployment]", path.display()),
        )
        .map_err(ToolError::usage)?;
        let mut meta = file.project;
        if let Ok(list) = std::env::var("BIGFLOW_FEATURES") {
            meta.features = list
                .split([',', ' '])
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
        }
        if std::env::var("BIGFLOW_NO_DEFAULT_FEATURES").as_deref() == Ok("1") {
            meta.default_features = Some(false);
        }
        Ok(ProjectDir {
            root: root.to_path_buf(),
            meta,
            deployment,
        })
    }

    /// The Cargo arguments selecting the project's features.
    pub fn cargo_feature_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.meta.default_features == Some(false) {
            args.push("--no-default-features".to_string());
        }
        if !self.meta.features.is_empty() {
            args.push("--features".to_string());
            args.push(self.meta.features.join(","));
        }
        args
    }

    /// The Cargo binary target holding the workflows.
    pub fn binary_name(&self) -> &str {
        self.meta.binary.as_deref().unwrap_or(&self.meta.name)
    }

    /// Builds the project binary with Cargo and returns its path.
    pub fn build_binary(&self, release: bool) -> Result<PathBuf> {
        let bin = self.binary_name();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&self.root)
            .args([
                "build",
                "--message-format=json-render-diagnostics",
                "--bin",
                bin,
            ])
            .args(self.cargo_feature_args())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if release {
            cmd.arg("--release");
        }
        // On a terminal, cargo's progress (its bar and `Compiling` lines) shows
        // what a first build is doing for minutes; elsewhere (CI logs, scripts
        // reading stderr) only warnings and errors.
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            cmd.arg("--quiet");
        }
        let output = cmd.output().map_err(|e| {
            ToolError::failed(format!(
                "could not run cargo (is the Rust toolchain installed?): {e}"
            ))
        })?;
        if !output.status.success() {
            return Err(ToolError::failed(format!(
                "building the project binary '{bin}' failed (see cargo's messages above)"
            )));
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| {
                ToolError::usage(format!(
                    "cargo built no binary named '{bin}'; set [project] binary = \"...\" in {PROJECT_FILE} to the [[bin]] that calls bigflow's CLI"
                ))
            })
    }

    /// Runs the project binary with `args`, passing its output through; returns its exit code.
    pub fn run_binary(&self, binary: &Path, args: &[String]) -> Result<u8> {
        let status = Command::new(binary)
            .args(args)
            .current_dir(&self.root)
            .status()
            .map_err(|e| ToolError::failed(format!("could not start {}: {e}", binary.display())))?;
        Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
    }

    /// Asks the project binary for its manifest.
    pub fn manifest(&self, binary: &Path, start_time: Option<&str>) -> Result<Manifest> {
        let mut cmd = Command::new(binary);
        cmd.arg("manifest")
            .current_dir(&self.root)
            .stderr(Stdio::inherit());
        if let Some(t) = start_time {
            cmd.args(["--start-time", t]);
        }
        let out = cmd
            .output()
            .map_err(|e| ToolError::failed(format!("could not start {}: {e}", binary.display())))?;
        if !out.status.success() {
            return Err(ToolError::Exit(
                out.status
                    .code()
                    .map_or(1, |c| u8::try_from(c).unwrap_or(1)),
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| {
            ToolError::failed(format!(
                "{} printed a manifest this tool cannot read ({e}); is the project's bigflow version compatible with this tool?",
                binary.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_come_from_bigflow_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROJECT_FILE),
            "[project]\nname = \"p\"\nfeatures = [\"bigquery\", \"beam\"]\ndefault_features = false\n",
        )
        .unwrap();
        let project = ProjectDir::load(dir.path()).unwrap();
        if std::env::var_os("BIGFLOW_FEATURES").is_none()
            && std::env::var_os("BIGFLOW_NO_DEFAULT_FEATURES").is_none()
        {
            assert_eq!(
                project.cargo_feature_args(),
                ["--no-default-features", "--features", "bigquery,beam"]
            );
        }
        std::fs::write(dir.path().join(PROJECT_FILE), "[project]\nname = \"p\"\n").unwrap();
        let plain = ProjectDir::load(dir.path()).unwrap();
        if std::env::var_os("BIGFLOW_FEATURES").is_none()
            && std::env::var_os("BIGFLOW_NO_DEFAULT_FEATURES").is_none()
        {
            assert!(plain.cargo_feature_args().is_empty());
        }
    }
}
