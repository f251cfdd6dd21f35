//! `deploy-image` against a real registry (Debian's `docker-registry`, the
//! CNCF distribution registry) on loopback, with and without htpasswd auth,
//! and BigFlow's Vault flow served by a tiny local Vault-style endpoint.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Std, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use assert_cmd::Command;
use common::*;

const VAULT_SECRET: &str = "vault-secret-123";
const ACCESS_TOKEN: &str = "ya29.token-from-vault";

/// The registry, htpasswd and skopeo `scripts/test` installs.
fn registry_peers() -> bool {
    let missing: Vec<String> = [
        "/usr/bin/docker-registry",
        "/usr/bin/htpasswd",
        "/usr/bin/skopeo",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .map(String::from)
    .collect();
    peers_present(&missing)
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
            let out = Std::new("htpasswd")
                .args(["-Bbn", "oauth2accesstoken", ACCESS_TOKEN])
                .output()
                .unwrap();
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).unwrap();
        let child = Std::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, Duration::from_secs(20), "registry");
        Registry {
            child,
            port,
            _dir: dir,
        }
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
                if line.to_ascii_lowercase().starts_with("x-vault-token:")
                    && line.trim_end().ends_with(VAULT_SECRET)
                {
                    authorized = true;
                }
                line.clear();
            }
            let (status, body) = if authorized {
                (
                    "200 OK",
                    format!("{{\"data\": {{\"token\": \"{ACCESS_TOKEN}\"}}}}"),
                )
            } else {
                (
                    "403 Forbidden",
                    "{\"errors\": [\"permission denied\"]}".to_string(),
                )
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/v1/secret/token")
}

/// The example project's image archive and digest, built once.
fn image() -> &'static (PathBuf, String, tempfile::TempDir) {
    static IMAGE: OnceLock<(PathBuf, String, tempfile::TempDir)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (digest, archive) = build_example_image(dir.path(), &[]);
        (archive, digest, dir)
    })
}

fn deploy(repository: &str, extra: &[&str]) -> (i32, String, String) {
    let archive = image().0.to_str().unwrap();
    tool_in_examples(
        &[
            &[
                "deploy-image",
                "--image-tar-path",
                archive,
                "--docker-repository",
                repository,
            ][..],
            extra,
        ]
        .concat(),
        &[],
    )
}

#[test]
fn pushes_skips_known_layers_and_verifies_the_digest() {
    if !registry_peers() {
        return;
    }
    let registry = Registry::start(false);
    let (_, digest, _) = image();
    let (code, out, err) = deploy(
        &registry.repository(),
        &["--auth-method", "none", "--plain-http"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(" {digest} (uploaded 3 blobs, 0 already there)")),
        "{out}"
    );
    let (code, out, err) = deploy(
        &registry.repository(),
        &["--auth-method", "none", "--plain-http"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(uploaded 0 blobs, 3 already there)"), "{out}");
    let tag = out
        .split_whitespace()
        .nth(1)
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    let inspect = Std::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}:{tag}", registry.repository()))
        .output()
        .unwrap();
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        "bigflow-examples"
    );
}

