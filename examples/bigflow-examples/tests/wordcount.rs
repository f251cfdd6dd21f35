//! `run --workflow wordcount` against Beam Python's own word count.
//!
//! Runs the example binary in a scratch directory (the output prefix is
//! relative), then `python -m apache_beam.examples.wordcount` from the
//! apache-beam peer on the same input, and compares the counts. Without the
//! peer the comparison skips loudly (fails under `BIGFLOW_REQUIRE_PEERS=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

fn sorted_lines(dir: &Path, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {prefix}* files in {}", dir.display());
    for f in files {
        lines.extend(
            std::fs::read_to_string(&f)
                .unwrap()
                .lines()
                .map(String::from),
        );
    }
    lines.sort();
    lines
}

#[test]
fn wordcount_writes_the_same_counts_as_beam_python() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("bigflow-examples")
        .unwrap()
        .current_dir(work.path())
        .args(["run", "--workflow", "wordcount"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours_dir = work.path().join("target/wordcount/dev");
    let ours = sorted_lines(&ours_dir, "counts-00000-of-00001");
    assert!(ours.contains(&"love: 3".to_string()), "{ours:?}");
    assert!(ours.contains(&"Love's: 1".to_string()), "{ours:?}");
    assert!(
        std::fs::read_dir(&ours_dir).unwrap().count() == 1,
        "only the finished shard is left"
    );

    let Some(python) = bigflow_testkit::beam_python() else {
        return;
    };
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/wordcount.txt");
    let py_out = work.path().join("python");
    let status = Command::new(&python)
        .args(["-m", "apache_beam.examples.wordcount", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(py_out.join("counts"))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(ours, sorted_lines(&py_out, "counts"));
}

#[test]
fn prod_wordcount_refuses_dataflow_with_exit_1() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("bigflow-examples")
        .unwrap()
        .current_dir(work.path())
        .args(["run", "--workflow", "wordcount", "--config", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // The prod config names no worker image yet: Dataflow is refused before
    // anything is staged, naming what is missing.
    assert!(err.contains("--sdk_container_image"), "{err}");
}

/// The starter's word count on Beam 2.77's own runner (its job service in
/// front of the FnApiRunner), with this binary started as the SDK worker
/// (`--environment_type` defaults to PROCESS for a BeamJob): the worker
/// rebuilds the pipeline from the job named in the options.
#[test]
fn wordcount_on_beams_portable_runner_equals_the_direct_runner() {
    let Some(service) = bigflow_testkit::beam::BeamJobService::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let run = |config: &str| {
        Command::cargo_bin("bigflow-examples")
            .unwrap()
            .current_dir(work.path())
            .env("bf_beam_job_endpoint", service.endpoint())
            .args(["run", "--workflow", "wordcount", "--config", config])
            .output()
            .unwrap()
    };
    let out = run("portable");
    assert!(
        out.status.success(),
        "{}\n--- job service log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        service.log()
    );
    let portable_dir = work.path().join("target/wordcount/portable");
    let portable = sorted_lines(&portable_dir, "counts-00000-of-00001");
    assert!(portable.contains(&"love: 3".to_string()), "{portable:?}");
    assert_eq!(
        std::fs::read_dir(&portable_dir).unwrap().count(),
        1,
        "only the finished shard is left"
    );
    let out = run("dev");
    assert!(out.status.success());
    let direct = sorted_lines(&work.path().join("target/wordcount/dev"), "counts");
    assert_eq!(portable, direct);
}
