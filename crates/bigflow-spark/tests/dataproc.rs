//! The Dataproc targets against a local fake of the Dataproc REST API (v1).
//!
//! Dataproc cannot run here, so the fake stands in for it, and only for it:
//! drivers are staged in the real Cloud Storage emulator, and the token comes
//! through the Vault flow. The fake checks every request against the
//! published API reference (paths, methods, the fields each resource may
//! have, name and label formats, request ids, the bearer token — from Vault,
//! or issued by a fake metadata server and not expired), simulates
//! long-running operations that need polling, and injects failures: a
//! cluster that cannot be created, a job that fails, a job that never ends
//! (the job's timeout), and 429/503 answers. After every run the test asserts
//! that no cluster or session is left and that the staged driver is gone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bigflow_core::{
    Config, JobContext, JobStatus, RunOptions, WithSettings, Workflow, parse_runtime, run_workflow,
};
use bigflow_spark::{PySparkJob, PySparkTarget};
use bigflow_testkit::StorageEmulator;
use serde_json::{Value, json};

const TOKEN: &str = "token-from-vault";
const PROJECT: &str = "test-project";
const REGION: &str = "europe-west1";
const BUCKET: &str = "staging";

/// How the fake behaves.
#[derive(Clone, Default)]
struct Scenario {
    /// The cluster's create operation ends with a quota error.
    create_fails: bool,
    /// The job (or batch) ends in ERROR / FAILED.
    job_fails: bool,
    /// The job (or batch) runs until cancelled.
    job_hangs: bool,
    /// (method and path prefix, status): answer the first matching request with status.
    inject: Vec<(String, u16)>,
    /// The session fails to start.
    session_fails: bool,
    /// The job runs at least this long (wall-clock) after its submission.
    job_runs_for: Option<Duration>,
}

/// Tokens the fake metadata server issued, with their expiry.
type Issued = Arc<Mutex<Vec<(String, Instant)>>>;

#[derive(Default)]
struct State {
    scenario: Scenario,
    /// Every request: "METHOD /path".
    log: Vec<String>,
    /// Requests that do not match the API reference.
    violations: Vec<String>,
    /// name -> state ("CREATING", "RUNNING", "ERROR", "DELETING").
    clusters: BTreeMap<String, String>,
    /// operation name -> (polls left until done, error message, cluster it deletes).
    operations: BTreeMap<String, (u32, Option<String>, Option<String>)>,
    /// job id -> (state, polls seen).
    jobs: BTreeMap<String, (String, u32)>,
    /// batch id -> (state, polls seen).
    batches: BTreeMap<String, (String, u32)>,
    /// session id -> (state, polls seen).
    sessions: BTreeMap<String, (String, u32)>,
    /// Labels of every created resource.
    labels: Vec<Value>,
    /// Bodies of clusters.create.
    cluster_bodies: Vec<Value>,
    /// gs:// URIs of drivers, and whether each existed in storage when submitted.
    drivers: Vec<(String, bool)>,
    counter: u32,
    /// When set, a valid bearer token is one of these (not expired), not TOKEN.
    issued: Option<Issued>,
    /// "METHOD /path" and the token of every request accepted.
    accepted: Vec<(String, String)>,
    /// Requests refused (401) with an issued but expired token.
    expired: Vec<String>,
    /// job id -> when it was submitted.
    submitted: BTreeMap<String, Instant>,
}

