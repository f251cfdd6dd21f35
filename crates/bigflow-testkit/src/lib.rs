//! Test support shared by bigflow's integration tests.
//!
//! - Where `scripts/test` installs peer systems ([`peers_dir`]) and the rule
//!   for a missing peer ([`peers_present`]): a loud skip under plain
//!   `cargo test`, a failure under `BIGFLOW_REQUIRE_PEERS=1`.
//! - Loopback ports: [`free_port`], [`wait_for_port`].
//! - [`fuzz`]: the harness of the hostile-input suites.
//! - [`StorageEmulator`]: the real Cloud Storage emulator (PyPI
//!   `gcp-storage-emulator`) on loopback, stopped when dropped.
//! - [`beam`]: Beam's Python job service and pipelines built with Beam's
//!   Python SDK.
//! - [`dataflow`]: a strict fake of the Dataflow REST API that executes jobs
//!   on Beam's job service, and the Job Beam's own Dataflow client submits.

pub mod beam;
pub mod dataflow;
pub mod fuzz;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/test` installs peers (`$BIGFLOW_CACHE/peers`, default `~/.cache/bigflow/peers`).
pub fn peers_dir() -> PathBuf {
    std::env::var_os("BIGFLOW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/bigflow")
        })
        .join("peers")
}

/// Whether every peer is there; otherwise a loud skip, or a failure under
/// `BIGFLOW_REQUIRE_PEERS=1` (as `scripts/test` runs).
pub fn peers_present(missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "PEER MISSING: {}; run scripts/test (it installs them)",
        missing.join(", ")
    );
    if std::env::var("BIGFLOW_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("\n!!! SKIPPED: {message}\n");
    false
}

/// The Python of the apache-beam 2.77.0 venv `scripts/test` installs, or
/// `None` after the missing-peer rule ([`peers_present`]).
pub fn beam_python() -> Option<PathBuf> {
    let python = peers_dir().join("apache-beam-2.77.0/bin/python");
    let missing: Vec<String> = if python.is_file() {
        Vec::new()
    } else {
        vec![format!("apache-beam 2.77.0 ({})", python.display())]
    };
    peers_present(&missing).then_some(python)
}

/// The commands of `tools` that cannot be started.
pub fn missing_commands(tools: &[&str]) -> Vec<String> {
    tools
        .iter()
        .filter(|t| Command::new(t).arg("--version").output().is_err())
        .map(|t| t.to_string())
        .collect()
}

/// A loopback port nobody listens on right now, and never handed out before
/// in this process: parallel tests that each start a server would otherwise
/// sometimes get the same port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether `GET path` on a loopback port answers 200 within `limit` (retrying).
pub fn http_ok(port: u16, path: &str, limit: Duration) -> bool {
    use std::io::{Read, Write};
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let answer = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            )?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head)?;
            Ok(head)
        });
        if matches!(answer, Ok(head) if head.ends_with(b" 200")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Waits until a loopback port accepts connections; fails the test after `limit`.
pub fn wait_for_port(port: u16, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The storage emulator (PyPI `gcp-storage-emulator`) on loopback, stopped on drop.
pub struct StorageEmulator {
    child: Child,
    /// `http://127.0.0.1:PORT`, what `STORAGE_EMULATOR_HOST` takes.
    pub endpoint: String,
}

impl StorageEmulator {
    /// Starts the emulator, or `None` (after [`peers_present`]) when it is not installed.
    pub fn start() -> Option<StorageEmulator> {
        let bin = peers_dir().join("gcs-emulator/bin/gcp-storage-emulator");
        if !bin.is_file() && !peers_present(&[bin.display().to_string()]) {
            return None;
        }
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--in-memory",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start gcp-storage-emulator");
        let emulator = StorageEmulator {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_for_port(port, Duration::from_secs(30), "storage emulator");
        Some(emulator)
    }

