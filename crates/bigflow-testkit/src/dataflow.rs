//! A strict fake of the Dataflow REST API on loopback ([`FakeDataflow`]) and
//! the Job that Beam's own Dataflow client would submit ([`beam_reference_job`]).
//!
//! The fake (`fake_dataflow/fake_dataflow.py` in this crate, run by the
//! `dataflow-fake` venv of `scripts/peers.sh`) checks every request against
//! the `dataflow.v1b3` discovery document and Google's `Job` message, reads
//! the staged pipeline from the Cloud Storage emulator, checks its hash, and
//! executes it on Beam's job service, the DOCKER environments replaced by a
//! worker pool that starts the given worker binary with the container boot
//! flags. See `fake_dataflow/README.md` for its endpoints and fault API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, http_ok, peers_dir, peers_present};

/// The folder of the fake's Python files.
pub fn fake_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fake_dataflow")
}

/// The Python of the `dataflow-fake` venv `scripts/test` installs, or `None`
/// after the missing-peer rule ([`peers_present`]).
pub fn dataflow_python() -> Option<PathBuf> {
    let python = peers_dir().join("dataflow-fake/bin/python");
    let missing: Vec<String> = if python.is_file() {
        Vec::new()
    } else {
        vec![format!(
            "the fake Dataflow API's venv ({})",
            python.display()
        )]
    };
    peers_present(&missing).then_some(python)
}

/// One HTTP answer: the status and the body (JSON when it parses, else a string).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
}

