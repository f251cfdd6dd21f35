//! Apache Spark jobs for BigFlow workflows.
//!
//! [`PySparkJob`] is BigFlow's `PySparkJob`: a Python driver from the
//! project's `resources/`, arguments (with the same `{runtime}`/`{env}`/config
//! placeholders as any external program), pip packages and Spark properties.
//! Where it runs ([`PySparkTarget`]) is set on the job or chosen by the
//! config's `spark_target`: `local` (`spark-submit --master local[*]`, the
//! default), `dataproc-cluster` (an ephemeral cluster, always deleted) or
//! `dataproc-serverless` (a batch); see [`dataproc`].
//!
//! The local Spark is found through [`SparkInstallation::find`]: `SPARK_HOME`,
//! else a PySpark virtualenv (`BIGFLOW_PYSPARK_VENV`, default
//! `~/.cache/bigflow/peers/pyspark-4.0.1`, what `scripts/test` installs).
//!
//! With the `connect` feature, [`connect::SparkJob`] runs a Rust driver
//! against a Spark Connect session: a local server this job starts and stops
//! itself, or a remote `sc://` endpoint named by the config.

#[cfg(feature = "connect")]
pub mod connect;
pub mod dataproc;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use bigflow_core::command::{expand_argument, run_program};
use bigflow_core::{Job, JobContext, JobResult, JobSettings, WithSettings};

/// The PySpark version bigflow installs and tests with.
pub const PYSPARK_VERSION: &str = "4.0.1";

/// A local Spark: `spark-submit` and the Python its drivers run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkInstallation {
    /// `SPARK_HOME`.
    pub spark_home: PathBuf,
    /// The Python interpreter for drivers and workers.
    pub python: PathBuf,
}

fn default_venv() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("BIGFLOW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/bigflow"))
        .join("peers")
        .join(format!("pyspark-{PYSPARK_VERSION}"))
}