    /// One JSON API call through Python's urllib (the emulator's own venv),
    /// so tests check the client under test against an independent one.
    pub fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let python = peers_dir().join("gcs-emulator/bin/python");
        let script = r#"
import sys, urllib.request
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
kind = "text/plain" if "uploadType=media" in url else "application/json"
req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers={"Content-Type": kind})
print(urllib.request.urlopen(req).read().decode() or "{}")
"#;
        let out = Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(method)
            .arg(format!("{}{path}", self.endpoint))
            .arg(body)
            .output()
            .expect("cannot run the emulator's python");
        assert!(
            out.status.success(),
            "{method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the emulator answered no JSON")
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        self.call(
            "POST",
            "/storage/v1/b?project=test",
            &serde_json::json!({ "name": bucket }).to_string(),
        );
    }

    /// Names of the objects under `prefix`, sorted.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let list = self.call(
            "GET",
            &format!("/storage/v1/b/{bucket}/o?prefix={prefix}"),
            "",
        );
        let mut names: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Uploads a text object.
    pub fn put(&self, bucket: &str, name: &str, text: &str) {
        self.call(
            "POST",
            &format!(
                "/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
                name.replace('/', "%2F")
            ),
            text,
        );
    }
}

impl Drop for StorageEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The BigQuery emulator (PyPI `bqemulator`) on loopback, stopped on drop.
pub struct BigQueryEmulator {
    child: Child,
    /// `http://127.0.0.1:PORT`, what `BIGQUERY_EMULATOR_HOST` takes.
    pub endpoint: String,
    /// The emulator's default project.
    pub project: String,
}

impl BigQueryEmulator {
    /// Starts the emulator, or `None` (after [`peers_present`]) when it is not installed.
    pub fn start() -> Option<BigQueryEmulator> {
        let python = peers_dir().join("bqemulator-1.4/bin/python");
        if !python.is_file() && !peers_present(&[python.display().to_string()]) {
            return None;
        }
        // Another process may take a port between free_port and the bind: retry.
        for _ in 0..3 {
            let (rest, grpc) = (free_port(), free_port());
            let child = Command::new(&python)
                .args(["-m", "bqemulator", "start", "--rest-host", "127.0.0.1"])
                .args(["--rest-port", &rest.to_string()])
                .args(["--grpc-host", "127.0.0.1", "--grpc-port", &grpc.to_string()])
                .args(["--project", "p1", "--log-level", "warning"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start bqemulator");
            let mut emulator = BigQueryEmulator {
                child,
                endpoint: format!("http://127.0.0.1:{rest}"),
                project: "p1".into(),
            };
            wait_for_port(rest, Duration::from_secs(60), "BigQuery emulator");
            // The port opens before the API answers: wait for a real answer.
            if http_ok(
                rest,
                "/bigquery/v2/projects/p1/datasets",
                Duration::from_secs(60),
            ) && matches!(emulator.child.try_wait(), Ok(None))
            {
                return Some(emulator);
            }
        }
        panic!("the BigQuery emulator exited at start three times");
    }
}

impl Drop for BigQueryEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake of the Compute Engine metadata server's token endpoint on
/// loopback: point `GCE_METADATA_HOST` at [`MetadataServer::host`] and
/// Google's auth library (bigflow's `local_account`) gets `token`.
pub struct MetadataServer {
    host: String,
}

impl MetadataServer {
    /// Serves `token` until the process ends.
    pub fn start(token: &str) -> MetadataServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let host = listener.local_addr().expect("an address").to_string();
        let answer = format!(
            "{{\"access_token\": \"{token}\", \"expires_in\": 3600, \"token_type\": \"Bearer\"}}"
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => continue,
                });
                let mut first = String::new();
                let mut line = String::new();
                let _ = reader.read_line(&mut first);
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let body = if first.contains("/token") {
                    answer.as_str()
                } else {
                    "{}"
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMetadata-Flavor: Google\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        MetadataServer { host }
    }

    /// `127.0.0.1:PORT`, the value for `GCE_METADATA_HOST`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Debian's `docker-registry` (the Distribution registry) on loopback,
/// without auth, stopped on drop.
pub struct DockerRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts a registry, or `None` after the missing-peer rule.
    pub fn start() -> Option<DockerRegistry> {
        let binary = "/usr/bin/docker-registry";
        let missing: Vec<String> = if std::path::Path::new(binary).exists() {
            Vec::new()
        } else {
            vec![binary.to_string()]
        };
        if !peers_present(&missing) {
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).expect("the registry's config");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start docker-registry");
        wait_for_port(port, Duration::from_secs(20), "docker-registry");
        Some(DockerRegistry {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        })
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
