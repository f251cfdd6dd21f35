//! Helpers shared by the CLI tests of the facade.

use std::path::PathBuf;
use std::process::Command;

/// Builds (if needed) and locates the example; `cargo test` builds examples,
/// but not `cargo test --all-targets`, which compiles them as tests instead.
#[allow(dead_code)] // each test file uses a different subset
pub fn example_binary() -> PathBuf {
    named_example_binary("broken_project")
}

/// Builds (if needed) and locates the example `name` of the facade crate.
#[allow(dead_code)]
pub fn named_example_binary(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "bigflow", "--example", name])
            .status()
            .unwrap();
        assert!(status.success(), "building the {name} example failed");
        built.push(name.to_string());
    }
    // target/<profile>/deps/<this test> -> target/<profile>/examples/broken_project
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}
