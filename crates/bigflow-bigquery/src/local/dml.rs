//! `UPDATE` and `DELETE` on the local warehouse.
//!
//! Parquet files are immutable, so both statements rewrite the whole table:
//! a `SELECT` over it keeps (DELETE) or changes (UPDATE) each row, and its
//! result replaces the table's files in one manifest commit. A failure
//! leaves the previous version intact, a commit by another writer in between
//! makes the statement fail instead of losing that writer's rows, and rows
//! of an ingestion-partitioned table stay in their partitions.
//!
//! The statement's condition and values are ordinary BigQuery SQL: they go
//! through the same rewriting as queries, so subqueries, functions and the
//! `_PARTITIONTIME`/`_PARTITIONDATE` pseudo-columns work in them.

use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr as SqlExpr, FromTable, ObjectName, TableAlias,
    TableFactor, TableWithJoins, Update,
};

use super::{HIDDEN_PARTITION, LocalWarehouse, empty_result, unknown_table};
use crate::backend::{Partitioning, QueryContext, QueryResult, WriteMode};
use crate::error::{BqError, Result};
use crate::local::dialect::{object_name_span, object_name_text, position, resolve};

/// The one table a DML statement changes.
struct Target<'a> {
    name: &'a ObjectName,
    alias: Option<&'a TableAlias>,
}

/// `name [AS alias]` of a plain table; anything else is unsupported.
fn target<'a>(t: &'a TableWithJoins, what: &str) -> Result<Target<'a>> {
    let unsupported = |construct: String| BqError::Unsupported {
        construct,
        position: None,
    };
    if !t.joins.is_empty() {
        return Err(unsupported(format!("{what} with a join")));
    }
    match &t.relation {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => Ok(Target {
            name,
            alias: alias.as_ref(),
        }),
        _ => Err(unsupported(format!(
            "{what} of something other than a table"
        ))),
    }
}

/// A column name quoted for the rewritten SQL.
fn quoted(column: &str) -> String {
    format!("`{}`", column.replace('`', "\\`"))
}

impl LocalWarehouse {
    pub(super) fn delete_statement(&self, del: &Delete, ctx: &QueryContext) -> Result<QueryResult> {
        let tables = match &del.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        if tables.len() != 1 || !del.tables.is_empty() || del.using.is_some() {
            return Err(BqError::Unsupported {
                construct: "DELETE of several tables or with USING".into(),
                position: None,
            });
        }
        let t = target(&tables[0], "DELETE")?;
        self.rewrite(t, del.selection.as_ref(), &[], "DELETE", ctx)
    }

    pub(super) fn update_statement(&self, upd: &Update, ctx: &QueryContext) -> Result<QueryResult> {
        if upd.from.is_some() {
            return Err(BqError::Unsupported {
                construct: "UPDATE … FROM".into(),
                position: None,
            });
        }
        let t = target(&upd.table, "UPDATE")?;
        self.rewrite(t, upd.selection.as_ref(), &upd.assignments, "UPDATE", ctx)
    }

