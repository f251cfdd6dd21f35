//! The fake Dataflow API itself: it rejects what Google rejects, runs what it
//! accepts on Beam's runner (DOCKER environments on a worker binary started
//! with the container boot flags), and its faults and cancels behave as the
//! DataflowRunner's tests need. Also: Beam's own Dataflow client's Job has
//! the shape the fake demands.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bigflow_testkit::StorageEmulator;
use bigflow_testkit::beam::{BeamJobService, python_pipeline};
use bigflow_testkit::dataflow::{
    Answer, FakeDataflow, beam_reference_job, dataflow_python, fake_dir, put_object,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PROJECT: &str = "p";
const REGION: &str = "europe-west1";
const JOBS: &str = "/v1b3/projects/p/locations/europe-west1/jobs";
const TOKEN: Option<&str> = Some("test-token");
const IMAGE: &str = "europe-docker.pkg.dev/p/bigflow/wordcount@sha256:0123";

/// A pipeline that doubles 1, 2, 3 (counting them in `words/seen`) and
/// writes the results to the text files `args[0]`-*.
const DOUBLING: &str = "
def double(x):
    Metrics.counter('words', 'seen').inc()
    return x * 2
(p | beam.Create([1, 2, 3]) | 'Double' >> beam.Map(double)
   | beam.io.WriteToText(args[0]))";

/// A pipeline whose transform raises.
const FAILING: &str = "
def explode(x):
    raise ValueError('boom from the pipeline')
p | beam.Create([1]) | 'Explode' >> beam.Map(explode)";

/// A pipeline that takes ten minutes.
const SLOW: &str = "p | beam.Create([1]) | 'Sleep' >> beam.Map(lambda x: time.sleep(600))";

const DOCKER: &str = "environments.DockerEnvironment.from_container_image(\
    'europe-docker.pkg.dev/p/bigflow/wordcount@sha256:0123')";

/// Fields drop in order: the fake (and its worker pools) first.
struct Peers {
    fake: FakeDataflow,
    storage: StorageEmulator,
    _beam: Option<BeamJobService>,
    dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A temporary folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A shell script that records its pid and flags in `dir/boot-args`, then runs
/// Beam's Python SDK worker behind the container boot contract.
fn python_boot(dir: &Path, python: &Path) -> PathBuf {
    let script = dir.join("boot.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$$ $@\" >> '{}'\nexec '{}' '{}' \"$@\"\n",
            dir.join("boot-args").display(),
            python.display(),
            fake_dir().join("python_sdk_boot.py").display()
        ),
    )
    .unwrap();
    make_executable(&script);
    script
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

enum Worker {
    None,
    PythonBoot,
    Script(&'static str),
}

/// The storage emulator (bucket `bkt`), Beam's job service (unless `beam` is
/// false) and the fake; `None` after the missing-peer rule.
fn peers(beam: bool, worker: Worker) -> Option<Peers> {
    let python = dataflow_python()?;
    let dir = tempfile_dir::Dir(std::env::temp_dir().join(format!(
        "bigflow-fake-dataflow-test-{}-{}",
        std::process::id(),
        bigflow_testkit::free_port()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let binary = match worker {
        Worker::None => None,
        Worker::PythonBoot => Some(python_boot(&dir.0, &python)),
        Worker::Script(text) => {
            let script = dir.0.join("worker.sh");
            std::fs::write(&script, text).unwrap();
            make_executable(&script);
            Some(script)
        }
    };
    let storage = StorageEmulator::start()?;
    storage.create_bucket("bkt");
    let beam = if beam {
        Some(BeamJobService::start()?)
    } else {
        None
    };
    let endpoint = beam
        .as_ref()
        .map(|b| b.endpoint())
        .unwrap_or_else(|| "localhost:1".into());
    let fake = FakeDataflow::start(&storage.endpoint, &endpoint, binary.as_deref())?;
    Some(Peers {
        fake,
        storage,
        _beam: beam,
        dir,
    })
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Peers {
    /// Stages a pipeline at gs://bkt/staging/NAME.pb: (pipelineUrl, pipelineProtoHash).
    fn stage(&self, name: &str, pipeline: &[u8]) -> (String, String) {
        let object = format!("staging/{name}.pb");
        put_object(&self.storage.endpoint, "bkt", &object, pipeline);
        (format!("gs://bkt/{object}"), sha256_hex(pipeline))
    }

    fn create(&self, body: &Value) -> Result<Answer, String> {
        self.fake.call("POST", JOBS, Some(body), TOKEN)
    }

    fn get(&self, path: &str) -> Answer {
        self.fake
            .call("GET", &format!("{JOBS}{path}"), None, TOKEN)
            .expect("the fake did not answer")
    }

    fn wait(&self, id: &str) -> Value {
        self.fake
            .wait_for_terminal(PROJECT, REGION, id, Duration::from_secs(120))
    }

    fn wait_for_state(&self, id: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.get(&format!("/{id}")).body["currentState"] != state {
            assert!(Instant::now() < deadline, "job {id} never {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn error_messages(&self, id: &str) -> String {
        let answer = self.get(&format!(
            "/{id}/messages?minimumImportance=JOB_MESSAGE_ERROR"
        ));
        assert_eq!(answer.status, 200, "{}", answer.body);
        let messages = answer.body["jobMessages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for m in &messages {
            assert_eq!(m["messageImportance"], "JOB_MESSAGE_ERROR", "{m}");
        }
        messages
            .iter()
            .map(|m| m["messageText"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn output(&self, prefix: &str) -> Vec<String> {
        let mut lines: Vec<String> = std::fs::read_dir(&self.dir.0)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        lines
    }
}

/// A portable Runner v2 batch submission, as a DataflowRunner sends it.
fn job_body(name: &str, url: &str, hash: &str) -> Value {
    json!({
        "name": name,
        "type": "JOB_TYPE_BATCH",
        "clientRequestId": format!("20260101000000000000-{name}"),
        "labels": { "workflow_id": "wordcount" },
        "environment": {
            "tempStoragePrefix": "gs://bkt/temp",
            "experiments": ["use_runner_v2", "use_unified_worker",
                            "use_portable_job_submission", "beam_fn_api"],
            "version": { "job_type": "FNAPI_BATCH", "major": "8" },
            "sdkPipelineOptions": { "options": {
                "project": PROJECT, "region": REGION, "job_name": name,
                "temp_location": "gs://bkt/temp",
                "pipelineUrl": url, "pipelineProtoHash": hash,
            }},
            "workerPools": [{
                "kind": "harness",
                "machineType": "n1-standard-1",
                "autoscalingSettings": {
                    "algorithm": "AUTOSCALING_ALGORITHM_BASIC", "maxNumWorkers": 2,
                },
                "workerHarnessContainerImage": IMAGE,
                "sdkHarnessContainerImages": [{ "containerImage": IMAGE }],
            }],
        },
    })
}

fn message(answer: &Answer) -> String {
    answer.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn requests_are_checked_as_google_checks_them() {
    let Some(peers) = peers(false, Worker::None) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let pipeline = python_pipeline(&python, DOUBLING, Some(DOCKER), &["/dev/null"]);
    let (url, hash) = peers.stage("checked", &pipeline);
    let good = job_body("checked", &url, &hash);

    // No credentials: 401, whatever the body.
    let answer = peers.fake.call("POST", JOBS, Some(&good), None).unwrap();
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.body["error"]["status"], "UNAUTHENTICATED");
    let answer = peers
        .fake
        .call("GET", &format!("{JOBS}/x"), None, Some(""))
        .unwrap();
    assert_eq!(answer.status, 401, "an empty token: {}", answer.body);

    // An unknown field, anywhere: 400 naming it and where it is.
    let mut body = good.clone();
    body["environment"]["workerPools"][0]["maxWorkers"] = json!(3);
    let answer = peers.create(&body).unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        message(&answer)
            .contains("Unknown name \"maxWorkers\" at 'job.environment.worker_pools[0]'"),
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["error"]["details"][0]["fieldViolations"][0]["field"],
        "job.environment.worker_pools[0]"
    );

    // Wrong types and enum values.
    for (path, value, expected) in [
        (
            "name",
            json!(5),
            "Invalid value at 'job.name' (TYPE_STRING), 5",
        ),
        (
            "type",
            json!("JOB_TYPE_BOTH"),
            "Invalid value at 'job.type'",
        ),
        ("labels", json!(["a"]), "Invalid value at 'job.labels'"),
    ] {
        let mut body = good.clone();
        body[path] = value;
        let answer = peers.create(&body).unwrap();
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert!(
            message(&answer).contains(expected),
            "{path}: {}",
            answer.body
        );
    }
    let mut body = good.clone();
    body["environment"]["workerPools"][0]["diskSizeGb"] = json!("big");
    let answer = peers.create(&body).unwrap();
    assert!(
        message(&answer).contains("job.environment.worker_pools[0].disk_size_gb"),
        "{}",
        answer.body
    );

    // An unknown query parameter; a known one with a bad enum value.
    let answer = peers
        .fake
        .call("POST", &format!("{JOBS}?bogus=1"), Some(&good), TOKEN)
        .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(message(&answer).contains("\"bogus\""), "{}", answer.body);
    let answer = peers.get("/x?view=JOB_VIEW_EVERYTHING");
    assert_eq!(answer.status, 400, "{}", answer.body);

    // Not a portable Runner v2 submission.
    let mut body = good.clone();
    body["environment"]["experiments"] = json!(["beam_fn_api"]);
    body["environment"]["workerPools"][0]["kind"] = json!("local");
    let answer = peers.create(&body).unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["error"]["status"], "FAILED_PRECONDITION");
    for part in [
        "use_runner_v2",
        "use_portable_job_submission",
        "\"harness\"",
    ] {
        assert!(message(&answer).contains(part), "{part}: {}", answer.body);
    }
    let mut body = good.clone();
    body["name"] = json!("Not_A_Job_Name");
    assert_eq!(peers.create(&body).unwrap().status, 400);

    // The staged pipeline: its hash, its presence, its environments.
    let mut body = good.clone();
    body["environment"]["sdkPipelineOptions"]["options"]["pipelineProtoHash"] =
        json!(sha256_hex(b"another pipeline"));
    let answer = peers.create(&body).unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        message(&answer).contains("pipelineProtoHash") && message(&answer).contains(&hash),
        "{}",
        answer.body
    );
    let mut body = good.clone();
    body["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"] =
        json!("gs://bkt/staging/missing.pb");
    let answer = peers.create(&body).unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(message(&answer).contains("missing.pb"), "{}", answer.body);
    let mut body = good.clone();
    body["environment"]["workerPools"][0]["sdkHarnessContainerImages"][0]["containerImage"] =
        json!("some/other:image");
    let answer = peers.create(&body).unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        message(&answer).contains("some/other:image"),
        "{}",
        answer.body
    );

    // Nothing was created; a job that does not exist is 404.
    assert!(peers.fake.jobs().is_empty());
    let answer = peers.get("/2026-01-01_00_00_00-1?view=JOB_VIEW_ALL");
    assert_eq!(answer.status, 404, "{}", answer.body);

    // Every request is recorded, without the token.
    let requests = peers.fake.requests();
    assert_eq!(requests[0]["authorization"], false);
    assert_eq!(requests[0]["status"], 401);
    assert_eq!(requests[0]["body"]["name"], "checked");
    assert!(requests.iter().skip(2).all(|r| r["authorization"] == true));
    assert!(
        !requests
            .iter()
            .any(|r| r["headers"].get("authorization").is_some())
    );
}

#[test]
fn a_python_pipeline_runs_to_done_with_metrics_and_messages() {
    let Some(peers) = peers(true, Worker::None) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let out = peers.dir.0.join("doubled");
    // An embedded Python environment: the fake leaves it as it is.
    let pipeline = python_pipeline(&python, DOUBLING, None, &[out.to_str().unwrap()]);
    let (url, hash) = peers.stage("doubling", &pipeline);
    let created = peers.create(&job_body("doubling", &url, &hash)).unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["currentState"], "JOB_STATE_PENDING");
    assert_eq!(created.body["name"], "doubling");
    assert_eq!(created.body["location"], REGION);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(
        id.len() > 20 && id.chars().nth(10) == Some('_'),
        "a Dataflow-like id: {id}"
    );

    let job = peers.wait(&id);
    assert_eq!(
        job["currentState"],
        "JOB_STATE_DONE",
        "{}",
        peers.fake.log()
    );
    assert!(job.get("environment").is_none(), "the summary view: {job}");
    let full = peers.get(&format!("/{id}?view=JOB_VIEW_ALL")).body;
    assert_eq!(full["environment"]["workerPools"][0]["kind"], "harness");
    assert_eq!(full["labels"]["workflow_id"], "wordcount");
    assert_eq!(peers.output("doubled"), ["2", "4", "6"]);

    // User counters, committed and tentative, in Dataflow's MetricUpdate shape.
    let metrics = peers.get(&format!("/{id}/metrics")).body;
    let updates = metrics["metrics"].as_array().expect("metrics");
    let seen: Vec<&Value> = updates
        .iter()
        .filter(|m| m["name"]["name"] == "seen")
        .collect();
    assert_eq!(seen.len(), 2, "{metrics}");
    for update in &seen {
        assert_eq!(update["name"]["origin"], "user");
        assert_eq!(update["name"]["context"]["namespace"], "words");
        assert_eq!(update["name"]["context"]["step"], "Double");
        assert_eq!(update["scalar"], 3);
    }
    assert_eq!(
        seen.iter()
            .filter(|m| m["name"]["context"]["tentative"] == "true")
            .count(),
        1
    );

    // Messages: no errors; the state changes at JOB_MESSAGE_BASIC.
    assert_eq!(peers.error_messages(&id), "");
    let basic = peers.get(&format!(
        "/{id}/messages?minimumImportance=JOB_MESSAGE_BASIC"
    ));
    assert!(
        basic.body.to_string().contains("JOB_STATE_DONE"),
        "{}",
        basic.body
    );

    // The job can be found by name; once done, a job of the same name may run again.
    let listed = peers.get("?name=doubling&filter=ALL").body;
    assert_eq!(listed["jobs"][0]["id"], id.as_str());
    assert!(peers.get("?filter=ACTIVE").body.get("jobs").is_none());
    // A new submission (a new clientRequestId: the same one is a retry,
    // which Dataflow refuses whatever the first job's state).
    let mut body = job_body("doubling", &url, &hash);
    body["clientRequestId"] = serde_json::json!("20260101000000000001-doubling");
    let again = peers.create(&body).unwrap();
    assert_eq!(again.status, 200, "{}", again.body);
    peers.wait(again.body["id"].as_str().unwrap());
}

#[test]
fn a_docker_environment_runs_on_the_worker_binary_with_the_boot_flags() {
    let Some(peers) = peers(true, Worker::PythonBoot) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let out = peers.dir.0.join("on-worker");
    let pipeline = python_pipeline(&python, DOUBLING, Some(DOCKER), &[out.to_str().unwrap()]);
    let (url, hash) = peers.stage("docker", &pipeline);
    let created = peers.create(&job_body("docker", &url, &hash)).unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let job = peers.wait(&id);
    assert_eq!(
        job["currentState"],
        "JOB_STATE_DONE",
        "{}\n{}",
        peers.fake.log(),
        peers.fake.worker_logs()
    );
    assert_eq!(peers.output("on-worker"), ["2", "4", "6"]);
    let boot = std::fs::read_to_string(peers.dir.0.join("boot-args")).unwrap();
    for flag in [
        "--id=",
        "--logging_endpoint=",
        "--artifact_endpoint=",
        "--provision_endpoint=",
        "--control_endpoint=",
    ] {
        assert!(boot.contains(flag), "{flag} in {boot}");
    }
    let metrics = peers.get(&format!("/{id}/metrics")).body;
    assert!(metrics.to_string().contains("\"seen\""), "{metrics}");
}

#[test]
fn a_failing_job_reports_its_errors_in_the_job_messages() {
    let Some(peers) = peers(true, Worker::None) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let pipeline = python_pipeline(&python, FAILING, None, &[]);
    let (url, hash) = peers.stage("failing", &pipeline);
    let created = peers.create(&job_body("failing", &url, &hash)).unwrap();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(peers.wait(&id)["currentState"], "JOB_STATE_FAILED");
    let errors = peers.error_messages(&id);
    assert!(errors.contains("boom from the pipeline"), "{errors}");

    // The same through an injected failure (no pipeline run at all).
    peers.fake.inject_faults("run", &["fail"]);
    let created = peers
        .create(&job_body("failing-again", &url, &hash))
        .unwrap();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(peers.wait(&id)["currentState"], "JOB_STATE_FAILED");
    assert!(peers.error_messages(&id).contains("injected failure"));
}

#[test]
fn a_worker_that_dies_fails_the_job_with_its_log() {
    let script = "#!/bin/sh\necho 'worker refuses to start' >&2\nexit 3\n";
    let Some(peers) = peers(true, Worker::Script(script)) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let pipeline = python_pipeline(&python, DOUBLING, Some(DOCKER), &["/dev/null"]);
    let (url, hash) = peers.stage("dying", &pipeline);
    let created = peers.create(&job_body("dying", &url, &hash)).unwrap();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(peers.wait(&id)["currentState"], "JOB_STATE_FAILED");
    let errors = peers.error_messages(&id);
    assert!(errors.contains("worker refuses to start"), "{errors}");
}

#[test]
fn faults_come_in_order_and_a_dropped_create_leaves_one_job_to_follow() {
    let Some(peers) = peers(true, Worker::None) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let pipeline = python_pipeline(&python, DOUBLING, None, &["/dev/null"]);
    let (url, hash) = peers.stage("retried", &pipeline);
    let body = job_body("retried", &url, &hash);
    peers.fake.inject_faults("create", &["429", "500", "drop"]);
    // The job the dropped create makes runs until cancelled: a retry finds it running.
    peers.fake.inject_faults("run", &["hang"]);

    let first = peers.create(&body).unwrap();
    assert_eq!(first.status, 429, "{}", first.body);
    assert_eq!(first.body["error"]["status"], "RESOURCE_EXHAUSTED");
    let second = peers.create(&body).unwrap();
    assert_eq!(second.status, 500, "{}", second.body);
    assert_eq!(second.body["error"]["status"], "INTERNAL");
    assert!(peers.fake.jobs().is_empty(), "429 and 500 create nothing");
    let third = peers.create(&body);
    assert!(third.is_err(), "dropped: {third:?}");
    let fourth = peers.create(&body).unwrap();
    assert_eq!(fourth.status, 409, "{}", fourth.body);
    assert_eq!(fourth.body["error"]["status"], "ALREADY_EXISTS");

    let jobs = peers.fake.jobs();
    assert_eq!(jobs.len(), 1, "exactly one job: {jobs:?}");
    let id = jobs[0]["id"].as_str().unwrap().to_string();
    assert!(
        message(&fourth).contains(&id),
        "the 409 names the job: {}",
        fourth.body
    );
    let active = peers.get("?filter=ACTIVE&name=retried").body;
    assert_eq!(active["jobs"][0]["id"], id.as_str(), "{active}");
    let statuses: Vec<Value> = peers
        .fake
        .requests()
        .iter()
        .take(4)
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!(429), json!(500), json!("dropped"), json!(409)]
    );

    // Faults of other kinds: the next get answers 503, the one after is fine.
    peers.fake.inject_faults("get", &["503"]);
    assert_eq!(peers.get(&format!("/{id}")).status, 503);
    assert_eq!(peers.get(&format!("/{id}")).status, 200);

    let cancel = peers
        .fake
        .call(
            "PUT",
            &format!("{JOBS}/{id}"),
            Some(&json!({ "requestedState": "JOB_STATE_CANCELLED" })),
            TOKEN,
        )
        .unwrap();
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    assert_eq!(peers.wait(&id)["currentState"], "JOB_STATE_CANCELLED");
}

#[test]
fn cancel_stops_a_slow_job_and_its_worker() {
    let Some(peers) = peers(true, Worker::PythonBoot) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let pipeline = python_pipeline(&python, SLOW, Some(DOCKER), &[]);
    let (url, hash) = peers.stage("slow", &pipeline);
    let created = peers.create(&job_body("slow", &url, &hash)).unwrap();
    let id = created.body["id"].as_str().unwrap().to_string();
    peers.wait_for_state(&id, "JOB_STATE_RUNNING");
    // Wait for the worker to start.
    let args = peers.dir.0.join("boot-args");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !args.exists() {
        assert!(Instant::now() < deadline, "no worker started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let worker_pid: u32 = std::fs::read_to_string(&args)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let path = format!("{JOBS}/{id}");
    // The update body is a Job too: unknown fields are refused.
    let answer = peers
        .fake
        .call(
            "PUT",
            &path,
            Some(&json!({ "requestedState": "JOB_STATE_CANCELLED", "reason": "timeout" })),
            TOKEN,
        )
        .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(message(&answer).contains("\"reason\""), "{}", answer.body);

    let answer = peers
        .fake
        .call(
            "PUT",
            &path,
            Some(&json!({ "requestedState": "JOB_STATE_CANCELLED" })),
            TOKEN,
        )
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["currentState"], "JOB_STATE_CANCELLING");
    assert_eq!(answer.body["requestedState"], "JOB_STATE_CANCELLED");
    let job = peers.wait(&id);
    assert_eq!(job["currentState"], "JOB_STATE_CANCELLED");

    // The worker is gone; a terminated job cannot be cancelled again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while Path::new(&format!("/proc/{worker_pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "the worker {worker_pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let again = peers
        .fake
        .call(
            "PUT",
            &path,
            Some(&json!({ "requestedState": "JOB_STATE_CANCELLED" })),
            TOKEN,
        )
        .unwrap();
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(again.body["error"]["status"], "FAILED_PRECONDITION");
    let recorded = peers.fake.requests();
    assert!(
        recorded
            .iter()
            .any(|r| r["method"] == "PUT" && r["body"]["requestedState"] == "JOB_STATE_CANCELLED"),
        "{recorded:?}"
    );
}

#[test]
fn beams_own_job_has_the_portable_shape_and_the_fake_runs_it() {
    let Some(peers) = peers(true, Worker::PythonBoot) else {
        return;
    };
    let python = dataflow_python().unwrap();
    let out = peers.dir.0.join("reference");
    let pipeline = python_pipeline(&python, DOUBLING, Some(DOCKER), &[out.to_str().unwrap()]);
    let job = beam_reference_job(
        &pipeline,
        &[("sdk_container_image", IMAGE), ("job_name", "beams-own")],
    )
    .unwrap();

    let mut keys: Vec<&str> = job
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["clientRequestId", "environment", "name", "type"]);
    assert_eq!(job["name"], "beams-own");
    assert_eq!(job["type"], "JOB_TYPE_BATCH");
    let env = &job["environment"];
    for experiment in [
        "use_runner_v2",
        "use_unified_worker",
        "use_portable_job_submission",
        "beam_fn_api",
    ] {
        assert!(
            env["experiments"]
                .as_array()
                .unwrap()
                .contains(&json!(experiment)),
            "{experiment}: {env}"
        );
    }
    assert_eq!(
        env["version"],
        json!({ "job_type": "FNAPI_BATCH", "major": "8" })
    );
    let pools = env["workerPools"].as_array().unwrap();
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0]["kind"], "harness");
    assert_eq!(pools[0]["workerHarnessContainerImage"], IMAGE);
    assert_eq!(
        pools[0]["sdkHarnessContainerImages"][0]["containerImage"],
        IMAGE
    );
    let options = &env["sdkPipelineOptions"]["options"];
    assert!(
        options["pipelineUrl"]
            .as_str()
            .unwrap()
            .starts_with("gs://reference-bucket/staging/beams-own."),
        "{options}"
    );
    assert_eq!(options["pipelineProtoHash"].as_str().unwrap().len(), 64);
    assert!(
        env["tempStoragePrefix"]
            .as_str()
            .unwrap()
            .starts_with("storage.googleapis.com/reference-bucket/temp/"),
        "{env}"
    );

    // Beam's own request, pointed at a pipeline staged here, passes every
    // check of the fake and runs.
    let (url, hash) = peers.stage("beams-own", &pipeline);
    let mut body = job.clone();
    body["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"] = json!(url);
    body["environment"]["sdkPipelineOptions"]["options"]["pipelineProtoHash"] = json!(hash);
    body["environment"]["tempStoragePrefix"] = json!("storage.googleapis.com/bkt/temp");
    let created = peers.create(&body).unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let done = peers.wait(&id);
    assert_eq!(
        done["currentState"],
        "JOB_STATE_DONE",
        "{}\n{}",
        peers.fake.log(),
        peers.fake.worker_logs()
    );
    assert_eq!(peers.output("reference"), ["2", "4", "6"]);
}