#[test]
fn vault_credentials_against_an_authenticating_registry() {
    if !registry_peers() {
        return;
    }
    let registry = Registry::start(true);
    let vault = start_vault();
    let (code, out, err) = deploy(
        &registry.repository(),
        &[
            "--auth-method",
            "vault",
            "--vault-endpoint",
            &vault,
            "--vault-secret",
            VAULT_SECRET,
            "--plain-http",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("pushed "), "{out}");

    let (code, out, err) = deploy(
        &registry.repository(),
        &[
            "--auth-method",
            "vault",
            "--vault-endpoint",
            &vault,
            "--vault-secret",
            "wrong",
            "--plain-http",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("answered HTTP 403"), "{err}");
    assert!(
        !err.contains("wrong") && !err.contains(ACCESS_TOKEN),
        "no secrets in errors: {err}"
    );

    let (code, _, err) = deploy(
        &registry.repository(),
        &["--auth-method", "none", "--plain-http"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rejected the credentials"), "{err}");
}

#[test]
fn bad_destinations_are_clear_errors() {
    if !registry_peers() {
        return;
    }
    let (code, _, err) = deploy(
        &format!("127.0.0.1:{}/nothing/here", free_port()),
        &["--auth-method", "none", "--plain-http"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: cannot reach registry 127.0.0.1:"),
        "{err}"
    );
    let (code, _, err) = deploy(
        "registry.example.com/p/x",
        &["--auth-method", "none", "--plain-http"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("plain HTTP is only allowed to a loopback registry"),
        "{err}"
    );
    let (code, _, err) = deploy("127.0.0.1:1/x", &["--auth-method", "vault"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--auth-method vault needs --vault-endpoint"),
        "{err}"
    );
}

#[test]
fn deploy_uploads_dags_after_the_image_and_never_loses_the_old_ones() {
    if !registry_peers() {
        return;
    }
    let Some(gcs) = StorageEmulator::start() else {
        return;
    };
    let registry = Registry::start(false);
    let bucket = "composer-dags";
    gcs.call(
        "POST",
        "/storage/v1/b?project=test",
        &format!("{{\"name\": \"{bucket}\"}}"),
    );
    gcs.put(bucket, "dags/airflow_monitoring.py", "# Composer's own");
    gcs.put(
        bucket,
        "dags/old_workflow__v0_1__2020_01_01_00_00_00_dag.py",
        "# previous deployment",
    );
    let repo = registry.repository();
    let env = [
        ("STORAGE_EMULATOR_HOST", gcs.endpoint.as_str()),
        ("bf_docker_repository", repo.as_str()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let example = workspace_root().join("examples/bigflow-examples");
    let dags = example.join(".dags");
    // `bigflow build` as a user runs it: tests, release build, image, DAGs.
    let (code, out, err) = tool_in_examples(
        &[
            "build",
            "--config",
            "dev",
            "--start-time",
            "2020-08-01 10:00:00",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(example.join("build/junit-reports/junit.xml").is_file());
    let digest = out
        .lines()
        .find(|l| l.starts_with("image "))
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();

    // The image is not pushed yet: nothing is uploaded.
    let common = [
        "--config",
        "dev",
        "--dags-bucket",
        bucket,
        "--auth-method",
        "none",
        "--plain-http",
    ];
    let (code, _, err) = tool_in_examples(&[&["deploy-dags"][..], &common].concat(), &env);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "is not in the registry; run `bigflow deploy-image` first (no DAG was uploaded)"
        ),
        "{err}"
    );
    assert_eq!(gcs.objects(bucket, "dags/").len(), 2);

    // deploy = push the image, check it, upload, then clear what is stale.
    let (code, out, err) = tool_in_examples(
        &[&["deploy", "--clear-dags-folder"][..], &common].concat(),
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("removed dags/old_workflow__v0_1__2020_01_01_00_00_00_dag.py"),
        "{out}"
    );
    let pushed = out
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let inspect = Std::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{pushed}"))
        .output()
        .unwrap();
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        inspect["Digest"],
        digest.as_str(),
        "the registry has the image build printed"
    );
    let deployed = gcs.objects(bucket, "dags/");
    let local: Vec<String> = std::fs::read_dir(&dags)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py"))
        .map(|n| format!("dags/{n}"))
        .collect();
    assert_eq!(deployed.len(), local.len() + 1, "{deployed:?}");
    assert!(deployed.contains(&"dags/airflow_monitoring.py".to_string()));
    assert!(local.iter().all(|n| deployed.contains(n)));

    // A failure midway through the uploads removes nothing.
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for entry in std::fs::read_dir(&dags).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, broken.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir(broken.join("m_unreadable_dag.py")).unwrap();
    let (code, _, err) = tool_in_examples(
        &[
            "deploy-dags",
            "--dags-dir",
            broken.to_str().unwrap(),
            "--dags-bucket",
            bucket,
            "--auth-method",
            "none",
            "--plain-http",
            "--clear-dags-folder",
        ],
        &env,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("nothing was removed from gs://composer-dags/dags/"),
        "{err}"
    );
    assert_eq!(
        gcs.objects(bucket, "dags/"),
        deployed,
        "the deployed DAGs survive a failed deploy"
    );

    // CI deploys from artefacts alone: a directory with only .image/ and
    // .dags/ (no bigflow.toml, no git), settings from flags and BigFlow's
    // short flags; the image is also tagged `latest`.
    let artefacts = tmp.path().join("artefacts");
    for sub in [".image", ".dags"] {
        std::fs::create_dir_all(artefacts.join(sub)).unwrap();
        for entry in std::fs::read_dir(example.join(sub)).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, artefacts.join(sub).join(p.file_name().unwrap())).unwrap();
        }
    }
    let out = assert_cmd::Command::cargo_bin("bigflow")
        .unwrap()
        .args([
            "deploy",
            "-r",
            &repo,
            "-b",
            bucket,
            "-p",
            "bigflow-examples-dev",
        ])
        .args(["-a", "none", "--plain-http"])
        .current_dir(&artefacts)
        .env("STORAGE_EMULATOR_HOST", gcs.endpoint.as_str())
        .env_remove("bf_docker_repository")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("tagged {repo}:latest")),
        "{stdout}"
    );
    let latest = Std::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{repo}:latest"))
        .output()
        .unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&latest.stdout).unwrap();
    assert_eq!(
        latest["Digest"],
        digest.as_str(),
        "latest is the pushed image"
    );
    // A settings file instead of flags (`-dc`), in the same directory.
    let settings = tmp.path().join("deployment.toml");
    std::fs::write(
        &settings,
        format!("[ci]\ndocker_repository = \"{repo}\"\ndags_bucket = \"{bucket}\"\n"),
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("bigflow")
        .unwrap()
        .args(["deploy-dags", "-dc", settings.to_str().unwrap(), "-c", "ci"])
        .args(["-a", "none", "--plain-http"])
        .current_dir(&artefacts)
        .env("STORAGE_EMULATOR_HOST", gcs.endpoint.as_str())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Configuration mistakes are exit 2.
    let (code, _, err) = tool_in_examples(
        &[
            "deploy-dags",
            "--dags-dir",
            "/nonexistent",
            "--auth-method",
            "none",
        ],
        &env,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run `bigflow build-dags` first"), "{err}");
}

/// A loopback HTTP endpoint standing in for Google's metadata server and
/// Cloud Storage at once (neither can run here): answers the token request of
/// the metadata server, 200 to everything else, and records each request's
/// first line and headers.
fn start_google_fake() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let mut line = String::new();
            let mut length = 0usize;
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                request.push_str(&line);
                line.clear();
            }
            let mut body = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let answer = if request
                .starts_with("GET /computeMetadata/v1/instance/service-accounts/default/token")
            {
                if request.contains("Metadata-Flavor: Google")
                    || request.contains("metadata-flavor: Google")
                {
                    "{\"access_token\": \"mds-token\", \"expires_in\": 3600, \"token_type\": \"Bearer\"}"
                } else {
                    "{}"
                }
            } else {
                "{\"kind\": \"storage#object\"}"
            };
            log.lock().unwrap().push(request);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMetadata-Flavor: Google\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, seen)
}

fn base64url_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | alphabet.iter().position(|a| *a == c).unwrap() as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

fn bearer_of_upload(seen: &[String]) -> String {
    let upload = seen
        .iter()
        .find(|r| r.starts_with("POST /upload/storage/v1/b/bucket/o"))
        .expect("an upload reached the storage endpoint");
    let auth = upload
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .expect("the upload carries credentials");
    auth.split_once("Bearer ").unwrap().1.trim().to_string()
}

#[test]
fn adc_and_service_account_tokens_reach_google_apis() {
    let tmp = tempfile::tempdir().unwrap();
    let dags = tmp.path().join("dags");
    std::fs::create_dir(&dags).unwrap();
    std::fs::write(dags.join("a_dag.py"), "# a DAG\n").unwrap();
    let run = |auth: &[&str], env: &[(&str, &str)]| {
        let out = Command::cargo_bin("bigflow")
            .unwrap()
            .args(["deploy-dags", "--dags-dir"])
            .arg(&dags)
            .args(["--dags-bucket", "bucket"])
            .args(auth)
            .env("HOME", tmp.path())
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .envs(env.iter().copied())
            .current_dir(workspace_root().join("examples/bigflow-examples"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // Application default credentials from the metadata server.
    let (addr, seen) = start_google_fake();
    let storage = format!("http://{addr}");
    run(
        &["--auth-method", "local_account"],
        &[
            ("GCE_METADATA_HOST", &addr),
            ("STORAGE_EMULATOR_HOST", &storage),
        ],
    );
    let seen_now = seen.lock().unwrap().clone();
    assert!(
        seen_now[0].contains("scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"),
        "{seen_now:?}"
    );
    assert_eq!(bearer_of_upload(&seen_now), "mds-token");

    // A service-account key: a self-signed JWT, signed by the key, for the cloud-platform scope.
    if Std::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var("BIGFLOW_REQUIRE_PEERS").as_deref() != Ok("1"),
            "openssl is needed"
        );
        eprintln!("\n!!! SKIPPED: openssl missing\n");
        return;
    }
    let pem = tmp.path().join("key.pem");
    run_ok(
        Std::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem),
    );
    let key = serde_json::json!({
        "type": "service_account", "project_id": "p", "private_key_id": "kid1",
        "private_key": std::fs::read_to_string(&pem).unwrap(),
        "client_email": "bigflow@p.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": format!("http://{addr}/token"),
    });
    let key_file = tmp.path().join("key.json");
    std::fs::write(&key_file, key.to_string()).unwrap();
    seen.lock().unwrap().clear();
    run(
        &[
            "--auth-method",
            "service_account",
            "--service-account-key",
            key_file.to_str().unwrap(),
        ],
        &[("STORAGE_EMULATOR_HOST", &storage)],
    );
    let token = bearer_of_upload(&seen.lock().unwrap());
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    let claims: serde_json::Value = serde_json::from_slice(&base64url_decode(parts[1])).unwrap();
    assert_eq!(claims["iss"], "bigflow@p.iam.gserviceaccount.com");
    assert!(claims.to_string().contains("cloud-platform"), "{claims}");
    let (data, sig, public) = (
        tmp.path().join("data"),
        tmp.path().join("sig"),
        tmp.path().join("pub.pem"),
    );
    std::fs::write(&data, format!("{}.{}", parts[0], parts[1])).unwrap();
    std::fs::write(&sig, base64url_decode(parts[2])).unwrap();
    run_ok(
        Std::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&pem)
            .arg("-out")
            .arg(&public),
    );
    let verified = run_ok(
        Std::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&public)
            .arg("-signature")
            .arg(&sig)
            .arg(&data),
    );
    assert_eq!(verified.trim(), "Verified OK");
}