    /// Rewrites the table: rows matching `selection` are dropped (no
    /// assignments: DELETE) or get the assigned values (UPDATE).
    fn rewrite(
        &self,
        t: Target<'_>,
        selection: Option<&SqlExpr>,
        assignments: &[Assignment],
        what: &str,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let id = resolve(t.name, ctx)?;
        let pos = position(object_name_span(t.name));
        let m = self.manifest(&id, pos)?;
        let Some(selection) = selection else {
            return Err(BqError::Sql {
                message: format!(
                    "{what} must have a WHERE clause, as in BigQuery (WHERE TRUE for every row of `{id}`)"
                ),
                position: pos,
            });
        };
        // Each SET column, with its value, by the table's spelling of the name.
        let mut values: Vec<(usize, &SqlExpr)> = Vec::new();
        for a in assignments {
            let AssignmentTarget::ColumnName(column) = &a.target else {
                return Err(BqError::Unsupported {
                    construct: "UPDATE SET (a, b) = (…)".into(),
                    position: None,
                });
            };
            let name = column
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.clone())
                .unwrap_or_else(|| object_name_text(column));
            let Some(i) = m
                .schema
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(&name))
            else {
                return Err(BqError::TypeMismatch {
                    table: id.to_string(),
                    column: name,
                    cause: "the table has no such column".into(),
                });
            };
            if values.iter().any(|(j, _)| *j == i) {
                return Err(BqError::Sql {
                    message: format!("UPDATE sets column `{name}` of `{id}` twice"),
                    position: pos,
                });
            }
            values.push((i, &a.value));
        }
        let matched = format!("COALESCE(({selection}), FALSE)");
        let from = match t.alias {
            Some(alias) => format!("{} AS {}", t.name, alias.name),
            None => t.name.to_string(),
        };
        // Kept rows as they are; for UPDATE, plus the matched rows with the
        // new values (a UNION, since DataFusion plans subqueries in WHERE but
        // not inside a projection's CASE).
        let mut kept: Vec<String> = m.schema.iter().map(|f| quoted(&f.name)).collect();
        let mut changed: Vec<String> = m
            .schema
            .iter()
            .enumerate()
            .map(|(i, f)| match values.iter().find(|(j, _)| *j == i) {
                Some((_, value)) => format!("({value}) AS {}", quoted(&f.name)),
                None => quoted(&f.name),
            })
            .collect();
        if m.partitioning == Some(Partitioning::Ingestion) {
            kept.push(format!("_PARTITIONDATE AS {HIDDEN_PARTITION}"));
            changed.push(format!("_PARTITIONDATE AS {HIDDEN_PARTITION}"));
        }
        let mut rewritten = format!("SELECT {} FROM {from} WHERE NOT {matched}", kept.join(", "));
        if !values.is_empty() {
            rewritten = format!(
                "SELECT {} FROM {from} WHERE {matched} UNION ALL {rewritten}",
                changed.join(", ")
            );
        }
        let count = format!("SELECT COUNT(*) FROM {from} WHERE {matched}");
        let rewritten = Self::single_query(&rewritten, what)?;
        let count = Self::single_query(&count, what)?;
        self.block_on(async {
            let (df, _) = self.plan_query(count, ctx).await?;
            let batches = df.collect().await.map_err(super::df_error)?;
            let affected = batches
                .first()
                .filter(|b| b.num_columns() == 1 && b.num_rows() == 1)
                .and_then(|b| {
                    arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::UInt64)
                        .ok()
                        .map(|c| {
                            c.as_any()
                                .downcast_ref::<arrow::array::UInt64Array>()
                                .map_or(0, |a| a.value(0))
                        })
                })
                .unwrap_or(0);
            let (df, _) = self.plan_query(rewritten, ctx).await?;
            self.write_frame(&id, None, WriteMode::Truncate, df, None, Some(m.version))
                .await
                .map_err(|e| match e {
                    BqError::UnknownTable { .. } => unknown_table(&id, pos),
                    other => other,
                })?;
            Ok(QueryResult {
                affected_rows: Some(affected),
                ..empty_result()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    fn warehouse() -> (tempfile::TempDir, LocalWarehouse, QueryContext) {
        let dir = tempfile::tempdir().unwrap();
        let w = LocalWarehouse::open(dir.path()).unwrap();
        let ctx = QueryContext {
            default_project: "p".into(),
            default_dataset: "d".into(),
            ..QueryContext::default()
        };
        (dir, w, ctx)
    }

    fn rows(w: &LocalWarehouse, ctx: &QueryContext, sql: &str) -> String {
        let r = w.execute(sql, ctx).unwrap();
        arrow::util::pretty::pretty_format_batches(&r.batches)
            .unwrap()
            .to_string()
    }

    #[test]
    fn delete_and_update_rewrite_the_table() {
        let (_dir, w, ctx) = warehouse();
        w.execute(
            "CREATE TABLE t (id INT64, name STRING, score FLOAT64);
             INSERT INTO t VALUES (1, 'a', 1.0), (2, 'b', NULL), (3, 'c', 3.0)",
            &ctx,
        )
        .unwrap();
        let r = w.execute("DELETE FROM t WHERE score > 2", &ctx).unwrap();
        assert_eq!(r.affected_rows, Some(1));
        // A NULL condition keeps the row, as in BigQuery.
        assert_eq!(
            rows(&w, &ctx, "SELECT id FROM t ORDER BY id"),
            "+----+\n| id |\n+----+\n| 1  |\n| 2  |\n+----+"
        );
        let r = w
            .execute(
                "UPDATE t AS x SET score = x.score * 10, name = UPPER(name) WHERE x.id IN (SELECT 1)",
                &ctx,
            )
            .unwrap();
        assert_eq!(r.affected_rows, Some(1));
        assert_eq!(
            rows(&w, &ctx, "SELECT id, name, score FROM t ORDER BY id"),
            "+----+------+-------+\n| id | name | score |\n+----+------+-------+\n| 1  | A    | 10.0  |\n| 2  | b    |       |\n+----+------+-------+"
        );
        // Without WHERE: refused, as BigQuery does.
        let e = w.execute("DELETE FROM t", &ctx).unwrap_err().to_string();
        assert!(e.contains("must have a WHERE clause"), "{e}");
        // A type that does not fit: nothing changes.
        let e = w
            .execute("UPDATE t SET score = 'high' WHERE TRUE", &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("column `score`"), "{e}");
        let e = w
            .execute("UPDATE t SET nope = 1 WHERE TRUE", &ctx)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `nope`: the table has no such column"),
            "{e}"
        );
        assert!(rows(&w, &ctx, "SELECT COUNT(*) AS n FROM t").contains("| 2 |"));
        let e = w
            .execute("DELETE FROM nope WHERE TRUE", &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`p.d.nope` does not exist"), "{e}");
    }

    #[test]
    fn ingestion_partitions_survive_a_rewrite() {
        let (_dir, w, ctx) = warehouse();
        w.execute(
            "CREATE TABLE e (id INT64) PARTITION BY _PARTITIONDATE",
            &ctx,
        )
        .unwrap();
        let id = crate::names::TableId {
            project: "p".into(),
            dataset: "d".into(),
            table: "e".into(),
        };
        for (day, ids) in [("2020-08-01", "[1, 2]"), ("2020-08-02", "[3, 4]")] {
            let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
            w.write_query(
                &id,
                Some(day),
                WriteMode::Append,
                &format!("SELECT x AS id FROM UNNEST({ids}) AS x"),
                &ctx,
            )
            .unwrap();
        }
        let r = w
            .execute(
                "DELETE FROM e WHERE _PARTITIONDATE = DATE '2020-08-01' AND id = 2",
                &ctx,
            )
            .unwrap();
        assert_eq!(r.affected_rows, Some(1));
        w.execute("UPDATE e SET id = id * 10 WHERE id > 3", &ctx)
            .unwrap();
        assert_eq!(
            rows(
                &w,
                &ctx,
                "SELECT _PARTITIONDATE AS d, id FROM e ORDER BY id"
            ),
            "+------------+----+\n| d          | id |\n+------------+----+\n| 2020-08-01 | 1  |\n| 2020-08-02 | 3  |\n| 2020-08-02 | 40 |\n+------------+----+"
        );
    }
}
