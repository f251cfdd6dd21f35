//! Dataproc: ephemeral clusters, serverless batches and Spark Connect sessions.
//!
//! A thin client of the Dataproc REST API (v1) on `reqwest`, with the
//! credentials and request path of `bigflow-gcp` (a token asked for on every
//! request, so a job that outlives its first token — and the cleanup after
//! it — still authenticates; retries; typed errors), and the lifecycles
//! BigFlow jobs need on top of it:
//!
//! - [`run_on_cluster`]: create a cluster (pip packages installed by
//!   Dataproc's `pip-install.sh` initialization action), submit a PySpark job,
//!   wait, and **always** delete the cluster — after success, after a failed
//!   creation or job, and when the attempt is cancelled (timeout or
//!   interrupt), in which case the running job is cancelled first.
//! - [`run_batch`]: a Dataproc Serverless batch; cancelled if the attempt is
//!   cancelled while it runs. Finished batches stay listed (they hold the logs
//!   and cost nothing).
//! - [`Session`]: a Dataproc Serverless interactive session with Spark Connect,
//!   deleted when dropped; what `SparkJob`'s `dataproc` target runs against.
//!
//! Every resource is labelled `bigflow-workflow`, `bigflow-job` and
//! `bigflow-runtime` so a leak is findable with a label filter. Every
//! operation is polled with a deadline. The API endpoint can be overridden
//! (`dataproc_endpoint`) for tests against a local fake of the API: Dataproc
//! itself cannot run here. Written on `reqwest` rather than
//! `google-cloud-dataproc-v1` to share one HTTP stack, retry policy and
//! credential code with the rest of bigflow and to keep gRPC/protobuf out of
//! projects that only need PySpark.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bigflow_core::JobContext;
use bigflow_gcp::retry::ApiError;
use bigflow_gcp::settings::{
    AUTH_METHOD, SERVICE_ACCOUNT_KEY_FILE, VAULT_ENDPOINT, VAULT_ENDPOINT_VERIFY, VAULT_SECRET,
};
use bigflow_gcp::storage::Storage;
use bigflow_gcp::{AuthFlags, AuthMethod, AuthSources, TokenSource, resolve_auth};
use serde::Deserialize;
use serde_json::{Value, json};

/// Google's endpoint.
pub const DATAPROC_ENDPOINT: &str = "https://dataproc.googleapis.com";

/// Options of every Dataproc target, read from the workflow's config
/// (`dataproc_*` properties, see [`DataprocOptions::from_context`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataprocOptions {
    /// The Google Cloud project.
    pub project_id: String,
    /// The region (`europe-west1`).
    pub region: String,
    /// The bucket drivers are staged in (`gs://` prefix optional).
    pub bucket: Option<String>,
    /// Primary workers of an ephemeral cluster.
    pub worker_count: u32,
    /// Machine type of the master and the workers.
    pub machine_type: String,
    /// Dataproc image version of clusters.
    pub image_version: String,
    /// Runtime version of serverless batches and sessions.
    pub runtime_version: String,
    /// Service account the cluster or batch runs as.
    pub service_account: Option<String>,
    /// Subnetwork URI.
    pub subnetwork: Option<String>,
    /// Spark properties for every job.
    pub properties: BTreeMap<String, String>,
    /// The API endpoint.
    pub endpoint: String,
    /// The Cloud Storage endpoint drivers are staged through (default:
    /// `STORAGE_EMULATOR_HOST`, else Google's).
    pub storage_endpoint: Option<String>,
    /// How calls are authenticated.
    pub auth: AuthMethod,
    /// Time between status polls.
    pub poll_interval: Duration,
    /// Longest wait for a cluster or session to come up.
    pub create_timeout: Duration,
    /// Longest wait for a deletion to finish.
    pub delete_timeout: Duration,
}

/// The config properties, as written in a workflow's `Config`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfigProperties {
    dataproc_project_id: Option<String>,
    gcp_project_id: Option<String>,
    dataproc_region: Option<String>,
    dataproc_bucket: Option<String>,
    dataproc_worker_count: Option<u32>,
    dataproc_machine_type: Option<String>,
    dataproc_image_version: Option<String>,
    dataproc_runtime_version: Option<String>,
    dataproc_service_account: Option<String>,
    dataproc_subnetwork: Option<String>,
    dataproc_properties: Option<BTreeMap<String, String>>,
    dataproc_endpoint: Option<String>,
    storage_endpoint: Option<String>,
    dataproc_poll_interval_seconds: Option<f64>,
    dataproc_create_timeout_seconds: Option<u64>,
}

