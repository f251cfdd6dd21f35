//! The harness of the hostile-input (fuzz) suites: a deterministic proptest
//! runner whose case count and seed come from the environment, a per-case
//! time limit for in-process checks, and running a command with a time limit
//! while its stderr is read (a long message must not fill the pipe).
//!
//! `BIGFLOW_FUZZ_CASES` overrides each suite's number of cases and
//! `PROPTEST_RNG_SEED` its seed; each suite prints how many cases it ran.

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// The seed of every suite unless `PROPTEST_RNG_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5e_edb1_6f10;

/// An argument or variable value made of `bytes`, which need not be UTF-8
/// (on Unix; elsewhere a replacement character stands in).
#[cfg(unix)]
pub fn not_utf8(bytes: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(bytes.to_vec())
}

/// An argument or variable value made of `bytes`, which need not be UTF-8
/// (on Unix; elsewhere a replacement character stands in).
#[cfg(not(unix))]
pub fn not_utf8(_: &[u8]) -> std::ffi::OsString {
    std::ffi::OsString::from("\u{fffd}")
}

/// Cases to run: `BIGFLOW_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("BIGFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runner with a fixed seed (so CI is repeatable), no failure files, and
/// at most `max_shrink_iters` shrinking steps (each may start a process).
pub fn runner(default_cases: u32, max_shrink_iters: u32) -> TestRunner {
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config {
            cases: cases(default_cases),
            failure_persistence: None,
            max_shrink_iters,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    )
}

/// Runs `check(input)` on a thread: a panic or no answer within `limit` is
/// a failure naming the input.
pub fn within<T, F>(limit: Duration, input: T, check: F) -> Result<(), TestCaseError>
where
    T: std::fmt::Debug + Send + 'static,
    F: FnOnce(T) -> Result<(), String> + Send + 'static,
{
    let shown = format!("{input:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input)));
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(wrong))) => Err(TestCaseError::fail(format!("{wrong}: {shown}"))),
        Ok(Err(_)) => Err(TestCaseError::fail(format!("panicked on {shown}"))),
        Err(_) => Err(TestCaseError::fail(format!(
            "no answer within {limit:?} on {shown}"
        ))),
    }
}

/// Runs `cmd` (stdin closed, stdout discarded) and returns its exit status
/// and stderr; killed and an error after `limit`.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Result<(ExitStatus, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no exit within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok((status, reader.join().unwrap_or_default()))
}

/// The oracle of every command-line suite: exit 0, 1 or 2 and no panic.
pub fn exited_cleanly(status: ExitStatus, stderr: &str) -> Result<(), String> {
    if stderr.contains("panicked") {
        return Err(format!("panic: {stderr}"));
    }
    match status.code() {
        Some(0..=2) => Ok(()),
        other => Err(format!("exit {other:?} (stderr: {stderr})")),
    }
}
