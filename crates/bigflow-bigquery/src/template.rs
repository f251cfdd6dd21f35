//! SQL templating: `{table}` for internal tables (→ `project.dataset.table`),
//! `{alias}` for external tables, dataset properties, the workflow's config
//! properties, and `{dt}` (the runtime as given, e.g. `2020-08-01` or
//! `2020-08-01 10:00:00`). An unknown name is an error naming it.

use bigflow_core::interpolate::{InterpolationError, try_interpolate};

use crate::config::DatasetSettings;
use crate::error::{BqError, Result};

/// Values a template can use besides the dataset settings.
#[derive(Debug, Clone, Default)]
pub struct TemplateVars<'a> {
    /// `{dt}`.
    pub dt: Option<&'a str>,
    /// Falls back to these (the workflow's resolved config).
    pub extra: Option<&'a bigflow_core::ResolvedConfig>,
}

/// Fills in a SQL template.
pub fn render(sql: &str, settings: &DatasetSettings, vars: &TemplateVars<'_>) -> Result<String> {
    let lookup = |name: &str| -> Result<String, InterpolationError> {
        if name == "dt"
            && let Some(dt) = vars.dt
        {
            return Ok(dt.to_string());
        }
        if settings.internal_tables.iter().any(|t| t == name) {
            return Ok(format!(
                "{}.{}.{}",
                settings.project_id, settings.dataset_name, name
            ));
        }
        if let Some(full) = settings.external_tables.get(name) {
            return Ok(full.clone());
        }
        if let Some(v) = settings.properties.get(name) {
            return Ok(v.clone());
        }
        match name {
            "project_id" => return Ok(settings.project_id.clone()),
            "dataset_name" => return Ok(settings.dataset_name.clone()),
            _ => {}
        }
        if let Some(v) = vars.extra.and_then(|c| c.get(name)) {
            return Ok(match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        let mut known: Vec<String> = settings.internal_tables.clone();
        known.extend(settings.external_tables.keys().cloned());
        known.extend(settings.properties.keys().cloned());
        if vars.dt.is_some() {
            known.push("dt".into());
        }
        Err(InterpolationError::Unknown {
            name: name.to_string(),
            hint: format!(
                "; it is not an internal table, external table or property of dataset {}.{} (known: {})",
                settings.project_id,
                settings.dataset_name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        })
    };
    try_interpolate(sql, lookup).map_err(|e: InterpolationError| BqError::Template(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatasetConfig;

    #[test]
    fn fills_tables_aliases_properties_and_dt() {
        let c = DatasetConfig::new("dev", "p", "d")
            .internal_tables(["ports"])
            .external_table("ext", "o.x.y")
            .property("country", "POL");
        let s = c.settings(None).unwrap();
        let vars = TemplateVars {
            dt: Some("2020-08-01"),
            extra: None,
        };
        let out = render(
            "SELECT * FROM `{ports}` JOIN `{ext}` WHERE c = '{country}' AND d = '{dt}' AND x = '{{y}}'",
            s,
            &vars,
        )
        .unwrap();
        assert_eq!(
            out,
            "SELECT * FROM `p.d.ports` JOIN `o.x.y` WHERE c = 'POL' AND d = '2020-08-01' AND x = '{y}'"
        );
        let e = render("SELECT {nope}", s, &vars).unwrap_err().to_string();
        assert!(
            e.contains("unknown placeholder '{nope}'")
                && e.contains("known: ports, ext, country, dt"),
            "{e}"
        );
    }
}
