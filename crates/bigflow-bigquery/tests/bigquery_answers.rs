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
        "Int64,Int64 | ,1;1,2"
    );
}

/// The error of a statement that must fail.
fn error(sql: &str) -> String {
    match run(sql) {
        Ok(rows) => panic!("{sql}: succeeded with {rows}, expected an error"),
        Err(e) => e,
    }
}

/// `/` is FLOAT64 division (`DIV` divides INT64s); by zero, and past
/// FLOAT64's range, it is an error (`SAFE_DIVIDE`: NULL).
#[test]
fn division_is_float64_and_fails_by_zero() {
    assert_eq!(
        run("SELECT 10 / 4, DIV(10, 4), DIV(-7, 2), 10 / 4.0, 9 / 3").unwrap(),
        "Float64,Int64,Int64,Float64,Float64 | 2.5,2,-3,2.5,3.0"
    );
    let x = "SELECT x / y FROM UNNEST([STRUCT(7 AS x, 2 AS y), (1, 4)]) ORDER BY 1";
    assert_eq!(run(x).unwrap(), "Float64 | 0.25;3.5");
    for sql in ["SELECT 1 / 0", "SELECT 1.5 / 0", "SELECT DIV(1, 0)"] {
        let e = error(sql);
        assert!(e.contains("division by zero"), "{sql}: {e}");
    }
    let e = error("SELECT 1e300 / 1e-300");
    assert!(e.contains("double overflow"), "{e}");
    let e = error("SELECT DIV(-9223372036854775807 - 1, -1)");
    assert!(e.contains("int64 overflow"), "{e}");
    assert_eq!(
        run("SELECT SAFE_DIVIDE(1, 0) IS NULL, SAFE_DIVIDE(1e300, 1e-300) IS NULL, SAFE_DIVIDE(3, 2)")
            .unwrap(),
        "Boolean,Boolean,Float64 | true,true,1.5"
    );
}

