//! `build-image` on the example project, checked with real tools: two builds
//! give the same digest and archive; `skopeo` reads it as an OCI archive and a
//! Docker archive; `umoci` unpacks it; the hello job runs inside the unpacked
//! root filesystem under `bwrap` — all with the default zstd layers, while
//! `--layer-compression gzip` gives gzip layers that unpack to the same files;
//! and the image is a Beam SDK worker container: Beam's own worker pool
//! starts its `/opt/apache/beam/boot` (under `bwrap`) for the portable word
//! count. The tools come from
//! `scripts/test`; without them the tests skip loudly (and fail under
//! `BIGFLOW_REQUIRE_PEERS=1`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Std, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn image_is_reproducible_readable_and_runs_the_job() {
    if !peers_present(&missing_commands(&["skopeo", "umoci", "bwrap"])) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (digest, archive) = build_example_image(&tmp.path().join("a"), &[]);
    let (digest2, archive2) = build_example_image(&tmp.path().join("b"), &[]);
    assert_eq!(digest, digest2, "same commit, same digest");
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        std::fs::read(&archive2).unwrap(),
        "byte-identical archives"
    );

    let inspect = skopeo_inspect(&archive);
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        "bigflow-examples"
    );
    let version = inspect["Labels"]["org.opencontainers.image.version"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(archive.ends_with(format!("image-{version}.tar")));
    let docker: serde_json::Value = serde_json::from_str(&run_ok(
        Std::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", archive.display())),
    ))
    .unwrap();
    assert_eq!(
        docker["Labels"]["org.opencontainers.image.version"],
        version.as_str()
    );

    // The media types as the archive's own OCI manifest names them (skopeo
    // 1.9's `inspect` has no LayersData; its docker-archive view is
    // re-typed by skopeo, so only the OCI side is checked).
    assert_layer_types(&archive, "application/vnd.oci.image.layer.v1.tar+zstd");

    let rootfs = unpack_image(&archive, &version, tmp.path());
    gzip_option_gives_the_same_files(tmp.path(), &version, &rootfs);
    let in_image = |args: &[&str]| {
        run_ok(
            Std::new("bwrap")
                .arg("--bind")
                .arg(&rootfs)
                .arg("/")
                .args([
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "--clearenv",
                    "--setenv",
                    "BIGFLOW_LOG",
                    "warn",
                    "/app/bin/bigflow-examples",
                ])
                .args(args),
        )
    };
    assert_eq!(
        in_image(&[
            "run",
            "--job",
            "hello_world.hello_world",
            "--runtime",
            "2020-01-01"
        ]),
        "Hello world on 2020-01-01 00:00:00!\n"
    );
    assert!(
        in_image(&[
            "run",
            "--job",
            "resources_workflow.print_resource",
            "--runtime",
            "2020-01-01"
        ])
        .starts_with("This file ships in resources/")
    );

    // With the image's own environment, as a pod runs it: every log line is
    // a Cloud Logging entry labelled with the workflow, job, runtime and run.
    let mut cmd = Std::new("bwrap");
    cmd.arg("--bind").arg(&rootfs).arg("/").args([
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--clearenv",
    ]);
    for (k, v) in image_env(&inspect) {
        cmd.args(["--setenv", &k, &v]);
    }
    let out = cmd
        .args([
            "/app/bin/bigflow-examples",
            "run",
            "--job",
            "hello_world.hello_world",
        ])
        .args(["--runtime", "2020-01-01", "--config", "dev"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let entries: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let job_entry = entries
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("succeeded"))
        })
        .unwrap_or_else(|| panic!("no JSON entry for the job's end in {stderr}"));
    assert_eq!(job_entry["severity"], "INFO");
    let labels = &job_entry["logging.googleapis.com/labels"];
    assert_eq!(labels["workflow_id"], "hello_world");
    assert_eq!(labels["job_id"], "hello_world");
    assert_eq!(labels["runtime"], "2020-01-01 00:00:00");
    assert_eq!(
        labels["run_id"].as_str().map(str::len),
        Some(12),
        "{labels}"
    );
}

/// Every layer of the OCI archive's manifest (`skopeo inspect --raw`) has
/// `media_type`.
fn assert_layer_types(archive: &Path, media_type: &str) {
    let manifest: serde_json::Value = serde_json::from_str(&run_ok(
        Std::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", archive.display())),
    ))
    .unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {manifest}"));
    assert!(!layers.is_empty());
    for layer in layers {
        assert_eq!(layer["mediaType"], media_type, "{manifest}");
    }
}