struct Fake {
    server: Arc<tiny_http::Server>,
    state: Arc<Mutex<State>>,
    url: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn is_label_key(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_cluster_name(s: &str) -> bool {
    (2..=51).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_request_id(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The field names the reference allows in each object we check.
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "Cluster" => &[
            "projectId",
            "clusterName",
            "config",
            "virtualClusterConfig",
            "labels",
        ],
        "ClusterConfig" => &[
            "configBucket",
            "tempBucket",
            "gceClusterConfig",
            "gkeClusterConfig",
            "masterConfig",
            "workerConfig",
            "secondaryWorkerConfig",
            "softwareConfig",
            "initializationActions",
            "encryptionConfig",
            "autoscalingConfig",
            "securityConfig",
            "lifecycleConfig",
            "endpointConfig",
            "metastoreConfig",
            "dataprocMetricConfig",
            "auxiliaryNodeGroups",
        ],
        "GceClusterConfig" => &[
            "zoneUri",
            "networkUri",
            "subnetworkUri",
            "internalIpOnly",
            "privateIpv6GoogleAccess",
            "serviceAccount",
            "serviceAccountScopes",
            "tags",
            "metadata",
            "reservationAffinity",
            "nodeGroupAffinity",
            "shieldedInstanceConfig",
            "confidentialInstanceConfig",
        ],
        "InstanceGroupConfig" => &[
            "numInstances",
            "imageUri",
            "machineTypeUri",
            "diskConfig",
            "preemptibility",
            "accelerators",
            "minCpuPlatform",
            "minNumInstances",
            "instanceFlexibilityPolicy",
            "startupConfig",
        ],
        "SoftwareConfig" => &["imageVersion", "properties", "optionalComponents"],
        "LifecycleConfig" => &["idleDeleteTtl", "autoDeleteTime", "autoDeleteTtl"],
        "NodeInitializationAction" => &["executableFile", "executionTimeout"],
        "SubmitJobRequest" => &["job", "requestId"],
        "Job" => &[
            "reference",
            "placement",
            "hadoopJob",
            "sparkJob",
            "pysparkJob",
            "hiveJob",
            "pigJob",
            "sparkRJob",
            "sparkSqlJob",
            "prestoJob",
            "trinoJob",
            "flinkJob",
            "labels",
            "scheduling",
            "driverSchedulingConfig",
        ],
        "PySparkJob" => &[
            "mainPythonFileUri",
            "args",
            "pythonFileUris",
            "jarFileUris",
            "fileUris",
            "archiveUris",
            "properties",
            "loggingConfig",
        ],
        "Batch" => &[
            "pysparkBatch",
            "sparkBatch",
            "sparkRBatch",
            "sparkSqlBatch",
            "runtimeConfig",
            "environmentConfig",
            "labels",
        ],
        "PySparkBatch" => &[
            "mainPythonFileUri",
            "args",
            "pythonFileUris",
            "jarFileUris",
            "fileUris",
            "archiveUris",
        ],
        "RuntimeConfig" => &[
            "version",
            "containerImage",
            "properties",
            "repositoryConfig",
            "autotuningConfig",
            "cohort",
        ],
        "EnvironmentConfig" => &["executionConfig", "peripheralsConfig"],
        "ExecutionConfig" => &[
            "serviceAccount",
            "networkUri",
            "subnetworkUri",
            "networkTags",
            "kmsKey",
            "idleTtl",
            "ttl",
            "stagingBucket",
            "authenticationConfig",
        ],
        "Session" => &[
            "jupyterSession",
            "sparkConnectSession",
            "runtimeConfig",
            "environmentConfig",
            "labels",
            "user",
            "sessionTemplate",
        ],
        _ => &[],
    }
}

fn check_fields(kind: &str, value: &Value, violations: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        violations.push(format!("{kind} is not an object: {value}"));
        return;
    };
    for key in object.keys() {
        if !allowed(kind).contains(&key.as_str()) {
            violations.push(format!("unknown field {kind}.{key}"));
        }
    }
}

fn check_labels(labels: &Value, violations: &mut Vec<String>) {
    let Some(map) = labels.as_object() else {
        violations.push(format!("labels is not a map: {labels}"));
        return;
    };
    for (k, v) in map {
        let v = v.as_str().unwrap_or("\u{0}");
        if !is_label_key(k) || !is_label_value(v) {
            violations.push(format!("invalid label {k}={v}"));
        }
    }
    for required in ["bigflow-workflow", "bigflow-job", "bigflow-runtime"] {
        if !map.contains_key(required) {
            violations.push(format!("label {required} missing"));
        }
    }
}

fn check_instance_group(value: &Value, violations: &mut Vec<String>) {
    check_fields("InstanceGroupConfig", value, violations);
    if value["numInstances"].as_u64().is_none() {
        violations.push("InstanceGroupConfig.numInstances missing".into());
    }
}

fn check_cluster(body: &Value, violations: &mut Vec<String>) {
    check_fields("Cluster", body, violations);
    if body["projectId"] != PROJECT {
        violations.push(format!(
            "Cluster.projectId {} is not the path's",
            body["projectId"]
        ));
    }
    if !body["clusterName"].as_str().is_some_and(is_cluster_name) {
        violations.push(format!("invalid clusterName {}", body["clusterName"]));
    }
    let config = &body["config"];
    check_fields("ClusterConfig", config, violations);
    check_fields("GceClusterConfig", &config["gceClusterConfig"], violations);
    check_instance_group(&config["masterConfig"], violations);
    if config["masterConfig"]["numInstances"] != 1 {
        violations.push("a standard cluster has 1 master".into());
    }
    if !config["workerConfig"].is_null() {
        check_instance_group(&config["workerConfig"], violations);
        if config["workerConfig"]["numInstances"].as_u64().unwrap_or(0) < 2 {
            violations.push("a standard cluster has at least 2 workers".into());
        }
    }
    check_fields("SoftwareConfig", &config["softwareConfig"], violations);
    if !config["lifecycleConfig"].is_null() {
        check_fields("LifecycleConfig", &config["lifecycleConfig"], violations);
    }
    for action in config["initializationActions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        check_fields("NodeInitializationAction", action, violations);
        if !action["executableFile"]
            .as_str()
            .is_some_and(|f| f.starts_with("gs://"))
        {
            violations.push("initialization action is not a gs:// file".into());
        }
    }
    check_labels(&body["labels"], violations);
}

impl Fake {
    fn start(scenario: Scenario, storage: Option<String>) -> Fake {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let state = Arc::new(Mutex::new(State {
            scenario,
            ..State::default()
        }));
        let thread = {
            let server = server.clone();
            let state = state.clone();
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    let auth = request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Authorization"))
                        .map(|h| h.value.as_str().to_string());
                    let vault = request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("X-Vault-Token"))
                        .map(|h| h.value.as_str().to_string());
                    let (status, answer) = handle(
                        &mut state.lock().unwrap(),
                        request.method().as_str(),
                        request.url(),
                        &body,
                        auth.as_deref(),
                        vault.as_deref(),
                        storage.as_deref(),
                    );
                    let response = tiny_http::Response::from_string(answer.to_string())
                        .with_status_code(status)
                        .with_header(
                            "Content-Type: application/json"
                                .parse::<tiny_http::Header>()
                                .unwrap(),
                        );
                    let _ = request.respond(response);
                }
            })
        };
        Fake {
            server,
            state,
            url,
            thread: Some(thread),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

fn error(status: u16, message: &str) -> (u16, Value) {
    (
        status,
        json!({ "error": { "code": status, "message": message, "status": "FAILED_PRECONDITION" } }),
    )
}

/// Whether `gs://bucket/object` exists in the storage emulator.
fn object_exists(storage: &str, uri: &str) -> bool {
    let Some((bucket, object)) = uri.trim_start_matches("gs://").split_once('/') else {
        return false;
    };
    let emulator = bigflow_testkit::peers_dir().join("gcs-emulator/bin/python");
    let script = "import sys, urllib.request\ntry:\n    urllib.request.urlopen(sys.argv[1]); print('yes')\nexcept Exception: print('no')";
    let out = std::process::Command::new(emulator)
        .arg("-c")
        .arg(script)
        .arg(format!(
            "{storage}/storage/v1/b/{bucket}/o/{}",
            bigflow_gcp::storage::encode(object)
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

fn handle(
    s: &mut State,
    method: &str,
    url: &str,
    body: &str,
    auth: Option<&str>,
    vault: Option<&str>,
    storage: Option<&str>,
) -> (u16, Value) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let query: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    s.log.push(format!("{method} {path}"));
    if path == "/vault" {
        return if vault == Some("vault-secret") {
            (200, json!({ "data": { "token": TOKEN } }))
        } else {
            error(403, "bad vault token")
        };
    }
    let call = format!("{method} {path}");
    let token = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
    let valid = match &s.issued {
        None => token == TOKEN,
        Some(issued) => {
            let expiry = issued
                .lock()
                .unwrap()
                .iter()
                .find(|(t, _)| t == token)
                .map(|(_, e)| *e);
            match expiry {
                Some(e) if Instant::now() >= e => {
                    // What Google answers an expired token; not a client bug
                    // (it may have been sent just before expiry).
                    s.expired.push(format!("{call} with {token}"));
                    return error(401, "Request had invalid authentication credentials.");
                }
                Some(_) => true,
                None => false,
            }
        }
    };
    if !valid {
        s.violations
            .push(format!("{method} {path} without a valid bearer token"));
        return error(401, "Request had invalid authentication credentials.");
    }
    s.accepted.push((call.clone(), token.to_string()));
    if let Some(i) = s
        .scenario
        .inject
        .iter()
        .position(|(prefix, _)| call.starts_with(prefix.as_str()))
    {
        let (_, status) = s.scenario.inject.remove(i);
        return error(status, "injected failure");
    }
    if let Some(id) = query.get("requestId")
        && !is_request_id(id)
    {
        s.violations.push(format!("invalid requestId {id}"));
        return error(400, "Invalid requestId");
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_str(body) {
            Ok(v) => v,
            Err(_) => {
                s.violations.push(format!("{call}: body is not JSON"));
                return error(400, "Invalid JSON payload received.");
            }
        }
    };
    let regional = format!("/v1/projects/{PROJECT}/regions/{REGION}/");
    let located = format!("/v1/projects/{PROJECT}/locations/{REGION}/");
    s.counter += 1;
    let n = s.counter;

    // Operations.
    if method == "GET"
        && (path.starts_with(&format!("{regional}operations/"))
            || path.starts_with(&format!("{located}operations/")))
    {
        let name = path.trim_start_matches("/v1/").to_string();
        let Some((polls, failure, deletes)) = s.operations.get_mut(&name) else {
            return error(404, "operation not found");
        };
        if *polls > 0 {
            *polls -= 1;
            return (200, json!({ "name": name, "done": false }));
        }
        let (failure, deletes) = (failure.clone(), deletes.clone());
        if let Some(cluster) = deletes {
            s.clusters.remove(&cluster);
        } else {
            for state in s.clusters.values_mut().filter(|st| *st == "CREATING") {
                *state = if failure.is_some() {
                    "ERROR"
                } else {
                    "RUNNING"
                }
                .into();
            }
        }
        return match failure {
            Some(message) => (
                200,
                json!({ "name": name, "done": true, "error": { "code": 8, "message": message } }),
            ),
            None => (200, json!({ "name": name, "done": true, "response": {} })),
        };
    }
    if method == "POST" && path.ends_with(":cancel") && path.contains("/operations/") {
        let name = path.trim_start_matches("/v1/").trim_end_matches(":cancel");
        if !s.operations.contains_key(name) {
            return error(404, "operation not found");
        }
        for (state, _) in s.batches.values_mut() {
            if state == "RUNNING" || state == "PENDING" {
                *state = "CANCELLED".into();
            }
        }
        return (200, json!({}));
    }

    // Clusters.
    if path == format!("{regional}clusters") && method == "POST" {
        check_cluster(&body, &mut s.violations);
        if !query.contains_key("requestId") {
            s.violations
                .push("clusters.create without requestId".into());
        }
        let name = body["clusterName"].as_str().unwrap_or_default().to_string();
        if s.clusters.contains_key(&name) {
            return error(409, "Already exists: cluster");
        }
        s.clusters.insert(name, "CREATING".into());
        s.labels.push(body["labels"].clone());
        s.cluster_bodies.push(body.clone());
        let op = format!("projects/{PROJECT}/regions/{REGION}/operations/create-{n}");
        let failure = s
            .scenario
            .create_fails
            .then(|| "Insufficient 'CPUS' quota. Requested 12.0, available 8.0.".to_string());
        s.operations.insert(op.clone(), (2, failure, None));
        return (200, json!({ "name": op, "done": false }));
    }
    if let Some(name) = path.strip_prefix(&format!("{regional}clusters/")) {
        if method != "DELETE" {
            return error(405, "method not allowed");
        }
        let Some(state) = s.clusters.get_mut(name) else {
            return error(404, "Not found: cluster");
        };
        *state = "DELETING".into();
        let op = format!("projects/{PROJECT}/regions/{REGION}/operations/delete-{n}");
        s.operations
            .insert(op.clone(), (1, None, Some(name.to_string())));
        return (200, json!({ "name": op, "done": false }));
    }

    // Jobs.
    if path == format!("{regional}jobs:submit") && method == "POST" {
        check_fields("SubmitJobRequest", &body, &mut s.violations);
        let job = &body["job"];
        check_fields("Job", job, &mut s.violations);
        check_fields("PySparkJob", &job["pysparkJob"], &mut s.violations);
        check_labels(&job["labels"], &mut s.violations);
        if !body["requestId"].as_str().is_some_and(is_request_id) {
            s.violations
                .push(format!("invalid job requestId {}", body["requestId"]));
        }
        let id = job["reference"]["jobId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if id.is_empty()
            || id.len() > 100
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            s.violations.push(format!("invalid jobId {id}"));
        }
        let cluster = job["placement"]["clusterName"].as_str().unwrap_or_default();
        if s.clusters.get(cluster).map(String::as_str) != Some("RUNNING") {
            return error(400, &format!("Cluster {cluster} is not running"));
        }
        let uri = job["pysparkJob"]["mainPythonFileUri"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let exists = storage.is_some_and(|st| object_exists(st, &uri));
        s.drivers.push((uri, exists));
        s.jobs.insert(id.clone(), ("PENDING".into(), 0));
        s.submitted.insert(id.clone(), Instant::now());
        return (
            200,
            json!({ "reference": { "jobId": id }, "status": { "state": "PENDING" } }),
        );
    }
    if let Some(rest) = path.strip_prefix(&format!("{regional}jobs/")) {
        let (id, cancel) = match rest.strip_suffix(":cancel") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        let (fails, mut hangs) = (s.scenario.job_fails, s.scenario.job_hangs);
        if let (Some(runs_for), Some(submitted)) = (s.scenario.job_runs_for, s.submitted.get(id)) {
            hangs |= submitted.elapsed() < runs_for;
        }
        let Some((state, polls)) = s.jobs.get_mut(id) else {
            return error(404, "Not found: job");
        };
        if cancel {
            if method != "POST" {
                return error(405, "method not allowed");
            }
            *state = "CANCELLED".into();
        } else {
            *polls += 1;
            if state != "CANCELLED" {
                *state = match (*polls, fails, hangs) {
                    (1, ..) => "RUNNING",
                    (_, _, true) => "RUNNING",
                    (_, true, _) => "ERROR",
                    _ => "DONE",
                }
                .into();
            }
        }
        let details = if state == "ERROR" {
            "Job failed with message [Traceback: ZeroDivisionError: division by zero]"
        } else {
            ""
        };
        return (
            200,
            json!({
                "reference": { "jobId": id },
                "status": { "state": state, "details": details },
                "driverOutputResourceUri": format!("gs://{BUCKET}/google-cloud-dataproc-metainfo/{id}/driveroutput"),
            }),
        );
    }

    // Batches.
    if path == format!("{located}batches") && method == "POST" {
        check_fields("Batch", &body, &mut s.violations);
        check_fields("PySparkBatch", &body["pysparkBatch"], &mut s.violations);
        check_fields("RuntimeConfig", &body["runtimeConfig"], &mut s.violations);
        check_fields(
            "EnvironmentConfig",
            &body["environmentConfig"],
            &mut s.violations,
        );
        check_fields(
            "ExecutionConfig",
            &body["environmentConfig"]["executionConfig"],
            &mut s.violations,
        );
        check_labels(&body["labels"], &mut s.violations);
        let id = query
            .get("batchId")
            .copied()
            .unwrap_or_default()
            .to_string();
        if !(4..=63).contains(&id.len())
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            s.violations.push(format!("invalid batchId {id}"));
        }
        let uri = body["pysparkBatch"]["mainPythonFileUri"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let exists = storage.is_some_and(|st| object_exists(st, &uri));
        s.drivers.push((uri, exists));
        s.labels.push(body["labels"].clone());
        s.batches.insert(id, ("PENDING".into(), 0));
        let op = format!("projects/{PROJECT}/locations/{REGION}/operations/batch-{n}");
        s.operations.insert(op.clone(), (1000, None, None));
        return (200, json!({ "name": op, "done": false }));
    }
    if let Some(id) = path.strip_prefix(&format!("{located}batches/")) {
        let (fails, hangs) = (s.scenario.job_fails, s.scenario.job_hangs);
        let Some((state, polls)) = s.batches.get_mut(id) else {
            return error(404, "Not found: batch");
        };
        *polls += 1;
        if state != "CANCELLED" {
            *state = match (*polls, fails, hangs) {
                (1, ..) | (_, _, true) => "RUNNING",
                (_, true, _) => "FAILED",
                _ => "SUCCEEDED",
            }
            .into();
        }
        let message = if state == "FAILED" {
            "Job failed with message [ZeroDivisionError]"
        } else {
            ""
        };
        return (
            200,
            json!({ "name": id, "state": state, "stateMessage": message }),
        );
    }

    // Sessions.
    if path == format!("{located}sessions") && method == "POST" {
        check_fields("Session", &body, &mut s.violations);
        check_fields("RuntimeConfig", &body["runtimeConfig"], &mut s.violations);
        check_labels(&body["labels"], &mut s.violations);
        if body["sparkConnectSession"].is_null() {
            s.violations
                .push("session without sparkConnectSession".into());
        }
        let id = query
            .get("sessionId")
            .copied()
            .unwrap_or_default()
            .to_string();
        s.labels.push(body["labels"].clone());
        s.sessions.insert(id, ("CREATING".into(), 0));
        let op = format!("projects/{PROJECT}/locations/{REGION}/operations/session-{n}");
        return (200, json!({ "name": op, "done": false }));
    }
    if let Some(id) = path.strip_prefix(&format!("{located}sessions/")) {
        if method == "DELETE" {
            return match s.sessions.remove(id) {
                Some(_) => (200, json!({ "name": "op", "done": false })),
                None => error(404, "Not found: session"),
            };
        }
        let fails = s.scenario.session_fails;
        let Some((state, polls)) = s.sessions.get_mut(id) else {
            return error(404, "Not found: session");
        };
        *polls += 1;
        if *polls >= 2 {
            *state = if fails { "FAILED" } else { "ACTIVE" }.into();
        }
        return (
            200,
            json!({
                "name": id,
                "uuid": "8c0f7a5e-uuid",
                "state": state,
                "stateMessage": if fails { "Insufficient quota" } else { "" },
                "runtimeInfo": { "endpoints": {
                    "Spark Connect Server": "https://spark-connect.example.invalid/",
                    "Spark History Server": "https://history.example.invalid/"
                }}
            }),
        );
    }
    s.violations.push(format!("no such API method: {call}"));
    error(404, "no such method")
}

/// A config pointing the Dataproc targets at the fake and the emulator.
fn config(fake: &Fake, storage: Option<&str>, extra: &[(&str, &str)]) -> Config {
    let mut props: Vec<(String, Value)> = vec![
        ("dataproc_project_id".into(), json!(PROJECT)),
        ("dataproc_region".into(), json!(REGION)),
        ("dataproc_bucket".into(), json!(format!("gs://{BUCKET}"))),
        ("dataproc_endpoint".into(), json!(fake.url)),
        ("dataproc_poll_interval_seconds".into(), json!(0.02)),
        ("gcp_auth_method".into(), json!("vault")),
        (
            "vault_endpoint".into(),
            json!(format!("{}/vault", fake.url)),
        ),
        ("vault_secret".into(), json!("vault-secret")),
        ("dataproc_worker_count".into(), json!(2)),
    ];
    if let Some(st) = storage {
        props.push(("storage_endpoint".into(), json!(st)));
    }
    for (k, v) in extra {
        props.push((k.to_string(), json!(v)));
    }
    Config::new("dev", props)
}

fn driver_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("driver.py"),
        "print('hello from the driver')\n",
    )
    .unwrap();
    dir
}

/// Runs one PySpark job through the local runner, like `bigflow run`.
fn run(job: PySparkJob, config: &Config, timeout: Option<Duration>) -> (JobStatus, String) {
    let job = match timeout {
        Some(t) => job.with_execution_timeout(t),
        None => job,
    };
    let workflow = Workflow::builder("spark_workflow")
        .config(config.clone())
        .jobs([job])
        .build()
        .unwrap();
    let resolved = config.resolve(Some("dev")).unwrap();
    let report = run_workflow(
        &workflow,
        None,
        parse_runtime("2024-05-06 07:00:00").unwrap(),
        &resolved,
        &Default::default(),
        &RunOptions {
            cancel_grace: Duration::from_secs(10),
            ..RunOptions::default()
        },
    );
    let outcome = &report.outcomes[0];
    (outcome.status, outcome.error.clone().unwrap_or_default())
}

fn emulator() -> Option<StorageEmulator> {
    let gcs = StorageEmulator::start()?;
    gcs.create_bucket(BUCKET);
    Some(gcs)
}

/// What every run must leave behind: nothing.
fn assert_clean(fake: &Fake, gcs: Option<&StorageEmulator>) {
    let s = fake.state();
    assert!(
        s.violations.is_empty(),
        "API violations: {:#?}",
        s.violations
    );
    assert!(s.clusters.is_empty(), "clusters left: {:?}", s.clusters);
    assert!(s.sessions.is_empty(), "sessions left: {:?}", s.sessions);
    for labels in &s.labels {
        assert_eq!(labels["bigflow-workflow"], "spark-workflow", "{labels}");
        assert_eq!(labels["bigflow-runtime"], "2024-05-06t070000", "{labels}");
    }
    if let Some(gcs) = gcs {
        assert_eq!(
            gcs.objects(BUCKET, "bigflow/"),
            Vec::<String>::new(),
            "staged drivers left"
        );
    }
}

fn pyspark_job(dir: &tempfile::TempDir, target: PySparkTarget) -> PySparkJob {
    PySparkJob::new(
        "estimate_pi",
        dir.path().join("driver.py").display().to_string(),
    )
    .args(["{runtime_date}", "1000"])
    .pip_packages(if target == PySparkTarget::DataprocCluster {
        vec!["numpy==2.1.0".to_string()]
    } else {
        vec![]
    })
    .spark_property("spark.executor.memory", "2g")
    .target(target)
}

#[test]
fn cluster_job_succeeds_and_the_cluster_is_deleted() {
    let Some(gcs) = emulator() else { return };
    let dir = driver_dir();
    let fake = Fake::start(
        Scenario {
            // Transient errors on creation and on polling are retried.
            inject: vec![
                (
                    "POST /v1/projects/test-project/regions/europe-west1/clusters".into(),
                    503,
                ),
                (
                    "GET /v1/projects/test-project/regions/europe-west1/jobs/".into(),
                    429,
                ),
            ],
            ..Scenario::default()
        },
        Some(gcs.endpoint.clone()),
    );
    let config = config(&fake, Some(&gcs.endpoint), &[]);
    let (status, error) = run(
        pyspark_job(&dir, PySparkTarget::DataprocCluster),
        &config,
        None,
    );
    assert_eq!(status, JobStatus::Succeeded, "{error}");
    assert_clean(&fake, Some(&gcs));
    let s = fake.state();
    assert_eq!(s.drivers.len(), 1);
    assert!(
        s.drivers[0].1,
        "the driver was not staged before submission: {:?}",
        s.drivers
    );
    assert!(
        s.drivers[0]
            .0
            .starts_with("gs://staging/bigflow/spark-workflow/estimate-pi/")
    );
    let calls: Vec<&str> = s
        .log
        .iter()
        .map(|l| l.rsplit('/').next().unwrap())
        .filter(|l| !l.starts_with("create-") && !l.starts_with("delete-"))
        .collect();
    assert_eq!(calls.first(), Some(&"vault"), "{calls:?}");
    assert!(
        s.log
            .iter()
            .any(|l| l.starts_with("DELETE ")
                && l.contains("/clusters/bf-estimate-pi-202405060700-")),
        "{:?}",
        s.log
    );
    let job_polls = s.log.iter().filter(|l| l.contains("/jobs/bf-")).count();
    assert!(job_polls >= 2, "the job was not polled: {:?}", s.log);
}

#[test]
fn failed_cluster_creation_still_deletes_the_cluster() {
    let Some(gcs) = emulator() else { return };
    let dir = driver_dir();
    let fake = Fake::start(
        Scenario {
            create_fails: true,
            ..Scenario::default()
        },
        Some(gcs.endpoint.clone()),
    );
    let config = config(&fake, Some(&gcs.endpoint), &[]);
    let (status, error) = run(
        pyspark_job(&dir, PySparkTarget::DataprocCluster),
        &config,
        None,
    );
    assert_eq!(status, JobStatus::Failed);
    assert!(
        error.contains("could not create cluster") && error.contains("Insufficient 'CPUS' quota"),
        "{error}"
    );
    assert!(!fake.state().log.iter().any(|l| l.contains("jobs:submit")));
    assert_clean(&fake, Some(&gcs));
}

#[test]
fn failed_job_reports_the_driver_error_and_deletes_the_cluster() {
    let Some(gcs) = emulator() else { return };
    let dir = driver_dir();
    let fake = Fake::start(
        Scenario {
            job_fails: true,
            ..Scenario::default()
        },
        Some(gcs.endpoint.clone()),
    );
    let config = config(&fake, Some(&gcs.endpoint), &[]);
    let (status, error) = run(
        pyspark_job(&dir, PySparkTarget::DataprocCluster),
        &config,
        None,
    );
    assert_eq!(status, JobStatus::Failed);
    assert!(
        error.contains("ZeroDivisionError") && error.contains("driveroutput"),
        "{error}"
    );
    assert_clean(&fake, Some(&gcs));
}

#[test]
fn timed_out_job_is_cancelled_and_the_cluster_deleted() {
    let Some(gcs) = emulator() else { return };
    let dir = driver_dir();
    let fake = Fake::start(
        Scenario {
            job_hangs: true,
            ..Scenario::default()
        },
        Some(gcs.endpoint.clone()),
    );
    let config = config(&fake, Some(&gcs.endpoint), &[]);
    let (status, error) = run(
        pyspark_job(&dir, PySparkTarget::DataprocCluster),
        &config,
        Some(Duration::from_secs(3)),
    );
    assert_eq!(status, JobStatus::TimedOut, "{error}");
    let s = fake.state();
    assert!(
        s.jobs.values().all(|(state, _)| state == "CANCELLED"),
        "{:?}",
        s.jobs
    );
    assert!(s.log.iter().any(|l| l.ends_with(":cancel")), "{:?}", s.log);
    // The deletion was accepted: the fake then deletes on its own schedule.
    assert!(
        s.clusters.values().all(|st| st == "DELETING"),
        "{:?}",
        s.clusters
    );
    assert!(s.violations.is_empty(), "{:#?}", s.violations);
}

#[test]
fn serverless_batches_succeed_fail_and_are_cancelled_on_timeout() {
    let Some(gcs) = emulator() else { return };
    let dir = driver_dir();
    for (scenario, expected) in [
        (Scenario::default(), JobStatus::Succeeded),
        (
            Scenario {
                job_fails: true,
                ..Scenario::default()
            },
            JobStatus::Failed,
        ),
        (
            Scenario {
                job_hangs: true,
                ..Scenario::default()
            },
            JobStatus::TimedOut,
        ),
    ] {
        let fake = Fake::start(scenario, Some(gcs.endpoint.clone()));
        let config = config(
            &fake,
            Some(&gcs.endpoint),
            &[("spark_target", "dataproc-serverless")],
        );
        // The target comes from the config this time.
        let job = PySparkJob::new(
            "estimate_pi",
            dir.path().join("driver.py").display().to_string(),
        )
        .args(["{runtime_date}"]);
        let (status, error) = run(job, &config, Some(Duration::from_secs(3)));
        assert_eq!(status, expected, "{error}");
        if expected == JobStatus::Failed {
            assert!(error.contains("ZeroDivisionError"), "{error}");
        }
        if expected == JobStatus::TimedOut {
            let s = fake.state();
            assert!(
                s.batches.values().all(|(st, _)| st == "CANCELLED"),
                "{:?}",
                s.batches
            );
        }
        assert_clean(&fake, Some(&gcs));
        assert!(fake.state().drivers.iter().all(|(_, staged)| *staged));
    }
}

#[test]
fn job_settings_override_the_config() {
    let Some(gcs) = emulator() else { return };
    let dir = driver_dir();
    let fake = Fake::start(Scenario::default(), Some(gcs.endpoint.clone()));
    // The config names another region and bucket; the job's own settings win.
    let config = config(
        &fake,
        Some(&gcs.endpoint),
        &[
            ("dataproc_region", "us-central1"),
            ("dataproc_bucket", "elsewhere"),
        ],
    );
    let job = pyspark_job(&dir, PySparkTarget::DataprocCluster)
        .dataproc_project(PROJECT, REGION, BUCKET)
        .dataproc_workers(5, "n2-highmem-8");
    let (status, error) = run(job, &config, None);
    assert_eq!(status, JobStatus::Succeeded, "{error}");
    assert_clean(&fake, Some(&gcs));
    let s = fake.state();
    assert!(
        s.drivers[0].0.starts_with("gs://staging/"),
        "{:?}",
        s.drivers
    );
}

#[test]
fn serverless_refuses_pip_packages_before_creating_anything() {
    let dir = driver_dir();
    let fake = Fake::start(Scenario::default(), None);
    let config = config(&fake, None, &[]);
    let job = PySparkJob::new(
        "estimate_pi",
        dir.path().join("driver.py").display().to_string(),
    )
    .pip_packages(["pandas"])
    .target(PySparkTarget::DataprocServerless);
    let (status, error) = run(job, &config, None);
    assert_eq!(status, JobStatus::Failed);
    assert!(error.contains("installs no pip packages"), "{error}");
    assert!(fake.state().log.is_empty(), "{:?}", fake.state().log);
}

#[test]
fn invalid_options_fail_before_any_request() {
    let dir = driver_dir();
    let fake = Fake::start(Scenario::default(), None);
    for (key, value, message) in [
        ("dataproc_worker_count", json!(1), "2 to 1000"),
        ("dataproc_region", json!("global"), "region"),
        ("gcp_auth_method", json!("password"), "not one of"),
        ("spark_target", json!("yarn"), "not a PySpark target"),
    ] {
        let mut config = config(&fake, None, &[("spark_target", "dataproc-cluster")]);
        config = config.add_configuration("bad", [(key, value)]);
        let workflow = Workflow::builder("spark_workflow")
            .config(config.clone())
            .jobs([
                PySparkJob::new("j", dir.path().join("driver.py").display().to_string())
                    .pip_packages(["x"]),
            ])
            .build()
            .unwrap();
        let resolved = config.resolve(Some("bad")).unwrap();
        let report = run_workflow(
            &workflow,
            None,
            parse_runtime("2024-05-06").unwrap(),
            &resolved,
            &Default::default(),
            &RunOptions::default(),
        );
        let error = report.outcomes[0].error.clone().unwrap_or_default();
        assert!(error.contains(message), "{key}: {error}");
    }
    assert!(fake.state().log.is_empty(), "{:?}", fake.state().log);
}

#[test]
fn spark_connect_sessions_are_deleted_after_use_and_after_failure() {
    let ctx = |config: &Config| {
        JobContext::new(
            parse_runtime("2024-05-06 07:00:00").unwrap(),
            "spark_workflow",
            "aggregate",
            config.resolve(Some("dev")).unwrap(),
        )
    };
    let fake = Fake::start(Scenario::default(), None);
    let config = config(&fake, None, &[]);
    let options = bigflow_spark::dataproc::DataprocOptions::from_context(&ctx(&config)).unwrap();
    let session = bigflow_spark::dataproc::Session::create(&ctx(&config), options).unwrap();
    assert_eq!(
        session.url,
        format!(
            "sc://spark-connect.example.invalid:443/;use_ssl=true;session_id=8c0f7a5e-uuid;token={TOKEN}"
        )
    );
    assert_eq!(fake.state().sessions.len(), 1);
    drop(session);
    assert_clean(&fake, None);

    let fake = Fake::start(
        Scenario {
            session_fails: true,
            ..Scenario::default()
        },
        None,
    );
    let config = self::config(&fake, None, &[]);
    let options = bigflow_spark::dataproc::DataprocOptions::from_context(&ctx(&config)).unwrap();
    let error = bigflow_spark::dataproc::Session::create(&ctx(&config), options)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("did not start: Insufficient quota"),
        "{error}"
    );
    assert_clean(&fake, None);
}

/// Google's metadata server: `tok-N`, a new N for every token request, living
/// `lifetime`; checks the `Metadata-Flavor` header. Points google-cloud-auth
/// at itself (call only in a child process, see [`in_child`]).
fn metadata_server(lifetime: u64) -> (Arc<tiny_http::Server>, Issued) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let host = server.server_addr().to_ip().unwrap().to_string();
    let issued: Issued = Arc::default();
    let tokens = issued.clone();
    let listener = server.clone();
    std::thread::spawn(move || {
        for request in listener.incoming_requests() {
            let flavor = request
                .headers()
                .iter()
                .any(|h| h.field.equiv("Metadata-Flavor") && h.value == "Google");
            let path = request.url().split('?').next().unwrap_or_default();
            if !flavor || path != "/computeMetadata/v1/instance/service-accounts/default/token" {
                let _ = request.respond(tiny_http::Response::from_string("").with_status_code(404));
                continue;
            }
            let mut tokens = tokens.lock().unwrap();
            let token = format!("tok-{}", tokens.len() + 1);
            tokens.push((
                token.clone(),
                Instant::now() + Duration::from_secs(lifetime),
            ));
            let body =
                json!({ "access_token": token, "expires_in": lifetime, "token_type": "Bearer" });
            let response = tiny_http::Response::from_string(body.to_string())
                .with_header(
                    "Content-Type: application/json"
                        .parse::<tiny_http::Header>()
                        .unwrap(),
                )
                .with_header(
                    "Metadata-Flavor: Google"
                        .parse::<tiny_http::Header>()
                        .unwrap(),
                );
            let _ = request.respond(response);
        }
    });
    // SAFETY: the child process runs this one test; no other thread reads
    // the environment while it is set.
    unsafe { std::env::set_var("GCE_METADATA_HOST", host) };
    (server, issued)
}

