//! Generated Spark Connect protobuf and gRPC types.
//!
//! All messages live in the `spark.connect` protobuf package and are re-exported
//! here at the crate root. The generated gRPC client is
//! [`spark_connect_service_client::SparkConnectServiceClient`].
//!
//! Baseline protocol version: see `proto/PROTO_VERSION.txt` / `proto/SPARK_SHA.txt`.

#![allow(clippy::large_enum_variant)] // Generated protobuf code has large enum variants

// tonic-build emits `google.protobuf` well-known types referenced by the schema.
pub mod spark {
    pub mod connect {
        tonic::include_proto!("spark.connect");
    }
}

pub use spark::connect::*;

// Not in the published crate: the tests of build.rs's choice of `protoc`.
#[cfg(test)]
#[path = "../protoc.rs"]
mod protoc;

#[cfg(test)]
mod tests {
    use super::protoc::{choose, Protoc};
    use std::ffi::OsStr;

    fn dir_with(file: &str, mode: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = mode;
        dir
    }

    #[test]
    fn protoc_variable_wins_over_path() {
        let on_path = dir_with("protoc", 0o755);
        let chosen = dir_with("protoc-27", 0o755);
        let path = std::env::join_paths([on_path.path(), chosen.path()]).unwrap();
        let full = chosen.path().join("protoc-27");
        assert_eq!(
            choose(Some(full.as_os_str()), Some(&path)),
            Protoc::FromEnv(full.clone())
        );
        // A bare name is looked up on PATH.
        assert_eq!(
            choose(Some(OsStr::new("protoc-27")), Some(&path)),
            Protoc::FromEnv(full)
        );
    }

    #[test]
    fn protoc_variable_pointing_nowhere_falls_back_to_the_vendored_one() {
        let on_path = dir_with("protoc", 0o755);
        assert_eq!(
            choose(
                Some(OsStr::new("/nonexistent/protoc")),
                Some(on_path.path().as_os_str())
            ),
            Protoc::Missing("/nonexistent/protoc".into())
        );
        assert_eq!(
            choose(Some(OsStr::new("no-such-protoc")), None),
            Protoc::Missing("no-such-protoc".into())
        );
    }

    #[test]
    fn protoc_on_path_is_used_when_the_variable_is_unset_or_empty() {
        let empty = tempfile::tempdir().unwrap();
        let on_path = dir_with("protoc", 0o755);
        let path = std::env::join_paths([empty.path(), on_path.path()]).unwrap();
        let want = Protoc::OnPath(on_path.path().join("protoc"));
        assert_eq!(choose(None, Some(&path)), want);
        assert_eq!(choose(Some(OsStr::new("")), Some(&path)), want);
    }

    #[cfg(unix)]
    #[test]
    fn without_protoc_anywhere_the_vendored_one_is_used() {
        let not_executable = dir_with("protoc", 0o644);
        let other = dir_with("protocol", 0o755);
        let path = std::env::join_paths([not_executable.path(), other.path()]).unwrap();
        assert_eq!(choose(None, Some(&path)), Protoc::Vendored);
        assert_eq!(choose(None, None), Protoc::Vendored);
    }

    #[test]
    fn the_vendored_protoc_runs_on_this_platform() {
        let protoc = protoc_bin_vendored::protoc_bin_path().unwrap();
        let out = std::process::Command::new(&protoc)
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} --version failed",
            protoc.display()
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("libprotoc"));
        assert!(protoc_bin_vendored::include_path()
            .unwrap()
            .join("google/protobuf/any.proto")
            .is_file());
    }
}
