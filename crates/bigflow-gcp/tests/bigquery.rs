//! The BigQuery REST client against the real emulator (PyPI `bqemulator`),
//! directly and through a fault-injecting proxy.
//!
//! The proxy sits between the client and the emulator and, per rule, answers
//! 429 or 500 itself, drops the connection without an answer, forwards a
//! request and then drops the answer (the job was inserted, the client never
//! heard), or replaces a job's status. It also gives duplicate job ids the
//! answer real BigQuery gives (409); the emulator itself answers 200, one of
//! its documented gaps. Every test checks the emulator's own state, e.g.
//! that a retried DML insert added its row once.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bigflow_gcp::TokenSource;
use bigflow_gcp::bigquery::{BigQuery, BigQueryError};
use bigflow_testkit::BigQueryEmulator;
use serde_json::{Map, Value, json};

/// What the proxy does with the next request whose line starts with `prefix`.
#[derive(Clone, Debug)]
enum Fault {
    /// Answer with this status and a Google error body.
    Status(u16, &'static str),
    /// Close the connection without answering.
    Drop,
    /// Forward to the emulator, then close without passing the answer on.
    ForwardThenDrop,
    /// Answer with this JSON (e.g. a job stuck RUNNING, or failed).
    Json(Value),
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<(String, Fault)>,
    /// Request lines seen.
    log: Vec<String>,
    /// Job ids inserted so far (to answer duplicates with 409, as BigQuery does).
    job_ids: HashSet<String>,
    /// Faults applied.
    applied: Vec<String>,
}

struct Proxy {
    endpoint: String,
    state: Arc<Mutex<ProxyState>>,
}

fn read_request(stream: &mut BufReader<TcpStream>) -> Option<(String, Vec<String>, Vec<u8>)> {
    let mut line = String::new();
    stream.read_line(&mut line).ok()?;
    if line.is_empty() {
        return None;
    }
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).ok()?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
        headers.push(h);
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((line.trim_end().to_string(), headers, body))
}