/// GoogleSQL's escapes in string and bytes literals; raw strings as written.
#[test]
fn string_escapes_are_processed() {
    assert_eq!(
        run(r#"SELECT '\x41', '\u0041', '\U00000041', '\101', "\X41\t|", '''\x41''', r'\x41', 'it\'s'"#)
            .unwrap(),
        "Utf8,Utf8,Utf8,Utf8,Utf8,Utf8,Utf8,Utf8 | A,A,A,A,A\t|,A,\\x41,it's"
    );
    assert_eq!(
        run(r#"SELECT b'\x41\x42' = b'AB', LENGTH(b'\xE2\x82\xAC'), LENGTH('\u20AC')"#).unwrap(),
        "Boolean,Int64,Int64 | true,3,1"
    );
    let e = error(r"SELECT '\q'");
    assert!(
        e.contains(r"illegal escape sequence: \q") && e.contains("column 8"),
        "{e}"
    );
}

/// CURRENT_TIMESTAMP and its kin are fixed for the whole statement.
#[test]
fn current_time_is_fixed_per_statement() {
    assert_eq!(
        run("SELECT CURRENT_TIMESTAMP() = CURRENT_TIMESTAMP(), CURRENT_DATE() = CURRENT_DATE(), \
             CURRENT_DATETIME() = CURRENT_DATETIME(), CAST(CURRENT_TIMESTAMP() AS DATE) = CURRENT_DATE()")
            .unwrap(),
        "Boolean,Boolean,Boolean,Boolean | true,true,true,true"
    );
    let many = (0..2000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        run(&format!(
            "SELECT COUNT(DISTINCT t) FROM (SELECT CURRENT_TIMESTAMP() AS t, x FROM UNNEST([{many}]) AS x)"
        ))
        .unwrap(),
        "Int64 | 1"
    );
    let types = run("SELECT CURRENT_TIMESTAMP(), CURRENT_DATETIME(), CURRENT_DATE()").unwrap();
    assert!(
        types.starts_with("Timestamp(µs, \"UTC\"),Timestamp(µs),Date32 |"),
        "{types}"
    );
}

/// A DATE formats as its midnight; BigQuery's own format elements work.
#[test]
fn format_date_shows_midnight() {
    assert_eq!(
        run(
            "SELECT FORMAT_DATE('%c', DATE '2008-12-25'), FORMAT_DATE('%H:%M', DATE '2008-12-25'), \
             FORMAT_DATE('%Q %E4Y', DATE '2008-12-25')"
        )
        .unwrap(),
        "Utf8,Utf8,Utf8 | Thu Dec 25 00:00:00 2008,00:00,4 2008"
    );
    let e = error("SELECT FORMAT_DATE('%Y%', DATE '2008-12-25')");
    assert!(e.contains("invalid format element"), "{e}");
}

/// WEEK begins on Sunday (days before the year's first Sunday are week 0),
/// ISOWEEK/ISOYEAR are ISO 8601's, sub-second parts are only the fraction.
#[test]
fn extract_follows_bigquery() {
    assert_eq!(
        run("SELECT EXTRACT(WEEK FROM DATE '2015-01-03'), EXTRACT(WEEK FROM DATE '2015-01-04'), \
             EXTRACT(WEEK(MONDAY) FROM DATE '2015-01-04'), EXTRACT(ISOWEEK FROM DATE '2016-01-01'), \
             EXTRACT(ISOYEAR FROM DATE '2016-01-01'), EXTRACT(DAYOFWEEK FROM DATE '2015-01-04'), \
             EXTRACT(YEAR FROM DATE '2015-01-04')")
        .unwrap(),
        "Int64,Int64,Int64,Int64,Int64,Int64,Int64 | 0,1,0,53,2015,1,2015"
    );
    assert_eq!(
        run(
            "SELECT EXTRACT(MILLISECOND FROM TIMESTAMP '2020-01-01 10:00:07.250'), \
             EXTRACT(MICROSECOND FROM TIMESTAMP '2020-01-01 10:00:07.250'), \
             EXTRACT(SECOND FROM DATETIME '2020-01-01 10:00:07.250'), \
             EXTRACT(HOUR FROM TIMESTAMP '2020-01-01 10:00:07' AT TIME ZONE '+02:00'), \
             EXTRACT(DATE FROM TIMESTAMP '2020-01-01 10:00:07')"
        )
        .unwrap(),
        "Int64,Int64,Int64,Int64,Date32 | 250,250000,7,12,2020-01-01"
    );
    let e = error("SELECT EXTRACT(HOUR FROM DATE '2020-01-01')");
    assert!(e.contains("HOUR is not a part of a DATE"), "{e}");
    // TRUNC to WEEK goes back to Sunday too.
    assert_eq!(
        run(
            "SELECT DATE_TRUNC(DATE '2015-01-07', WEEK), DATE_TRUNC(DATE '2015-01-04', WEEK), \
             DATE_TRUNC(DATE '2015-01-07', ISOWEEK)"
        )
        .unwrap(),
        "Date32,Date32,Date32 | 2015-01-04,2015-01-04,2015-01-05"
    );
}

/// What BigQuery refuses: a STRING other than true/false cast to BOOL, a
/// condition that is not BOOL, a fractional interval, literal NULL operands.
#[test]
fn bigquery_refuses_what_it_refuses() {
    let e = error("SELECT CAST('1' AS BOOL)");
    assert!(e.contains("bad BOOL value: '1'"), "{e}");
    assert_eq!(
        run("SELECT CAST('TRUE' AS BOOL), CAST('false' AS BOOL), SAFE_CAST('1' AS BOOL), CAST(0 AS BOOL)")
            .unwrap(),
        "Boolean,Boolean,Boolean,Boolean | true,false,,false"
    );
    for (sql, what) in [
        ("SELECT IF(1, 2, 3)", "must be BOOL, got INT64"),
        (
            "SELECT CASE WHEN 'x' THEN 1 END",
            "must be BOOL, got STRING",
        ),
        (
            "SELECT DATE_ADD(DATE '2020-01-01', INTERVAL 1.5 DAY)",
            "must be an INT64, not 1.5",
        ),
        ("SELECT 1 + NULL", "operands of + cannot be literal NULL"),
        ("SELECT NOT NULL", "operands of NOT cannot be literal NULL"),
    ] {
        let e = error(sql);
        assert!(
            e.starts_with("invalid SQL") && e.contains(what),
            "{sql}: {e}"
        );
    }
    assert_eq!(
        run("SELECT IF(TRUE, 2, 3), IF(NULL, 2, 3), IF(x > 1, 'a', 'b') FROM UNNEST([2]) AS x")
            .unwrap(),
        "Int64,Int64,Utf8 | 2,3,a"
    );
    assert_eq!(
        run("SELECT 1 + CAST(NULL AS INT64) IS NULL").unwrap(),
        "Boolean | true"
    );
}

/// DATETIME functions give DATETIMEs.
#[test]
fn datetime_functions_return_datetime() {
    assert_eq!(
        run(
            "SELECT DATETIME_ADD(DATETIME '2020-01-31 10:00:00', INTERVAL 1 MONTH), \
             DATETIME_SUB(DATETIME '2020-01-01 00:00:00', INTERVAL 1 SECOND), \
             PARSE_DATETIME('%Y-%m-%d %H:%M', '2020-01-02 03:04'), \
             FORMAT_DATETIME('%Y/%m/%d %H', DATETIME '2020-01-02 03:04:05')"
        )
        .unwrap(),
        "Timestamp(µs),Timestamp(µs),Timestamp(µs),Utf8 | \
         2020-02-29T10:00:00,2019-12-31T23:59:59,2020-01-02T03:04:00,2020/01/02 03"
    );
}

/// INT64 overflow, dates past 9999-12-31 and huge intervals are errors.
#[test]
fn overflow_and_range_are_errors() {
    for (sql, what) in [
        ("SELECT 9223372036854775807 + 1", "int64 overflow"),
        ("SELECT -9223372036854775807 - 2", "int64 overflow"),
        ("SELECT 4611686018427387904 * 2", "int64 overflow"),
        (
            "SELECT SUM(x) FROM UNNEST([9223372036854775807, 1]) AS x",
            "int64 overflow",
        ),
        (
            "SELECT DATE_ADD(DATE '9999-12-31', INTERVAL 1 DAY)",
            "out of range",
        ),
        ("SELECT DATE '9999-12-31' + INTERVAL 1 DAY", "out of range"),
        (
            "SELECT DATE_ADD(DATE '2020-01-01', INTERVAL 4294967296 MONTH)",
            "out of range",
        ),
        (
            "SELECT TIMESTAMP_ADD(TIMESTAMP '2020-01-01', INTERVAL 9223372036854775807 SECOND)",
            "out of range",
        ),
    ] {
        let e = error(sql);
        assert!(e.contains(what), "{sql}: {e}");
    }
}

/// CONCAT is NULL when an argument is; ranking functions give INT64;
/// anonymous columns are named as in BigQuery.
#[test]
fn concat_ranks_and_column_names() {
    assert_eq!(
        run("SELECT CONCAT('a', NULL), CONCAT('a', 'b', 'c'), CONCAT(x) FROM UNNEST([CAST(NULL AS STRING)]) AS x")
            .unwrap(),
        "Utf8,Utf8,Utf8 | ,abc,"
    );
    assert_eq!(
        run("SELECT RANK() OVER (ORDER BY x), DENSE_RANK() OVER (ORDER BY x), NTILE(2) OVER (ORDER BY x) \
             FROM UNNEST([1]) AS x")
        .unwrap(),
        "Int64,Int64,Int64 | 1,1,1"
    );
    let dir = tempfile::tempdir().unwrap();
    let wh = LocalWarehouse::open(dir.path()).unwrap();
    let r = wh
        .execute(
            "SELECT x, x + 1, x + 1, 'a' AS a, 2 FROM UNNEST([1]) AS x",
            &QueryContext::default(),
        )
        .unwrap();
    let names: Vec<&str> = r
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["x", "f0_", "f1_", "a", "f2_"]);
    // A STRUCT field is named by the field; a table's column by the column.
    let r = wh
        .execute(
            "SELECT s.a, q.s.b, q.s FROM (SELECT STRUCT(1 AS a, 2 AS b) AS s) AS q",
            &QueryContext::default(),
        )
        .unwrap();
    let names: Vec<&str> = r
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["a", "b", "s"]);
}

