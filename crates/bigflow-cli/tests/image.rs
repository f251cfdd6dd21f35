//! `build-image` on the example project, checked with real tools: two builds
//! give the same digest and archive; `skopeo` reads it as an OCI archive and a
//! Docker archive; `umoci` unpacks it; the hello job runs inside the unpacked
//! root filesystem under `bwrap`. The tools come from `scripts/test`; without
//! them the test skips loudly (and fails under `BIGFLOW_REQUIRE_PEERS=1`).

mod common;

use std::process::Command as Std;

use common::*;

#[test]
fn image_is_reproducible_readable_and_runs_the_job() {
    if !peers_present(&missing_commands(&["skopeo", "umoci", "bwrap"])) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (digest, archive) = build_example_image(&tmp.path().join("a"), &[]);
    let (digest2, archive2) = build_example_image(&tmp.path().join("b"), &[]);
    assert_eq!(digest, digest2, "same commit, same digest");
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        std::fs::read(&archive2).unwrap(),
        "byte-identical archives"
    );

    let inspect: serde_json::Value = serde_json::from_str(&run_ok(
        Std::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", archive.display())),
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        "bigflow-examples"
    );
    let version = inspect["Labels"]["org.opencontainers.image.version"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(archive.ends_with(format!("image-{version}.tar")));
    let docker: serde_json::Value = serde_json::from_str(&run_ok(
        Std::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", archive.display())),
    ))
    .unwrap();
    assert_eq!(
        docker["Labels"]["org.opencontainers.image.version"],
        version.as_str()
    );

    let layout = tmp.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run_ok(
        Std::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout),
    );
    let bundle = tmp.path().join("bundle");
    run_ok(
        Std::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{version}", layout.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    let in_image = |args: &[&str]| {
        run_ok(
            Std::new("bwrap")
                .arg("--bind")
                .arg(&rootfs)
                .arg("/")
                .args([
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "--clearenv",
                    "--setenv",
                    "BIGFLOW_LOG",
                    "warn",
                    "/app/bin/bigflow-examples",
                ])
                .args(args),
        )
    };
    assert_eq!(
        in_image(&[
            "run",
            "--job",
            "hello_world.hello_world",
            "--runtime",
            "2020-01-01"
        ]),
        "Hello world on 2020-01-01 00:00:00!\n"
    );
    assert!(
        in_image(&[
            "run",
            "--job",
            "resources_workflow.print_resource",
            "--runtime",
            "2020-01-01"
        ])
        .starts_with("This file ships in resources/")
    );

    // With the image's own environment, as a pod runs it: every log line is
    // a Cloud Logging entry labelled with the workflow, job, runtime and run.
    let env = inspect["Env"].as_array().expect("the image sets Env");
    let mut cmd = Std::new("bwrap");
    cmd.arg("--bind").arg(&rootfs).arg("/").args([
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--clearenv",
    ]);
    for pair in env.iter().filter_map(|e| e.as_str()) {
        let (k, v) = pair.split_once('=').unwrap();
        cmd.args(["--setenv", k, v]);
    }
    let out = cmd
        .args([
            "/app/bin/bigflow-examples",
            "run",
            "--job",
            "hello_world.hello_world",
        ])
        .args(["--runtime", "2020-01-01", "--config", "dev"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let entries: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let job_entry = entries
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("succeeded"))
        })
        .unwrap_or_else(|| panic!("no JSON entry for the job's end in {stderr}"));
    assert_eq!(job_entry["severity"], "INFO");
    let labels = &job_entry["logging.googleapis.com/labels"];
    assert_eq!(labels["workflow_id"], "hello_world");
    assert_eq!(labels["job_id"], "hello_world");
    assert_eq!(labels["runtime"], "2020-01-01 00:00:00");
    assert_eq!(
        labels["run_id"].as_str().map(str::len),
        Some(12),
        "{labels}"
    );
}
