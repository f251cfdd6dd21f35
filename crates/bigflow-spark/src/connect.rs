//! [`SparkJob`]: a Rust driver over Spark Connect.
//!
//! The driver receives a `SparkSession` (Apache's `apache-spark-connect`
//! client) and the job context. Where the session points is chosen by the
//! workflow's config:
//! - `spark_target = "dataproc"`: a Dataproc Serverless Spark Connect session
//!   is created for the job and always deleted afterwards
//!   ([`crate::dataproc::Session`]; options from the `dataproc_*` properties);
//! - a `spark_connect_url` property (`sc://host:port`, with `;token=…` for a
//!   bearer token and `;use_ssl=true` for TLS): that remote Spark;
//! - otherwise (`local`) the job starts a local Spark Connect server from the
//!   PySpark installation, waits until it accepts connections, runs the driver
//!   and always stops the server — also when the driver fails or times out.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bigflow_core::{Job, JobContext, JobResult, JobSettings, WithSettings};
pub use spark_connect::row::Value;
pub use spark_connect::{DataFrame, SparkSession, functions};

use crate::dataproc::{DataprocOptions, Session};
use crate::{SparkInstallation, TARGET_PROPERTY, check_java};

/// The config property naming a remote Spark Connect endpoint.
pub const URL_PROPERTY: &str = "spark_connect_url";

/// How long a local server may take to accept connections.
pub const LOCAL_START_TIMEOUT: Duration = Duration::from_secs(180);

type Driver = dyn Fn(&SparkSession, &JobContext) -> JobResult + Send + Sync;

/// A job whose work is a Rust function of a Spark session.
#[derive(Clone)]
pub struct SparkJob {
    id: String,
    driver: Arc<Driver>,
    settings: JobSettings,
}

impl SparkJob {
    /// A job running `driver` with a session.
    pub fn new(
        id: impl Into<String>,
        driver: impl Fn(&SparkSession, &JobContext) -> JobResult + Send + Sync + 'static,
    ) -> Self {
        SparkJob {
            id: id.into(),
            driver: Arc::new(driver),
            settings: JobSettings::default(),
        }
    }
}

impl WithSettings for SparkJob {
    fn settings_mut(&mut self) -> &mut JobSettings {
        &mut self.settings
    }
}

/// A local Spark Connect server, stopped (with its JVM) when dropped.
pub struct LocalServer {
    child: Child,
    /// The `sc://` URL of the server.
    pub url: String,
}

impl LocalServer {
    /// Starts a server on a free loopback port and waits for it (or for `cancelled`).
    pub fn start(cancelled: &dyn Fn() -> bool) -> anyhow::Result<LocalServer> {
        let spark = SparkInstallation::find()?;
        check_java()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(spark.spark_submit());
        cmd.args([
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--master",
            "local[*]",
            "--conf",
            &format!("spark.connect.grpc.binding.port={port}"),
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
            "spark-internal",
        ])
        .env("SPARK_HOME", &spark.spark_home)
        .env("PYSPARK_PYTHON", &spark.python)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .context("could not start spark-submit for a local Spark Connect server")?;
        let mut server = LocalServer {
            child,
            url: format!("sc://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + LOCAL_START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the local Spark Connect server exited with {status} before accepting connections"
                );
            }
            if cancelled() {
                bail!("cancelled while the local Spark Connect server was starting");
            }
            if Instant::now() > deadline {
                bail!(
                    "the local Spark Connect server did not accept connections within {}s",
                    LOCAL_START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!(
            "local Spark Connect server started at {} (spark.connect.grpc.binding.port={port})",
            server.url
        );
        Ok(server)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // The server runs in its own process group: stop the JVM and anything it started.
        #[cfg(unix)]
        if let Ok(pid) = libc::pid_t::try_from(self.child.id())
            && pid > 1
        {
            // SAFETY: kill(2) on the process group we created; no memory is involved.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::info!("local Spark Connect server at {} stopped", self.url);
    }
}

/// `host:port` of an `sc://` URL (port 15002 when absent).
fn endpoint_of(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("sc://")
        .with_context(|| format!("{URL_PROPERTY} must start with sc://, not {url:?}"))?;
    let authority = rest.split(['/', ';']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
            host,
            port.parse::<u16>()
                .with_context(|| format!("bad port {port:?} in Spark Connect URL"))?,
        ),
        _ => (authority, 15002),
    };
    if host.is_empty() {
        bail!("no host in Spark Connect URL sc://{authority}");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Fails fast, naming the endpoint, when nothing accepts connections there.
fn check_reachable(url: &str) -> anyhow::Result<()> {
    let (host, port) = endpoint_of(url)?;
    let addrs: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .with_context(|| format!("cannot resolve the Spark Connect host {host}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    bail!(
        "cannot reach the Spark Connect endpoint {host}:{port}: {}; check {URL_PROPERTY} and that the server is running",
        last.map_or_else(|| "no address".to_string(), |e| e.to_string())
    )
}

impl Job for SparkJob {
    fn id(&self) -> &str {
        &self.id
    }

    fn cleanup_grace(&self) -> std::time::Duration {
        // A cancelled Dataproc job still deletes its cluster or session,
        // which can take minutes; the run waits for it rather than leak it.
        std::time::Duration::from_secs(15 * 60)
    }

    fn execute(&self, ctx: &JobContext) -> JobResult {
        let target = ctx.config.get(TARGET_PROPERTY).and_then(|v| v.as_str());
        let remote = ctx.config.get(URL_PROPERTY).and_then(|v| v.as_str());
        // Whatever is started here is stopped or deleted when these drop.
        let mut _server = None;
        let mut _session = None;
        let url = match (target, remote) {
            (Some("dataproc"), _) => {
                let session = Session::create(ctx, DataprocOptions::from_context(ctx)?)?;
                let url = session.url.clone();
                _session = Some(session);
                url
            }
            (None | Some("remote"), Some(url)) => url.to_string(),
            (Some("remote"), None) => bail!(
                "config '{}': {TARGET_PROPERTY} = \"remote\" needs {URL_PROPERTY} (sc://host:port)",
                ctx.env
            ),
            (None | Some("local"), _) => {
                let server = LocalServer::start(&|| ctx.is_cancelled())?;
                let url = server.url.clone();
                _server = Some(server);
                url
            }
            (Some(other), _) => bail!(
                "config '{}': {TARGET_PROPERTY} = {other:?} is not a Spark Connect target; use local, remote or dataproc",
                ctx.env
            ),
        };
        // The client retries an unreachable server for many minutes (as
        // PySpark does); a job should fail at once and let its retries act.
        check_reachable(&url)?;
        let session = SparkSession::builder()
            .remote(&url)
            .get_or_create()
            .with_context(|| {
                format!(
                    "cannot open a Spark Connect session at {}",
                    url.split(";token=").next().unwrap_or(&url)
                )
            })?;
        let result = (self.driver)(&session, ctx);
        let _ = session.stop();
        result
    }

    fn settings(&self) -> JobSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_urls() {
        assert_eq!(
            endpoint_of("sc://127.0.0.1:15010").unwrap(),
            ("127.0.0.1".into(), 15010)
        );
        assert_eq!(
            endpoint_of("sc://spark.example.com/;use_ssl=true;token=x").unwrap(),
            ("spark.example.com".into(), 15002)
        );
        assert_eq!(
            endpoint_of("sc://host:443/;session_id=1").unwrap(),
            ("host".into(), 443)
        );
        assert!(endpoint_of("http://host:1").is_err());
        assert!(endpoint_of("sc://host:x").is_err());
    }
}