/// Unnesting STRUCTs makes their fields columns.
#[test]
fn unnest_of_structs_has_field_columns() {
    assert_eq!(
        run("SELECT i, p FROM UNNEST([STRUCT(1 AS i, 'A' AS p), (2, 'B')]) ORDER BY i").unwrap(),
        "Int64,Utf8 | 1,A;2,B"
    );
    assert_eq!(
        run("SELECT t.i FROM UNNEST([STRUCT(1 AS i, 'A' AS p)]) AS t").unwrap(),
        "Int64 | 1"
    );
}

/// Errors name what the user wrote: no internal table or column names, no
/// syntax-tree dumps, advice that does not destroy data.
#[test]
fn errors_name_what_the_user_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let wh = LocalWarehouse::open(dir.path()).unwrap();
    let ctx = QueryContext {
        default_project: "p".into(),
        default_dataset: "d".into(),
        ..QueryContext::default()
    };
    wh.execute(
        "CREATE TABLE t (id INT64, v STRING); CREATE TABLE s (id INT64, v STRING)",
        &ctx,
    )
    .unwrap();
    let err = |sql: &str| wh.execute(sql, &ctx).unwrap_err().to_string();
    for sql in [
        "SELECT nope FROM t",
        "SELECT t.nope FROM t JOIN s ON t.id = s.id",
        "MERGE t USING s ON t.id = s.nope WHEN MATCHED THEN UPDATE SET v = s.v",
        "UPDATE t SET v = 'x' WHERE nope = 1",
    ] {
        let e = err(sql);
        assert!(
            e.contains("Unrecognized name") && e.contains("nope"),
            "{sql}: {e}"
        );
        assert!(
            !e.contains("__bq") && !e.contains("__bigflow") && !e.contains("Valid fields"),
            "{sql}: {e}"
        );
    }
    let e = err("SELECT ROW_NUMBER() FROM t");
    assert!(
        e.contains("ROW_NUMBER is an analytic function: it needs an OVER clause"),
        "{e}"
    );
    let e = err("CREATE OR REPLACE VIEW t AS SELECT 1 AS a");
    assert!(
        e.contains("already exists as a table") && !e.contains("CREATE OR REPLACE TABLE"),
        "{e}"
    );
    // A position is never past the end of the statement.
    let e = err("SELECT 1 +");
    assert!(e.contains("line 1, column 11"), "{e}");
}

/// Array subscripts: OFFSET from 0, ORDINAL from 1, an error out of bounds
/// (the SAFE_ forms: NULL); a bare index is an OFFSET.
#[test]
fn array_subscripts_follow_bigquery() {
    assert_eq!(
        run(
            "SELECT a[OFFSET(1)], a[ORDINAL(1)], a[SAFE_OFFSET(5)], a[SAFE_ORDINAL(0)], a[2] \
             FROM (SELECT [10, 20, 30] AS a)"
        )
        .unwrap(),
        "Int64,Int64,Int64,Int64,Int64 | 20,10,,,30"
    );
    let e = error("SELECT [10, 20, 30][OFFSET(3)]");
    assert!(e.contains("array index 3 is out of bounds"), "{e}");
    assert_eq!(
        run("SELECT [STRUCT(1 AS x)][OFFSET(0)].x").unwrap(),
        "Int64 | 1"
    );
}

/// `x IN UNNEST(a)` is SQL's IN: NULL when not found among NULLs, FALSE
/// for an empty or NULL array.
#[test]
fn in_unnest_has_in_semantics() {
    assert_eq!(
        run(
            "SELECT 1 IN UNNEST([1, 2]), 3 IN UNNEST([1, NULL]), NULL IN UNNEST([1]), \
             NULL IN UNNEST(ARRAY<INT64>[]), 1 IN UNNEST(CAST(NULL AS ARRAY<INT64>)), \
             1.5 IN UNNEST([1, 2]), 2 NOT IN UNNEST([1, 2])"
        )
        .unwrap(),
        "Boolean,Boolean,Boolean,Boolean,Boolean,Boolean,Boolean | true,,,false,false,false,false"
    );
}