/// True in the child process that runs `test` alone, with HOME in an empty
/// directory and no GOOGLE_APPLICATION_CREDENTIALS (so google-cloud-auth
/// falls back to the metadata server); in the harness's own process, runs
/// that child, checks it passed, and returns false.
fn in_child(test: &str) -> bool {
    if std::env::var_os("BIGFLOW_DATAPROC_CHILD").is_some() {
        return true;
    }
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("BIGFLOW_DATAPROC_CHILD", "1")
        .env("HOME", home.path())
        // Peers are found through HOME otherwise.
        .env(
            "BIGFLOW_CACHE",
            bigflow_testkit::peers_dir().parent().unwrap(),
        )
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("GCE_METADATA_HOST")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child process of {test} failed:\n{stdout}\n{stderr}"
    );
    // A peer the child missed is reported here too.
    for line in stderr.lines().filter(|l| l.contains("SKIPPED")) {
        eprintln!("{line}");
    }
    false
}

#[test]
fn a_job_outliving_its_tokens_finishes_and_the_cluster_is_deleted_with_a_fresh_one() {
    if !in_child("a_job_outliving_its_tokens_finishes_and_the_cluster_is_deleted_with_a_fresh_one")
    {
        return;
    }
    let Some(gcs) = emulator() else {
        println!("skipped: no Cloud Storage emulator");
        return;
    };
    let (mds, issued) = metadata_server(2);
    let dir = driver_dir();
    let fake = Fake::start(
        Scenario {
            // Tokens live 2 s; google-cloud-auth renews short-lived ones
            // every 10 s: the job sees at least two of them.
            job_runs_for: Some(Duration::from_secs(12)),
            ..Scenario::default()
        },
        Some(gcs.endpoint.clone()),
    );
    fake.state().issued = Some(issued.clone());
    // The new key wins over the config's older gcp_auth_method = vault.
    let config = config(
        &fake,
        Some(&gcs.endpoint),
        &[("auth_method", "local_account")],
    );
    let (status, error) = run(
        pyspark_job(&dir, PySparkTarget::DataprocCluster),
        &config,
        None,
    );
    mds.unblock();
    assert_eq!(status, JobStatus::Succeeded, "{error}");
    assert_clean(&fake, Some(&gcs));
    let s = fake.state();
    assert!(s.log.iter().all(|l| !l.ends_with("/vault")), "{:?}", s.log);
    let token_of = |prefix: &str| {
        s.accepted
            .iter()
            .find(|(call, _)| call.starts_with(prefix))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no accepted {prefix}: {:?}", s.accepted))
    };
    let submitted = token_of("POST /v1/projects/test-project/regions/europe-west1/jobs:submit");
    let deleted = token_of("DELETE /v1/projects/test-project/regions/europe-west1/clusters/");
    assert_ne!(
        submitted, deleted,
        "the cluster was deleted with the job's first token"
    );
    let used: std::collections::BTreeSet<&str> =
        s.accepted.iter().map(|(_, t)| t.as_str()).collect();
    assert!(used.len() >= 2, "{used:?}");
    assert!(issued.lock().unwrap().len() >= 2);
}
