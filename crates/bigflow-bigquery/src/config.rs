//! `DatasetConfig`: which project and dataset a workflow's SQL works in, per
//! environment, and the names its SQL templates may use.
//!
//! As in BigFlow, the first environment is the default, and
//! [`DatasetConfig::add_configuration`] adds another. A new environment starts
//! as a copy of the first one (internal tables, external tables, properties,
//! labels), so only what differs needs to be set; builder methods change the
//! environment added last.
//!
//! Engines are chosen per environment, safely: the embedded local warehouse
//! is the default only of the first (development) environment. Every
//! environment added after it runs on BigQuery — the first one's BigQuery
//! settings when it has them, else Google's endpoint with application default
//! credentials — unless `.backend(BackendKind::Local)` opts it out. Inside
//! the project's image a local warehouse refuses to run at all unless
//! `BIGFLOW_ALLOW_LOCAL_WAREHOUSE=1` (see `dataset`), so a deployed job can
//! never "succeed" by writing Parquet into a pod's disk.

use std::path::PathBuf;

use indexmap::IndexMap;

use crate::error::{BqError, Result};

/// Which engine runs the SQL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The embedded warehouse: DataFusion over Parquet files in `dir`
    /// (default `$BIGFLOW_WAREHOUSE` or `.bigflow/warehouse` under the working directory).
    #[default]
    Local,
    /// The local warehouse in the given directory.
    LocalAt(PathBuf),
    /// BigQuery's REST API: Google's endpoint, or `endpoint` (an emulator;
    /// default `$BIGQUERY_EMULATOR_HOST`), billed to the dataset's project.
    BigQuery {
        /// API endpoint override.
        endpoint: Option<String>,
        /// Job location (`EU`, `US`, a region).
        location: Option<String>,
        /// Credentials.
        auth: bigflow_gcp::AuthMethod,
    },
}

impl BackendKind {
    /// BigQuery at Google's endpoint (or `$BIGQUERY_EMULATOR_HOST`) with
    /// application default credentials: what deployed environments use.
    pub fn bigquery() -> BackendKind {
        BackendKind::BigQuery {
            endpoint: None,
            location: None,
            auth: bigflow_gcp::AuthMethod::LocalAccount,
        }
    }

    /// Whether this is the embedded warehouse.
    pub fn is_local(&self) -> bool {
        matches!(self, BackendKind::Local | BackendKind::LocalAt(_))
    }

    /// A short description for `config` output and the manifest.
    pub fn describe(&self) -> String {
        match self {
            BackendKind::Local => "local warehouse".into(),
            BackendKind::LocalAt(dir) => format!("local warehouse at {}", dir.display()),
            BackendKind::BigQuery {
                endpoint, location, ..
            } => {
                let mut text = "bigquery".to_string();
                if let Some(e) = endpoint {
                    text.push_str(&format!(" at {e}"));
                }
                if let Some(l) = location {
                    text.push_str(&format!(" in {l}"));
                }
                text
            }
        }
    }
}

/// One environment's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatasetSettings {
    /// Google Cloud project id.
    pub project_id: String,
    /// Dataset name.
    pub dataset_name: String,
    /// Tables of this dataset the SQL refers to as `{name}`.
    pub internal_tables: Vec<String>,
    /// Aliases of tables elsewhere: `{alias}` → `project.dataset.table`.
    pub external_tables: IndexMap<String, String>,
    /// Other template values.
    pub properties: IndexMap<String, String>,
    /// Labels put on tables this dataset creates.
    pub table_labels: IndexMap<String, String>,
    /// Labels of the dataset.
    pub dataset_labels: IndexMap<String, String>,
    /// Labels of the jobs (queries) it runs.
    pub job_labels: IndexMap<String, String>,
    /// The engine.
    pub backend: BackendKind,
}

/// Per-environment dataset settings (BigFlow's `DatasetConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetConfig {
    envs: IndexMap<String, DatasetSettings>,
    last: String,
}

impl DatasetConfig {
    /// The default environment `env` working in `project_id.dataset_name`.
    pub fn new(env: &str, project_id: &str, dataset_name: &str) -> DatasetConfig {
        let mut envs = IndexMap::new();
        envs.insert(
            env.to_string(),
            DatasetSettings {
                project_id: project_id.to_string(),
                dataset_name: dataset_name.to_string(),
                ..DatasetSettings::default()
            },
        );
        DatasetConfig {
            envs,
            last: env.to_string(),
        }
    }