/// SUBSTR counts a negative position from the end; LEFT/RIGHT refuse a
/// negative length; SPLIT of '' is [''] and by '' splits characters.
#[test]
fn string_functions_follow_bigquery() {
    assert_eq!(
        run(
            "SELECT SUBSTR('alphabet', -3), SUBSTR('alphabet', 0, 2), SUBSTR('alphabet', 3, 2), \
             LEFT('abc', 2), RIGHT('abc', 2), RIGHT('abc', 5)"
        )
        .unwrap(),
        "Utf8,Utf8,Utf8,Utf8,Utf8,Utf8 | bet,al,ph,ab,bc,abc"
    );
    for sql in [
        "SELECT LEFT('abc', -2)",
        "SELECT RIGHT('abc', -2)",
        "SELECT SUBSTR('abc', 1, -1)",
    ] {
        let e = error(sql);
        assert!(e.contains("cannot be negative"), "{sql}: {e}");
    }
    assert_eq!(
        run("SELECT ARRAY_LENGTH(SPLIT('')), ARRAY_LENGTH(SPLIT('a,b,', ',')), ARRAY_TO_STRING(SPLIT('abc', ''), '-'), \
             SPLIT(CAST(NULL AS STRING)) IS NULL, ARRAY_LENGTH(ARRAY<INT64>[])")
        .unwrap(),
        "Int64,Int64,Utf8,Boolean,Int64 | 1,3,a-b-c,true,0"
    );
}

/// NUMERIC literals keep their digits; NUMERIC arithmetic stays NUMERIC;
/// FLOAT64 → INT64 rounds half away from zero; FLOAT64 and DATETIME are
/// written as BigQuery writes them.
#[test]
fn numeric_and_casts_follow_bigquery() {
    assert_eq!(
        run(
            "SELECT CAST(9999999999999999999999999999.999999999 AS NUMERIC), \
             CAST(-1.5 AS NUMERIC) * CAST(2 AS NUMERIC)"
        )
        .unwrap(),
        "Decimal128(38, 9),Decimal128(38, 9) | 9999999999999999999999999999.999999999,-3.000000000"
    );
    assert_eq!(
        run("SELECT CAST(2.5 AS INT64), CAST(-2.5 AS INT64), CAST(1.4 AS INT64), SAFE_CAST(1e30 AS INT64)")
            .unwrap(),
        "Int64,Int64,Int64,Int64 | 3,-3,1,"
    );
    assert_eq!(
        run("SELECT CAST(1.0 AS STRING), CAST(1e55 AS STRING), CAST(DATETIME '2006-01-02 03:04:05.120' AS STRING), \
             CAST(TIMESTAMP '2006-01-02 03:04:05 UTC' AS STRING), CONCAT('x', 2.5, DATE '2020-10-10')")
        .unwrap(),
        "Utf8,Utf8,Utf8,Utf8,Utf8 | 1,1e+55,2006-01-02 03:04:05.120,2006-01-02 03:04:05+00,x2.52020-10-10"
    );
}

/// FLOAT64 comparisons are IEEE's: NaN is neither equal nor ordered.
#[test]
fn nan_is_unordered() {
    assert_eq!(
        run(
            "SELECT x BETWEEN 0 AND CAST('nan' AS FLOAT64), x = x, x != x, x < 1 \
             FROM UNNEST([CAST('nan' AS FLOAT64)]) AS x"
        )
        .unwrap(),
        "Boolean,Boolean,Boolean,Boolean | false,false,true,false"
    );
    assert_eq!(
        run(
            "SELECT COUNTIF(x BETWEEN 0 AND CAST('nan' AS FLOAT64)), COUNTIF(x > 0) \
             FROM UNNEST([-10.0, 0.0, 10.0, CAST('nan' AS FLOAT64)]) AS x"
        )
        .unwrap(),
        "Int64,Int64 | 0,1"
    );
}

/// LOG(x, base) takes the base second, as in BigQuery.
#[test]
fn log_takes_the_base_second() {
    assert_eq!(
        run("SELECT LOG(100, 10), LOG(8, 2), IS_NAN(LOG(1, IEEE_DIVIDE(1, 0)))").unwrap(),
        "Float64,Float64,Boolean | 2.0,3.0,true"
    );
    let e = error("SELECT LOG(-1, 10)");
    assert!(e.contains("must be positive"), "{e}");
}

/// Comparisons whose operands cannot be NaN (a NUMERIC against a FLOAT64
/// literal, as in `l_discount BETWEEN 0.05 AND 0.07`) are planned as plain
/// comparisons; the answers are the same as with NaN-aware ones, and a NaN
/// made by arithmetic (`inf - inf`) or a cast from STRING is still unordered.
#[test]
fn comparisons_of_values_that_cannot_be_nan() {
    assert_eq!(
        run(
            "SELECT x > 0.05, x BETWEEN 0.06 - 0.01 AND 0.06 + 0.01, 1 + 0.5 > x, CAST(x AS FLOAT64) * 2 >= 0.1 \
             FROM UNNEST([NUMERIC '0.06', NUMERIC '0.01']) AS x ORDER BY x DESC"
        )
        .unwrap(),
        "Boolean,Boolean,Boolean,Boolean | true,true,true,true;false,false,true,false"
    );
    assert_eq!(
        run(
            "SELECT IEEE_DIVIDE(1, 0) - IEEE_DIVIDE(1, 0) > 0, CAST(s AS FLOAT64) >= 0.5, \
             CAST(s AS FLOAT64) != 0.5 FROM UNNEST(['nan']) AS s"
        )
        .unwrap(),
        "Boolean,Boolean,Boolean | false,false,true"
    );
}

