//! How a worker process reads Beam's container boot contract.
#![cfg(feature = "portable")]

use bigflow_beam::runner::portable::WorkerArgs;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn boot_flags_as_beams_worker_pool_passes_them() {
    let w = WorkerArgs::from_flags(&args(&[
        "--id=1-1",
        "--logging_endpoint=localhost:4001",
        "--artifact_endpoint=localhost:4002",
        "--provision_endpoint=localhost:4003",
        "--control_endpoint=localhost:4004",
        "--semi_persist_dir=/tmp/sp",
    ]))
    .expect("boot flags")
    .unwrap();
    assert_eq!(w.id, "1-1");
    assert_eq!(w.control_endpoint, "localhost:4004");
    assert_eq!(w.logging_endpoint.as_deref(), Some("localhost:4001"));
    assert_eq!(w.provision_endpoint.as_deref(), Some("localhost:4003"));
    assert_eq!(w.artifact_endpoint.as_deref(), Some("localhost:4002"));
    assert_eq!(w.semi_persist_dir.as_deref(), Some("/tmp/sp"));
}

#[test]
fn flags_may_be_separate_words() {
    let w = WorkerArgs::from_flags(&args(&["--id", "7", "--control_endpoint", "h:1"]))
        .unwrap()
        .unwrap();
    assert_eq!((w.id.as_str(), w.control_endpoint.as_str()), ("7", "h:1"));
}

#[test]
fn a_command_line_without_a_control_endpoint_is_not_a_worker() {
    assert!(WorkerArgs::from_flags(&args(&["run", "--workflow", "wordcount"])).is_none());
    assert!(WorkerArgs::from_flags(&[]).is_none());
}

#[test]
fn unknown_or_valueless_flags_are_errors_that_say_what_a_worker_takes() {
    let e = WorkerArgs::from_flags(&args(&["--control_endpoint=h:1", "--bogus=1"]))
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--bogus") && e.contains("--provision_endpoint"),
        "{e}"
    );
    let e = WorkerArgs::from_flags(&args(&["--control_endpoint"]))
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a value"), "{e}");
}