/// Sends the request to the emulator (one connection per request) and returns its raw answer.
fn forward(upstream: &str, line: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = TcpStream::connect(upstream).unwrap();
    let mut request = format!("{line}\r\n");
    for h in headers {
        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "host" {
            request.push_str(&format!("{h}\r\n"));
        }
    }
    request.push_str(&format!("Host: {upstream}\r\nConnection: close\r\n\r\n"));
    out.write_all(request.as_bytes()).unwrap();
    out.write_all(body).unwrap();
    let mut answer = Vec::new();
    out.read_to_end(&mut answer).unwrap();
    answer
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = shared.clone();
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    // One request per connection: the answer says Connection: close.
                    let Some((line, headers, body)) = read_request(&mut reader) else {
                        return;
                    };
                    let fault = {
                        let mut s = state.lock().unwrap();
                        s.log.push(line.clone());
                        let i = s
                            .rules
                            .iter()
                            .position(|(p, _)| line.starts_with(p.as_str()));
                        let fault = i.map(|i| s.rules.remove(i).1);
                        if let Some(f) = &fault {
                            s.applied.push(format!("{line} -> {f:?}"));
                        }
                        fault
                    };
                    // Real BigQuery refuses a job id it has seen (only ids that
                    // reached the emulator count).
                    let forwarded = matches!(fault, None | Some(Fault::ForwardThenDrop));
                    if forwarded
                        && line.starts_with("POST /bigquery/v2/projects/")
                        && line.contains("/jobs ")
                        && let Ok(v) = serde_json::from_slice::<Value>(&body)
                        && let Some(id) = v["jobReference"]["jobId"].as_str()
                        && !state.lock().unwrap().job_ids.insert(id.to_string())
                    {
                        respond(
                            &mut stream,
                            409,
                            &json!({"error": {"code": 409, "message": format!("Already Exists: Job p1:US.{id}"), "errors": [{"reason": "duplicate"}]}}).to_string(),
                        );
                        return;
                    }
                    match fault {
                        Some(Fault::Status(status, reason)) => respond(
                            &mut stream,
                            status,
                            &json!({"error": {"code": status, "message": "injected", "errors": [{"reason": reason}]}}).to_string(),
                        ),
                        Some(Fault::Drop) => drop(stream),
                        Some(Fault::ForwardThenDrop) => {
                            forward(&upstream, &line, &headers, &body);
                            drop(stream);
                        }
                        Some(Fault::Json(v)) => respond(&mut stream, 200, &v.to_string()),
                        None => {
                            let answer = forward(&upstream, &line, &headers, &body);
                            let _ = stream.write_all(&answer);
                        }
                    }
                });
            }
        });
        Proxy { endpoint, state }
    }

    fn fail(&self, prefix: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .rules
            .push((prefix.to_string(), fault));
    }

    fn applied(&self) -> Vec<String> {
        self.state.lock().unwrap().applied.clone()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(endpoint: &str) -> BigQuery {
    let mut bq = BigQuery::new(Some(endpoint), "p1", None, TokenSource::none()).unwrap();
    bq.poll_interval = Duration::from_millis(50);
    bq
}

fn no_labels() -> Map<String, Value> {
    Map::new()
}

fn count(bq: &BigQuery, rt: &tokio::runtime::Runtime, table: &str) -> i64 {
    let rows = rt
        .block_on(bq.query(
            &bigflow_gcp::bigquery::new_job_id("count"),
            &format!("SELECT COUNT(*) AS n FROM `p1.ds.{table}`"),
            &no_labels(),
        ))
        .unwrap();
    rows.rows[0]["f"][0]["v"].as_str().unwrap().parse().unwrap()
}

#[test]
fn queries_tables_datasets_and_pages_on_the_emulator() {
    let Some(emulator) = BigQueryEmulator::start() else {
        return;
    };
    let rt = runtime();
    let mut bq = client(&emulator.endpoint);
    bq.page_size = 2;
    let labels: Map<String, Value> = [("team".to_string(), json!("data"))].into_iter().collect();
    rt.block_on(bq.ensure_dataset("p1", "ds", &labels)).unwrap();
    rt.block_on(bq.ensure_dataset("p1", "ds", &labels)).unwrap();
    rt.block_on(bq.query(
        "create_ports",
        "CREATE TABLE `p1.ds.ports` (port_name STRING, country STRING)",
        &labels,
    ))
    .unwrap();
    let inserted = rt
        .block_on(bq.query(
            "insert_ports",
            "INSERT INTO `p1.ds.ports` VALUES ('GDYNIA','POLAND'),('GDANSK','POLAND'),('HAMBURG','GERMANY'),('ROTTERDAM','NETHERLANDS'),('SZCZECIN','POLAND')",
            &no_labels(),
        ))
        .unwrap();
    assert_eq!(inserted.affected_rows, Some(5));
    // Five rows in pages of two.
    let rows = rt
        .block_on(bq.query(
            "select_ports",
            "SELECT port_name FROM `p1.ds.ports` ORDER BY port_name",
            &no_labels(),
        ))
        .unwrap();
    let names: Vec<&str> = rows
        .rows
        .iter()
        .map(|r| r["f"][0]["v"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["GDANSK", "GDYNIA", "HAMBURG", "ROTTERDAM", "SZCZECIN"]
    );
    assert_eq!(rows.fields[0]["name"], "port_name");
    // Tables.
    let table = rt
        .block_on(bq.get_table("p1", "ds", "ports"))
        .unwrap()
        .unwrap();
    assert_eq!(table["schema"]["fields"][1]["name"], "country");
    assert_eq!(rt.block_on(bq.get_table("p1", "ds", "nope")).unwrap(), None);
    rt.block_on(bq.insert_table(
        "p1",
        "ds",
        json!({"tableReference": {"projectId": "p1", "datasetId": "ds", "tableId": "calls"},
               "schema": {"fields": [{"name": "port_name", "type": "STRING"}, {"name": "tonnage", "type": "INTEGER"}]}}),
    ))
    .unwrap();
    let again = rt.block_on(bq.insert_table(
        "p1",
        "ds",
        json!({"tableReference": {"projectId": "p1", "datasetId": "ds", "tableId": "calls"}}),
    ));
    assert!(
        matches!(again, Err(BigQueryError::AlreadyExists { .. })),
        "{again:?}"
    );
    rt.block_on(bq.insert_all(
        "p1",
        "ds",
        "calls",
        &[
            json!({"port_name": "GDANSK", "tonnage": 84000}),
            json!({"port_name": "GDYNIA", "tonnage": 52000}),
        ],
        &["r1".into(), "r2".into()],
    ))
    .unwrap();
    assert_eq!(count(&bq, &rt, "calls"), 2);
    // A dry run plans without running.
    let plan = rt
        .block_on(bq.dry_run("SELECT port_name, tonnage FROM `p1.ds.calls`"))
        .unwrap();
    assert_eq!(
        plan["statistics"]["query"]["schema"]["fields"][1]["name"],
        "tonnage"
    );
    // SQL errors carry BigQuery's message.
    let bad = rt
        .block_on(bq.query("bad_sql", "SELECT nope FROM `p1.ds.calls`", &no_labels()))
        .unwrap_err();
    assert!(bad.to_string().contains("nope"), "{bad}");
    // Deleting the dataset removes its tables; deleting it again is fine.
    rt.block_on(bq.delete_dataset("p1", "ds")).unwrap();
    rt.block_on(bq.delete_dataset("p1", "ds")).unwrap();
    assert_eq!(rt.block_on(bq.get_dataset("p1", "ds")).unwrap(), None);
}

#[test]
fn transient_failures_are_retried_and_a_lost_insert_never_runs_twice() {
    let Some(emulator) = BigQueryEmulator::start() else {
        return;
    };
    let proxy = Proxy::start(&emulator.endpoint);
    let rt = runtime();
    let bq = client(&proxy.endpoint);
    rt.block_on(bq.ensure_dataset("p1", "ds", &no_labels()))
        .unwrap();
    rt.block_on(bq.query("create_t", "CREATE TABLE `p1.ds.t` (x INT64)", &no_labels()))
        .unwrap();

    // 429 and 500 on the insert, a dropped connection on a poll.
    proxy.fail(
        "POST /bigquery/v2/projects/p1/jobs",
        Fault::Status(429, "rateLimitExceeded"),
    );
    proxy.fail(
        "POST /bigquery/v2/projects/p1/jobs",
        Fault::Status(500, "backendError"),
    );
    proxy.fail("GET /bigquery/v2/projects/p1/queries/", Fault::Drop);
    rt.block_on(bq.query("insert_1", "INSERT INTO `p1.ds.t` VALUES (1)", &no_labels()))
        .unwrap();
    assert_eq!(count(&bq, &rt, "t"), 1);
    assert_eq!(proxy.applied().len(), 3, "{:?}", proxy.applied());

    // The insert reaches BigQuery but its answer is lost: the retry meets
    // the job id again (409) and follows the existing job.
    proxy.fail("POST /bigquery/v2/projects/p1/jobs", Fault::ForwardThenDrop);
    rt.block_on(bq.query("insert_2", "INSERT INTO `p1.ds.t` VALUES (2)", &no_labels()))
        .unwrap();
    assert_eq!(count(&bq, &rt, "t"), 2, "the retried insert ran twice");

    // A 403 that is not a rate limit is not retried.
    proxy.fail(
        "POST /bigquery/v2/projects/p1/jobs",
        Fault::Status(403, "accessDenied"),
    );
    let denied = rt
        .block_on(bq.query("insert_3", "INSERT INTO `p1.ds.t` VALUES (3)", &no_labels()))
        .unwrap_err();
    assert!(denied.to_string().contains("HTTP 403"), "{denied}");
    assert_eq!(count(&bq, &rt, "t"), 2);
}

#[test]
fn jobs_failing_for_transient_reasons_run_again_under_a_new_id() {
    let Some(emulator) = BigQueryEmulator::start() else {
        return;
    };
    let proxy = Proxy::start(&emulator.endpoint);
    let rt = runtime();
    let bq = client(&proxy.endpoint);
    // The first run "fails" with backendError (the proxy answers for BigQuery).
    proxy.fail(
        "POST /bigquery/v2/projects/p1/jobs",
        Fault::Json(json!({
            "jobReference": {"projectId": "p1", "jobId": "q"},
            "status": {"state": "DONE", "errorResult": {"reason": "backendError", "message": "Backend error. Job aborted."}}
        })),
    );
    let rows = rt
        .block_on(bq.query("q", "SELECT 42 AS answer", &no_labels()))
        .unwrap();
    assert_eq!(rows.rows[0]["f"][0]["v"], "42");
    let log = proxy.state.lock().unwrap().log.clone();
    assert!(
        log.iter().any(|l| l.contains("/queries/q_retry1")),
        "{log:?}"
    );
}

#[test]
fn a_job_that_never_finishes_hits_the_deadline() {
    let Some(emulator) = BigQueryEmulator::start() else {
        return;
    };
    let proxy = Proxy::start(&emulator.endpoint);
    let rt = runtime();
    let mut bq = client(&proxy.endpoint);
    bq.job_deadline = Duration::from_millis(500);
    let running = json!({"jobReference": {"projectId": "p1", "jobId": "slow"}, "status": {"state": "RUNNING"}});
    proxy.fail(
        "POST /bigquery/v2/projects/p1/jobs",
        Fault::Json(running.clone()),
    );
    for _ in 0..100 {
        proxy.fail(
            "GET /bigquery/v2/projects/p1/jobs/slow",
            Fault::Json(running.clone()),
        );
    }
    let e = rt
        .block_on(bq.query("slow", "SELECT 1", &no_labels()))
        .unwrap_err();
    assert!(matches!(e, BigQueryError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("bq cancel slow"), "{e}");
}