/// An OCI layout with one small image `base` (a marker file), made with umoci.
fn umoci_base(dir: &Path) -> PathBuf {
    let layout = dir.join("base-layout");
    run_ok(Std::new("umoci").args(["init", "--layout"]).arg(&layout));
    run_ok(
        Std::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:base", layout.display())),
    );
    let bundle = dir.join("base-bundle");
    run_ok(
        Std::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:base", layout.display()))
            .arg(&bundle),
    );
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(
        bundle.join("rootfs/etc/base-marker"),
        "from the base image\n",
    )
    .unwrap();
    run_ok(
        Std::new("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:base", layout.display()))
            .arg(&bundle),
    );
    layout
}

fn build_on(base: &str, out: &Path, extra: &[&str]) -> (String, PathBuf) {
    build_example_image(out, &[&["--base-image", base][..], extra].concat())
}

#[test]
fn images_build_on_a_base_from_a_layout_or_a_registry() {
    if !registry_peers() || Std::new("umoci").arg("--version").output().is_err() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_base(tmp.path());
    // gzip layers: Debian's umoci (0.4.7) cannot unpack zstd ones.
    let (digest, archive) = build_on(
        &format!("oci:{}:base", layout.display()),
        &tmp.path().join("a"),
        &["--layer-compression", "gzip"],
    );
    let inspect: serde_json::Value = serde_json::from_str(&run_ok(
        Std::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", archive.display())),
    ))
    .unwrap();
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        2,
        "the base's layer and the application's: {inspect}"
    );
    let unpacked = tmp.path().join("unpacked");
    let extracted = tmp.path().join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    run_ok(
        Std::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&extracted),
    );
    let version = inspect["Labels"]["org.opencontainers.image.version"]
        .as_str()
        .unwrap();
    run_ok(
        Std::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{version}", extracted.display()))
            .arg(&unpacked),
    );
    assert!(unpacked.join("rootfs/etc/base-marker").is_file());
    assert!(unpacked.join("rootfs/app/bin/bigflow-examples").is_file());
    assert!(
        !unpacked.join("rootfs/lib64").exists(),
        "with a base, bigflow adds no runtime layer"
    );

    // The same base from a registry gives the same image.
    let registry = Registry::start(false);
    let base_ref = format!("127.0.0.1:{}/base:1", registry.port);
    run_ok(
        Std::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:base", layout.display()))
            .arg(format!("docker://{base_ref}")),
    );
    let (from_registry, _) = build_on(
        &base_ref,
        &tmp.path().join("b"),
        &[
            "--auth-method",
            "none",
            "--plain-http",
            "--layer-compression",
            "gzip",
        ],
    );
    assert_eq!(from_registry, digest);
}

