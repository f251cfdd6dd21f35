//! Resources: non-code files of a project's `resources/` directory.
//!
//! The same lookup works on a laptop and inside the image: it searches, in
//! order, `$BIGFLOW_RESOURCES_DIR`, `resources/` next to the running binary
//! (and one level up, the image layout), the project directory the binary was
//! compiled from, and `resources/` under the current directory.

use std::path::{Component, Path, PathBuf};

/// The variable that points at a resources directory explicitly.
pub const RESOURCES_DIR_VAR: &str = "BIGFLOW_RESOURCES_DIR";

/// A resource could not be found or its name is unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// No searched directory has the file.
    #[error("resource '{name}' not found; looked in: {searched}; put the file under the project's resources/ directory or set {var}", var = RESOURCES_DIR_VAR)]
    NotFound {
        /// The name asked for.
        name: String,
        /// The directories searched.
        searched: String,
    },
    /// The name escapes the resources directory.
    #[error(
        "resource name '{name}' must be a relative path inside resources/ (no '..', no leading '/')"
    )]
    BadName {
        /// The name asked for.
        name: String,
    },
}

/// Finds files of the project's `resources/` directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    project_dir: Option<PathBuf>,
}

impl Resources {
    /// A finder that also looks in `project_dir/resources` (the crate's
    /// `CARGO_MANIFEST_DIR`, baked in by `bigflow::project!()`).
    pub fn new(project_dir: Option<PathBuf>) -> Self {
        Resources { project_dir }
    }

    /// Directories searched, in order (existing or not).
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::var_os(RESOURCES_DIR_VAR) {
            dirs.push(PathBuf::from(dir));
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            dirs.push(exe_dir.join("resources"));
            if let Some(up) = exe_dir.parent() {
                dirs.push(up.join("resources"));
            }
        }
        if let Some(p) = &self.project_dir {
            dirs.push(p.join("resources"));
        }
        if let Ok(cwd) = std::env::current_dir() {
            dirs.push(cwd.join("resources"));
        }
        dirs.dedup();
        dirs
    }

    /// The absolute path of `name` (e.g. `"requirements.txt"` or `"sql/a.sql"`).
    pub fn find(&self, name: &str) -> Result<PathBuf, ResourceError> {
        let rel = Path::new(name);
        if name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(ResourceError::BadName {
                name: name.to_string(),
            });
        }
        let dirs = self.search_dirs();
        dirs.iter()
            .map(|d| d.join(rel))
            .find(|p| p.is_file())
            .map(|p| p.canonicalize().unwrap_or(p))
            .ok_or_else(|| ResourceError::NotFound {
                name: name.to_string(),
                searched: dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_in_project_dir_and_rejects_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("resources/sql")).unwrap();
        std::fs::write(dir.path().join("resources/sql/a.sql"), "select 1").unwrap();
        let r = Resources::new(Some(dir.path().to_path_buf()));
        assert!(
            r.find("sql/a.sql")
                .unwrap()
                .ends_with("resources/sql/a.sql")
        );
        assert!(matches!(
            r.find("nope.txt"),
            Err(ResourceError::NotFound { .. })
        ));
        assert!(matches!(r.find("../x"), Err(ResourceError::BadName { .. })));
        assert!(matches!(
            r.find("/etc/passwd"),
            Err(ResourceError::BadName { .. })
        ));
    }
}
