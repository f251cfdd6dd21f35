//! Pipeline options: typed versions of Beam's Google Cloud, worker,
//! standard and setup options, plus the DirectRunner's own.
//!
//! Build them in code, from `--key=value` arguments (Beam's names, so the
//! same flags work) or from a map (e.g. a workflow's config):
//!
//! ```
//! use bigflow_beam::PipelineOptions;
//!
//! let o = PipelineOptions::from_args([
//!     "--runner=DataflowRunner", "--project=my-project", "--region=europe-west1",
//!     "--temp_location=gs://my-bucket/tmp", "--max_num_workers=2",
//!     "--autoscaling_algorithm=THROUGHPUT_BASED",
//! ]).unwrap();
//! o.validate().unwrap();
//! assert_eq!(o.worker.max_num_workers, Some(2));
//! ```
//!
//! Unknown keys are kept in [`PipelineOptions::extra`] (Beam lets pipelines
//! define their own options); a bad value of a known key is an error that
//! names the option.

use std::collections::BTreeMap;

use thiserror::Error;

/// An option that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("pipeline option --{key}: {message}")]
pub struct OptionsError {
    /// The option.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> OptionsError {
    OptionsError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Beam's `GoogleCloudOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoogleCloudOptions {
    /// GCP project id.
    pub project: Option<String>,
    /// Dataflow region, e.g. `europe-west1`.
    pub region: Option<String>,
    /// Dataflow job name (unique among running jobs).
    pub job_name: Option<String>,
    /// `gs://` path for staged files.
    pub staging_location: Option<String>,
    /// `gs://` path for temporary files.
    pub temp_location: Option<String>,
    /// The workers' service account.
    pub service_account_email: Option<String>,
    /// Job labels, `key=value`.
    pub labels: Vec<String>,
}

/// Beam's `WorkerOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Compute Engine machine type, e.g. `n2-standard-2`.
    pub machine_type: Option<String>,
    /// Initial number of workers.
    pub num_workers: Option<u32>,
    /// Upper bound for autoscaling.
    pub max_num_workers: Option<u32>,
    /// `NONE` or `THROUGHPUT_BASED`.
    pub autoscaling_algorithm: Option<String>,
    /// Worker disk size.
    pub disk_size_gb: Option<u32>,
    /// The container image workers run (BigFlow's `use_docker_image`).
    pub sdk_container_image: Option<String>,
    /// VPC network.
    pub network: Option<String>,
    /// VPC subnetwork.
    pub subnetwork: Option<String>,
}

/// Beam's `StandardOptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardOptions {
    /// `DirectRunner` (default) or `DataflowRunner`.
    pub runner: String,
    /// Streaming mode (not supported: batch only).
    pub streaming: bool,
}

impl Default for StandardOptions {
    fn default() -> Self {
        StandardOptions {
            runner: "DirectRunner".into(),
            streaming: false,
        }
    }
}

/// Beam's `SetupOptions` (what ships to workers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupOptions {
    /// Beam Python's `setup.py`; kept for configs shared with Python jobs.
    pub setup_file: Option<String>,
    /// A requirements file; kept for configs shared with Python jobs.
    pub requirements_file: Option<String>,
}

/// The DirectRunner's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectOptions {
    /// Worker threads (default: all cores).
    pub num_workers: Option<usize>,
    /// Memory budget of each shuffle in MiB (default 256).
    pub memory_budget_mb: Option<usize>,
    /// Memory budget in bytes (tests; overrides the MiB setting).
    pub memory_budget_bytes: Option<usize>,
    /// Where spill files go.
    pub temp_dir: Option<String>,
}

/// Beam's `PortableOptions`: where the job service is and how workers start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortableOptions {
    /// The Beam job service, `host:port` (`--job_endpoint`).
    pub job_endpoint: Option<String>,
    /// How SDK workers start (`--environment_type`): `LOOPBACK` (threads of
    /// the submitting process), `PROCESS` (processes of this binary, started
    /// by a worker pool the submitter serves; the default for a project's
    /// jobs) or `EXTERNAL` (a worker pool at `--environment_config`, e.g.
    /// Beam's `worker_pool_main --container_executable=<this binary>`).
    pub environment_type: Option<String>,
    /// The worker pool's `host:port` for `EXTERNAL`.
    pub environment_config: Option<String>,
}