/// One HTTP/1.1 request to a loopback `endpoint` (`http://HOST:PORT`), with
/// `Connection: close`. `Err` when the connection closes without an answer
/// (what the fake's `drop` fault does) or cannot be made.
pub fn http(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Answer, String> {
    let authority = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream =
        TcpStream::connect(&authority).map_err(|e| format!("connect {authority}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body))
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return Err(format!(
            "{method} {path}: the connection closed without an answer ({read:?})"
        ));
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: a truncated answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut data = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: no status line in {head:?}"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        data = dechunk(&data);
    }
    let body = serde_json::from_slice(&data)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&data).to_string()));
    Ok(Answer { status, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}

/// Uploads bytes as an object of the Cloud Storage emulator at `storage_endpoint`.
pub fn put_object(storage_endpoint: &str, bucket: &str, name: &str, data: &[u8]) {
    let path = format!(
        "/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
        name.replace('/', "%2F")
    );
    let answer = http(
        storage_endpoint,
        "POST",
        &path,
        &[("Content-Type", "application/octet-stream")],
        Some(data),
    )
    .expect("the storage emulator did not answer");
    assert_eq!(answer.status, 200, "upload of {name}: {}", answer.body);
}

/// The fake Dataflow API on loopback, stopped (with its worker pools) on drop.
pub struct FakeDataflow {
    child: Child,
    port: u16,
    log: PathBuf,
    log_dir: PathBuf,
}

impl FakeDataflow {
    /// Starts the fake, or `None` (after [`peers_present`]) when its venv is
    /// missing. Jobs read their pipeline from `storage_endpoint` (the storage
    /// emulator, `http://127.0.0.1:PORT`, also given to the workers as
    /// `STORAGE_EMULATOR_HOST`) and run on Beam's job service at
    /// `beam_job_endpoint` (`localhost:PORT`); DOCKER environments run
    /// `worker_binary` with the container boot flags (a job that has one
    /// fails when it is `None`).
    pub fn start(
        storage_endpoint: &str,
        beam_job_endpoint: &str,
        worker_binary: Option<&Path>,
    ) -> Option<FakeDataflow> {
        let python = dataflow_python()?;
        for _ in 0..3 {
            let port = free_port();
            let base = std::env::temp_dir().join(format!(
                "bigflow-fake-dataflow-{}-{port}",
                std::process::id()
            ));
            let log_dir = base.join("workers");
            std::fs::create_dir_all(&log_dir).expect("cannot create the fake's log folder");
            let log = base.join("fake.log");
            let out = std::fs::File::create(&log).expect("cannot create the fake's log");
            let err = out.try_clone().expect("cannot share the fake's log");
            let mut command = Command::new(&python);
            command
                .arg(fake_dir().join("fake_dataflow.py"))
                .args(["--port", &port.to_string()])
                .args(["--storage-endpoint", storage_endpoint])
                .args(["--beam-job-endpoint", beam_job_endpoint])
                .arg("--log-dir")
                .arg(&log_dir);
            if let Some(binary) = worker_binary {
                command.arg("--worker-binary").arg(binary);
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("cannot start the fake Dataflow API");
            let mut fake = FakeDataflow {
                child,
                port,
                log,
                log_dir,
            };
            if http_ok(port, "/__fake/health", Duration::from_secs(60))
                && matches!(fake.child.try_wait(), Ok(None))
            {
                return Some(fake);
            }
            eprintln!("the fake Dataflow API did not start:\n{}", fake.log());
        }
        panic!("the fake Dataflow API failed to start three times");
    }

    /// `http://127.0.0.1:PORT`: the root the API paths (`/v1b3/...`) go under.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One request to the fake (`path` from the root, e.g.
    /// `/v1b3/projects/p/locations/r/jobs`), JSON body, with `Authorization:
    /// Bearer TOKEN` when `token` is given. `Err` when the connection closes
    /// without an answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Answer, String> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer));
        }
        let data = body.map(|b| b.to_string().into_bytes());
        http(&self.endpoint(), method, path, &headers, data.as_deref())
    }

    fn side(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let answer = self
            .call(method, path, body, None)
            .unwrap_or_else(|e| panic!("the fake Dataflow API: {e}\n{}", self.log()));
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
        answer.body
    }

    /// Queues faults for the next calls of one kind, consumed in order:
    /// kinds `create`, `get`, `update`, `list`, `messages`, `metrics` take
    /// `"429"`, `"500"`, `"503"` (answered without doing anything), `"drop"`
    /// (does the call, then closes the connection without answering) and
    /// `"drop_before"` (closes it without doing anything); kind `run` takes
    /// `"fail"` (the next created job fails with an error message), `"hang"`
    /// (it runs until cancelled) and `"ok"` (it runs normally).
    pub fn inject_faults(&self, kind: &str, faults: &[&str]) {
        self.side(
            "POST",
            "/__fake/faults",
            Some(&serde_json::json!({ kind: faults })),
        );
    }

    /// Every job the fake has, oldest first: `id`, `name`, `currentState`,
    /// `requestedState`, `beamJobId`, `messages`, `metrics`, `workerPoolLog`,
    /// the whole Job as `job` and the create request's body as `request`.
    pub fn jobs(&self) -> Vec<Value> {
        match self.side("GET", "/__fake/jobs", None) {
            Value::Array(jobs) => jobs,
            other => panic!("/__fake/jobs answered {other}"),
        }
    }

    /// Every API request received, in order: `method`, `path`, `query`,
    /// `headers` (lowercase names, without the token), `authorization`
    /// (whether one was sent), `body` (JSON), `status` (a number or
    /// `"dropped"`), `fault`, `error`.
    pub fn requests(&self) -> Vec<Value> {
        match self.side("GET", "/__fake/requests", None) {
            Value::Array(requests) => requests,
            other => panic!("/__fake/requests answered {other}"),
        }
    }

    /// What the fake logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the worker pools (and the workers they started) logged so far.
    pub fn worker_logs(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.log_dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        logs.sort();
        logs.iter()
            .map(|p| {
                format!(
                    "== {}\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Polls `GET .../jobs/{id}` until a terminal state or `limit`; the last Job.
    pub fn wait_for_terminal(
        &self,
        project: &str,
        region: &str,
        id: &str,
        limit: Duration,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self
                .call(
                    "GET",
                    &format!("/v1b3/projects/{project}/locations/{region}/jobs/{id}"),
                    None,
                    Some("test-token"),
                )
                .expect("the fake Dataflow API did not answer");
            assert_eq!(answer.status, 200, "get {id}: {}", answer.body);
            let state = answer.body["currentState"].as_str().unwrap_or_default();
            if matches!(
                state,
                "JOB_STATE_DONE" | "JOB_STATE_FAILED" | "JOB_STATE_CANCELLED"
            ) {
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still {state} after {limit:?}\n{}\n{}",
                self.log(),
                self.worker_logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for FakeDataflow {
    fn drop(&mut self) {
        // SIGTERM: the fake stops its worker pools (own process groups) first.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(base) = self.log.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

/// The Dataflow Job that Beam's own Dataflow client (apache-beam[gcp] 2.77's
/// `DataflowRunner.run_pipeline(None, options, proto)`, as its
/// `dataflow_job_service` calls it) would submit for `pipeline_pb` (a
/// serialized Runner API Pipeline), written offline in template mode by
/// `fake_dataflow/beam_reference_job.py`; `options` are Beam pipeline options
/// (`("sdk_container_image", "IMAGE")` → `--sdk_container_image=IMAGE`) over
/// the defaults: project `p`, region `us-central1`, job name
/// `reference-job`, temp and staging locations under `gs://reference-bucket/`,
/// image `bigflow:reference`. `None` (after [`peers_present`]) when the venv
/// is missing.
pub fn beam_reference_job(pipeline_pb: &[u8], options: &[(&str, &str)]) -> Option<Value> {
    let python = dataflow_python()?;
    let file = std::env::temp_dir().join(format!(
        "bigflow-reference-pipeline-{}-{}.pb",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&file, pipeline_pb).expect("cannot write the pipeline");
    let out = Command::new(python)
        .arg(fake_dir().join("beam_reference_job.py"))
        .arg(&file)
        .args(options.iter().map(|(k, v)| format!("--{k}={v}")))
        .output()
        .expect("cannot run beam_reference_job.py");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "beam_reference_job.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value =
        serde_json::from_slice(&out.stdout).expect("beam_reference_job.py printed no JSON");
    Some(answer["job"].clone())
}