/// `--layer-compression gzip`: a reproducible image that skopeo reads with
/// gzip layers and umoci unpacks to the same files as the zstd image's
/// `rootfs`.
fn gzip_option_gives_the_same_files(dir: &Path, version: &str, rootfs: &Path) {
    let flags = ["--layer-compression", "gzip"];
    let (digest, archive) = build_example_image(&dir.join("gzip-a"), &flags);
    let (digest2, _) = build_example_image(&dir.join("gzip-b"), &flags);
    assert_eq!(digest, digest2, "gzip images are reproducible too");
    let inspect = skopeo_inspect(&archive);
    assert_eq!(inspect["Digest"], digest);
    assert_layer_types(&archive, "application/vnd.oci.image.layer.v1.tar+gzip");
    let unpacked = dir.join("gzip-unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let gzip_rootfs = unpack_image(&archive, version, &unpacked);
    for file in [
        "app/bin/bigflow-examples",
        "app/resources/wordcount.txt",
        "etc/passwd",
    ] {
        assert_eq!(
            std::fs::read(gzip_rootfs.join(file)).unwrap(),
            std::fs::read(rootfs.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(
        std::fs::read_link(gzip_rootfs.join("opt/apache/beam/boot")).unwrap(),
        std::fs::read_link(rootfs.join("opt/apache/beam/boot")).unwrap()
    );
}

/// `skopeo inspect` of an OCI archive.
fn skopeo_inspect(archive: &Path) -> serde_json::Value {
    serde_json::from_str(&run_ok(
        Std::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", archive.display())),
    ))
    .unwrap()
}

/// Unpacks the OCI archive's image `version` with `umoci` under `dir`;
/// returns its root filesystem.
fn unpack_image(archive: &Path, version: &str, dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir(&layout).unwrap();
    run_ok(
        Std::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout),
    );
    // Debian's umoci 0.4.7 refuses zstd layers ("blob is not correct
    // mediatype: application/vnd.oci.image.layer.v1.tar+zstd"): skopeo, which
    // reads them (checking their digests), copies such an image into a layout
    // with gzip layers for umoci; gzip archives are unpacked as they are.
    let blob = |digest: &str| {
        let path = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = blob_json(&layout.join("index.json"));
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let zstd = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["mediaType"].as_str().unwrap().ends_with("+zstd"));
    let layout = if zstd {
        let gzip = dir.join("layout-gzip");
        run_ok(
            Std::new("skopeo")
                .args([
                    "copy",
                    "-q",
                    "--dest-compress",
                    "--dest-compress-format",
                    "gzip",
                ])
                .arg(format!("oci:{}:{version}", layout.display()))
                .arg(format!("oci:{}:{version}", gzip.display())),
        );
        gzip
    } else {
        layout
    };
    let bundle = dir.join("bundle");
    run_ok(
        Std::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{version}", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

/// A JSON file.
fn blob_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The image's `Env` as `(name, value)` pairs.
fn image_env(inspect: &serde_json::Value) -> Vec<(String, String)> {
    inspect["Env"]
        .as_array()
        .expect("the image sets Env")
        .iter()
        .map(|e| {
            let pair = e.as_str().expect("Env entries are text");
            let (k, v) = pair.split_once('=').expect("Env entries are NAME=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The sorted lines of the files in `dir` whose names start with `prefix`.
fn sorted_lines(dir: &Path, prefix: &str) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!lines.is_empty(), "no {prefix}* lines in {}", dir.display());
    lines.sort();
    lines
}

/// A process started in its own process group; the group (the process and
/// whatever it started) is stopped on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Std::new("kill").args([signal, "--", &group]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if !matches!(self.0.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.wait();
    }
}

/// Runs `cmd` (its output into `log`) to its end within `limit`, else kills
/// it; returns whether it succeeded and what it wrote.
fn run_logged(cmd: &mut Std, log: &Path, limit: Duration) -> (bool, String) {
    let out = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("{text}\n(killed after {limit:?})")),
    }
}

/// The image as Dataflow uses a custom SDK container: its
/// `/opt/apache/beam/boot` is the binary, and started with Beam's boot flags
/// by Beam 2.77's own worker pool (`worker_pool_main`, its executable a
/// script that runs the entry inside the unpacked image under `bwrap`, with
/// the image's environment and the host's network) it serves the portable
/// word count submitted to Beam's job service (`--environment_type=EXTERNAL`
/// through the config's `bf_beam_worker_pool`). The worker rebuilds the
/// submitter's pipeline, so its input (the image's own resources) and its
/// output directory are bound into the sandbox at the paths they have
/// outside; the counts equal the DirectRunner's.
#[test]
fn image_boot_entry_serves_beams_worker_pool() {
    if !peers_present(&missing_commands(&["skopeo", "umoci", "bwrap"])) {
        return;
    }
    let Some(python) = bigflow_testkit::beam_python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // Paths in the pipeline are compared inside and outside: no symlinks.
    let base = tmp.path().canonicalize().unwrap();
    let (_, archive) = build_example_image(&base.join("image"), &[]);
    let inspect = skopeo_inspect(&archive);
    let version = inspect["Labels"]["org.opencontainers.image.version"]
        .as_str()
        .unwrap()
        .to_string();
    let rootfs = unpack_image(&archive, &version, &base);
    assert_eq!(
        std::fs::read_link(rootfs.join("opt/apache/beam/boot")).unwrap(),
        Path::new("/app/bin/bigflow-examples"),
        "the image's Beam boot entry is the project binary"
    );
    // The submitter is the image's own binary (the same build as the
    // worker), run on the host.
    let binary = rootfs.join("app/bin/bigflow-examples");
    let resources = rootfs.join("app/resources");
    assert!(resources.join("wordcount.txt").is_file());
    let work = base.join("work");
    std::fs::create_dir(&work).unwrap();

    let Some(service) = bigflow_testkit::beam::BeamJobService::start() else {
        return;
    };
    let pool_port = free_port();
    let pool_endpoint = format!("localhost:{pool_port}");
    let starts = base.join("worker-starts.log");
    // What a container runtime does for the image: its filesystem, its
    // environment, the host's network (bwrap shares it) and /etc/hosts;
    // plus the pipeline's paths, bound where they are outside.
    let mut script = format!(
        "#!/bin/sh\n\
         # Started by Beam's worker pool with the boot flags.\n\
         echo \"$$ $*\" >> {starts}\n\
         exec bwrap --die-with-parent --bind {rootfs} / --proc /proc --dev /dev \\\n\
         \x20 --ro-bind /etc/hosts /etc/hosts --ro-bind {res} {res} --bind {work} {work} \\\n\
         \x20 --chdir {work} --clearenv",
        starts = sh_quote(starts.to_str().unwrap()),
        rootfs = sh_quote(rootfs.to_str().unwrap()),
        res = sh_quote(resources.to_str().unwrap()),
        work = sh_quote(work.to_str().unwrap()),
    );
    let resources_var = resources.to_str().unwrap().to_string();
    let config_env = [
        ("bf_beam_job_endpoint", service.endpoint()),
        ("bf_beam_worker_pool", pool_endpoint.clone()),
        ("BIGFLOW_RESOURCES_DIR", resources_var),
    ];
    for (k, v) in image_env(&inspect)
        .into_iter()
        .chain(config_env.iter().map(|(k, v)| (k.to_string(), v.clone())))
    {
        script.push_str(&format!(
            " \\\n  --setenv {} {}",
            sh_quote(&k),
            sh_quote(&v)
        ));
    }
    // The worker's stdout is a pipe nobody reads: log to stderr only.
    script.push_str(" \\\n  /opt/apache/beam/boot \"$@\" 1>&2\n");
    let executable = base.join("boot-in-image.sh");
    std::fs::write(&executable, &script).unwrap();
    std::fs::set_permissions(
        &executable,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let pool_log = base.join("worker-pool.log");
    let log_file = std::fs::File::create(&pool_log).unwrap();
    let _pool = Group(
        std::os::unix::process::CommandExt::process_group(
            Std::new(&python)
                .args(["-m", "apache_beam.runners.worker.worker_pool_main"])
                .arg(format!("--service_port={pool_port}"))
                .arg(format!("--container_executable={}", executable.display()))
                .current_dir(&work)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file),
            0,
        )
        .spawn()
        .unwrap(),
    );
    wait_for_port(pool_port, Duration::from_secs(60), "Beam's worker pool");

    let run = |config: &str| {
        let mut cmd = Std::new(&binary);
        cmd.current_dir(&work).env("BIGFLOW_LOG", "info").args([
            "run",
            "--workflow",
            "wordcount",
            "--config",
            config,
        ]);
        for (k, v) in &config_env {
            cmd.env(k, v);
        }
        run_logged(
            &mut cmd,
            &base.join(format!("submit-{config}.log")),
            Duration::from_secs(300),
        )
    };
    let (ok, out) = run("portable");
    let worker_log = std::fs::read_to_string(&pool_log).unwrap_or_default();
    assert!(
        ok,
        "{out}\n--- worker pool (and workers) ---\n{worker_log}\n--- job service ---\n{}",
        service.log()
    );
    let started = std::fs::read_to_string(&starts).unwrap_or_default();
    assert!(
        started.lines().count() >= 1
            && started
                .lines()
                .all(|l| l.contains("--id=") && l.contains("--control_endpoint=")),
        "the pool started the image's boot entry with the boot flags: {started:?}\n{worker_log}"
    );
    let portable_dir = work.join("target/wordcount/portable");
    let portable = sorted_lines(&portable_dir, "counts-00000-of-00001");
    assert!(portable.contains(&"love: 3".to_string()), "{portable:?}");
    assert_eq!(
        std::fs::read_dir(&portable_dir).unwrap().count(),
        1,
        "only the finished shard is left"
    );
    let (ok, out) = run("dev");
    assert!(ok, "{out}");
    assert_eq!(
        portable,
        sorted_lines(&work.join("target/wordcount/dev"), "counts")
    );
}
