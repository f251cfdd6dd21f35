//! `deploy-image` against a real registry (Debian's `docker-registry`, the
//! CNCF distribution registry) on loopback, with and without htpasswd auth,
//! and BigFlow's Vault flow served by a tiny local Vault-style endpoint.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Std, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;

const VAULT_SECRET: &str = "vault-secret-123";
const ACCESS_TOKEN: &str = "ya29.token-from-vault";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

fn peers_present() -> bool {
    let missing: Vec<&str> = ["/usr/bin/docker-registry", "/usr/bin/htpasswd", "/usr/bin/skopeo"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!("PEER MISSING: {}; run scripts/test (it installs docker-registry, apache2-utils, skopeo)", missing.join(", "));
    if std::env::var("BIGFLOW_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("\n!!! SKIPPED: {message}\n");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A registry process on loopback, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(with_auth: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if with_auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Std::new("htpasswd").args(["-Bbn", "oauth2accesstoken", ACCESS_TOKEN]).output().unwrap();
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", htpasswd.display()));
        }
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).unwrap();
        let child = Std::new("/usr/bin/docker-registry").arg("serve").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, port, _dir: dir }
    }

    fn repository(&self) -> String {
        format!("127.0.0.1:{}/bigflow/examples", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Vault-style endpoint: answers the access token to the right X-Vault-Token, 403 otherwise.
fn start_vault() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorized = false;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if line.to_ascii_lowercase().starts_with("x-vault-token:") && line.trim_end().ends_with(VAULT_SECRET) {
                    authorized = true;
                }
                line.clear();
            }
            let (status, body) = if authorized {
                ("200 OK", format!("{{\"data\": {{\"token\": \"{ACCESS_TOKEN}\"}}}}"))
            } else {
                ("403 Forbidden", "{\"errors\": [\"permission denied\"]}".to_string())
            };
            let mut stream = stream;
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    format!("http://127.0.0.1:{port}/v1/secret/token")
}

/// The example project's image archive and digest, built once.
fn image() -> &'static (PathBuf, String, tempfile::TempDir) {
    static IMAGE: OnceLock<(PathBuf, String, tempfile::TempDir)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::cargo_bin("bigflow")
            .unwrap()
            .args(["build-image", "--image-dir"])
            .arg(dir.path())
            .current_dir(workspace_root().join("examples/bigflow-examples"))
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let digest = String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2).unwrap().to_string();
        let archive = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        (archive, digest, dir)
    })
}

fn deploy(repository: &str, extra: &[&str]) -> (i32, String, String) {
    let (archive, ..) = image();
    let out = Command::cargo_bin("bigflow")
        .unwrap()
        .args(["deploy-image", "--image-tar-path"])
        .arg(archive)
        .args(["--docker-repository", repository])
        .args(extra)
        .current_dir(workspace_root().join("examples/bigflow-examples"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pushes_skips_known_layers_and_verifies_the_digest() {
    if !peers_present() {
        return;
    }
    let registry = Registry::start(false);
    let (_, digest, _) = image();
    let (code, out, err) = deploy(&registry.repository(), &["--auth-method", "none", "--plain-http"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!(" {digest} (uploaded 3 blobs, 0 already there)")), "{out}");
    let (code, out, err) = deploy(&registry.repository(), &["--auth-method", "none", "--plain-http"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(uploaded 0 blobs, 3 already there)"), "{out}");
    let tag = out.split_whitespace().nth(1).unwrap().rsplit_once(':').unwrap().1.to_string();
    let inspect = Std::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}:{tag}", registry.repository()))
        .output()
        .unwrap();
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Labels"]["org.opencontainers.image.title"], "bigflow-examples");
}

#[test]
fn vault_credentials_against_an_authenticating_registry() {
    if !peers_present() {
        return;
    }
    let registry = Registry::start(true);
    let vault = start_vault();
    let (code, out, err) = deploy(&registry.repository(), &["--auth-method", "vault", "--vault-endpoint", &vault, "--vault-secret", VAULT_SECRET, "--plain-http"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("pushed "), "{out}");

    let (code, out, err) = deploy(&registry.repository(), &["--auth-method", "vault", "--vault-endpoint", &vault, "--vault-secret", "wrong", "--plain-http"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("answered HTTP 403"), "{err}");
    assert!(!err.contains("wrong") && !err.contains(ACCESS_TOKEN), "no secrets in errors: {err}");

    let (code, _, err) = deploy(&registry.repository(), &["--auth-method", "none", "--plain-http"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rejected the credentials"), "{err}");
}

#[test]
fn bad_destinations_are_clear_errors() {
    if !peers_present() {
        return;
    }
    let (code, _, err) = deploy(&format!("127.0.0.1:{}/nothing/here", free_port()), &["--auth-method", "none", "--plain-http"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: cannot reach registry 127.0.0.1:"), "{err}");
    let (code, _, err) = deploy("registry.example.com/p/x", &["--auth-method", "none", "--plain-http"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("plain HTTP is only allowed to a loopback registry"), "{err}");
    let (code, _, err) = deploy("127.0.0.1:1/x", &["--auth-method", "vault"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--auth-method vault needs --vault-endpoint"), "{err}");
}
