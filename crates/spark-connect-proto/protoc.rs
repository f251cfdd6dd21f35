//! Which `protoc` the build uses. Shared by build.rs and the crate's unit tests.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Where the `protoc` for this build comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protoc {
    /// `$PROTOC` names a program that exists (a path, or a name found on `PATH`).
    FromEnv(PathBuf),
    /// `$PROTOC` names nothing that exists: the vendored binary, with a warning.
    Missing(PathBuf),
    /// A `protoc` on `PATH`.
    OnPath(PathBuf),
    /// None of the above: the vendored binary.
    Vendored,
}

/// Chooses the compiler from `$PROTOC` (`protoc_var`) and `$PATH` (`path_var`).
/// An empty `$PROTOC` counts as unset.
pub fn choose(protoc_var: Option<&OsStr>, path_var: Option<&OsStr>) -> Protoc {
    if let Some(p) = protoc_var.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let found = if p.components().count() > 1 {
            is_executable(&p).then(|| p.clone())
        } else {
            find_on_path(&p, path_var)
        };
        return match found {
            Some(found) => Protoc::FromEnv(found),
            None => Protoc::Missing(p),
        };
    }
    let name = if cfg!(windows) {
        "protoc.exe"
    } else {
        "protoc"
    };
    match find_on_path(Path::new(name), path_var) {
        Some(found) => Protoc::OnPath(found),
        None => Protoc::Vendored,
    }
}

fn find_on_path(name: &Path, path_var: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}
