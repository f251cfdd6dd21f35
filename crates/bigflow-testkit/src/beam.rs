//! Apache Beam's Python SDK as a test peer: its job service
//! ([`BeamJobService`]) and pipelines built with it ([`python_pipeline`]).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{beam_python, free_port};

/// Beam's job service (`apache_beam.runners.portability.local_job_service_main`:
/// the Job API in front of Beam's FnApiRunner) on loopback, stopped on drop.
/// Its log goes to a file ([`BeamJobService::log`]).
pub struct BeamJobService {
    /// The port it listens on.
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl BeamJobService {
    /// Starts the service, or `None` (after [`crate::peers_present`]) when
    /// Beam's Python is not installed.
    pub fn start() -> Option<BeamJobService> {
        let python = beam_python()?;
        // Another process may take the port between free_port and the bind: retry.
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!(
                "bigflow-beam-job-service-{}-{port}.log",
                std::process::id()
            ));
            let out = std::fs::File::create(&log).expect("cannot create the job service's log");
            let err = out.try_clone().expect("cannot share the job service's log");
            let child = Command::new(&python)
                .args([
                    "-m",
                    "apache_beam.runners.portability.local_job_service_main",
                ])
                .args(["--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("cannot start Beam's job service");
            let mut service = BeamJobService { port, child, log };
            if service.wait_until_listening(Duration::from_secs(60)) {
                return Some(service);
            }
            eprintln!("Beam's job service did not start:\n{}", service.log());
        }
        panic!("Beam's job service failed to start three times");
    }

    /// `localhost:PORT` (it binds `localhost`, which may be IPv4 or IPv6).
    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the port accepts connections before `limit`, while the process lives.
    fn wait_until_listening(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            let listening = ("localhost", self.port)
                .to_socket_addrs()
                .into_iter()
                .flatten()
                .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok());
            if listening {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for BeamJobService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A pipeline built by Beam's Python SDK: runs `body` (Python that adds
/// transforms to `p`, a `beam.Pipeline`; `beam`, `Metrics`, `environments`,
/// `sys` and `time` are imported, `args` holds `extra_args`) and returns
/// `p.to_runner_api(default_environment=ENV)` serialized, where ENV is the
/// value of the Python expression `environment`, or an embedded Python
/// environment (Beam's job service then runs the user code in its own
/// process) when `None`.
pub fn python_pipeline(
    python: &Path,
    body: &str,
    environment: Option<&str>,
    extra_args: &[&str],
) -> Vec<u8> {
    let out = std::env::temp_dir().join(format!(
        "bigflow-beam-pipeline-{}-{}.pb",
        std::process::id(),
        free_port()
    ));
    let script = format!(
        "import sys, time\n\
         import apache_beam as beam\n\
         from apache_beam.metrics import Metrics\n\
         from apache_beam.transforms import environments\n\
         out, args = sys.argv[1], sys.argv[2:]\n\
         p = beam.Pipeline()\n\
         {body}\n\
         env = {}\n\
         proto = p.to_runner_api(default_environment=env)\n\
         open(out, 'wb').write(proto.SerializeToString())\n",
        environment.unwrap_or("environments.EmbeddedPythonEnvironment.default()")
    );
    let run = Command::new(python)
        .arg("-c")
        .arg(&script)
        .arg(&out)
        .args(extra_args)
        .output()
        .expect("cannot run Beam's Python");
    assert!(
        run.status.success(),
        "building the pipeline with Beam's Python failed:\n{script}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&out).expect("Beam's Python wrote no pipeline");
    let _ = std::fs::remove_file(&out);
    bytes
}