impl DataprocOptions {
    /// Options from the job's config:
    ///
    /// | property | meaning | default |
    /// |---|---|---|
    /// | `dataproc_project_id` (or `gcp_project_id`) | project | required |
    /// | `dataproc_region` | region | required |
    /// | `dataproc_bucket` | staging bucket | required for PySpark |
    /// | `dataproc_worker_count` | primary workers | 2 |
    /// | `dataproc_machine_type` | machine type | `e2-standard-4` |
    /// | `dataproc_image_version` | cluster image | `2.2-debian12` |
    /// | `dataproc_runtime_version` | serverless runtime | `2.2` |
    /// | `dataproc_service_account`, `dataproc_subnetwork` | | none |
    /// | `dataproc_properties` | Spark properties (a table) | none |
    /// | `dataproc_endpoint` | API endpoint | Google's |
    /// | `storage_endpoint` | Cloud Storage endpoint | `STORAGE_EMULATOR_HOST`, else Google's |
    /// | `dataproc_poll_interval_seconds` | poll interval | 10 |
    /// | `dataproc_create_timeout_seconds` | creation deadline | 1800 |
    /// | `auth_method` | `local_account`, `service_account`, `vault`, `none` | `local_account` |
    /// | `service_account_key_file`, `vault_endpoint`, `vault_secret` | for those methods | |
    ///
    /// The auth settings are read like every caller's
    /// ([`bigflow_gcp::resolve_auth`]): the job's own setting, else the
    /// variable `bf_<key>`, else the config; `gcp_auth_method` and
    /// `gcp_service_account_key` are still accepted.
    pub fn from_context(ctx: &JobContext) -> anyhow::Result<DataprocOptions> {
        Self::from_context_with(ctx, &BTreeMap::new())
    }

    /// Like [`DataprocOptions::from_context`], with a job's own settings
    /// (same property names) taking precedence over the config's.
    pub fn from_context_with(
        ctx: &JobContext,
        overrides: &BTreeMap<String, Value>,
    ) -> anyhow::Result<DataprocOptions> {
        let mut properties: serde_json::Map<String, Value> = ctx
            .config
            .properties()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let auth = auth_method(ctx, &properties, overrides)?;
        properties.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let p: ConfigProperties =
            serde_json::from_value(Value::Object(properties)).with_context(|| {
                format!(
                    "the Dataproc properties of config '{}' (or of the job) have the wrong type",
                    ctx.env
                )
            })?;
        let missing = |key: &str| {
            anyhow::anyhow!(
                "config '{}' has no {key}; Dataproc targets need dataproc_project_id and dataproc_region (set them in the workflow's Config or as bf_{key})",
                ctx.env
            )
        };
        let env_or = |value: Option<String>, key: &str| {
            value.or_else(|| {
                std::env::var(format!("{}{key}", ctx.config.env_var_prefix()))
                    .ok()
                    .filter(|v| !v.is_empty())
            })
        };
        let project_id = env_or(
            p.dataproc_project_id.or(p.gcp_project_id),
            "dataproc_project_id",
        )
        .ok_or_else(|| missing("dataproc_project_id"))?;
        let region = env_or(p.dataproc_region, "dataproc_region")
            .ok_or_else(|| missing("dataproc_region"))?;
        let poll = p.dataproc_poll_interval_seconds.unwrap_or(10.0);
        // An hour between polls is already far longer than any use needs.
        if !(poll.is_finite() && poll > 0.0 && poll <= 3600.0) {
            bail!(
                "dataproc_poll_interval_seconds must be a number of seconds above 0 and at most 3600, not {poll}"
            );
        }
        let options = DataprocOptions {
            project_id,
            region,
            bucket: p.dataproc_bucket.map(|b| {
                b.trim_start_matches("gs://")
                    .trim_end_matches('/')
                    .to_string()
            }),
            worker_count: p.dataproc_worker_count.unwrap_or(2),
            machine_type: p
                .dataproc_machine_type
                .unwrap_or_else(|| "e2-standard-4".into()),
            image_version: p
                .dataproc_image_version
                .unwrap_or_else(|| "2.2-debian12".into()),
            runtime_version: p.dataproc_runtime_version.unwrap_or_else(|| "2.2".into()),
            service_account: p.dataproc_service_account,
            subnetwork: p.dataproc_subnetwork,
            properties: p.dataproc_properties.unwrap_or_default(),
            endpoint: p
                .dataproc_endpoint
                .unwrap_or_else(|| DATAPROC_ENDPOINT.into())
                .trim_end_matches('/')
                .to_string(),
            storage_endpoint: p.storage_endpoint,
            auth,
            poll_interval: Duration::from_secs_f64(poll), // in range: checked above
            create_timeout: Duration::from_secs(p.dataproc_create_timeout_seconds.unwrap_or(1800)),
            delete_timeout: Duration::from_secs(600),
        };
        options.validate()?;
        Ok(options)
    }