/// How a remote runner authenticates (`auth_method`,
/// `service_account_key_file`, `vault_endpoint`, `vault_secret`,
/// `vault_endpoint_verify`): kept apart from the other options, never
/// printed, never sent to a runner.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl Credentials {
    /// The keys that are credentials.
    pub const KEYS: &'static [&'static str] = &[
        "auth_method",
        "service_account_key_file",
        "vault_endpoint",
        "vault_secret",
        "vault_endpoint_verify",
    ];
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.0.keys().collect();
        write!(f, "Credentials({keys:?}, values hidden)")
    }
}

/// All options of a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineOptions {
    /// Project, region, locations, job name.
    pub google_cloud: GoogleCloudOptions,
    /// Machines and scaling.
    pub worker: WorkerOptions,
    /// Runner.
    pub standard: StandardOptions,
    /// Setup files.
    pub setup: SetupOptions,
    /// DirectRunner settings.
    pub direct: DirectOptions,
    /// PortableRunner settings.
    pub portable: PortableOptions,
    /// A remote runner's credentials.
    pub credentials: Credentials,
    /// Options this crate does not know, for the pipeline's own use.
    pub extra: BTreeMap<String, String>,
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, OptionsError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(key, format!("'{value}' is not a whole number")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, OptionsError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad(key, format!("'{value}' is not true or false"))),
    }
}

/// Dataflow's job name rule.
pub fn is_valid_job_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 1024
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// `prefix-<random suffix>`: a Dataflow job name unique per run.
pub fn unique_job_name(prefix: &str) -> String {
    let mut p: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !p.starts_with(|c: char| c.is_ascii_lowercase()) {
        p.insert_str(0, "job-");
    }
    format!(
        "{}-{}",
        p.trim_end_matches('-'),
        uuid::Uuid::new_v4().simple()
    )
}