    /// Adds environment `env`: a copy of the default one with another project
    /// and dataset, running on BigQuery (the default environment's BigQuery
    /// settings if it has them, else [`BackendKind::bigquery`]); only an
    /// explicit `.backend(BackendKind::Local)` puts it on the local warehouse.
    pub fn add_configuration(mut self, env: &str, project_id: &str, dataset_name: &str) -> Self {
        let mut settings = self.envs[0].clone();
        settings.project_id = project_id.to_string();
        settings.dataset_name = dataset_name.to_string();
        if settings.backend.is_local() {
            settings.backend = BackendKind::bigquery();
        }
        self.envs.insert(env.to_string(), settings);
        self.last = env.to_string();
        self
    }

    fn last_mut(&mut self) -> &mut DatasetSettings {
        self.envs.get_mut(&self.last).expect("last env exists")
    }

    /// Sets the internal tables (`{name}` → `project.dataset.name`).
    pub fn internal_tables<S: AsRef<str>>(mut self, tables: impl IntoIterator<Item = S>) -> Self {
        self.last_mut().internal_tables =
            tables.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// Adds an external table alias (`{alias}` → `full_name`).
    pub fn external_table(mut self, alias: &str, full_name: &str) -> Self {
        self.last_mut()
            .external_tables
            .insert(alias.to_string(), full_name.to_string());
        self
    }

    /// Adds a template property.
    pub fn property(mut self, name: &str, value: impl ToString) -> Self {
        self.last_mut()
            .properties
            .insert(name.to_string(), value.to_string());
        self
    }

    /// Adds a label of created tables.
    pub fn table_label(mut self, key: &str, value: &str) -> Self {
        self.last_mut()
            .table_labels
            .insert(key.into(), value.into());
        self
    }

    /// Adds a label of the dataset.
    pub fn dataset_label(mut self, key: &str, value: &str) -> Self {
        self.last_mut()
            .dataset_labels
            .insert(key.into(), value.into());
        self
    }

    /// Adds a label of every query job.
    pub fn job_label(mut self, key: &str, value: &str) -> Self {
        self.last_mut().job_labels.insert(key.into(), value.into());
        self
    }

    /// Chooses the engine of the environment added last.
    pub fn backend(mut self, backend: BackendKind) -> Self {
        self.last_mut().backend = backend;
        self
    }

    /// The default environment's name.
    pub fn default_env(&self) -> &str {
        self.envs
            .get_index(0)
            .map(|(k, _)| k.as_str())
            .unwrap_or("")
    }

    /// Environment names in the order they were added.
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.envs.keys().map(String::as_str)
    }

    /// The settings of `env`; `None` means the default environment.
    pub fn settings(&self, env: Option<&str>) -> Result<&DatasetSettings> {
        let name = env.unwrap_or_else(|| self.default_env());
        self.envs.get(name).ok_or_else(|| {
            BqError::Config(format!(
                "no dataset configuration for environment '{name}'; known: {} (add it with add_configuration)",
                self.envs.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_inherit_from_the_default() {
        let c = DatasetConfig::new("dev", "p-dev", "ds")
            .internal_tables(["a", "b"])
            .property("x", 1)
            .add_configuration("prod", "p-prod", "ds")
            .external_table("ext", "o.d.t");
        assert_eq!(c.default_env(), "dev");
        let prod = c.settings(Some("prod")).unwrap();
        assert_eq!(prod.project_id, "p-prod");
        assert_eq!(prod.internal_tables, ["a", "b"]);
        assert_eq!(prod.properties["x"], "1");
        // Only the development environment defaults to the local warehouse.
        assert_eq!(c.settings(None).unwrap().backend, BackendKind::Local);
        assert_eq!(prod.backend, BackendKind::bigquery());
        assert!(c.settings(None).unwrap().external_tables.is_empty());
        let e = c.settings(Some("test")).unwrap_err().to_string();
        assert!(e.contains("'test'") && e.contains("dev, prod"), "{e}");
    }

    #[test]
    fn an_environment_opts_out_of_bigquery_only_explicitly() {
        let emulator = BackendKind::BigQuery {
            endpoint: Some("http://127.0.0.1:9050".into()),
            location: Some("EU".into()),
            auth: bigflow_gcp::AuthMethod::None,
        };
        let c = DatasetConfig::new("dev", "p", "ds")
            .add_configuration("ci", "p", "ds")
            .backend(BackendKind::Local)
            .add_configuration("prod", "p", "ds");
        assert_eq!(c.settings(Some("ci")).unwrap().backend, BackendKind::Local);
        assert_eq!(
            c.settings(Some("prod")).unwrap().backend.describe(),
            "bigquery"
        );
        // A BigQuery default environment's settings are inherited.
        let c = DatasetConfig::new("dev", "p", "ds")
            .backend(emulator.clone())
            .add_configuration("prod", "p2", "ds");
        assert_eq!(c.settings(Some("prod")).unwrap().backend, emulator);
        assert_eq!(
            emulator.describe(),
            "bigquery at http://127.0.0.1:9050 in EU"
        );
    }
}