    /// Checks the values Dataproc would reject, before anything is created.
    pub fn validate(&self) -> anyhow::Result<()> {
        let id_like = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !id_like(&self.project_id) && !self.project_id.contains(':') {
            bail!(
                "dataproc_project_id {:?} is not a Google Cloud project id",
                self.project_id
            );
        }
        if !id_like(&self.region) || self.region == "global" {
            bail!(
                "dataproc_region {:?} is not a region such as europe-west1",
                self.region
            );
        }
        if self.worker_count == 1 || self.worker_count > 1000 {
            bail!(
                "dataproc_worker_count = {}: a standard cluster has 0 (single node) or 2 to 1000 primary workers",
                self.worker_count
            );
        }
        if !self.endpoint.starts_with("https://") && !bigflow_gcp::is_loopback_url(&self.endpoint) {
            bail!(
                "dataproc_endpoint {} must use https (plain http only for a loopback test endpoint)",
                self.endpoint
            );
        }
        Ok(())
    }
}

/// A property as text (`None` when absent or null).
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The auth method of a job: its own settings, else `bf_<key>`, else the config.
fn auth_method(
    ctx: &JobContext,
    config: &serde_json::Map<String, Value>,
    job: &BTreeMap<String, Value>,
) -> anyhow::Result<AuthMethod> {
    let first = |keys: &[&str]| keys.iter().find_map(|k| text(job.get(*k)));
    let flags = AuthFlags {
        auth_method: first(AUTH_METHOD),
        service_account_key_file: first(SERVICE_ACCOUNT_KEY_FILE),
        vault_endpoint: first(VAULT_ENDPOINT),
        vault_secret: first(VAULT_SECRET),
        vault_endpoint_verify: first(VAULT_ENDPOINT_VERIFY),
    };
    let lookup = |key: &str| text(config.get(key));
    Ok(resolve_auth(&AuthSources {
        flags: &flags,
        command_line: false,
        env_prefix: ctx.config.env_var_prefix(),
        config: &lookup,
        config_name: &format!("config '{}'", ctx.env),
    })?)
}

/// `s` as a label value / resource name part: lowercase, `[a-z0-9-]`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The labels of every resource a job creates (label values ≤ 63 characters).
pub fn labels(ctx: &JobContext) -> BTreeMap<String, String> {
    let cut = |s: String| s.chars().take(63).collect::<String>();
    BTreeMap::from([
        ("bigflow-workflow".to_string(), cut(slug(&ctx.workflow_id))),
        ("bigflow-job".to_string(), cut(slug(&ctx.job_id))),
        (
            "bigflow-runtime".to_string(),
            cut(slug(&ctx.runtime.format("%Y-%m-%dT%H%M%S").to_string())),
        ),
    ])
}

/// A resource name for `ctx`: `bf-<job>-<runtime>-<random>`, at most `max` characters.
pub fn resource_name(ctx: &JobContext, max: usize) -> String {
    let suffix = bigflow_core::names::random_hex(6);
    let runtime = ctx.runtime.format("%Y%m%d%H%M").to_string();
    let room = max.saturating_sub(3 + runtime.len() + 1 + suffix.len() + 1);
    let job: String = slug(&ctx.job_id).chars().take(room).collect();
    let job = job.trim_matches('-');
    if job.is_empty() {
        format!("bf-{runtime}-{suffix}")
    } else {
        format!("bf-{job}-{runtime}-{suffix}")
    }
}

/// The REST client: one project and region; credentials asked for per request.
pub struct Dataproc {
    http: reqwest::Client,
    options: DataprocOptions,
    auth: TokenSource,
}

/// A long-running operation's outcome.
#[derive(Debug)]
enum OperationEnd {
    Done,
    Failed(String),
}