impl PipelineOptions {
    /// Sets one option by its Beam name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), OptionsError> {
        let key = key.trim_start_matches("--");
        let s = || Some(value.to_string());
        match key {
            "project" => self.google_cloud.project = s(),
            "region" => self.google_cloud.region = s(),
            "job_name" => self.google_cloud.job_name = s(),
            "staging_location" => self.google_cloud.staging_location = s(),
            "temp_location" => self.google_cloud.temp_location = s(),
            "service_account_email" => self.google_cloud.service_account_email = s(),
            "labels" => self.google_cloud.labels.push(value.to_string()),
            "machine_type" | "worker_machine_type" => self.worker.machine_type = s(),
            "num_workers" => self.worker.num_workers = Some(parse_num(key, value)?),
            "max_num_workers" => self.worker.max_num_workers = Some(parse_num(key, value)?),
            "autoscaling_algorithm" => {
                let v = value.to_ascii_uppercase();
                if v != "NONE" && v != "THROUGHPUT_BASED" {
                    return Err(bad(
                        key,
                        format!("'{value}' is not NONE or THROUGHPUT_BASED"),
                    ));
                }
                self.worker.autoscaling_algorithm = Some(v);
            }
            "disk_size_gb" => self.worker.disk_size_gb = Some(parse_num(key, value)?),
            "sdk_container_image" | "worker_harness_container_image" => {
                self.worker.sdk_container_image = s()
            }
            "network" => self.worker.network = s(),
            "subnetwork" => self.worker.subnetwork = s(),
            "runner" => {
                let known = ["DirectRunner", "PortableRunner", "DataflowRunner"];
                if !known.contains(&value) {
                    return Err(bad(
                        key,
                        format!("unknown runner '{value}'; use one of {}", known.join(", ")),
                    ));
                }
                self.standard.runner = value.to_string();
            }
            "streaming" => {
                if parse_bool(key, value)? {
                    return Err(bad(
                        key,
                        "streaming pipelines are not supported (batch only)",
                    ));
                }
                self.standard.streaming = false;
            }
            "setup_file" => self.setup.setup_file = s(),
            "requirements_file" => self.setup.requirements_file = s(),
            "direct_num_workers" => self.direct.num_workers = Some(parse_num(key, value)?),
            "direct_memory_budget_mb" => {
                self.direct.memory_budget_mb = Some(parse_num(key, value)?)
            }
            "direct_temp_dir" => self.direct.temp_dir = s(),
            "job_endpoint" => self.portable.job_endpoint = s(),
            k if Credentials::KEYS.contains(&k) => {
                self.credentials.0.insert(k.to_string(), value.to_string());
            }
            "environment_type" => {
                let v = value.trim().to_ascii_uppercase();
                if !["LOOPBACK", "PROCESS", "EXTERNAL"].contains(&v.as_str()) {
                    return Err(bad(
                        key,
                        format!("'{value}' is not LOOPBACK, PROCESS or EXTERNAL"),
                    ));
                }
                self.portable.environment_type = Some(v);
            }
            "environment_config" => self.portable.environment_config = s(),
            "" => return Err(bad(key, "empty option name")),
            other => {
                self.extra.insert(other.to_string(), value.to_string());
            }
        }
        Ok(())
    }

    /// Options from `--key=value` / `--key value` / `--flag` arguments.
    pub fn from_args<I, S>(args: I) -> Result<PipelineOptions, OptionsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
        let mut o = PipelineOptions::default();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let Some(rest) = a.strip_prefix("--") else {
                return Err(bad(a, "expected --key=value"));
            };
            if let Some((k, v)) = rest.split_once('=') {
                o.set(k, v)?;
            } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
                o.set(rest, &args[i + 1])?;
                i += 1;
            } else {
                o.set(rest, "true")?;
            }
            i += 1;
        }
        Ok(o)
    }

    /// Options from a map of Beam option names to values.
    pub fn from_map<'a, I>(map: I) -> Result<PipelineOptions, OptionsError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut o = PipelineOptions::default();
        for (k, v) in map {
            o.set(k, v)?;
        }
        Ok(o)
    }

    /// Sets a unique job name: `prefix-<random>`.
    pub fn with_unique_job_name(mut self, prefix: &str) -> Self {
        self.google_cloud.job_name = Some(unique_job_name(prefix));
        self
    }

    /// Whether the options name the Dataflow runner.
    pub fn is_dataflow(&self) -> bool {
        self.standard.runner == "DataflowRunner"
    }

    /// Checks the options fit together; for Dataflow: project, region and
    /// a `gs://` temp location are required.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let gc = &self.google_cloud;
        for (key, v) in [
            ("temp_location", &gc.temp_location),
            ("staging_location", &gc.staging_location),
        ] {
            if let Some(v) = v
                && self.is_dataflow()
                && !v.starts_with("gs://")
            {
                return Err(bad(
                    key,
                    format!("'{v}' must be a gs:// path for DataflowRunner"),
                ));
            }
        }
        if let Some(name) = &gc.job_name
            && !is_valid_job_name(name)
        {
            return Err(bad(
                "job_name",
                format!(
                    "'{name}' is not a valid Dataflow job name: use lowercase letters, digits and '-', starting with a letter"
                ),
            ));
        }
        if let (Some(n), Some(max)) = (self.worker.num_workers, self.worker.max_num_workers)
            && n > max
        {
            return Err(bad(
                "max_num_workers",
                format!("{max} is less than num_workers {n}"),
            ));
        }
        if self.worker.max_num_workers == Some(0) {
            return Err(bad("max_num_workers", "must be at least 1"));
        }
        if self.standard.runner == "PortableRunner" {
            if self
                .portable
                .job_endpoint
                .as_deref()
                .unwrap_or("")
                .is_empty()
            {
                return Err(bad(
                    "job_endpoint",
                    "PortableRunner needs the Beam job service's host:port (e.g. --job_endpoint=localhost:8099)",
                ));
            }
            if self.portable.environment_type.as_deref() == Some("EXTERNAL")
                && self
                    .portable
                    .environment_config
                    .as_deref()
                    .unwrap_or("")
                    .is_empty()
            {
                return Err(bad(
                    "environment_config",
                    "--environment_type=EXTERNAL needs the worker pool's host:port here",
                ));
            }
        }
        if self.is_dataflow() {
            if gc.project.as_deref().unwrap_or("").is_empty() {
                return Err(bad(
                    "project",
                    "DataflowRunner needs a GCP project: set --project",
                ));
            }
            if gc.region.as_deref().unwrap_or("").is_empty() {
                return Err(bad(
                    "region",
                    "DataflowRunner needs a region: set --region (e.g. europe-west1)",
                ));
            }
            if gc.temp_location.is_none() {
                return Err(bad(
                    "temp_location",
                    "DataflowRunner needs a gs:// temp location: set --temp_location=gs://bucket/tmp",
                ));
            }
        }
        Ok(())
    }

    /// The options that are set, by Beam name (for logs and plans).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        let gc = &self.google_cloud;
        put("project", gc.project.clone());
        put("region", gc.region.clone());
        put("job_name", gc.job_name.clone());
        put("staging_location", gc.staging_location.clone());
        put("temp_location", gc.temp_location.clone());
        put("service_account_email", gc.service_account_email.clone());
        put(
            "labels",
            (!gc.labels.is_empty()).then(|| gc.labels.join(",")),
        );
        let w = &self.worker;
        put("machine_type", w.machine_type.clone());
        put("num_workers", w.num_workers.map(|v| v.to_string()));
        put("max_num_workers", w.max_num_workers.map(|v| v.to_string()));
        put("autoscaling_algorithm", w.autoscaling_algorithm.clone());
        put("disk_size_gb", w.disk_size_gb.map(|v| v.to_string()));
        put("sdk_container_image", w.sdk_container_image.clone());
        put("network", w.network.clone());
        put("subnetwork", w.subnetwork.clone());
        put("runner", Some(self.standard.runner.clone()));
        put("setup_file", self.setup.setup_file.clone());
        put("requirements_file", self.setup.requirements_file.clone());
        put(
            "direct_num_workers",
            self.direct.num_workers.map(|v| v.to_string()),
        );
        put(
            "direct_memory_budget_mb",
            self.direct.memory_budget_mb.map(|v| v.to_string()),
        );
        put("direct_temp_dir", self.direct.temp_dir.clone());
        put("job_endpoint", self.portable.job_endpoint.clone());
        put("environment_type", self.portable.environment_type.clone());
        put(
            "environment_config",
            self.portable.environment_config.clone(),
        );
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_options_from_args() {
        let o = PipelineOptions::from_args([
            "--project=p",
            "--job_name",
            "beam-wordcount-1",
            "--staging_location=gs://b/staging",
            "--temp_location=gs://b/tmp",
            "--region=europe-west1",
            "--machine_type=n2-standard-2",
            "--max_num_workers=2",
            "--autoscaling_algorithm=throughput_based",
            "--runner=DataflowRunner",
            "--service_account_email=sa@p.iam.gserviceaccount.com",
            "--setup_file=/x/setup.py",
            "--requirements_file=/x/requirements.txt",
            "--my_output=gs://b/out",
        ])
        .unwrap();
        o.validate().unwrap();
        assert_eq!(o.google_cloud.project.as_deref(), Some("p"));
        assert_eq!(o.google_cloud.job_name.as_deref(), Some("beam-wordcount-1"));
        assert_eq!(
            o.worker.autoscaling_algorithm.as_deref(),
            Some("THROUGHPUT_BASED")
        );
        assert_eq!(o.worker.max_num_workers, Some(2));
        assert!(o.is_dataflow());
        assert_eq!(o.extra["my_output"], "gs://b/out");
        let m = o.to_map();
        assert_eq!(m["machine_type"], "n2-standard-2");
        let again =
            PipelineOptions::from_map(m.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(again.google_cloud, o.google_cloud);
        assert_eq!(again.worker, o.worker);
    }

    #[test]
    fn dataflow_needs_project_region_and_gs_temp() {
        let o = PipelineOptions::from_args(["--runner=DataflowRunner"]).unwrap();
        assert_eq!(o.validate().unwrap_err().key, "project");
        let o = PipelineOptions::from_args(["--runner=DataflowRunner", "--project=p"]).unwrap();
        assert_eq!(o.validate().unwrap_err().key, "region");
        let o =
            PipelineOptions::from_args(["--runner=DataflowRunner", "--project=p", "--region=r"])
                .unwrap();
        assert_eq!(o.validate().unwrap_err().key, "temp_location");
        let o = PipelineOptions::from_args([
            "--runner=DataflowRunner",
            "--project=p",
            "--region=r",
            "--temp_location=/tmp/x",
        ])
        .unwrap();
        let e = o.validate().unwrap_err();
        assert!(e.to_string().contains("must be a gs:// path"), "{e}");
        // Locally any temp location will do.
        PipelineOptions::from_args(["--temp_location=/tmp/x"])
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = PipelineOptions::from_args(["--max_num_workers=two"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pipeline option --max_num_workers: 'two' is not a whole number"
        );
        assert!(PipelineOptions::from_args(["--autoscaling_algorithm=FAST"]).is_err());
        assert!(
            PipelineOptions::from_args(["--runner=SparkRunner"])
                .unwrap_err()
                .message
                .contains("unknown runner")
        );
        assert!(PipelineOptions::from_args(["--streaming"]).is_err());
        assert!(PipelineOptions::from_args(["project=p"]).is_err());
        let o = PipelineOptions::from_args(["--job_name=Bad_Name"]).unwrap();
        assert_eq!(o.validate().unwrap_err().key, "job_name");
    }

    #[test]
    fn unique_job_names_are_valid_and_differ() {
        let a = unique_job_name("beam-wordcount");
        let b = unique_job_name("beam-wordcount");
        assert_ne!(a, b);
        assert!(a.starts_with("beam-wordcount-"));
        assert!(is_valid_job_name(&a), "{a}");
        assert!(is_valid_job_name(&unique_job_name("9 Words_X")));
    }
}
