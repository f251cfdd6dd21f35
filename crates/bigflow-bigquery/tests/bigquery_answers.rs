//! BigQuery's answers to statements the local warehouse once answered
//! differently (issue 17; found by the conformance run, `tests/conformance.rs`).

use bigflow_bigquery::format::Format;
use bigflow_bigquery::{Backend, LocalWarehouse, QueryContext};

fn run(sql: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let wh = LocalWarehouse::open(dir.path()).unwrap();
    wh.execute(sql, &QueryContext::default())
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let types: Vec<String> = r
                .schema
                .fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect();
            let rows =
                bigflow_bigquery::format::render(&r, Format::Csv).map_err(|e| e.to_string())?;
            Ok(format!(
                "{} | {}",
                types.join(","),
                rows.lines().skip(1).collect::<Vec<_>>().join(";")
            ))
        })
}

/// BigQuery sorts NULLs first in ascending order and last in descending,
/// in `ORDER BY` and in window orders (conformance `orderby_3`, `orderby_4`,
/// `analytic_count_star_rows_1`).
#[test]
fn nulls_sort_first_ascending_and_last_descending() {
    assert_eq!(
        run("SELECT x FROM UNNEST([1, NULL, 2]) AS x ORDER BY x").unwrap(),
        "Int64 | \"\";1;2"
    );
    assert_eq!(
        run("SELECT x FROM UNNEST([1, NULL, 2]) AS x ORDER BY x DESC").unwrap(),
        "Int64 | 2;1;\"\""
    );
    assert_eq!(
        run("SELECT x, ROW_NUMBER() OVER (ORDER BY x) AS n FROM UNNEST([1, NULL]) AS x ORDER BY n")
            .unwrap(),
        "Int64,UInt64 | ,1;1,2"
    );
}