/// A USING column is one column: for FULL JOIN `COALESCE(left, right)`,
/// for RIGHT JOIN the right side's; `SELECT *` has it first, once
/// (workflow query `full_outer_join_using`).
#[test]
fn using_columns_of_outer_joins() {
    let a = "(SELECT 1 AS k, 'a1' AS a UNION ALL SELECT 2, 'a2')";
    let b = "(SELECT 'b2' AS b, 2 AS k UNION ALL SELECT 'b3', 3)";
    assert_eq!(
        run(&format!(
            "SELECT k, x.a, y.b FROM {a} x FULL JOIN {b} y USING (k) ORDER BY k"
        ))
        .unwrap(),
        "Int64,Utf8,Utf8 | 1,a1,;2,a2,b2;3,,b3"
    );
    assert_eq!(
        run(&format!(
            "SELECT * FROM {a} x FULL OUTER JOIN {b} y USING (k) ORDER BY k"
        ))
        .unwrap(),
        "Int64,Utf8,Utf8 | 1,a1,;2,a2,b2;3,,b3"
    );
    assert_eq!(
        run(&format!(
            "SELECT * FROM {a} x RIGHT JOIN {b} y USING (k) WHERE k = 3"
        ))
        .unwrap(),
        "Int64,Utf8,Utf8 | 3,,b3"
    );
    assert_eq!(
        run(&format!(
            "SELECT * FROM {b} y LEFT JOIN {a} x USING (k) ORDER BY k"
        ))
        .unwrap(),
        "Int64,Utf8,Utf8 | 2,b2,a2;3,b3,"
    );
    assert_eq!(
        run(&format!(
            "SELECT k, COUNT(*) AS n FROM {a} x FULL JOIN {b} y USING (k) WHERE k > 1 GROUP BY k ORDER BY k DESC"
        ))
        .unwrap(),
        "Int64,Int64 | 3,1;2,1"
    );
    // Three FULL JOINs on one column: each joins the merged column.
    let c = "(SELECT 3 AS k, 'c3' AS c UNION ALL SELECT 4, 'c4')";
    assert_eq!(
        run(&format!(
            "SELECT * FROM {a} x FULL JOIN {b} y USING (k) FULL JOIN {c} z USING (k) ORDER BY k"
        ))
        .unwrap(),
        "Int64,Utf8,Utf8,Utf8 | 1,a1,,;2,a2,b2,;3,,b3,c3;4,,,c4"
    );
    // Where the left side's column is not known, refused rather than wrong.
    let e = error(&format!(
        "SELECT k FROM {a} x JOIN {b} y ON x.k = y.k FULL JOIN {c} z USING (k)"
    ));
    assert!(e.contains("unsupported") && e.contains("USING"), "{e}");
}

/// Types and rows as JSON (for STRUCT and ARRAY values, which CSV lacks).
fn run_json(sql: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let wh = LocalWarehouse::open(dir.path()).unwrap();
    let r = wh
        .execute(sql, &QueryContext::default())
        .map_err(|e| e.to_string())?;
    let types: Vec<String> = r
        .schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    let rows = bigflow_bigquery::format::render(&r, Format::Json).map_err(|e| e.to_string())?;
    let rows: serde_json::Value = serde_json::from_str(&rows).map_err(|e| e.to_string())?;
    Ok(format!("{} | {rows}", types.join(",")))
}

/// `(SELECT AS STRUCT a, b AS x …)` is one STRUCT value (workflow query
/// `select_as_struct_subquery`); correlated, with COUNT(*) 0 and MAX NULL
/// where no row matches.
#[test]
fn select_as_struct_subqueries() {
    let c = "(SELECT 1 AS id UNION ALL SELECT 2)";
    let o = "(SELECT 1 AS cid, 10 AS v UNION ALL SELECT 1, 30)";
    assert_eq!(
        run_json(&format!(
            "SELECT c.id, (SELECT AS STRUCT COUNT(*) AS n, MAX(o.v) AS top FROM {o} o WHERE o.cid = c.id) AS s FROM {c} c ORDER BY c.id"
        ))
        .unwrap(),
        r#"Int64,Struct("n": Int64, "top": Int64) | [{"id":1,"s":{"n":2,"top":30}},{"id":2,"s":{"n":0,"top":null}}]"#
    );
    assert_eq!(
        run_json(&format!(
            "SELECT (SELECT AS STRUCT v AS x, cid FROM {o} ORDER BY x DESC LIMIT 1).x AS x"
        ))
        .unwrap(),
        r#"Int64 | [{"x":30}]"#
    );
    let e = error(&format!("SELECT (SELECT AS STRUCT * FROM {o} LIMIT 1)"));
    assert!(
        e.contains("unsupported") && e.contains("SELECT AS STRUCT *"),
        "{e}"
    );
}

/// A correlated `ARRAY(subquery)` (workflow query
/// `array_subquery_of_structs`): the outer row's elements, in the
/// subquery's order, `[]` where none.
#[test]
fn correlated_array_subqueries() {
    let c = "(SELECT 1 AS id UNION ALL SELECT 2)";
    let o = "(SELECT 1 AS cid, 10 AS v UNION ALL SELECT 1, 30 UNION ALL SELECT 1, 20)";
    assert_eq!(
        run_json(&format!(
            "SELECT c.id, ARRAY(SELECT o.v FROM {o} o WHERE o.cid = c.id ORDER BY o.v DESC) AS vs FROM {c} c ORDER BY c.id"
        ))
        .unwrap(),
        r#"Int64,List(Int64) | [{"id":1,"vs":[30,20,10]},{"id":2,"vs":[]}]"#
    );
    assert_eq!(
        run_json(&format!(
            "SELECT c.id, ARRAY(SELECT AS STRUCT o.v AS x FROM {o} o WHERE o.cid = c.id AND o.v > 10 ORDER BY x) AS vs FROM {c} c ORDER BY c.id"
        ))
        .unwrap(),
        r#"Int64,List(Struct("x": Int64)) | [{"id":1,"vs":[{"x":20},{"x":30}]},{"id":2,"vs":[]}]"#
    );
    // Uncorrelated, ordered by a field's alias.
    assert_eq!(
        run_json(&format!(
            "SELECT ARRAY(SELECT AS STRUCT v AS x FROM {o} ORDER BY x)"
        ))
        .unwrap(),
        r#"List(Struct("x": Int64)) | [{"f0_":[{"x":10},{"x":20},{"x":30}]}]"#
    );
    let e = error(&format!(
        "SELECT ARRAY(SELECT DISTINCT o.v FROM {o} o WHERE o.cid = c.id) FROM {c} c"
    ));
    assert!(
        e.contains("unsupported") && e.contains("refers to the outer query"),
        "{e}"
    );
}

