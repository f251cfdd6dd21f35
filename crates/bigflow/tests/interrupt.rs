//! Ctrl-C (SIGINT) or SIGTERM during `run`: running jobs are cancelled so
//! they stop what they started, nothing more starts, exit code 130.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sleeping() -> bool {
    Command::new("pgrep")
        .args(["-f", "sleep 271828"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn sigint_stops_running_jobs_and_exits_130() {
    let child = Command::new(common::example_binary())
        .args(["run", "--workflow", "wf", "--runtime", "2020-01-01"])
        .env("BROKEN", "slow")
        .env("BIGFLOW_LOG", "warn")
        .env_remove("bf_env")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sleeping() {
        assert!(Instant::now() < deadline, "the slow job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the child we started; no memory is involved.
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    assert!(pid > 1);
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("job slow interrupted; stopping it"), "{err}");
    assert!(err.contains("slow   interrupted"), "{err}");
    assert!(err.contains("after  interrupted"), "{err}");
    assert!(
        err.contains(
            "error: workflow wf at 2020-01-01 00:00:00: interrupted; running jobs were stopped"
        ),
        "{err}"
    );
    assert!(!sleeping(), "the job's program was left running");
}
