//! The DataflowRunner against the strict fake of Dataflow's API (requests
//! validated against the published schema, pipelines staged in the Cloud
//! Storage emulator): faults on create, failing and cancelled jobs, and the
//! request shape beside Beam's own Dataflow client's.
#![cfg(feature = "dataflow")]

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bigflow_beam::RunControl;
use bigflow_beam::prelude::*;
use bigflow_testkit::StorageEmulator;
use bigflow_testkit::beam::BeamJobService;
use bigflow_testkit::dataflow::FakeDataflow;

/// One test's peers, stopped when it ends. Tests run one at a time: the
/// emulator's and the token server's addresses are process-wide
/// environment variables.
struct Peers {
    gcs: StorageEmulator,
    _beam: BeamJobService,
    _metadata: bigflow_testkit::MetadataServer,
    _one_at_a_time: MutexGuard<'static, ()>,
}

fn peers() -> Option<Peers> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gcs = StorageEmulator::start()?;
    let beam = BeamJobService::start()?;
    let metadata = bigflow_testkit::MetadataServer::start("test-token");
    gcs.create_bucket("b");
    // SAFETY: tests in this file hold the lock while these are read.
    unsafe {
        std::env::set_var("STORAGE_EMULATOR_HOST", &gcs.endpoint);
        std::env::set_var("GCE_METADATA_HOST", metadata.host());
    }
    Some(Peers {
        gcs,
        _beam: beam,
        _metadata: metadata,
        _one_at_a_time: guard,
    })
}

fn fake(p: &Peers) -> Option<FakeDataflow> {
    FakeDataflow::start(&p.gcs.endpoint, &p._beam.endpoint(), None)
}

fn pipeline(fake: &FakeDataflow, job_name: &str) -> Pipeline {
    let options = PipelineOptions::from_args([
        "--runner=DataflowRunner".to_string(),
        "--project=p".into(),
        "--region=europe-west1".into(),
        "--temp_location=gs://b/tmp".into(),
        "--staging_location=gs://b/staging".into(),
        "--sdk_container_image=europe-west1-docker.pkg.dev/p/r/img:1".into(),
        format!("--job_name={job_name}"),
        format!("--dataflow_endpoint={}", fake.endpoint()),
    ])
    .unwrap();
    let p = Pipeline::new(options);
    p.create("Numbers", vec![1i64, 2, 3])
        .map("Double", |n: &i64| n * 2)
        .map("Format", |n: &i64| n.to_string())
        .write_text("Write", WriteText::to("gs://b/out/numbers"));
    p
}

fn statuses(fake: &FakeDataflow, method: &str) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| {
            r["method"] == method && r["path"].as_str().is_some_and(|p| p.ends_with("/jobs"))
        })
        .map(|r| r["status"].to_string())
        .collect()
}

#[test]
fn a_create_retried_after_429_500_and_a_lost_answer_makes_exactly_one_job() {
    let Some(p) = peers() else { return };
    let Some(fake) = fake(&p) else { return };
    fake.inject_faults("create", &["429", "500", "drop"]);
    fake.inject_faults("run", &["fail"]);
    let e = pipeline(&fake, "retried-create")
        .run()
        .unwrap_err()
        .to_string();
    // The run followed the job the lost answer had created: its failure is
    // the job's (it cannot run here without a worker), not the create's.
    assert!(e.contains("ended JOB_STATE_FAILED"), "{e}\n{}", fake.log());
    assert_eq!(fake.jobs().len(), 1, "{:?}", fake.jobs());
    assert_eq!(
        statuses(&fake, "POST"),
        vec!["429", "500", "\"dropped\"", "409"],
        "{:?}",
        fake.requests()
    );
}

#[test]
fn a_failed_job_brings_its_error_messages() {
    let Some(p) = peers() else { return };
    let Some(fake) = fake(&p) else { return };
    fake.inject_faults("run", &["fail"]);
    let e = pipeline(&fake, "failing-job")
        .run()
        .unwrap_err()
        .to_string();
    assert!(e.contains("ended JOB_STATE_FAILED"), "{e}");
    assert!(e.contains("injected failure"), "{e}");
}

