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

/// The seed's word count on "Dataflow": the strict fake of Dataflow's API
/// (validating every request against the published schema) receives the
/// job this binary submits, downloads the staged pipeline from the Cloud
/// Storage emulator, checks its hash and runs it on Beam 2.77's runner with
/// this same binary started as the SDK worker (through `/opt/apache/beam/boot`'s
/// flags); the counts land in the emulator's `gs://` bucket and equal the
/// DirectRunner's.
#[test]
fn wordcount_on_the_dataflow_fake_writes_the_direct_runners_counts_to_gcs() {
    use bigflow_testkit::dataflow::{FakeDataflow, http};
    let Some(gcs) = bigflow_testkit::StorageEmulator::start() else {
        return;
    };
    let Some(beam) = bigflow_testkit::beam::BeamJobService::start() else {
        return;
    };
    let binary = assert_cmd::cargo::cargo_bin("bigflow-examples");
    let Some(fake) = FakeDataflow::start(&gcs.endpoint, &beam.endpoint(), Some(&binary)) else {
        return;
    };
    let metadata = bigflow_testkit::MetadataServer::start("test-token");
    let bucket = "my-project-dataflow-dataflow";
    gcs.create_bucket(bucket);
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/wordcount.txt");
    gcs.put(
        bucket,
        "wordcount/input/wordcount.txt",
        &std::fs::read_to_string(&input).unwrap(),
    );
    let work = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("bigflow-examples")
        .unwrap()
        .current_dir(work.path())
        .env("STORAGE_EMULATOR_HOST", &gcs.endpoint)
        .env("BIGFLOW_DATAFLOW_ENDPOINT", fake.endpoint())
        .env("GCE_METADATA_HOST", metadata.host())
        .args(["run", "--workflow", "wordcount", "--config", "dataflow"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n--- fake ---\n{}\n--- workers ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        fake.log(),
        fake.worker_logs()
    );
    // One job, submitted as Runner v2 with the config's image as its worker.
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let request = &jobs[0]["request"];
    assert_eq!(
        request["environment"]["workerPools"][0]["sdkHarnessContainerImages"][0]["containerImage"],
        "europe-west1-docker.pkg.dev/my-project-dataflow/bigflow/bigflow-examples:latest"
    );
    assert_eq!(request["labels"]["workflow_id"], "wordcount");
    // The counts, in the bucket, complete and equal to the DirectRunner's.
    let names = gcs.objects(bucket, "wordcount/counts");
    assert_eq!(
        names,
        vec!["wordcount/counts-00000-of-00001.txt"],
        "only the finished shard"
    );
    let text = http(
        &gcs.endpoint,
        "GET",
        &format!(
            "/storage/v1/b/{bucket}/o/{}?alt=media",
            names[0].replace('/', "%2F")
        ),
        &[],
        None,
    )
    .unwrap();
    let mut on_dataflow: Vec<String> = text
        .body
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    on_dataflow.sort();
    let direct = Command::cargo_bin("bigflow-examples")
        .unwrap()
        .current_dir(work.path())
        .args(["run", "--workflow", "wordcount", "--config", "dev"])
        .output()
        .unwrap();
    assert!(direct.status.success());
    assert_eq!(
        on_dataflow,
        sorted_lines(&work.path().join("target/wordcount/dev"), "counts")
    );
}

/// Ctrl-C while the Dataflow job runs: the job is cancelled on Dataflow
/// (a cancel request reaches the fake and the job ends cancelled) before
/// the command exits.
#[test]
fn ctrl_c_cancels_the_running_dataflow_job() {
    use bigflow_testkit::dataflow::FakeDataflow;
    let Some(gcs) = bigflow_testkit::StorageEmulator::start() else {
        return;
    };
    let Some(beam) = bigflow_testkit::beam::BeamJobService::start() else {
        return;
    };
    let binary = assert_cmd::cargo::cargo_bin("bigflow-examples");
    let Some(fake) = FakeDataflow::start(&gcs.endpoint, &beam.endpoint(), Some(&binary)) else {
        return;
    };
    fake.inject_faults("run", &["hang"]);
    let metadata = bigflow_testkit::MetadataServer::start("test-token");
    gcs.create_bucket("my-project-dataflow-dataflow");
    let work = tempfile::tempdir().unwrap();
    let child = Command::new(&binary)
        .current_dir(work.path())
        .env("STORAGE_EMULATOR_HOST", &gcs.endpoint)
        .env("BIGFLOW_DATAFLOW_ENDPOINT", fake.endpoint())
        .env("GCE_METADATA_HOST", metadata.host())
        .args(["run", "--workflow", "wordcount", "--config", "dataflow"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !fake
        .jobs()
        .iter()
        .any(|j| j["currentState"] == "JOB_STATE_RUNNING")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no running job: {}",
            fake.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["currentState"], "JOB_STATE_CANCELLED", "{stderr}");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r["method"] == "PUT" && r["body"]["requestedState"] == "JOB_STATE_CANCELLED"),
        "{stderr}"
    );
}
