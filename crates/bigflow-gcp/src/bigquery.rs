//! A BigQuery REST API (v2) client: the calls the Dataset operations need.
//!
//! - Jobs (query, load) with **client-generated job ids**: a job inserted
//!   again after a lost answer gets 409 and the existing job is fetched
//!   instead, so a retried insert never runs a query twice. Jobs that fail
//!   with a transient reason (`backendError`, `rateLimitExceeded`,
//!   `internalError`) run again under a new id derived from the first.
//! - Every call goes through [`crate::retry::send`]: credentials asked for
//!   per request (a token refreshed during a long job; one refresh and retry
//!   after 401), backoff with jitter on 408/429/5xx and on
//!   `rateLimitExceeded`/`backendError` answers (honouring `Retry-After`),
//!   and on dropped connections; failures typed, messages complete.
//! - Polling with a deadline, result pagination (`pageToken`), job labels,
//!   location, dry runs.
//! - The endpoint can be overridden for an emulator (`BIGQUERY_EMULATOR_HOST`
//!   or an explicit endpoint); plain HTTP only on loopback.
//!
//! Written on `reqwest` like [`crate::storage`]: one HTTP stack, retry policy
//! and credential code for every Google API bigflow calls, and the same code
//! runs unchanged against the emulator.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::TokenSource;
use crate::retry::{ApiError, send};

/// Google's endpoint.
pub const BIGQUERY_ENDPOINT: &str = "https://bigquery.googleapis.com";

/// Job failure reasons worth running the job again for.
const TRANSIENT_REASONS: &[&str] = &[
    "backendError",
    "rateLimitExceeded",
    "internalError",
    "jobBackendError",
    "jobInternalError",
];

/// Runs of a job that failed for a transient reason.
const JOB_ATTEMPTS: u32 = 3;

/// A BigQuery failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BigQueryError {
    /// The client is misconfigured.
    #[error("{0}")]
    Config(String),
    /// A dataset, table or job does not exist.
    #[error("{what} not found: {message}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// BigQuery's message.
        message: String,
    },
    /// A dataset or table exists already.
    #[error("{what} already exists: {message}")]
    AlreadyExists {
        /// What was created.
        what: String,
        /// BigQuery's message.
        message: String,
    },
    /// The request or the job's SQL was refused, or the job failed.
    #[error("{context}: {message}{}", location.as_ref().map(|l| format!(" (at {l})")).unwrap_or_default())]
    Failed {
        /// What was being done.
        context: String,
        /// BigQuery's message.
        message: String,
        /// BigQuery's reason (`invalidQuery`, `notFound`, …).
        reason: Option<String>,
        /// Where in the SQL, when BigQuery says (`query`, or a position).
        location: Option<String>,
    },
    /// The caller cancelled the job (its bigflow job timed out or was
    /// interrupted); BigQuery was asked to cancel it.
    #[error("job {job_id} was cancelled{}", if *confirmed { " (BigQuery confirmed the cancellation)" } else { "; BigQuery did not confirm in time, so it may still be running (check with `bq show -j` or cancel it with `bq cancel`)" })]
    Cancelled {
        /// The job.
        job_id: String,
        /// Whether BigQuery reported the job done after the cancel request.
        confirmed: bool,
    },
    /// A job did not finish before its deadline.
    #[error("job {job_id} did not finish within {}s; it may still be running (cancel it with `bq cancel {job_id}`)", waited.as_secs())]
    Timeout {
        /// The job.
        job_id: String,
        /// How long the client waited.
        waited: Duration,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, BigQueryError>;

/// A job's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// Project the job runs in.
    pub project_id: String,
    /// Its id.
    pub job_id: String,
    /// Its location (`EU`, `US`, a region), when known.
    pub location: Option<String>,
}

/// Rows of a query, as the REST API returns them (`{"f": [{"v": …}]}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// `schema.fields` of the result.
    pub fields: Vec<Value>,
    /// The rows of every page.
    pub rows: Vec<Value>,
    /// `numDmlAffectedRows`, for DML.
    pub affected_rows: Option<u64>,
}