impl Dataproc {
    /// A client with the options' auth method (checked at once: the first
    /// token is fetched here).
    pub async fn connect(options: DataprocOptions) -> anyhow::Result<Dataproc> {
        bigflow_gcp::install_crypto_provider();
        let auth = TokenSource::new(&options.auth).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Dataproc {
            http,
            options,
            auth,
        })
    }

    /// The options.
    pub fn options(&self) -> &DataprocOptions {
        &self.options
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.options.endpoint)
    }

    fn regional(&self, rest: &str) -> String {
        self.url(&format!(
            "projects/{}/regions/{}/{rest}",
            self.options.project_id, self.options.region
        ))
    }

    fn located(&self, rest: &str) -> String {
        self.url(&format!(
            "projects/{}/locations/{}/{rest}",
            self.options.project_id, self.options.region
        ))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        bigflow_gcp::retry::call_json(&self.auth, &self.http, method, url, body).await
    }

    /// Polls an operation until it is done, the deadline passes or `stop()` says so.
    async fn wait_operation(
        &self,
        name: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<OperationEnd> {
        loop {
            let op = self
                .call(reqwest::Method::GET, &self.url(name), None)
                .await
                .map_err(|e| anyhow::anyhow!("polling operation {name}: {e}"))?;
            if op["done"].as_bool() == Some(true) {
                return Ok(match op.get("error") {
                    Some(error) if !error.is_null() => OperationEnd::Failed(
                        error["message"]
                            .as_str()
                            .unwrap_or("(no message)")
                            .to_string(),
                    ),
                    _ => OperationEnd::Done,
                });
            }
            self.pause(deadline, stop, &format!("operation {name}"))
                .await?;
        }
    }

    /// Sleeps one poll interval; an error once cancelled or past the deadline.
    async fn pause(
        &self,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
        what: &str,
    ) -> anyhow::Result<()> {
        let end = Instant::now() + self.options.poll_interval;
        loop {
            if stop() {
                bail!("cancelled while waiting for {what}");
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("{what} did not finish before its deadline");
            }
            if now >= end {
                return Ok(());
            }
            tokio::time::sleep((end - now).min(Duration::from_millis(50))).await;
        }
    }

    /// The `clusters.create` request body.
    pub fn cluster_body(
        &self,
        name: &str,
        pip_packages: &[String],
        labels: &BTreeMap<String, String>,
    ) -> Value {
        let o = &self.options;
        let group = |count: u32| {
            json!({
                "numInstances": count,
                "machineTypeUri": o.machine_type,
                "diskConfig": { "bootDiskSizeGb": 100 }
            })
        };
        let mut gce = json!({ "internalIpOnly": false });
        if let Some(sa) = &o.service_account {
            gce["serviceAccount"] = json!(sa);
            gce["serviceAccountScopes"] = json!([bigflow_gcp::CLOUD_PLATFORM_SCOPE]);
        }
        if let Some(subnetwork) = &o.subnetwork {
            gce["subnetworkUri"] = json!(subnetwork);
        }
        let mut properties = o.properties.clone();
        if o.worker_count == 0 {
            properties.insert("dataproc:dataproc.allow.zero.workers".into(), "true".into());
        }
        let mut config = json!({
            "gceClusterConfig": gce,
            "masterConfig": group(1),
            "softwareConfig": { "imageVersion": o.image_version, "properties": properties },
            // A safety net: even a crashed bigflow leaves no cluster for long.
            "lifecycleConfig": { "idleDeleteTtl": "3600s" }
        });
        if o.worker_count > 0 {
            config["workerConfig"] = group(o.worker_count);
        }
        if !pip_packages.is_empty() {
            config["gceClusterConfig"]["metadata"] =
                json!({ "PIP_PACKAGES": pip_packages.join(" ") });
            config["initializationActions"] = json!([{
                "executableFile": format!(
                    "gs://goog-dataproc-initialization-actions-{}/python/pip-install.sh",
                    o.region
                ),
                "executionTimeout": "900s"
            }]);
        }
        json!({
            "projectId": o.project_id,
            "clusterName": name,
            "config": config,
            "labels": labels,
        })
    }

    /// Creates a cluster and waits until it runs.
    pub async fn create_cluster(
        &self,
        name: &str,
        pip_packages: &[String],
        labels: &BTreeMap<String, String>,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<()> {
        let body = self.cluster_body(name, pip_packages, labels);
        let url = format!(
            "{}?requestId={}",
            self.regional("clusters"),
            bigflow_core::names::random_hex(32)
        );
        let op = self
            .call(reqwest::Method::POST, &url, Some(&body))
            .await
            .map_err(|e| anyhow::anyhow!("creating Dataproc cluster {name}: {e}"))?;
        let op_name = op["name"]
            .as_str()
            .with_context(|| format!("creating cluster {name}: the answer names no operation"))?;
        tracing::info!("creating Dataproc cluster {name} ({})", self.options.region);
        let deadline = Instant::now() + self.options.create_timeout;
        match self.wait_operation(op_name, deadline, stop).await? {
            OperationEnd::Done => Ok(()),
            OperationEnd::Failed(message) => {
                bail!("Dataproc could not create cluster {name}: {message}")
            }
        }
    }

    /// Deletes a cluster; waits for the deletion unless `stop()` already says
    /// to hurry (then it is enough that Dataproc accepted the request).
    pub async fn delete_cluster(&self, name: &str, stop: &dyn Fn() -> bool) -> anyhow::Result<()> {
        let url = format!(
            "{}?requestId={}",
            self.regional(&format!("clusters/{name}")),
            bigflow_core::names::random_hex(32)
        );
        let op = match self.call(reqwest::Method::DELETE, &url, None).await {
            Ok(op) => op,
            // Never created (creation was refused): nothing to delete.
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => bail!(
                "deleting Dataproc cluster {name}: {e}; delete it by hand (label bigflow-job)"
            ),
        };
        tracing::info!("deleting Dataproc cluster {name}");
        if stop() {
            return Ok(());
        }
        let Some(op_name) = op["name"].as_str() else {
            return Ok(());
        };
        let deadline = Instant::now() + self.options.delete_timeout;
        match self.wait_operation(op_name, deadline, stop).await {
            Ok(OperationEnd::Done) => Ok(()),
            Ok(OperationEnd::Failed(message)) => {
                bail!("Dataproc could not delete cluster {name}: {message}")
            }
            // Cancelled while waiting: the deletion was accepted and goes on.
            Err(_) if stop() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits a PySpark job to a cluster and waits for it; cancels it if
    /// `stop()` turns true.
    pub async fn run_job(
        &self,
        cluster: &str,
        job_id: &str,
        pyspark_job: Value,
        labels: &BTreeMap<String, String>,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<()> {
        let body = json!({
            "job": {
                "reference": { "projectId": self.options.project_id, "jobId": job_id },
                "placement": { "clusterName": cluster },
                "pysparkJob": pyspark_job,
                "labels": labels,
            },
            "requestId": bigflow_core::names::random_hex(32),
        });
        self.call(
            reqwest::Method::POST,
            &self.regional("jobs:submit"),
            Some(&body),
        )
        .await
        .map_err(|e| anyhow::anyhow!("submitting job {job_id} to cluster {cluster}: {e}"))?;
        tracing::info!("Dataproc job {job_id} submitted to cluster {cluster}");
        let cancel = self.regional(&format!("jobs/{job_id}:cancel"));
        self.follow(
            &format!("job {job_id}"),
            &self.regional(&format!("jobs/{job_id}")),
            Some(&cancel),
            stop,
            |job| {
                let state = job["status"]["state"]
                    .as_str()
                    .unwrap_or("STATE_UNSPECIFIED");
                let details = job["status"]["details"].as_str().unwrap_or("");
                match state {
                    "DONE" => Some(Ok(())),
                    "ERROR" | "ATTEMPT_FAILURE" => Some(Err(anyhow::anyhow!(
                        "Dataproc job {job_id} failed: {}; driver output: {}",
                        if details.is_empty() { state } else { details },
                        job["driverOutputResourceUri"].as_str().unwrap_or("(none)")
                    ))),
                    "CANCELLED" => {
                        Some(Err(anyhow::anyhow!("Dataproc job {job_id} was cancelled")))
                    }
                    _ => None,
                }
            },
        )
        .await
    }

    /// Polls `url` until `finished` says the resource ended. When `stop()`
    /// turns true, POSTs to `cancel_url` (if any) and fails. There is no
    /// deadline of its own: the job's execution_timeout raises `stop`.
    async fn follow(
        &self,
        what: &str,
        url: &str,
        cancel_url: Option<&str>,
        stop: &dyn Fn() -> bool,
        finished: impl Fn(&Value) -> Option<anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        loop {
            let resource = self
                .call(reqwest::Method::GET, url, None)
                .await
                .map_err(|e| anyhow::anyhow!("polling {what}: {e}"))?;
            if let Some(end) = finished(&resource) {
                return end;
            }
            if stop() {
                if let Some(cancel) = cancel_url {
                    let _ = self
                        .call(reqwest::Method::POST, cancel, Some(&json!({})))
                        .await;
                }
                bail!("cancelled: Dataproc {what} was asked to stop");
            }
            self.pause(Instant::now() + Duration::from_secs(86_400), stop, what)
                .await
                .ok();
        }
    }

    /// Runs a serverless batch and waits for it; cancels it if `stop()` turns true.
    pub async fn run_batch(
        &self,
        batch_id: &str,
        pyspark_batch: Value,
        properties: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<()> {
        let o = &self.options;
        let mut environment = json!({ "executionConfig": {} });
        if let Some(sa) = &o.service_account {
            environment["executionConfig"]["serviceAccount"] = json!(sa);
        }
        if let Some(subnetwork) = &o.subnetwork {
            environment["executionConfig"]["subnetworkUri"] = json!(subnetwork);
        }
        let body = json!({
            "pysparkBatch": pyspark_batch,
            "runtimeConfig": { "version": o.runtime_version, "properties": properties },
            "environmentConfig": environment,
            "labels": labels,
        });
        let url = format!(
            "{}?batchId={batch_id}&requestId={}",
            self.located("batches"),
            bigflow_core::names::random_hex(32)
        );
        let op = self
            .call(reqwest::Method::POST, &url, Some(&body))
            .await
            .map_err(|e| anyhow::anyhow!("creating Dataproc batch {batch_id}: {e}"))?;
        let op_name = op["name"].as_str().unwrap_or_default().to_string();
        tracing::info!("Dataproc batch {batch_id} created");
        let cancel = (!op_name.is_empty()).then(|| self.url(&format!("{op_name}:cancel")));
        self.follow(
            &format!("batch {batch_id}"),
            &self.located(&format!("batches/{batch_id}")),
            cancel.as_deref(),
            stop,
            |batch| match batch["state"].as_str().unwrap_or("STATE_UNSPECIFIED") {
                "SUCCEEDED" => Some(Ok(())),
                "FAILED" => Some(Err(anyhow::anyhow!(
                    "Dataproc batch {batch_id} failed: {}",
                    batch["stateMessage"].as_str().unwrap_or("(no message)")
                ))),
                "CANCELLED" => Some(Err(anyhow::anyhow!(
                    "Dataproc batch {batch_id} was cancelled"
                ))),
                _ => None,
            },
        )
        .await
    }

    /// Creates a Spark Connect session and waits until it is active; returns
    /// its `sc://` URL (with the bearer token, when there is one).
    pub async fn create_session(
        &self,
        session_id: &str,
        labels: &BTreeMap<String, String>,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<String> {
        let o = &self.options;
        let body = json!({
            "runtimeConfig": { "version": o.runtime_version, "properties": o.properties },
            "environmentConfig": { "executionConfig": {
                "serviceAccount": o.service_account, "subnetworkUri": o.subnetwork
            }},
            "sparkConnectSession": {},
            "labels": labels,
        });
        let url = format!(
            "{}?sessionId={session_id}&requestId={}",
            self.located("sessions"),
            bigflow_core::names::random_hex(32)
        );
        self.call(reqwest::Method::POST, &url, Some(&body))
            .await
            .map_err(|e| anyhow::anyhow!("creating Dataproc session {session_id}: {e}"))?;
        let url = self.located(&format!("sessions/{session_id}"));
        let deadline = Instant::now() + o.create_timeout;
        loop {
            let session = self
                .call(reqwest::Method::GET, &url, None)
                .await
                .map_err(|e| anyhow::anyhow!("polling session {session_id}: {e}"))?;
            match session["state"].as_str().unwrap_or("STATE_UNSPECIFIED") {
                "ACTIVE" => {
                    // The URL carries the token of now: Spark Connect takes
                    // no other credentials.
                    let token = self.auth.bearer().await?;
                    return connect_url(&session, token.as_ref());
                }
                "FAILED" | "TERMINATED" | "TERMINATING" => bail!(
                    "Dataproc session {session_id} did not start: {}",
                    session["stateMessage"].as_str().unwrap_or("(no message)")
                ),
                _ => {}
            }
            self.pause(deadline, stop, &format!("session {session_id}"))
                .await?;
        }
    }
}

/// The Spark Connect URL of an active session.
fn connect_url(session: &Value, token: Option<&bigflow_gcp::Secret>) -> anyhow::Result<String> {
    let endpoints = session["runtimeInfo"]["endpoints"]
        .as_object()
        .context("the active session reports no runtimeInfo.endpoints")?;
    let endpoint = endpoints
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().contains("spark connect"))
        .and_then(|(_, v)| v.as_str())
        .context("the active session has no Spark Connect endpoint")?;
    let mut url = match endpoint.split_once("://") {
        Some(("https", rest)) => format!("sc://{}", rest.trim_end_matches('/')),
        Some(("sc", _)) => endpoint.trim_end_matches('/').to_string(),
        _ => bail!("unexpected Spark Connect endpoint {endpoint}"),
    };
    if !url.contains(":443") && endpoint.starts_with("https://") {
        url.push_str(":443");
    }
    let mut params = Vec::new();
    if endpoint.starts_with("https://") {
        params.push("use_ssl=true".to_string());
    }
    if let Some(uuid) = session["uuid"].as_str() {
        params.push(format!("session_id={uuid}"));
    }
    if let Some(token) = token {
        params.push(format!("token={}", token.expose()));
    }
    if !params.is_empty() {
        url.push_str("/;");
        url.push_str(&params.join(";"));
    }
    Ok(url)
}

impl Dataproc {
    /// Deletes a session (waiting is not needed: it stops billing at once).
    pub async fn delete_session(&self, session_id: &str) -> anyhow::Result<()> {
        match self
            .call(
                reqwest::Method::DELETE,
                &format!(
                    "{}?requestId={}",
                    self.located(&format!("sessions/{session_id}")),
                    bigflow_core::names::random_hex(32)
                ),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => bail!(
                "deleting Dataproc session {session_id}: {e}; delete it by hand (label bigflow-job)"
            ),
        }
    }
}

/// A current-thread runtime for one job's calls.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The staged driver: uploaded to `gs://<bucket>/bigflow/<workflow>/<job>/<unique>/<file>`.
struct StagedDriver {
    bucket: String,
    object: String,
}

async fn stage_driver(
    options: &DataprocOptions,
    auth: TokenSource,
    ctx: &JobContext,
    driver: &Path,
    unique: &str,
) -> anyhow::Result<(Storage, StagedDriver)> {
    let bucket = options.bucket.clone().with_context(|| {
        format!(
            "config '{}' has no dataproc_bucket; PySpark jobs on Dataproc stage their driver in a bucket",
            ctx.env
        )
    })?;
    let data = std::fs::read(driver)
        .with_context(|| format!("cannot read the driver {}", driver.display()))?;
    let file = driver
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| "driver.py".into());
    let object = format!(
        "bigflow/{}/{}/{unique}/{file}",
        slug(&ctx.workflow_id),
        slug(&ctx.job_id)
    );
    let storage = Storage::new(options.storage_endpoint.as_deref(), auth)?;
    storage
        .upload(&bucket, &object, data, "text/x-python")
        .await?;
    Ok((storage, StagedDriver { bucket, object }))
}

/// What a PySpark driver needs on Dataproc.
pub struct PySparkSpec<'a> {
    /// The driver file on this machine.
    pub driver: &'a Path,
    /// Its arguments (already expanded).
    pub args: Vec<String>,
    /// Spark properties of this job.
    pub properties: Vec<(String, String)>,
    /// Packages to pip-install.
    pub pip_packages: &'a [String],
}

impl PySparkSpec<'_> {
    /// The config's Spark properties, then the job's.
    fn properties(&self, options: &DataprocOptions) -> BTreeMap<String, String> {
        let mut properties = options.properties.clone();
        properties.extend(self.properties.iter().cloned());
        properties
    }

    /// A `PySparkJob` (clusters) or, without properties, a `PySparkBatch`.
    fn body(&self, staged: &StagedDriver, properties: Option<BTreeMap<String, String>>) -> Value {
        let mut body = json!({
            "mainPythonFileUri": format!("gs://{}/{}", staged.bucket, staged.object),
            "args": self.args,
        });
        if let Some(properties) = properties {
            body["properties"] = json!(properties);
        }
        body
    }
}

/// Runs a PySpark driver on an ephemeral cluster and always deletes it.
pub fn run_on_cluster(
    ctx: &JobContext,
    options: DataprocOptions,
    spec: PySparkSpec<'_>,
) -> anyhow::Result<()> {
    let stop = || ctx.is_cancelled();
    runtime()?.block_on(async {
        let client = Dataproc::connect(options).await?;
        let name = resource_name(ctx, 51);
        let labels = labels(ctx);
        let (storage, staged) = stage_driver(
            client.options(),
            client.auth.clone(),
            ctx,
            spec.driver,
            &name,
        )
        .await?;
        let body = spec.body(&staged, Some(spec.properties(client.options())));
        let work = async {
            client
                .create_cluster(&name, spec.pip_packages, &labels, &stop)
                .await?;
            let job_id = format!("{name}-job");
            client.run_job(&name, &job_id, body, &labels, &stop).await
        };
        let result = work.await;
        let deleted = client.delete_cluster(&name, &stop).await;
        let _ = storage.delete(&staged.bucket, &staged.object).await;
        match (result, deleted) {
            (Ok(()), Ok(())) => Ok(()),
            (Ok(()), Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(d)) => Err(e.context(format!("also: {d:#}"))),
        }
    })
}

/// Runs a PySpark driver as a Dataproc Serverless batch.
pub fn run_batch(
    ctx: &JobContext,
    options: DataprocOptions,
    spec: PySparkSpec<'_>,
) -> anyhow::Result<()> {
    if !spec.pip_packages.is_empty() {
        bail!(
            "Dataproc Serverless installs no pip packages per batch ({}); use target dataproc-cluster, or a runtime container image that has them (spark.dataproc.container.image… see docs/spark.md)",
            spec.pip_packages.join(", ")
        );
    }
    let stop = || ctx.is_cancelled();
    runtime()?.block_on(async {
        let client = Dataproc::connect(options).await?;
        let id = resource_name(ctx, 63);
        let labels = labels(ctx);
        let (storage, staged) =
            stage_driver(client.options(), client.auth.clone(), ctx, spec.driver, &id).await?;
        // Batches take Spark properties in their runtime config.
        let body = spec.body(&staged, None);
        let properties = spec.properties(client.options());
        let result = client
            .run_batch(&id, body, &properties, &labels, &stop)
            .await;
        let _ = storage.delete(&staged.bucket, &staged.object).await;
        result
    })
}

/// A Spark Connect session on Dataproc Serverless, deleted when dropped.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    client: Dataproc,
    id: String,
    /// The `sc://` URL to connect to.
    pub url: String,
}

impl Session {
    /// Creates a session for `ctx` and waits until it accepts Spark Connect clients.
    pub fn create(ctx: &JobContext, options: DataprocOptions) -> anyhow::Result<Session> {
        let runtime = runtime()?;
        let client = runtime.block_on(Dataproc::connect(options))?;
        let id = resource_name(ctx, 63);
        let labels = labels(ctx);
        let stop = || ctx.is_cancelled();
        match runtime.block_on(client.create_session(&id, &labels, &stop)) {
            Ok(url) => Ok(Session {
                runtime,
                client,
                id,
                url,
            }),
            Err(e) => {
                // A session that failed to start may still exist: delete it.
                let deleted = runtime.block_on(client.delete_session(&id));
                Err(match deleted {
                    Ok(()) => e,
                    Err(d) => e.context(format!("also: {d:#}")),
                })
            }
        }
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(e) = self.runtime.block_on(self.client.delete_session(&self.id)) {
            tracing::error!("{e:#}");
        } else {
            tracing::info!("Dataproc session {} deleted", self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigflow_core::{ResolvedConfig, parse_runtime};

    fn ctx(job: &str) -> JobContext {
        JobContext::new(
            parse_runtime("2020-01-02 03:04:05").unwrap(),
            "My_Workflow",
            job,
            ResolvedConfig::empty("dev"),
        )
    }

    #[test]
    fn names_and_labels_satisfy_dataproc() {
        let c = ctx("Estimate_PI.now");
        let name = resource_name(&c, 51);
        assert!(
            name.starts_with("bf-estimate-pi-now-202001020304-"),
            "{name}"
        );
        assert!(name.len() <= 51);
        let long = resource_name(&ctx(&"x".repeat(200)), 51);
        assert_eq!(long.len(), 51, "{long}");
        assert!(!long.contains("--"), "{long}");
        assert_eq!(
            labels(&c),
            BTreeMap::from([
                ("bigflow-job".into(), "estimate-pi-now".into()),
                ("bigflow-runtime".into(), "2020-01-02t030405".into()),
                ("bigflow-workflow".into(), "my-workflow".into()),
            ])
        );
    }

    #[test]
    fn a_poll_interval_out_of_range_is_refused_not_a_panic() {
        for poll in [1e300, -1.0, 0.0, 3601.0] {
            let config = bigflow_core::Config::new(
                "dev",
                [
                    ("dataproc_project_id", serde_json::json!("p")),
                    ("dataproc_region", serde_json::json!("europe-west1")),
                    ("gcp_auth_method", serde_json::json!("none")),
                    ("dataproc_poll_interval_seconds", serde_json::json!(poll)),
                ],
            )
            .resolve(Some("dev"))
            .unwrap();
            let c = JobContext::new(parse_runtime("2020-01-02").unwrap(), "wf", "j", config);
            let e = DataprocOptions::from_context(&c).unwrap_err().to_string();
            assert!(e.contains("at most 3600"), "{poll}: {e}");
        }
    }

    #[test]
    fn options_need_project_and_region() {
        let e = DataprocOptions::from_context(&ctx("j"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataproc_project_id"), "{e}");
    }

    #[test]
    fn invalid_options_are_refused_before_anything_is_created() {
        let base = DataprocOptions {
            project_id: "p".into(),
            region: "europe-west1".into(),
            bucket: None,
            worker_count: 2,
            machine_type: "e2-standard-4".into(),
            image_version: "2.2-debian12".into(),
            runtime_version: "2.2".into(),
            service_account: None,
            subnetwork: None,
            properties: BTreeMap::new(),
            endpoint: DATAPROC_ENDPOINT.into(),
            storage_endpoint: None,
            auth: AuthMethod::None,
            poll_interval: Duration::from_secs(1),
            create_timeout: Duration::from_secs(1),
            delete_timeout: Duration::from_secs(1),
        };
        assert!(base.validate().is_ok());
        let one_worker = DataprocOptions {
            worker_count: 1,
            ..base.clone()
        };
        assert!(
            one_worker
                .validate()
                .unwrap_err()
                .to_string()
                .contains("2 to 1000")
        );
        let global = DataprocOptions {
            region: "global".into(),
            ..base.clone()
        };
        assert!(
            global
                .validate()
                .unwrap_err()
                .to_string()
                .contains("region")
        );
        let http = DataprocOptions {
            endpoint: "http://dataproc.example".into(),
            ..base
        };
        assert!(http.validate().unwrap_err().to_string().contains("https"));
    }
}
