//! Helpers shared by the CLI tests of the facade.

use std::path::PathBuf;
use std::process::Command;

/// Builds (if needed) and locates the example; `cargo test` builds examples,
/// but not `cargo test --all-targets`, which compiles them as tests instead.
pub fn example_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "bigflow",
                "--example",
                "broken_project",
            ])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "building the broken_project example failed"
        );
    });
    // target/<profile>/deps/<this test> -> target/<profile>/examples/broken_project
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    dir.join(format!("broken_project{}", std::env::consts::EXE_SUFFIX))
}