#[test]
fn the_deadline_cancels_the_job_and_waits_for_the_cancel() {
    let Some(p) = peers() else { return };
    let Some(fake) = fake(&p) else { return };
    fake.inject_faults("run", &["hang"]);
    let started = Instant::now();
    let e = pipeline(&fake, "slow-job")
        .run_with(RunControl {
            deadline: Some(Instant::now() + Duration::from_secs(4)),
            ..RunControl::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("deadline") && e.contains("cancelled"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let jobs = fake.jobs();
    assert_eq!(jobs[0]["currentState"], "JOB_STATE_CANCELLED", "{jobs:?}");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r["method"] == "PUT" && r["body"]["requestedState"] == "JOB_STATE_CANCELLED"),
        "no cancel request: {:?}",
        fake.requests()
    );
}

#[test]
fn detached_runs_return_once_the_job_exists() {
    let Some(p) = peers() else { return };
    let Some(fake) = fake(&p) else { return };
    fake.inject_faults("run", &["hang"]);
    pipeline(&fake, "detached-job")
        .run_with(RunControl {
            detach: true,
            ..RunControl::default()
        })
        .unwrap();
    assert_eq!(fake.jobs().len(), 1);
}

#[test]
fn our_job_request_has_the_fields_beams_own_dataflow_client_sends() {
    let Some(p) = peers() else { return };
    let Some(fake) = fake(&p) else { return };
    fake.inject_faults("run", &["fail"]);
    let _ = pipeline(&fake, "shape-job").run();
    let ours = fake.jobs()[0]["request"].clone();
    let proto = bigflow_beam::runner::dataflow::pipeline_proto(
        &pipeline(&fake, "x"),
        "europe-west1-docker.pkg.dev/p/r/img:1",
    )
    .unwrap();
    let Some(beams) = bigflow_testkit::dataflow::beam_reference_job(
        &prost::Message::encode_to_vec(&proto),
        &[
            ("project", "p"),
            ("region", "europe-west1"),
            ("temp_location", "gs://b/tmp"),
            ("staging_location", "gs://b/staging"),
            (
                "sdk_container_image",
                "europe-west1-docker.pkg.dev/p/r/img:1",
            ),
            ("job_name", "shape-job"),
        ],
    ) else {
        return;
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    for key in keys(&beams) {
        assert!(
            ours.get(&key).is_some(),
            "Beam's job has {key}, ours does not: {ours}"
        );
    }
    for key in keys(&beams["environment"]) {
        assert!(
            ours["environment"].get(&key).is_some(),
            "Beam's environment has {key}, ours does not"
        );
    }
    let pool_ours = &ours["environment"]["workerPools"][0];
    let pool_beam = &beams["environment"]["workerPools"][0];
    // taskrunnerSettings is the legacy (non-Runner v2) worker's.
    for key in keys(pool_beam)
        .into_iter()
        .filter(|k| k != "taskrunnerSettings")
    {
        assert!(
            pool_ours.get(&key).is_some(),
            "Beam's worker pool has {key}, ours does not"
        );
    }
    assert_eq!(pool_ours["kind"], pool_beam["kind"]);
    assert_eq!(ours["type"], beams["type"]);
    assert_eq!(
        ours["environment"]["version"],
        beams["environment"]["version"]
    );
    for e in [
        "use_runner_v2",
        "use_unified_worker",
        "use_portable_job_submission",
        "beam_fn_api",
    ] {
        assert!(
            beams["environment"]["experiments"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == e),
            "Beam does not send {e}"
        );
    }
}

/// Uploads a minimal image (an empty config, no layers) as `name:tag`
/// through the registry's HTTP API; returns the manifest's digest.
fn push_image(registry: &str, name: &str, tag: &str) -> String {
    use sha2::Digest;
    let hex = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let config = b"{}".to_vec();
    let config_digest = format!("sha256:{}", hex(&config));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2},
        "layers": [],
    })
    .to_string();
    let base = format!("http://{registry}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bigflow_gcp::install_crypto_provider();
        let http = reqwest::Client::new();
        let start = http
            .post(format!("{base}/v2/{name}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status().as_u16(), 202);
        let location = start.headers()["Location"].to_str().unwrap().to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http
            .put(format!("{location}{sep}digest={config_digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(config)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201);
        let put = http
            .put(format!("{base}/v2/{name}/manifests/{tag}"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201);
    });
    format!("sha256:{}", hex(manifest.as_bytes()))
}

#[test]
fn the_projects_image_is_pinned_by_its_digest_from_the_registry() {
    let Some(p) = peers() else { return };
    let Some(registry) = bigflow_testkit::DockerRegistry::start() else {
        return;
    };
    let Some(fake) = fake(&p) else { return };
    let digest = push_image(&registry.host, "bigflow/examples", "1.2.0");
    fake.inject_faults("run", &["fail"]);
    let mut pipeline = pipeline(&fake, "pinned-image");
    let tagged = format!("{}/bigflow/examples:1.2.0", registry.host);
    pipeline.options_mut().worker.sdk_container_image = Some(tagged);
    pipeline
        .options_mut()
        .extra
        .insert("bigflow_resolve_image_digest".into(), "true".into());
    let _ = pipeline.run();
    let request = &fake.jobs()[0]["request"];
    let pinned = format!("{}/bigflow/examples@{digest}", registry.host);
    assert_eq!(
        request["environment"]["workerPools"][0]["sdkHarnessContainerImages"][0]["containerImage"],
        pinned.as_str()
    );
    assert_eq!(
        request["environment"]["workerPools"][0]["workerHarnessContainerImage"],
        pinned.as_str()
    );

    // A tag the registry does not have fails before anything is submitted.
    let before = fake.jobs().len();
    let mut missing = self::pipeline(&fake, "missing-image");
    missing.options_mut().worker.sdk_container_image =
        Some(format!("{}/bigflow/examples:9.9", registry.host));
    missing
        .options_mut()
        .extra
        .insert("bigflow_resolve_image_digest".into(), "true".into());
    let e = missing.run().unwrap_err().to_string();
    assert!(e.contains("HTTP 404") && e.contains("build-image"), "{e}");
    assert_eq!(fake.jobs().len(), before);
}
