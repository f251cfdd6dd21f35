//! Credentials over time and the request path's failure handling, against
//! loopback fakes (Google's metadata server, BigQuery and Vault cannot run
//! here).
//!
//! - A fake metadata server hands out `tok-N` tokens that live 2 seconds;
//!   google-cloud-auth finds it through `GCE_METADATA_HOST` (HOME points to an
//!   empty directory and GOOGLE_APPLICATION_CREDENTIALS is unset, so no other
//!   credentials are found). Those tests run in a child process of this test
//!   binary, so that the environment they need is set for nothing else.
//! - A fake API checks every request's bearer token: issued by the metadata
//!   server (or Vault) and not expired, else 401 — as Google does.
//! - Failures are injected: 401 for a revoked token, 429 with `Retry-After`,
//!   a 400 with a long message.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bigflow_gcp::bigquery::{BigQuery, BigQueryError};
use bigflow_gcp::retry::send;
use bigflow_gcp::{AuthMethod, Secret, TokenSource};
use serde_json::json;

/// One request as a fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    at: Instant,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn bearer(&self) -> Option<&str> {
        self.header("Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
    }
}

/// An answer: status, extra headers, JSON body.
type Reply = (u16, Vec<(&'static str, String)>, String);

/// A loopback HTTP server answering with `handler`; records every request.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    fn start(handler: impl Fn(&Seen) -> Reply + Send + 'static) -> Fake {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = server.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    let s = Seen {
                        method: request.method().as_str().to_string(),
                        url: request.url().to_string(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|h| (h.field.as_str().to_string(), h.value.to_string()))
                            .collect(),
                        at: Instant::now(),
                    };
                    let (status, headers, body) = handler(&s);
                    seen.lock().unwrap().push(s);
                    let mut response =
                        tiny_http::Response::from_string(body).with_status_code(status);
                    response.add_header(
                        "Content-Type: application/json"
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    );
                    for (k, v) in headers {
                        response
                            .add_header(format!("{k}: {v}").parse::<tiny_http::Header>().unwrap());
                    }
                    let _ = request.respond(response);
                }
            })
        };
        Fake {
            url,
            seen,
            server,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Tokens a fake issued, with their expiry.
type Issued = Arc<Mutex<Vec<(String, Instant)>>>;

/// Google's metadata server: `tok-N`, a new N for every token request,
/// living `lifetime`. Points google-cloud-auth at itself (call only in a
/// child process, see [`in_child`]).
fn metadata_server(lifetime: u64) -> (Fake, Issued) {
    let issued: Issued = Arc::default();
    let tokens = issued.clone();
    let fake = Fake::start(move |r| {
        let path = r.url.split('?').next().unwrap_or_default();
        if r.method != "GET"
            || path != "/computeMetadata/v1/instance/service-accounts/default/token"
            || r.header("Metadata-Flavor") != Some("Google")
        {
            return (404, vec![], "{}".into());
        }
        let mut tokens = tokens.lock().unwrap();
        let token = format!("tok-{}", tokens.len() + 1);
        tokens.push((
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        ));
        let body = json!({ "access_token": token, "expires_in": lifetime, "token_type": "Bearer" });
        (
            200,
            vec![("Metadata-Flavor", "Google".to_string())],
            body.to_string(),
        )
    });
    let host = fake.url.trim_start_matches("http://").to_string();
    // SAFETY: the child process runs this one test; no other thread reads
    // the environment while it is set.
    unsafe { std::env::set_var("GCE_METADATA_HOST", host) };
    (fake, issued)
}

/// Whether `token` was issued and has not expired.
fn valid(issued: &Issued, token: Option<&str>, at: Instant) -> bool {
    issued
        .lock()
        .unwrap()
        .iter()
        .any(|(t, expiry)| Some(t.as_str()) == token && at < *expiry)
}

fn google_error(status: u16, message: &str) -> String {
    json!({ "error": { "code": status, "message": message, "errors": [{ "reason": "x" }] } })
        .to_string()
}

/// True in the child process that runs `test` alone, with HOME in an empty
/// directory and no GOOGLE_APPLICATION_CREDENTIALS; in the test harness's own
/// process, runs that child, checks it passed, and returns false.
fn in_child(test: &str) -> bool {
    if std::env::var_os("BIGFLOW_TOKENS_CHILD").is_some() {
        return true;
    }
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("BIGFLOW_TOKENS_CHILD", "1")
        .env("HOME", home.path())
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("GCE_METADATA_HOST")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child process of {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fake BigQuery answering `datasets.get` to valid tokens, 401 otherwise.
fn bigquery_checking(issued: Issued) -> Fake {
    Fake::start(move |r| {
        if !valid(&issued, r.bearer(), r.at) {
            return (
                401,
                vec![],
                google_error(401, "Request had invalid authentication credentials."),
            );
        }
        let body = json!({ "kind": "bigquery#dataset", "datasetReference": { "projectId": "p", "datasetId": "d" } });
        (200, vec![], body.to_string())
    })
}

#[test]
fn bigquery_calls_spanning_several_token_lifetimes_get_fresh_tokens() {
    if !in_child("bigquery_calls_spanning_several_token_lifetimes_get_fresh_tokens") {
        return;
    }
    let (mds, issued) = metadata_server(2);
    let api = bigquery_checking(issued.clone());
    let rt = runtime();
    rt.block_on(async {
        let auth = TokenSource::new(&AuthMethod::LocalAccount).await.unwrap();
        let bq = BigQuery::new(Some(&api.url), "p", None, auth).unwrap();
        let started = Instant::now();
        // Until three tokens have been used (google-cloud-auth refreshes
        // short-lived tokens every 10 s), every call must succeed.
        loop {
            let accepted: BTreeSet<String> = api
                .seen()
                .iter()
                .filter(|s| valid(&issued, s.bearer(), s.at))
                .filter_map(|s| s.bearer().map(String::from))
                .collect();
            if accepted.len() >= 3 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "tokens were not refreshed: {accepted:?}"
            );
            let dataset = bq.get_dataset("p", "d").await.unwrap();
            assert!(dataset.is_some());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // Every request carried a token the metadata server issued.
    let issued_names: Vec<String> = issued.lock().unwrap().iter().map(|t| t.0.clone()).collect();
    for s in api.seen() {
        let token = s.bearer().unwrap_or("(none)").to_string();
        assert!(issued_names.contains(&token), "{token} was never issued");
    }
    assert!(mds.seen().len() >= 3);
}

#[test]
fn a_401_from_google_credentials_gets_one_new_token_and_one_retry() {
    if !in_child("a_401_from_google_credentials_gets_one_new_token_and_one_retry") {
        return;
    }
    let (_mds, issued) = metadata_server(3600);
    // tok-1 is revoked: valid by its expiry, refused by the API.
    let api = {
        let issued = issued.clone();
        Fake::start(move |r| {
            if r.bearer() == Some("tok-1") || !valid(&issued, r.bearer(), r.at) {
                return (401, vec![], google_error(401, "Token revoked"));
            }
            (200, vec![], "{}".into())
        })
    };
    runtime().block_on(async {
        let auth = TokenSource::new(&AuthMethod::LocalAccount).await.unwrap();
        let bq = BigQuery::new(Some(&api.url), "p", None, auth).unwrap();
        bq.get_dataset("p", "d").await.unwrap();
        // The new token is kept for later calls.
        bq.get_dataset("p", "d").await.unwrap();
    });
    let tokens: Vec<String> = api
        .seen()
        .iter()
        .map(|s| s.bearer().unwrap_or_default().to_string())
        .collect();
    assert_eq!(tokens, ["tok-1", "tok-2", "tok-2"]);
}

/// A Vault handing out `vault-tok-N` and an API refusing the tokens in `revoked`.
fn vault_and_api(revoked: &'static [&'static str]) -> (Fake, Arc<Mutex<u32>>) {
    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    let fake = Fake::start(move |r| {
        if r.url == "/vault" {
            if r.header("X-Vault-Token") != Some("vault-secret") {
                return (403, vec![], "{}".into());
            }
            let mut n = counter.lock().unwrap();
            *n += 1;
            return (
                200,
                vec![],
                json!({ "data": { "token": format!("vault-tok-{n}") } }).to_string(),
            );
        }
        match r.bearer() {
            Some(t) if t.starts_with("vault-tok-") && !revoked.contains(&t) => {
                (200, vec![], "{}".into())
            }
            _ => (401, vec![], google_error(401, "Invalid Credentials")),
        }
    });
    (fake, count)
}

#[test]
fn a_401_with_a_vault_token_asks_vault_again_once() {
    let (fake, vault_calls) = vault_and_api(&["vault-tok-1"]);
    let method = AuthMethod::Vault {
        endpoint: format!("{}/vault", fake.url),
        secret: Secret::new("vault-secret"),
        verify: Default::default(),
    };
    runtime().block_on(async {
        let auth = TokenSource::new(&method).await.unwrap();
        let bq = BigQuery::new(Some(&fake.url), "p", None, auth).unwrap();
        bq.get_dataset("p", "d").await.unwrap();
        bq.get_dataset("p", "d").await.unwrap();
    });
    assert_eq!(*vault_calls.lock().unwrap(), 2);
    let api: Vec<String> = fake
        .seen()
        .iter()
        .filter(|s| s.url != "/vault")
        .map(|s| s.bearer().unwrap_or_default().to_string())
        .collect();
    assert_eq!(api, ["vault-tok-1", "vault-tok-2", "vault-tok-2"]);

    // Refused again after the refresh: one retry only, then the error.
    let (fake, vault_calls) = vault_and_api(&["vault-tok-1", "vault-tok-2", "vault-tok-3"]);
    let method = AuthMethod::Vault {
        endpoint: format!("{}/vault", fake.url),
        secret: Secret::new("vault-secret"),
        verify: Default::default(),
    };
    let e = runtime().block_on(async {
        let auth = TokenSource::new(&method).await.unwrap();
        let bq = BigQuery::new(Some(&fake.url), "p", None, auth).unwrap();
        bq.get_dataset("p", "d").await.unwrap_err()
    });
    assert_eq!(
        e.to_string(),
        "reading dataset p.d: HTTP 401: Invalid Credentials"
    );
    assert_eq!(*vault_calls.lock().unwrap(), 2);
    assert_eq!(fake.seen().iter().filter(|s| s.url != "/vault").count(), 2);
}

#[test]
fn retry_after_is_waited_before_the_retry() {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let fake = Fake::start(move |_| {
        let mut n = counter.lock().unwrap();
        *n += 1;
        if *n == 1 {
            (
                429,
                vec![("Retry-After", "1".to_string())],
                google_error(429, "slow down"),
            )
        } else {
            (200, vec![], "{\"ok\": true}".into())
        }
    });
    bigflow_gcp::install_crypto_provider();
    let http = reqwest::Client::new();
    let auth = TokenSource::none();
    let started = Instant::now();
    let body = runtime()
        .block_on(send(&auth, || http.get(format!("{}/x", fake.url))))
        .unwrap();
    assert_eq!(body, b"{\"ok\": true}");
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    // A lower bound only: the retry came no sooner than Retry-After said.
    assert!(
        seen[1].at - seen[0].at >= Duration::from_millis(950),
        "{:?}",
        seen[1].at - seen[0].at
    );
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert!(seen.iter().all(|s| s.header("Authorization").is_none()));
}

#[test]
fn a_refused_request_keeps_its_whole_message_and_is_not_retried() {
    let long = format!(
        "Syntax error: {} at [1:2000]",
        "unexpected keyword ".repeat(40)
    );
    assert!(long.len() > 300);
    let message = long.clone();
    let fake = Fake::start(move |_| {
        let body = json!({ "error": { "code": 400, "message": message, "status": "INVALID_ARGUMENT",
            "errors": [{ "reason": "invalidQuery", "message": message }] } });
        (400, vec![], body.to_string())
    });
    let e = runtime().block_on(async {
        let bq = BigQuery::new(Some(&fake.url), "p", None, TokenSource::none()).unwrap();
        bq.dry_run("SELECT").await.unwrap_err()
    });
    match &e {
        BigQueryError::Failed {
            message, reason, ..
        } => {
            assert_eq!(message, &format!("HTTP 400: {long}"));
            assert_eq!(reason.as_deref(), Some("invalidQuery"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().ends_with("at [1:2000]"), "{e}");
    assert_eq!(fake.seen().len(), 1);

    // The typed error of the request path itself.
    bigflow_gcp::install_crypto_provider();
    let http = reqwest::Client::new();
    let e = runtime()
        .block_on(send(&TokenSource::none(), || {
            http.get(format!("{}/x", fake.url))
        }))
        .unwrap_err();
    assert_eq!(e.status, Some(400));
    assert_eq!(e.message, long);
    assert_eq!(e.api_status.as_deref(), Some("INVALID_ARGUMENT"));
    assert!(!e.is_retryable() && !e.is_not_found());
}