/// Typed STRUCT literals take their values by position, converting them
/// (`ARRAY<STRUCT<country STRING, vat_rate FLOAT64>>[('PL', 0.23), …]`), and
/// `JOIN UNNEST(…) AS v ON …` of a constant array is an ordinary join
/// (workflow query `typed_array_struct_literal_join`).
#[test]
fn typed_struct_literals_and_join_unnest_on() {
    assert_eq!(
        run_json(
            "SELECT ARRAY<STRUCT<country STRING, vat_rate FLOAT64>>[('PL', 0.23), ('DE', 1)] AS a, \
             STRUCT<x INT64, y NUMERIC>(1, 2.5) AS s, CAST((1, 'b') AS STRUCT<f FLOAT64, g STRING>) AS t"
        )
        .unwrap(),
        r#"List(Struct("country": Utf8, "vat_rate": Float64)),Struct("x": Int64, "y": Decimal128(38, 9)),Struct("f": Float64, "g": Utf8) | [{"a":[{"country":"PL","vat_rate":0.23},{"country":"DE","vat_rate":1.0}],"s":{"x":1,"y":2.5},"t":{"f":1.0,"g":"b"}}]"#
    );
    let c = "(SELECT 'a' AS name, 'PL' AS country UNION ALL SELECT 'b', 'US' UNION ALL SELECT 'c', 'DE')";
    assert_eq!(
        run(&format!(
            "SELECT c.name, v.vat_rate FROM {c} c \
             JOIN UNNEST(ARRAY<STRUCT<country STRING, vat_rate FLOAT64>>[('PL', 0.23), ('DE', 0.19)]) AS v \
             ON v.country = c.country ORDER BY c.name"
        ))
        .unwrap(),
        "Utf8,Float64 | a,0.23;c,0.19"
    );
    // Of a column, with an INNER JOIN: the condition filters the pairs.
    assert_eq!(
        run(&format!(
            "SELECT c.name, x FROM {c} c JOIN UNNEST([c.country, 'X']) AS x ON x <> 'X' ORDER BY c.name"
        ))
        .unwrap(),
        "Utf8,Utf8 | a,PL;b,US;c,DE"
    );
}