#[test]
fn missing_deployment_settings_are_configuration_errors() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bigflow.toml"),
        "[project]\nname = \"bare\"\n\n[deployment.dev]\ngcp_project_id = \"p\"\n",
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join(".dags")).unwrap();
    std::fs::write(tmp.path().join(".dags/a_dag.py"), "# a DAG\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::cargo_bin("bigflow")
            .unwrap()
            .args(args)
            .current_dir(tmp.path())
            .env_remove("bf_docker_repository")
            .env_remove("bf_dags_bucket")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["deploy-dags", "--auth-method", "none"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: no dags_bucket for environment 'dev'; add it to bigflow.toml [deployment.dev] or pass --dags-bucket"), "{err}");
    let (code, err) = run(&[
        "deploy-image",
        "--auth-method",
        "none",
        "--image-tar-path",
        "x.tar",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: no docker_repository for environment 'dev'"),
        "{err}"
    );
    let (code, err) = run(&[
        "deploy-image",
        "--auth-method",
        "none",
        "--docker-repository",
        "127.0.0.1:1/x",
        "--image-tar-path",
        "missing.tar",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot open image archive missing.tar"),
        "{err}"
    );
    let (code, err) = run(&["deploy-dags", "-c", "prod", "--auth-method", "none"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown config environment 'prod'; known environments: dev"),
        "{err}"
    );
}
