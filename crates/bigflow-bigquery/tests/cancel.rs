//! A BigQuery job's timeout or interrupt cancels its query in BigQuery.
//!
//! bqemulator answers queries at once, so a long query is played by a strict
//! loopback fake of the jobs API: it checks each request's path, method and
//! body (job reference, `jobTimeoutMs` as an int64 string), keeps every job
//! RUNNING until `jobs.cancel` is called for it, then reports it DONE with
//! BigQuery's cancellation error. Anything else is answered 400.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bigflow_bigquery::{AuthMethod, BackendKind, DatasetConfig};
use bigflow_core::config::ResolvedConfig;
use bigflow_core::context::CancelToken;
use bigflow_core::executor::{JobStatus, RunOptions, run_workflow};
use bigflow_core::job::WithSettings;
use bigflow_core::resources::Resources;
use bigflow_core::{JobRef, Workflow, parse_runtime};
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    /// Job ids inserted, with their `jobTimeoutMs`.
    inserted: Vec<(String, Option<String>)>,
    cancelled: Vec<String>,
    refused: Vec<String>,
}

struct FakeBigQuery {
    url: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBigQuery {
    fn start() -> FakeBigQuery {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr());
        let state = Arc::new(Mutex::new(State::default()));
        let (srv, st) = (server.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            for mut request in srv.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let (status, answer) = answer(&st, request.method().as_str(), request.url(), &body);
                let response = tiny_http::Response::from_string(answer.to_string())
                    .with_status_code(status)
                    .with_header(
                        "Content-Type: application/json"
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    );
                let _ = request.respond(response);
            }
        });
        FakeBigQuery {
            url,
            state,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeBigQuery {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn refuse(state: &Mutex<State>, why: String) -> (u16, Value) {
    state.lock().unwrap().refused.push(why.clone());
    (
        400,
        json!({"error": {"code": 400, "message": why, "errors": [{"reason": "invalid"}]}}),
    )
}

fn job(id: &str, done: bool) -> Value {
    let mut job = json!({
        "kind": "bigquery#job",
        "jobReference": {"projectId": "p", "jobId": id},
        "status": {"state": if done { "DONE" } else { "RUNNING" }},
    });
    if done {
        job["status"]["errorResult"] = json!({"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"});
    }
    job
}

fn answer(state: &Mutex<State>, method: &str, url: &str, body: &str) -> (u16, Value) {
    let path = url.split('?').next().unwrap_or(url);
    let Some(rest) = path.strip_prefix("/bigquery/v2/projects/p/") else {
        return refuse(state, format!("unexpected path {url}"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match (method, parts.as_slice()) {
        // The dataset exists (the manager checks before its first job).
        ("GET", ["datasets", "ds"]) => (
            200,
            json!({"datasetReference": {"projectId": "p", "datasetId": "ds"}}),
        ),
        ("POST", ["datasets"]) => {
            let ok = serde_json::from_str::<Value>(body).is_ok_and(|d| {
                d["datasetReference"] == json!({"projectId": "p", "datasetId": "ds"})
            });
            if !ok {
                return refuse(state, format!("bad datasets.insert body {body}"));
            }
            (
                409,
                json!({"error": {"code": 409, "message": "Already Exists: Dataset p:ds", "errors": [{"reason": "duplicate"}]}}),
            )
        }
        ("POST", ["jobs"]) => {
            let Ok(job_body) = serde_json::from_str::<Value>(body) else {
                return refuse(state, "jobs.insert without a JSON body".into());
            };
            let id = job_body["jobReference"]["jobId"].as_str().unwrap_or("");
            if job_body["jobReference"]["projectId"] != "p"
                || id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return refuse(state, format!("bad jobReference in {body}"));
            }
            if job_body["configuration"]["query"]["query"]
                .as_str()
                .is_none()
            {
                return refuse(state, format!("no configuration.query.query in {body}"));
            }
            let timeout = &job_body["configuration"]["jobTimeoutMs"];
            if !(timeout.is_null() || timeout.as_str().is_some_and(|t| t.parse::<u64>().is_ok())) {
                return refuse(
                    state,
                    format!("jobTimeoutMs must be an int64 string: {timeout}"),
                );
            }
            state
                .lock()
                .unwrap()
                .inserted
                .push((id.to_string(), timeout.as_str().map(String::from)));
            (200, job(id, false))
        }
        ("GET", ["jobs", id]) => {
            let s = state.lock().unwrap();
            if !s.inserted.iter().any(|(i, _)| i == id) {
                return (
                    404,
                    json!({"error": {"code": 404, "message": format!("Not found: Job p:{id}")}}),
                );
            }
            (200, job(id, s.cancelled.iter().any(|c| c == id)))
        }
        ("POST", ["jobs", id, "cancel"]) => {
            let mut s = state.lock().unwrap();
            if !s.inserted.iter().any(|(i, _)| i == id) {
                drop(s);
                return refuse(state, format!("cancel of an unknown job {id}"));
            }
            s.cancelled.push(id.to_string());
            (
                200,
                json!({"kind": "bigquery#jobCancelResponse", "job": job(id, false)}),
            )
        }
        _ => refuse(state, format!("unexpected {method} {url}")),
    }
}

fn workflow(fake: &FakeBigQuery, timeout: Duration) -> Workflow {
    let ds = DatasetConfig::new("dev", "p", "ds")
        .backend(BackendKind::BigQuery {
            endpoint: Some(fake.url.clone()),
            location: None,
            auth: AuthMethod::None,
        })
        .create_dataset();
    let long = ds
        .collect("SELECT COUNT(*) FROM huge")
        .to_job("long_query")
        .with_execution_timeout(timeout);
    Workflow::builder("wf")
        .job(JobRef::new(long))
        .build()
        .unwrap()
}

fn run(wf: &Workflow, options: &RunOptions) -> bigflow_core::RunReport {
    run_workflow(
        wf,
        None,
        parse_runtime("2020-01-01").unwrap(),
        &ResolvedConfig::empty("default"),
        &Resources::default(),
        options,
    )
}

#[test]
fn a_timed_out_query_is_cancelled_in_bigquery() {
    let fake = FakeBigQuery::start();
    let report = run(
        &workflow(&fake, Duration::from_secs(2)),
        &RunOptions::default(),
    );
    assert_eq!(
        report.outcomes[0].status,
        JobStatus::TimedOut,
        "{:?} {:?}",
        report.outcomes[0].error,
        fake.state.lock().unwrap().refused
    );
    assert!(report.left_running.is_empty(), "{:?}", report.left_running);
    let s = fake.state.lock().unwrap();
    assert!(s.refused.is_empty(), "{:?}", s.refused);
    assert_eq!(s.inserted.len(), 1);
    // BigQuery itself is told to stop the job at the same time.
    assert_eq!(s.inserted[0].1.as_deref(), Some("2000"));
    assert_eq!(
        s.cancelled,
        [s.inserted[0].0.clone()],
        "jobs.cancel was called for the job"
    );
}

#[test]
fn an_interrupted_query_is_cancelled_in_bigquery() {
    let fake = FakeBigQuery::start();
    let interrupt = CancelToken::default();
    let raise = interrupt.clone();
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        raise.cancel();
    });
    let report = run(
        &workflow(&fake, Duration::from_secs(3600)),
        &RunOptions {
            interrupt: Some(interrupt),
            ..RunOptions::default()
        },
    );
    raiser.join().unwrap();
    assert!(report.interrupted());
    assert!(report.left_running.is_empty(), "{:?}", report.left_running);
    let s = fake.state.lock().unwrap();
    assert!(s.refused.is_empty(), "{:?}", s.refused);
    assert_eq!(s.inserted[0].1.as_deref(), Some("3600000"));
    assert_eq!(s.cancelled, [s.inserted[0].0.clone()]);
}