impl SparkInstallation {
    /// `SPARK_HOME`, else the PySpark venv; an error says how to install one.
    pub fn find() -> anyhow::Result<SparkInstallation> {
        if let Some(home) = std::env::var_os("SPARK_HOME").map(PathBuf::from) {
            if !home.join("bin/spark-submit").is_file() {
                bail!(
                    "SPARK_HOME={} has no bin/spark-submit; point it at a Spark or PySpark installation",
                    home.display()
                );
            }
            let python = std::env::var_os("PYSPARK_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("python3"));
            return Ok(SparkInstallation {
                spark_home: home,
                python,
            });
        }
        let venv = std::env::var_os("BIGFLOW_PYSPARK_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(default_venv);
        Self::from_venv(&venv).with_context(|| {
            format!(
                "PySpark not found (no SPARK_HOME, no virtualenv at {venv}); install it with: python3 -m venv {venv} && {venv}/bin/pip install pyspark=={PYSPARK_VERSION}",
                venv = venv.display()
            )
        })
    }

    /// The Spark inside a virtualenv with `pyspark` installed.
    pub fn from_venv(venv: &Path) -> anyhow::Result<SparkInstallation> {
        let lib = venv.join("lib");
        let entries =
            std::fs::read_dir(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
        for entry in entries.flatten() {
            let home = entry.path().join("site-packages/pyspark");
            if home.join("bin/spark-submit").is_file() {
                return Ok(SparkInstallation {
                    spark_home: home,
                    python: venv.join("bin/python"),
                });
            }
        }
        bail!("{} has no pyspark package", venv.display())
    }

    /// `spark-submit`.
    pub fn spark_submit(&self) -> PathBuf {
        self.spark_home.join("bin/spark-submit")
    }
}

/// Checks that Java runs (`$JAVA_HOME/bin/java`, else `java`).
pub fn check_java() -> anyhow::Result<()> {
    let java = std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .unwrap_or_else(|| PathBuf::from("java"));
    match Command::new(&java).arg("-version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "Java not found ({}); Spark needs Java 17: install it (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME",
            java.display()
        ),
    }
}

/// The config property choosing where Spark jobs run.
pub const TARGET_PROPERTY: &str = "spark_target";

/// Where a PySpark driver runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PySparkTarget {
    /// `spark-submit --master <master>` on this machine.
    Local {
        /// The Spark master, e.g. `local[*]`.
        master: String,
    },
    /// An ephemeral Dataproc cluster made for the job and always deleted.
    DataprocCluster,
    /// A Dataproc Serverless batch.
    DataprocServerless,
}

impl PySparkTarget {
    /// The target named by the config's `spark_target` (default `local`).
    pub fn from_config(ctx: &JobContext) -> anyhow::Result<PySparkTarget> {
        match ctx.config.get(TARGET_PROPERTY).and_then(|v| v.as_str()) {
            None | Some("local") => Ok(PySparkTarget::Local {
                master: "local[*]".into(),
            }),
            Some("dataproc-cluster") => Ok(PySparkTarget::DataprocCluster),
            Some("dataproc-serverless") => Ok(PySparkTarget::DataprocServerless),
            Some(other) => bail!(
                "config '{}': {TARGET_PROPERTY} = {other:?} is not a PySpark target; use local, dataproc-cluster or dataproc-serverless",
                ctx.env
            ),
        }
    }
}

/// A PySpark driver as a job.
#[derive(Debug, Clone)]
pub struct PySparkJob {
    id: String,
    driver: String,
    args: Vec<String>,
    pip_packages: Vec<String>,
    properties: Vec<(String, String)>,
    /// `None`: chosen by the config's `spark_target`.
    target: Option<PySparkTarget>,
    /// Dataproc settings of this job, over the config's `dataproc_*` properties.
    dataproc: std::collections::BTreeMap<String, serde_json::Value>,
    settings: JobSettings,
}

impl PySparkJob {
    /// A job running `driver` (a file of `resources/`, or an absolute path).
    pub fn new(id: impl Into<String>, driver: impl Into<String>) -> Self {
        PySparkJob {
            id: id.into(),
            driver: driver.into(),
            args: Vec::new(),
            pip_packages: Vec::new(),
            properties: Vec::new(),
            target: None,
            dataproc: Default::default(),
            settings: JobSettings::default(),
        }
    }

    /// Driver arguments (placeholders like `{runtime}` allowed).
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Python packages the driver needs (installed on Dataproc clusters;
    /// locally the PySpark environment must already have them).
    pub fn pip_packages<S: Into<String>>(mut self, packages: impl IntoIterator<Item = S>) -> Self {
        self.pip_packages
            .extend(packages.into_iter().map(Into::into));
        self
    }

    /// A Spark property (`--conf key=value`).
    pub fn spark_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Always runs on this machine with the given master, whatever the config says.
    pub fn local(self, master: impl Into<String>) -> Self {
        self.target(PySparkTarget::Local {
            master: master.into(),
        })
    }

    /// A Dataproc setting of this job, over the config's property of the
    /// same name (see [`dataproc::DataprocOptions::from_context`]), e.g.
    /// `.dataproc_setting("dataproc_worker_count", 4)`.
    pub fn dataproc_setting(
        mut self,
        property: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.dataproc.insert(property.into(), value.into());
        self
    }

    /// BigFlow's `gcp_project_id`, `gcp_region` and `bucket_id` for this job.
    pub fn dataproc_project(self, project_id: &str, region: &str, bucket: &str) -> Self {
        self.dataproc_setting("dataproc_project_id", project_id)
            .dataproc_setting("dataproc_region", region)
            .dataproc_setting("dataproc_bucket", bucket)
    }

    /// BigFlow's `worker_num_instances` and `worker_machine_type` for this job.
    pub fn dataproc_workers(self, count: u32, machine_type: &str) -> Self {
        self.dataproc_setting("dataproc_worker_count", count)
            .dataproc_setting("dataproc_machine_type", machine_type)
    }

    /// Always runs on `target`, whatever the config says.
    pub fn target(mut self, target: PySparkTarget) -> Self {
        self.target = Some(target);
        self
    }

    /// The driver's arguments with placeholders expanded.
    fn expanded_args(&self, ctx: &JobContext) -> anyhow::Result<Vec<String>> {
        self.args
            .iter()
            .map(|a| {
                expand_argument(ctx, a)
                    .with_context(|| format!("argument '{a}' of job {}", self.id))
            })
            .collect()
    }

    fn expanded_properties(&self, ctx: &JobContext) -> anyhow::Result<Vec<(String, String)>> {
        self.properties
            .iter()
            .map(|(k, v)| Ok((k.clone(), expand_argument(ctx, v)?)))
            .collect()
    }

    /// The `spark-submit` arguments for `ctx` and a local `master` (without the program itself).
    pub fn submit_args(
        &self,
        ctx: &JobContext,
        master: &str,
        driver: &Path,
    ) -> anyhow::Result<Vec<String>> {
        let mut args = vec![
            "--master".to_string(),
            master.to_string(),
            "--name".to_string(),
            format!("{}.{}", ctx.workflow_id, ctx.job_id),
        ];
        for (k, v) in self.expanded_properties(ctx)? {
            args.push("--conf".into());
            args.push(format!("{k}={v}"));
        }
        args.push(driver.display().to_string());
        args.extend(self.expanded_args(ctx)?);
        Ok(args)
    }
}

impl WithSettings for PySparkJob {
    fn settings_mut(&mut self) -> &mut JobSettings {
        &mut self.settings
    }
}

impl Job for PySparkJob {
    fn id(&self) -> &str {
        &self.id
    }

    fn cleanup_grace(&self) -> std::time::Duration {
        // A cancelled Dataproc job still deletes its cluster or session,
        // which can take minutes; the run waits for it rather than leak it.
        std::time::Duration::from_secs(15 * 60)
    }

    fn execute(&self, ctx: &JobContext) -> JobResult {
        let driver = if Path::new(&self.driver).is_absolute() {
            PathBuf::from(&self.driver)
        } else {
            ctx.resource(&self.driver)?
        };
        let target = match &self.target {
            Some(t) => t.clone(),
            None => PySparkTarget::from_config(ctx)?,
        };
        let master = match target {
            PySparkTarget::Local { master } => master,
            PySparkTarget::DataprocCluster | PySparkTarget::DataprocServerless => {
                let options = dataproc::DataprocOptions::from_context_with(ctx, &self.dataproc)?;
                let spec = dataproc::PySparkSpec {
                    driver: &driver,
                    args: self.expanded_args(ctx)?,
                    properties: self.expanded_properties(ctx)?,
                    pip_packages: &self.pip_packages,
                };
                return if target == PySparkTarget::DataprocCluster {
                    dataproc::run_on_cluster(ctx, options, spec)
                } else {
                    dataproc::run_batch(ctx, options, spec)
                };
            }
        };
        let spark = SparkInstallation::find()?;
        check_java()?;
        let mut cmd = Command::new(spark.spark_submit());
        cmd.args(self.submit_args(ctx, &master, &driver)?)
            .env("SPARK_HOME", &spark.spark_home)
            .env("PYSPARK_PYTHON", &spark.python)
            .env("PYSPARK_DRIVER_PYTHON", &spark.python);
        run_program(cmd, ctx, "spark-submit")
    }

    fn settings(&self) -> JobSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigflow_core::{ResolvedConfig, parse_runtime};

    #[test]
    fn submit_arguments() {
        let job = PySparkJob::new("pi", "pi.py")
            .args(["{runtime_date}", "100"])
            .spark_property("spark.executor.memory", "1g");
        let ctx = JobContext::new(
            parse_runtime("2020-01-02").unwrap(),
            "wf",
            "pi",
            ResolvedConfig::empty("dev"),
        );
        assert_eq!(
            job.submit_args(&ctx, "local[2]", Path::new("/r/pi.py"))
                .unwrap(),
            [
                "--master",
                "local[2]",
                "--name",
                "wf.pi",
                "--conf",
                "spark.executor.memory=1g",
                "/r/pi.py",
                "2020-01-02",
                "100"
            ]
        );
    }

    #[test]
    fn missing_pyspark_says_how_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let e = SparkInstallation::from_venv(dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