/// A client for one billing project.
#[derive(Debug, Clone)]
pub struct BigQuery {
    http: reqwest::Client,
    endpoint: String,
    project: String,
    location: Option<String>,
    auth: TokenSource,
    /// Time between job polls.
    pub poll_interval: Duration,
    /// Longest wait for one job.
    pub job_deadline: Duration,
    /// Rows per result page.
    pub page_size: u32,
    /// Raised to cancel what runs: the job being waited for is cancelled in
    /// BigQuery (`jobs.cancel`) and the call returns [`BigQueryError::Cancelled`].
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Sent as each job's `jobTimeoutMs`, so BigQuery itself stops a job that
    /// outlives its bigflow job even if this process is gone.
    pub job_timeout: Option<Duration>,
}

fn failed(context: impl Into<String>, f: &ApiError) -> BigQueryError {
    BigQueryError::Failed {
        context: context.into(),
        message: f.to_string(),
        reason: f.reason.clone(),
        location: None,
    }
}

impl BigQuery {
    /// A client billing `project`, authenticated by `auth` on every request;
    /// `endpoint` defaults to `$BIGQUERY_EMULATOR_HOST`, else Google's.
    pub fn new(
        endpoint: Option<&str>,
        project: &str,
        location: Option<&str>,
        auth: TokenSource,
    ) -> Result<BigQuery> {
        crate::install_crypto_provider();
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| {
                std::env::var("BIGQUERY_EMULATOR_HOST")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| BIGQUERY_ENDPOINT.to_string());
        let endpoint = if endpoint.contains("://") {
            endpoint
        } else {
            format!("http://{endpoint}")
        };
        let endpoint = endpoint.trim_end_matches('/').to_string();
        if !endpoint.starts_with("https://") && !crate::is_loopback_url(&endpoint) {
            return Err(BigQueryError::Config(format!(
                "BigQuery endpoint {endpoint} must use https (plain http only for a loopback emulator)"
            )));
        }
        if project.is_empty() {
            return Err(BigQueryError::Config(
                "no Google Cloud project for BigQuery; set the dataset's project_id".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| BigQueryError::Config(e.to_string()))?;
        Ok(BigQuery {
            http,
            endpoint,
            project: project.to_string(),
            location: location.map(str::to_string),
            auth,
            poll_interval: Duration::from_millis(500),
            job_deadline: Duration::from_secs(6 * 3600),
            page_size: 10_000,
            cancel: None,
            job_timeout: None,
        })
    }

    /// The billing project.
    pub fn project(&self) -> &str {
        &self.project
    }

    fn url(&self, path: &str) -> String {
        format!("{}/bigquery/v2/{path}", self.endpoint)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, ApiError> {
        let bytes = send(&self.auth, || {
            let request = self.http.request(method.clone(), url);
            match body {
                Some(b) => request.json(b),
                None => request,
            }
        })
        .await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::without_answer(format!("BigQuery answered no JSON: {e}")))
    }

    /// Runs a job (its `configuration` object) under `job_id` and waits for it.
    /// Returns the finished job resource.
    pub async fn run_job(
        &self,
        job_id: &str,
        configuration: Value,
        labels: &serde_json::Map<String, Value>,
    ) -> Result<Value> {
        let mut attempt = 1;
        loop {
            let id = if attempt == 1 {
                job_id.to_string()
            } else {
                format!("{job_id}_retry{}", attempt - 1)
            };
            match self.run_job_once(&id, &configuration, labels).await {
                Err(BigQueryError::Failed {
                    reason: Some(reason),
                    ..
                }) if attempt < JOB_ATTEMPTS && TRANSIENT_REASONS.contains(&reason.as_str()) => {
                    tracing::warn!("BigQuery job {id} failed ({reason}); running it again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn run_job_once(
        &self,
        job_id: &str,
        configuration: &Value,
        labels: &serde_json::Map<String, Value>,
    ) -> Result<Value> {
        let mut configuration = configuration.clone();
        if !labels.is_empty() {
            configuration["labels"] = Value::Object(labels.clone());
        }
        if let Some(timeout) = self.job_timeout {
            // An int64 in JSON: a string, as the API's discovery document says.
            configuration["jobTimeoutMs"] = json!(timeout.as_millis().max(1).to_string());
        }
        let mut reference = json!({ "projectId": self.project, "jobId": job_id });
        if let Some(location) = &self.location {
            reference["location"] = json!(location);
        }
        let body = json!({ "jobReference": reference, "configuration": configuration });
        let url = self.url(&format!("projects/{}/jobs", self.project));
        let job = match self.call(reqwest::Method::POST, &url, Some(&body)).await {
            Ok(job) => job,
            // Inserted before (an answer got lost): fetch it, never run it twice.
            Err(f) if f.is_conflict() => {
                tracing::info!("BigQuery job {job_id} exists already; following it");
                self.get_job(job_id).await?
            }
            Err(f) => return Err(failed(format!("inserting job {job_id}"), &f)),
        };
        self.wait_job(job_id, job).await
    }

    /// A job resource.
    pub async fn get_job(&self, job_id: &str) -> Result<Value> {
        let mut url = self.url(&format!("projects/{}/jobs/{job_id}", self.project));
        if let Some(location) = &self.location {
            url.push_str(&format!("?location={location}"));
        }
        self.call(reqwest::Method::GET, &url, None)
            .await
            .map_err(|f| failed(format!("reading job {job_id}"), &f))
    }

    async fn wait_job(&self, job_id: &str, mut job: Value) -> Result<Value> {
        let started = Instant::now();
        loop {
            if job["status"]["state"] == "DONE" {
                let error = &job["status"]["errorResult"];
                if error.is_null() {
                    return Ok(job);
                }
                return Err(BigQueryError::Failed {
                    context: format!("job {job_id}"),
                    message: error["message"]
                        .as_str()
                        .unwrap_or("(no message)")
                        .to_string(),
                    reason: error["reason"].as_str().map(str::to_string),
                    location: error["location"].as_str().map(str::to_string),
                });
            }
            if started.elapsed() > self.job_deadline {
                return Err(BigQueryError::Timeout {
                    job_id: job_id.to_string(),
                    waited: started.elapsed(),
                });
            }
            if self.sleep_unless_cancelled(self.poll_interval).await {
                return Err(self.cancel_job(job_id).await);
            }
            job = self.get_job(job_id).await?;
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Sleeps `duration`, waking early when cancelled; returns whether it was.
    async fn sleep_unless_cancelled(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        loop {
            if self.cancelled() {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            tokio::time::sleep(left.min(Duration::from_millis(50))).await;
        }
    }

    /// Asks BigQuery to cancel `job_id` (`jobs.cancel`) and waits up to 30 s
    /// for it to report the job done; the error to return says which happened.
    pub async fn cancel_job(&self, job_id: &str) -> BigQueryError {
        let mut url = self.url(&format!("projects/{}/jobs/{job_id}/cancel", self.project));
        if let Some(location) = &self.location {
            url.push_str(&format!("?location={location}"));
        }
        tracing::warn!("cancelling BigQuery job {job_id}");
        if let Err(e) = self.call(reqwest::Method::POST, &url, None).await {
            tracing::error!("could not cancel BigQuery job {job_id}: {e}");
            return BigQueryError::Cancelled {
                job_id: job_id.to_string(),
                confirmed: false,
            };
        }
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(job) = self.get_job(job_id).await
                && job["status"]["state"] == "DONE"
            {
                return BigQueryError::Cancelled {
                    job_id: job_id.to_string(),
                    confirmed: true,
                };
            }
            tokio::time::sleep(self.poll_interval.min(Duration::from_secs(2))).await;
        }
        BigQueryError::Cancelled {
            job_id: job_id.to_string(),
            confirmed: false,
        }
    }

    /// Runs a query job and returns every result row (all pages).
    pub async fn query(
        &self,
        job_id: &str,
        sql: &str,
        labels: &serde_json::Map<String, Value>,
    ) -> Result<Rows> {
        let job = self
            .run_job(
                job_id,
                json!({ "query": { "query": sql, "useLegacySql": false } }),
                labels,
            )
            .await?;
        let id = job["jobReference"]["jobId"].as_str().unwrap_or(job_id);
        let mut rows = self.results(id).await?;
        if rows.affected_rows.is_none() {
            rows.affected_rows = job["statistics"]["query"]["numDmlAffectedRows"]
                .as_str()
                .and_then(|n| n.parse().ok());
        }
        Ok(rows)
    }

    /// A dry run: the job resource BigQuery plans (schema, bytes processed).
    pub async fn dry_run(&self, sql: &str) -> Result<Value> {
        let mut body = json!({
            "configuration": {
                "query": { "query": sql, "useLegacySql": false },
                "dryRun": true
            }
        });
        if let Some(location) = &self.location {
            body["jobReference"] = json!({ "projectId": self.project, "location": location });
        }
        let url = self.url(&format!("projects/{}/jobs", self.project));
        self.call(reqwest::Method::POST, &url, Some(&body))
            .await
            .map_err(|f| failed("dry run", &f))
    }

    /// Every row of a finished job's result, page by page.
    pub async fn results(&self, job_id: &str) -> Result<Rows> {
        let mut out = Rows {
            fields: Vec::new(),
            rows: Vec::new(),
            affected_rows: None,
        };
        let mut token: Option<String> = None;
        let started = Instant::now();
        loop {
            let page = self
                .results_page(job_id, self.page_size, token.as_deref(), started)
                .await?;
            if out.fields.is_empty() {
                out.fields = page["schema"]["fields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            if let Some(n) = page["numDmlAffectedRows"]
                .as_str()
                .and_then(|n| n.parse().ok())
            {
                out.affected_rows = Some(n);
            }
            out.rows
                .extend(page["rows"].as_array().cloned().unwrap_or_default());
            match page["pageToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// How many rows a finished job's result has (`totalRows`), without reading them.
    pub async fn result_rows(&self, job_id: &str) -> Result<u64> {
        let page = self.results_page(job_id, 0, None, Instant::now()).await?;
        Ok(page["totalRows"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// One complete page of `jobs.getQueryResults`, waiting (until the
    /// deadline, counted from `started`) while the job is not complete.
    async fn results_page(
        &self,
        job_id: &str,
        max_results: u32,
        token: Option<&str>,
        started: Instant,
    ) -> Result<Value> {
        loop {
            let mut url = format!(
                // Timestamps as exact int64 microseconds, not float seconds.
                "{}?maxResults={max_results}&timeoutMs=10000&formatOptions.useInt64Timestamp=true",
                self.url(&format!("projects/{}/queries/{job_id}", self.project)),
            );
            if let Some(location) = &self.location {
                url.push_str(&format!("&location={location}"));
            }
            if let Some(t) = token {
                url.push_str(&format!("&pageToken={}", crate::storage::encode(t)));
            }
            let page = self
                .call(reqwest::Method::GET, &url, None)
                .await
                .map_err(|f| failed(format!("reading the results of job {job_id}"), &f))?;
            if page["jobComplete"] != false {
                return Ok(page);
            }
            if self.cancelled() {
                return Err(self.cancel_job(job_id).await);
            }
            if started.elapsed() > self.job_deadline {
                return Err(BigQueryError::Timeout {
                    job_id: job_id.to_string(),
                    waited: started.elapsed(),
                });
            }
        }
    }

    fn table_url(&self, project: &str, dataset: &str, table: &str) -> String {
        self.url(&format!(
            "projects/{project}/datasets/{dataset}/tables/{}",
            crate::storage::encode(table)
        ))
    }

    /// A table resource, or `None`.
    pub async fn get_table(
        &self,
        project: &str,
        dataset: &str,
        table: &str,
    ) -> Result<Option<Value>> {
        match self
            .call(
                reqwest::Method::GET,
                &self.table_url(project, dataset, table),
                None,
            )
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(f) if f.is_not_found() => Ok(None),
            Err(f) => Err(failed(
                format!("reading table {project}.{dataset}.{table}"),
                &f,
            )),
        }
    }

    /// Creates a table from a table resource.
    pub async fn insert_table(&self, project: &str, dataset: &str, table: Value) -> Result<Value> {
        let name = table["tableReference"]["tableId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let url = self.url(&format!("projects/{project}/datasets/{dataset}/tables"));
        self.call(reqwest::Method::POST, &url, Some(&table))
            .await
            .map_err(|f| {
                if f.is_conflict() {
                    BigQueryError::AlreadyExists {
                        what: format!("table {project}.{dataset}.{name}"),
                        message: f.message,
                    }
                } else if f.is_not_found() {
                    BigQueryError::NotFound {
                        what: format!("dataset {project}.{dataset}"),
                        message: f.message,
                    }
                } else {
                    failed(format!("creating table {project}.{dataset}.{name}"), &f)
                }
            })
    }

    /// Updates some of a table's fields (`{"labels": {…}}`); others are kept.
    pub async fn patch_table(
        &self,
        project: &str,
        dataset: &str,
        table: &str,
        fields: &Value,
    ) -> Result<Value> {
        self.call(
            reqwest::Method::PATCH,
            &self.table_url(project, dataset, table),
            Some(fields),
        )
        .await
        .map_err(|f| failed(format!("updating table {project}.{dataset}.{table}"), &f))
    }

    /// Deletes a table; a missing one is not an error.
    pub async fn delete_table(&self, project: &str, dataset: &str, table: &str) -> Result<()> {
        match self
            .call(
                reqwest::Method::DELETE,
                &self.table_url(project, dataset, table),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.is_not_found() => Ok(()),
            Err(f) => Err(failed(
                format!("deleting table {project}.{dataset}.{table}"),
                &f,
            )),
        }
    }

    /// Streams rows into a table (`tabledata.insertAll`); `insert_ids` make a
    /// retried call idempotent. Any row error fails the whole call.
    pub async fn insert_all(
        &self,
        project: &str,
        dataset: &str,
        table: &str,
        rows: &[Value],
        insert_ids: &[String],
    ) -> Result<()> {
        let rows: Vec<Value> = rows
            .iter()
            .zip(insert_ids)
            .map(|(row, id)| json!({ "insertId": id, "json": row }))
            .collect();
        let body = json!({ "rows": rows, "skipInvalidRows": false, "ignoreUnknownValues": false });
        let url = format!("{}/insertAll", self.table_url(project, dataset, table));
        let answer = self
            .call(reqwest::Method::POST, &url, Some(&body))
            .await
            .map_err(|f| {
                if f.is_not_found() {
                    BigQueryError::NotFound {
                        what: format!("table {project}.{dataset}.{table}"),
                        message: f.message,
                    }
                } else {
                    failed(
                        format!("inserting rows into {project}.{dataset}.{table}"),
                        &f,
                    )
                }
            })?;
        if let Some(errors) = answer["insertErrors"].as_array().filter(|e| !e.is_empty()) {
            let first = &errors[0];
            return Err(BigQueryError::Failed {
                context: format!("inserting rows into {project}.{dataset}.{table}"),
                message: format!(
                    "row {}: {}",
                    first["index"],
                    first["errors"][0]["message"]
                        .as_str()
                        .unwrap_or("invalid row")
                ),
                reason: first["errors"][0]["reason"].as_str().map(str::to_string),
                location: first["errors"][0]["location"].as_str().map(str::to_string),
            });
        }
        Ok(())
    }

    /// A dataset resource, or `None`.
    pub async fn get_dataset(&self, project: &str, dataset: &str) -> Result<Option<Value>> {
        let url = self.url(&format!("projects/{project}/datasets/{dataset}"));
        match self.call(reqwest::Method::GET, &url, None).await {
            Ok(d) => Ok(Some(d)),
            Err(f) if f.is_not_found() => Ok(None),
            Err(f) => Err(failed(format!("reading dataset {project}.{dataset}"), &f)),
        }
    }

    /// Creates a dataset with labels, or sets the labels of an existing one.
    pub async fn ensure_dataset(
        &self,
        project: &str,
        dataset: &str,
        labels: &serde_json::Map<String, Value>,
    ) -> Result<()> {
        let mut body = json!({
            "datasetReference": { "projectId": project, "datasetId": dataset },
            "labels": labels,
        });
        if let Some(location) = &self.location {
            body["location"] = json!(location);
        }
        let url = self.url(&format!("projects/{project}/datasets"));
        match self.call(reqwest::Method::POST, &url, Some(&body)).await {
            Ok(_) => Ok(()),
            Err(f) if f.is_conflict() => {
                if labels.is_empty() {
                    return Ok(());
                }
                let url = self.url(&format!("projects/{project}/datasets/{dataset}"));
                self.call(
                    reqwest::Method::PATCH,
                    &url,
                    Some(&json!({ "labels": labels })),
                )
                .await
                .map(|_| ())
                .map_err(|f| failed(format!("labelling dataset {project}.{dataset}"), &f))
            }
            Err(f) => Err(failed(format!("creating dataset {project}.{dataset}"), &f)),
        }
    }

    /// Deletes a dataset and its tables; a missing one is not an error.
    pub async fn delete_dataset(&self, project: &str, dataset: &str) -> Result<()> {
        let url = self.url(&format!(
            "projects/{project}/datasets/{dataset}?deleteContents=true"
        ));
        match self.call(reqwest::Method::DELETE, &url, None).await {
            Ok(_) => Ok(()),
            Err(f) if f.is_not_found() => Ok(()),
            Err(f) => Err(failed(format!("deleting dataset {project}.{dataset}"), &f)),
        }
    }

    /// Runs a load job with the file uploaded in the same request (multipart).
    pub async fn load(
        &self,
        job_id: &str,
        load: Value,
        data: Vec<u8>,
        labels: &serde_json::Map<String, Value>,
    ) -> Result<Value> {
        let mut configuration = json!({ "load": load });
        if !labels.is_empty() {
            configuration["labels"] = Value::Object(labels.clone());
        }
        let mut reference = json!({ "projectId": self.project, "jobId": job_id });
        if let Some(location) = &self.location {
            reference["location"] = json!(location);
        }
        let metadata = json!({ "jobReference": reference, "configuration": configuration });
        let boundary = format!("bigflow_{}", job_id.replace(['-', '.'], "_"));
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!(
            "{}/upload/bigquery/v2/projects/{}/jobs?uploadType=multipart",
            self.endpoint, self.project
        );
        let answer = send(&self.auth, || {
            self.http
                .post(&url)
                .header(
                    "Content-Type",
                    format!("multipart/related; boundary={boundary}"),
                )
                .body(body.clone())
        })
        .await;
        let job = match answer {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BigQueryError::Failed {
                context: format!("load job {job_id}"),
                message: format!("BigQuery answered no JSON: {e}"),
                reason: None,
                location: None,
            })?,
            Err(f) if f.is_conflict() => self.get_job(job_id).await?,
            Err(f) => return Err(failed(format!("inserting load job {job_id}"), &f)),
        };
        self.wait_job(job_id, job).await
    }
}

/// A job id for a statement: `bigflow_<what>_<time>_<random>`. Ids are
/// made on the client so a retried insert names the same job.
pub fn new_job_id(what: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(nanos);
    let what: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    format!("bigflow_{what}_{nanos}_{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_unless_loopback() {
        let none = TokenSource::none;
        assert!(BigQuery::new(Some("http://127.0.0.1:9050"), "p", None, none()).is_ok());
        assert!(BigQuery::new(Some("127.0.0.1:9050"), "p", None, none()).is_ok());
        let e = BigQuery::new(Some("http://bq.example.com"), "p", None, none()).unwrap_err();
        assert!(e.to_string().contains("must use https"), "{e}");
        let e = BigQuery::new(Some("https://x"), "", None, none()).unwrap_err();
        assert!(e.to_string().contains("project"), "{e}");
    }

    #[test]
    fn job_ids_are_unique_and_valid() {
        let a = new_job_id("write truncate:ports");
        let b = new_job_id("write truncate:ports");
        assert_ne!(a, b);
        assert!(a.len() <= 1024);
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{a}"
        );
    }

    #[test]
    fn failures_name_location() {
        let e = BigQueryError::Failed {
            context: "job j".into(),
            message: "Unrecognized name: x".into(),
            reason: Some("invalidQuery".into()),
            location: Some("query".into()),
        };
        assert_eq!(e.to_string(), "job j: Unrecognized name: x (at query)");
    }
}