/// REGEXP_EXTRACT (REGEXP_SUBSTR) and REGEXP_EXTRACT_ALL: the capturing
/// group's match or the whole match, from a position, the nth occurrence;
/// NULL when nothing matches (BigQuery's documented examples).
#[test]
fn regexp_extraction_follows_bigquery() {
    assert_eq!(
        run(
            r"SELECT REGEXP_EXTRACT('foo@example.com', r'^[a-zA-Z0-9_.+-]+'),
                     REGEXP_EXTRACT('foo@example.com', r'@(.+)$'),
                     REGEXP_EXTRACT('foo', r'x'),
                     REGEXP_SUBSTR('abc', 'b')"
        )
        .unwrap(),
        "Utf8,Utf8,Utf8,Utf8 | foo,example.com,,b"
    );
    let v = "'Hello Helloo and Hellooo', 'H?ello+'";
    assert_eq!(
        run(&format!(
            "SELECT REGEXP_EXTRACT({v}, 1, 1), REGEXP_EXTRACT({v}, 1, 2), REGEXP_EXTRACT({v}, 1, 3),
                    REGEXP_EXTRACT({v}, 1, 4) IS NULL, REGEXP_EXTRACT({v}, 2, 1), REGEXP_EXTRACT({v}, 3, 1),
                    REGEXP_EXTRACT({v}, 3, 2), REGEXP_EXTRACT({v}, 30, 1) IS NULL"
        ))
        .unwrap(),
        "Utf8,Utf8,Utf8,Boolean,Utf8,Utf8,Utf8,Boolean | Hello,Helloo,Hellooo,true,ello,Helloo,Hellooo,true"
    );
    assert_eq!(
        run(r"SELECT ARRAY_TO_STRING(REGEXP_EXTRACT_ALL('Try `func(x)` or `func(y)`', '`(.+?)`'), '|'),
                     ARRAY_LENGTH(REGEXP_EXTRACT_ALL('abc', 'x')),
                     REGEXP_EXTRACT_ALL(CAST(NULL AS STRING), 'x') IS NULL")
        .unwrap(),
        "Utf8,Int64,Boolean | func(x)|func(y),0,true"
    );
    assert_eq!(
        run(r"SELECT REGEXP_EXTRACT(b'\x01ab', b'a(.)')").unwrap(),
        "Binary | 62"
    );
    let e = error("SELECT REGEXP_EXTRACT('ab', '(a)(b)')");
    assert!(
        e.contains("must not have more than 1 capturing group"),
        "{e}"
    );
    let e = error("SELECT REGEXP_EXTRACT('ab', '(')");
    assert!(e.contains("Cannot parse regular expression"), "{e}");
    let e = error("SELECT REGEXP_EXTRACT('ab', 'a', 0)");
    assert!(e.contains("position must be positive"), "{e}");
    let e = error("SELECT REGEXP_EXTRACT('ab', b'a')");
    assert!(e.contains("both STRING or both BYTES"), "{e}");
}

/// FORMAT: printf-like specifiers, BigQuery's documented examples.
#[test]
fn format_follows_bigquery() {
    assert_eq!(
        run(r#"SELECT FORMAT('%d', 10), FORMAT('|%10d|', 11), FORMAT('+%010d+', 12),
                      FORMAT("%'d", 123456789), FORMAT('-%s-', 'abcd efg'), FORMAT('%f %E', 1.1, 2.2)"#)
        .unwrap(),
        "Utf8,Utf8,Utf8,Utf8,Utf8,Utf8 | 10,|        11|,+0000000012+,\"123,456,789\",-abcd efg-,1.100000 2.200000E+00"
    );
    assert_eq!(
        run(r#"SELECT FORMAT('%t', DATE '2015-09-01'), FORMAT('%T', DATE '2015-09-01'), FORMAT('%T', 'abc'),
                      FORMAT('00-%t-00', CAST(NULL AS INT64)), FORMAT('00-%s-00', CAST(NULL AS STRING)) IS NULL,
                      FORMAT('%e|%g|%o|%x|%X', 392.65, 392.65, 392, 2042, 2042)"#)
        .unwrap(),
        "Utf8,Utf8,Utf8,Utf8,Boolean,Utf8 | 2015-09-01,\"DATE \"\"2015-09-01\"\"\",\"\"\"abc\"\"\",00-NULL-00,true,3.926500e+02|392.65|610|7fa|7FA"
    );
    assert_eq!(
        run("SELECT FORMAT('%t|%T|%t', NUMERIC '1.5', NUMERIC '-2', CAST(NULL AS NUMERIC))")
            .unwrap(),
        "Utf8 | \"1.5|NUMERIC \"\"-2\"\"|NULL\""
    );
    assert_eq!(
        run("SELECT FORMAT('%t|%T', TIMESTAMP '2008-12-25 15:30:00.5+00', DATETIME '2008-12-25 15:30:00')").unwrap(),
        "Utf8 | \"2008-12-25 15:30:00.500+00|DATETIME \"\"2008-12-25 15:30:00\"\"\""
    );
    assert_eq!(
        run("SELECT FORMAT('%.*f|%t', -1, 1.5, NULL), FORMAT(NULL, 1) IS NULL, FORMAT('%d|%x', 9223372036854775807, -9223372036854775807 - 1), FORMAT('%*d', NULL, 1) IS NULL")
            .unwrap(),
        "Utf8,Boolean,Utf8,Boolean | 1.500000|NULL,true,9223372036854775807|-8000000000000000,true"
    );
    assert_eq!(
        run("SELECT FORMAT('%s has id %d', name, id) FROM UNNEST([STRUCT('Alice' AS name, 1 AS id)])")
            .unwrap(),
        "Utf8 | Alice has id 1"
    );
    for (sql, says) in [
        ("SELECT FORMAT('%d', 1.5)", "%d takes INT64"),
        ("SELECT FORMAT('%d %d', 1)", "too few arguments"),
        ("SELECT FORMAT('%999999999d', 1)", "too large"),
        ("SELECT FORMAT('%y', 1)", "invalid specifier"),
        ("SELECT FORMAT('%5%', 1)", "invalid specifier"),
        ("SELECT FORMAT('%s', 1)", "%s takes STRING"),
        ("SELECT FORMAT('%f', NUMERIC '1.5')", "unsupported"),
    ] {
        let e = error(sql);
        assert!(e.contains(says), "{sql}: {e}");
    }
}

/// DATE_TRUNC with WEEK(<weekday>) and ISOYEAR, TIMESTAMP_TRUNC in a time
/// zone, LAST_DAY, UNIX_SECONDS and its kin (BigQuery's documented examples).
#[test]
fn calendar_parts_follow_bigquery() {
    assert_eq!(
        run("SELECT DATE_TRUNC(DATE '2017-11-05', WEEK(MONDAY)), DATE_TRUNC('2015-06-15', ISOYEAR),
                    DATE_TRUNC(DATE '2024-03-14', WEEK(friday)), DATETIME_TRUNC(DATETIME '2024-03-14 10:00:00', WEEK(MONDAY))")
            .unwrap(),
        "Date32,Date32,Date32,Timestamp(µs) | 2017-10-30,2014-12-29,2024-03-08,2024-03-11T00:00:00"
    );
    assert_eq!(
        run(
            "SELECT TIMESTAMP_TRUNC(TIMESTAMP '2008-12-25 15:30:00+00', DAY, 'UTC'),
                    TIMESTAMP_TRUNC(TIMESTAMP '2008-12-25 15:30:00+00', DAY, 'America/Los_Angeles'),
                    TIMESTAMP_TRUNC(TIMESTAMP '2017-11-06 00:00:00+12', ISOWEEK),
                    TIMESTAMP_TRUNC(TIMESTAMP '2024-03-31 12:00:00+00', DAY, 'Europe/Warsaw')"
        )
        .unwrap(),
        "Timestamp(µs, \"UTC\"),Timestamp(µs, \"UTC\"),Timestamp(µs, \"UTC\"),Timestamp(µs, \"UTC\") | 2008-12-25T00:00:00Z,2008-12-25T08:00:00Z,2017-10-30T00:00:00Z,2024-03-30T23:00:00Z"
    );
    assert_eq!(
        run("SELECT LAST_DAY(DATE '2008-11-25'), LAST_DAY(DATE '2008-11-25', YEAR),
                    LAST_DAY(DATE '2008-11-10', WEEK(MONDAY)), LAST_DAY(DATETIME '2008-11-25 15:30:00', MONTH),
                    LAST_DAY(DATE '2024-02-10', QUARTER), LAST_DAY(DATE '2008-11-25', ISOYEAR)")
            .unwrap(),
        "Date32,Date32,Date32,Date32,Date32,Date32 | 2008-11-30,2008-12-31,2008-11-16,2008-11-30,2024-03-31,2008-12-28"
    );
    assert_eq!(
        run("SELECT UNIX_SECONDS(TIMESTAMP '2008-12-25 15:30:00+00'), UNIX_MILLIS(TIMESTAMP '2008-12-25 15:30:00+00'),
                    UNIX_MICROS(TIMESTAMP '2008-12-25 15:30:00+00'), UNIX_SECONDS(TIMESTAMP '1969-12-31 23:59:59.5+00'),
                    TIMESTAMP_SECONDS(1230219000), TIMESTAMP_MILLIS(1230219000000), TIMESTAMP_MICROS(1230219000000000)")
            .unwrap(),
        "Int64,Int64,Int64,Int64,Timestamp(µs, \"UTC\"),Timestamp(µs, \"UTC\"),Timestamp(µs, \"UTC\") | 1230219000,1230219000000,1230219000000000,-1,2008-12-25T15:30:00Z,2008-12-25T15:30:00Z,2008-12-25T15:30:00Z"
    );
    let e = error("SELECT LAST_DAY(DATE '2008-11-25', DAY)");
    assert!(e.contains("DAY"), "{e}");
    let e =
        error("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2008-12-25 15:30:00+00', DAY, 'Mars/Olympus')");
    assert!(e.contains("time zone"), "{e}");
}

/// SAFE_DIVIDE's type is its arguments' supertype: NUMERIC with NUMERIC
/// or INT64, rounded half away from zero to 9 decimal places.
#[test]
fn safe_divide_keeps_numeric() {
    assert_eq!(
        run("SELECT SAFE_DIVIDE(NUMERIC '10', 3), SAFE_DIVIDE(NUMERIC '2', NUMERIC '-3'),
                    SAFE_DIVIDE(NUMERIC '1', 0) IS NULL, SAFE_DIVIDE(NUMERIC '1', 2.0), SAFE_DIVIDE(7, 2)")
            .unwrap(),
        "Decimal128(38, 9),Decimal128(38, 9),Boolean,Float64,Float64 | 3.333333333,-0.666666667,true,0.5,3.5"
    );
    // DIV of NUMERIC is NUMERIC.
    assert_eq!(
        run("SELECT DIV(NUMERIC '7.5', NUMERIC '2.5'), DIV(NUMERIC '-7.5', 2), DIV(7, 2)").unwrap(),
        "Decimal128(38, 9),Decimal128(38, 9),Int64 | 3.000000000,-3.000000000,3"
    );
    let e = error("SELECT DIV(NUMERIC '1', 0)");
    assert!(e.contains("division by zero"), "{e}");
    let e = error("SELECT DIV(1.5, 2)");
    assert!(e.contains("DIV takes INT64 or NUMERIC"), "{e}");
    // Past NUMERIC's range: NULL.
    assert_eq!(
        run("SELECT SAFE_DIVIDE(NUMERIC '99999999999999999999999999999.999999999', NUMERIC '0.1') IS NULL")
            .unwrap(),
        "Boolean | true"
    );
    let e = error("SELECT SAFE_DIVIDE(BIGNUMERIC '7.5', 2)");
    assert!(e.starts_with("unsupported"), "{e}");
}

/// A NUMERIC compared with an expression DataFusion types DECIMAL(38, 15)
/// (a FLOAT64 literal times an AVG of NUMERIC, as in TPC-H Q17) compares
/// as NUMERIC instead of failing on two decimal types.
#[test]
fn numeric_compared_with_a_scaled_average() {
    assert_eq!(
        run(
            "SELECT x, x < (SELECT 0.2 * AVG(y) FROM UNNEST([NUMERIC '10', NUMERIC '20']) y) \
             FROM UNNEST([NUMERIC '2.5', NUMERIC '3.5']) x ORDER BY x"
        )
        .unwrap(),
        "Decimal128(38, 9),Boolean | 2.500000000,true;3.500000000,false"
    );
    assert_eq!(
        run("SELECT COUNT(*) FROM UNNEST([NUMERIC '1', NUMERIC '2']) x \
             WHERE x > (SELECT SUM(y) * 0.0001 FROM UNNEST([NUMERIC '10000', NUMERIC '5000']) y)")
        .unwrap(),
        "Int64 | 1"
    );
}

/// A NUMERIC compared with FLOAT64 literals is compared as NUMERIC (the
/// literals coerce), with a FLOAT64 expression of literals (`0.06 + 0.01`,
/// 0.06999999999999999) as FLOAT64 (NUMERIC coerces to FLOAT64, never the
/// other way): 0.07 is then outside the range.
#[test]
fn numeric_against_float64_literals_and_expressions() {
    assert_eq!(
        run(
            "SELECT x BETWEEN 0.05 AND 0.07, x BETWEEN 0.06 - 0.01 AND 0.06 + 0.01 \
             FROM UNNEST([NUMERIC '0.07']) x"
        )
        .unwrap(),
        "Boolean,Boolean | true,false"
    );
}
