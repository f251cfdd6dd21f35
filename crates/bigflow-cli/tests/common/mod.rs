//! Helpers shared by the tool's integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// The workspace's target directory, so projects built by tests reuse its artefacts.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

#[allow(unused_imports)] // each test file uses a different subset
pub use bigflow_testkit::{
    StorageEmulator, free_port, missing_commands, peers_dir, peers_present, wait_for_port,
};

/// Runs `cmd`, asserting success; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the `bigflow` tool in the example project; returns exit code, stdout, stderr.
pub fn tool_in_examples(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = assert_cmd::Command::cargo_bin("bigflow")
        .unwrap()
        .args(args)
        .envs(env.iter().copied())
        // Release builds of the example without its engine features (Spark
        // Connect, DataFusion, …): what the image and deploy tests check does
        // not depend on them, and the full build costs CI many minutes. A
        // target dir of their own keeps the workspace's debug binary (all
        // features) intact for the example's own tests.
        .env("BIGFLOW_NO_DEFAULT_FEATURES", "1")
        .env("CARGO_TARGET_DIR", target_dir().join("light-examples"))
        .current_dir(workspace_root().join("examples/bigflow-examples"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `build-image` of the example project into `out_dir` (plus `extra` flags);
/// returns the printed digest and the archive.
pub fn build_example_image(out_dir: &Path, extra: &[&str]) -> (String, PathBuf) {
    let dir = out_dir.to_str().unwrap();
    let (code, out, err) = tool_in_examples(
        &[&["build-image", "--image-dir", dir][..], extra].concat(),
        &[],
    );
    assert_eq!(code, 0, "build-image: {err}");
    // image <version> <digest> (<size> MB compressed) -> <archive>
    let digest = out.split_whitespace().nth(2).unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{out}");
    let archive = std::fs::read_dir(out_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    (digest, archive)
}
