//! `UPDATE`, `DELETE` and `MERGE` on the local warehouse.
//!
//! Parquet files are immutable, so these statements rewrite the whole table:
//! a `SELECT` over it keeps, changes or adds rows, and its
//! result replaces the table's files in one manifest commit. A failure
//! leaves the previous version intact, a commit by another writer in between
//! makes the statement fail instead of losing that writer's rows, and rows
//! of an ingestion-partitioned table stay in their partitions.
//!
//! The statement's condition and values are ordinary BigQuery SQL: they go
//! through the same rewriting as queries, so subqueries, functions and the
//! `_PARTITIONTIME`/`_PARTITIONDATE` pseudo-columns work in them.

use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::{DataType, UInt64Type};
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr as SqlExpr, FromTable, Merge, MergeAction,
    MergeClauseKind, MergeInsertKind, ObjectName, Query, Statement, TableAlias, TableFactor,
    TableWithJoins, Update, UpdateTableFromKind,
};

use super::{HIDDEN_PARTITION, LocalWarehouse, empty_result, unknown_table};
use crate::backend::{Partitioning, QueryContext, QueryResult, WriteMode};
use crate::error::{BqError, Position, Result};
use crate::local::dialect::{object_name_span, object_name_text, position, resolve};
use crate::names::TableId;

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
        let t = target(&upd.table, "UPDATE")?;
        let Some(from) = &upd.from else {
            return self.rewrite(t, upd.selection.as_ref(), &upd.assignments, "UPDATE", ctx);
        };
        // `UPDATE t SET … FROM s WHERE cond` is `MERGE t USING s ON cond
        // WHEN MATCHED THEN UPDATE SET …`: a target row with no source row
        // is kept, one with two is an error, as in BigQuery.
        let (UpdateTableFromKind::BeforeSet(sources) | UpdateTableFromKind::AfterSet(sources)) =
            from;
        let [source] = sources.as_slice() else {
            return Err(BqError::Unsupported {
                construct: "UPDATE … FROM several tables (join them in a subquery)".into(),
                position: None,
            });
        };
        if !source.joins.is_empty() {
            return Err(BqError::Unsupported {
                construct: "UPDATE … FROM a join (join in a subquery)".into(),
                position: None,
            });
        }
        let Some(on) = &upd.selection else {
            return Err(BqError::Sql {
                message: "UPDATE must have a WHERE clause, as in BigQuery".into(),
                position: position(object_name_span(t.name)),
            });
        };
        let alias = t
            .alias
            .map(|a| format!(" AS {}", a.name))
            .unwrap_or_default();
        let sets: Vec<String> = upd.assignments.iter().map(ToString::to_string).collect();
        let sql = format!(
            "MERGE {}{alias} USING {} ON {on} WHEN MATCHED THEN UPDATE SET {}",
            t.name,
            source.relation,
            sets.join(", ")
        );
        match super::dialect::parse(&sql)?.pop() {
            Some(Statement::Merge(merge)) => self.merge_statement(&merge, ctx),
            _ => Err(BqError::Engine(format!("rewriting UPDATE … FROM as {sql}"))),
        }
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
        self.commit_rewrite(&id, pos, m.version, &rewritten, &count, None, what, ctx)
    }

    /// Runs `count` (rows the statement affects; first `check`, a count
    /// that must be 0, else its message is the error), then replaces the
    /// table `id`, read at manifest `version`, with the rows of `rewritten`.
    #[allow(clippy::too_many_arguments)]
    fn commit_rewrite(
        &self,
        id: &TableId,
        pos: Option<Position>,
        version: u64,
        rewritten: &str,
        count: &str,
        check: Option<(&str, String)>,
        what: &str,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let rewritten = Self::single_query(rewritten, what)?;
        let count = Self::single_query(count, what)?;
        let check = match check {
            Some((sql, message)) => Some((Self::single_query(sql, what)?, message)),
            None => None,
        };
        self.block_on(async {
            if let Some((sql, message)) = check
                && self.count(sql, ctx).await? > 0
            {
                return Err(BqError::Sql {
                    message,
                    position: pos,
                });
            }
            let affected = self.count(count, ctx).await?;
            let (df, _) = self.plan_query(rewritten, ctx).await?;
            self.write_frame(id, None, WriteMode::Truncate, df, None, Some(version))
                .await
                .map_err(|e| match e {
                    BqError::UnknownTable { .. } => unknown_table(id, pos),
                    other => other,
                })?;
            Ok(QueryResult {
                affected_rows: Some(affected),
                ..empty_result()
            })
        })
    }

    /// The number a `SELECT COUNT(*) …` query returns.
    async fn count(&self, query: Query, ctx: &QueryContext) -> Result<u64> {
        let (df, _) = self.plan_query(query, ctx).await?;
        let batches = df.collect().await.map_err(super::df_error)?;
        Ok(batches
            .first()
            .filter(|b| b.num_columns() == 1 && b.num_rows() == 1)
            .and_then(|b| cast(b.column(0), &DataType::UInt64).ok())
            .and_then(|c| c.as_primitive_opt::<UInt64Type>().map(|a| a.value(0)))
            .unwrap_or(0))
    }

    /// `MERGE`: target and source are fully outer-joined on the condition;
    /// each joined row takes the first `WHEN` clause of its kind whose
    /// predicate holds (matched, not matched by target, not matched by
    /// source), and the kept, updated and inserted rows replace the table.
    pub(super) fn merge_statement(&self, merge: &Merge, ctx: &QueryContext) -> Result<QueryResult> {
        let unsupported = |construct: &str| BqError::Unsupported {
            construct: construct.into(),
            position: None,
        };
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &merge.table
        else {
            return Err(unsupported("MERGE into something other than a table"));
        };
        let id = resolve(name, ctx)?;
        let pos = position(object_name_span(name));
        let m = self.manifest(&id, pos)?;
        let ta = alias
            .as_ref()
            .map(|a| a.name.to_string())
            .unwrap_or_else(|| quoted(&id.table));
        let (source, sa) = match &merge.source {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => (
                name.to_string(),
                alias
                    .as_ref()
                    .map(|a| a.name.to_string())
                    .unwrap_or_else(|| {
                        name.0
                            .last()
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| name.to_string())
                    }),
            ),
            TableFactor::Derived {
                subquery,
                alias: Some(alias),
                ..
            } => (format!("({subquery})"), alias.name.to_string()),
            _ => {
                return Err(unsupported(
                    "MERGE USING something other than a table or an aliased subquery",
                ));
            }
        };
        let ingestion = m.partitioning == Some(Partitioning::Ingestion);
        let partition = if ingestion {
            format!(", _PARTITIONDATE AS {HIDDEN_PARTITION}")
        } else {
            String::new()
        };
        let joined = format!(
            "(SELECT *, ROW_NUMBER() OVER () AS __bigflow_t{partition} FROM {name}) AS {ta} \
             FULL OUTER JOIN (SELECT *, TRUE AS __bigflow_s FROM {source}) AS {sa} ON ({on})",
            on = merge.on
        );
        let matched = format!("{ta}.__bigflow_t IS NOT NULL AND {sa}.__bigflow_s IS NOT NULL");
        let source_only = format!("{ta}.__bigflow_t IS NULL");
        let target_only = format!("{sa}.__bigflow_s IS NULL");
        let column = |c: &ObjectName| -> Result<usize> {
            let name =
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone())
                    .unwrap_or_else(|| object_name_text(c));
            m.schema
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(&name))
                .ok_or_else(|| BqError::TypeMismatch {
                    table: id.to_string(),
                    column: name,
                    cause: "the table has no such column".into(),
                })
        };
        let hidden_of_target = if ingestion {
            format!(", {ta}.{HIDDEN_PARTITION}")
        } else {
            String::new()
        };
        // Per kind: the predicates seen so far; the rows each clause outputs.
        let mut seen: [Vec<String>; 3] = Default::default();
        let mut branches: Vec<String> = Vec::new();
        for clause in &merge.clauses {
            let (k, base) = match clause.clause_kind {
                MergeClauseKind::Matched => (0, &matched),
                MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget => {
                    (1, &source_only)
                }
                MergeClauseKind::NotMatchedBySource => (2, &target_only),
            };
            let predicate = clause
                .predicate
                .as_ref()
                .map_or("TRUE".to_string(), |p| format!("COALESCE(({p}), FALSE)"));
            let mut applies = format!("{base} AND {predicate}");
            if !seen[k].is_empty() {
                applies = format!("{applies} AND NOT ({})", seen[k].join(" OR "));
            }
            seen[k].push(predicate);
            match &clause.action {
                MergeAction::Delete { .. } => {}
                MergeAction::Update(update) => {
                    if k == 1 {
                        return Err(unsupported("UPDATE in WHEN NOT MATCHED"));
                    }
                    let mut values: Vec<Option<String>> = vec![None; m.schema.len()];
                    for a in &update.assignments {
                        let AssignmentTarget::ColumnName(c) = &a.target else {
                            return Err(unsupported("UPDATE SET (a, b) = (…)"));
                        };
                        values[column(c)?] = Some(a.value.to_string());
                    }
                    let columns: Vec<String> = m
                        .schema
                        .iter()
                        .zip(values)
                        .map(|(f, v)| {
                            let c = quoted(&f.name);
                            match v {
                                Some(v) => format!("({v}) AS {c}"),
                                None => format!("{ta}.{c} AS {c}"),
                            }
                        })
                        .collect();
                    branches.push(format!(
                        "SELECT {}{hidden_of_target} FROM {joined} WHERE {applies}",
                        columns.join(", ")
                    ));
                }
                MergeAction::Insert(insert) => {
                    if k != 1 {
                        return Err(unsupported("INSERT in WHEN MATCHED"));
                    }
                    let MergeInsertKind::Values(v) = &insert.kind else {
                        return Err(unsupported("MERGE … INSERT ROW"));
                    };
                    let row = match v.rows.as_slice() {
                        [row] => &row.content,
                        _ => return Err(unsupported("MERGE … INSERT of several rows")),
                    };
                    let targets: Vec<usize> = if insert.columns.is_empty() {
                        (0..m.schema.len()).collect()
                    } else {
                        insert.columns.iter().map(&column).collect::<Result<_>>()?
                    };
                    if targets.len() != row.len() {
                        return Err(BqError::Sql {
                            message: format!(
                                "MERGE INSERT into `{id}` names {} column(s) but gives {} value(s)",
                                targets.len(),
                                row.len()
                            ),
                            position: pos,
                        });
                    }
                    let columns: Vec<String> = m
                        .schema
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let c = quoted(&f.name);
                            match targets.iter().position(|t| *t == i) {
                                Some(j) => format!("({}) AS {c}", row[j]),
                                None => format!("NULL AS {c}"),
                            }
                        })
                        .collect();
                    let today = if ingestion {
                        format!(", CURRENT_DATE() AS {HIDDEN_PARTITION}")
                    } else {
                        String::new()
                    };
                    branches.push(format!(
                        "SELECT {}{today} FROM {joined} WHERE {applies}",
                        columns.join(", ")
                    ));
                }
            }
        }
        let none_of = |k: usize| {
            if seen[k].is_empty() {
                "TRUE".to_string()
            } else {
                format!("NOT ({})", seen[k].join(" OR "))
            }
        };
        let any_of = |k: usize| {
            if seen[k].is_empty() {
                "FALSE".to_string()
            } else {
                format!("({})", seen[k].join(" OR "))
            }
        };
        let kept: Vec<String> = m
            .schema
            .iter()
            .map(|f| format!("{ta}.{c} AS {c}", c = quoted(&f.name)))
            .collect();
        branches.push(format!(
            "SELECT {}{hidden_of_target} FROM {joined} WHERE ({matched} AND {}) OR ({target_only} AND {})",
            kept.join(", "),
            none_of(0),
            none_of(2)
        ));
        // The kept rows go first: the union takes its column names from them.
        let last = branches.pop().unwrap_or_default();
        branches.insert(0, last);
        let rewritten = branches.join(" UNION ALL ");
        let count = format!(
            "SELECT COUNT(*) FROM {joined} WHERE ({matched} AND {}) OR ({source_only} AND {}) OR ({target_only} AND {})",
            any_of(0),
            any_of(1),
            any_of(2)
        );
        // BigQuery: a target row that an UPDATE or DELETE changes matches one source row.
        let check = (!seen[0].is_empty()).then(|| {
            (
                format!(
                    "SELECT COUNT(*) FROM (SELECT {ta}.__bigflow_t FROM {joined} WHERE {matched} AND {} \
                     GROUP BY 1 HAVING COUNT(*) > 1)",
                    any_of(0)
                ),
                format!("MERGE into `{id}` must match at most one source row for each target row"),
            )
        });
        let check = check
            .as_ref()
            .map(|(sql, message)| (sql.as_str(), message.clone()));
        self.commit_rewrite(&id, pos, m.version, &rewritten, &count, check, "MERGE", ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    use crate::local::test_warehouse as warehouse;

    /// Appends `sql`'s rows to the day partition `day` of `p.d.e`.
    fn append_to_day(w: &LocalWarehouse, ctx: &QueryContext, day: &str, sql: &str) {
        let id = crate::names::TableId {
            project: "p".into(),
            dataset: "d".into(),
            table: "e".into(),
        };
        let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        w.write_query(&id, Some(day), WriteMode::Append, sql, ctx)
            .unwrap();
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
        for (day, ids) in [("2020-08-01", "[1, 2]"), ("2020-08-02", "[3, 4]")] {
            append_to_day(
                &w,
                &ctx,
                day,
                &format!("SELECT x AS id FROM UNNEST({ids}) AS x"),
            );
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

    #[test]
    fn merge_upserts_deletes_and_checks_matches() {
        let (_dir, w, ctx) = warehouse();
        w.execute(
            "CREATE TABLE t (id INT64, v STRING, n INT64);
             INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 1);
             CREATE TABLE s (id INT64, v STRING);
             INSERT INTO s VALUES (2, 'B'), (4, 'D'), (5, NULL)",
            &ctx,
        )
        .unwrap();
        // dbt's incremental merge, plus a delete of target rows the source lacks.
        let r = w
            .execute(
                "MERGE INTO t AS d USING (SELECT * FROM s WHERE id < 5) AS src ON d.id = src.id
                 WHEN MATCHED THEN UPDATE SET v = src.v, n = d.n + 1
                 WHEN NOT MATCHED THEN INSERT (id, v) VALUES (src.id, src.v)
                 WHEN NOT MATCHED BY SOURCE AND d.id = 3 THEN DELETE",
                &ctx,
            )
            .unwrap();
        assert_eq!(r.affected_rows, Some(3));
        assert_eq!(
            rows(&w, &ctx, "SELECT id, v, n FROM t ORDER BY id"),
            "+----+---+---+\n| id | v | n |\n+----+---+---+\n| 1  | a | 1 |\n| 2  | B | 2 |\n| 4  | D |   |\n+----+---+---+"
        );
        // Two source rows for one target row: refused, nothing written.
        w.execute("INSERT INTO s VALUES (1, 'x'), (1, 'y')", &ctx)
            .unwrap();
        let e = w
            .execute(
                "MERGE t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
                &ctx,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most one source row"), "{e}");
        assert!(rows(&w, &ctx, "SELECT COUNT(*) AS c FROM t").contains("| 3 |"));
        let e = w
            .execute(
                "MERGE t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id, nope) VALUES (1, 2)",
                &ctx,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("column `nope`"), "{e}");
    }

    #[test]
    fn merge_keeps_ingestion_partitions() {
        let (_dir, w, ctx) = warehouse();
        w.execute(
            "CREATE TABLE e (id INT64, v STRING) PARTITION BY _PARTITIONDATE",
            &ctx,
        )
        .unwrap();
        append_to_day(&w, &ctx, "2020-08-01", "SELECT 1 AS id, 'a' AS v");
        w.execute(
            "MERGE e USING (SELECT 1 AS id, 'A' AS v UNION ALL SELECT 2, 'B') AS s ON e.id = s.id
             WHEN MATCHED THEN UPDATE SET v = s.v
             WHEN NOT MATCHED THEN INSERT ROW",
            &ctx,
        )
        .unwrap_err();
        w.execute(
            "MERGE e USING (SELECT 1 AS id, 'A' AS v UNION ALL SELECT 2, 'B') AS s ON e.id = s.id
             WHEN MATCHED THEN UPDATE SET v = s.v
             WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)",
            &ctx,
        )
        .unwrap();
        let today = chrono::Utc::now().date_naive().to_string();
        let out = rows(
            &w,
            &ctx,
            "SELECT _PARTITIONDATE AS d, id, v FROM e ORDER BY id",
        );
        assert!(out.contains("| 2020-08-01 | 1  | A |"), "{out}");
        assert!(out.contains(&format!("| {today} | 2  | B |")), "{out}");
    }

    #[test]
    fn a_rewrite_over_a_newer_version_fails_and_loses_nothing() {
        let (_dir, w, ctx) = warehouse();
        w.execute("CREATE TABLE t (id INT64); INSERT INTO t VALUES (1)", &ctx)
            .unwrap();
        let id = crate::names::TableId {
            project: "p".into(),
            dataset: "d".into(),
            table: "t".into(),
        };
        let read = w.manifest(&id, None).unwrap().version;
        // Another writer commits after the rewrite read the table.
        w.execute("INSERT INTO t VALUES (2)", &ctx).unwrap();
        let e = w
            .block_on(async {
                let q = LocalWarehouse::single_query("SELECT id FROM t WHERE id <> 1", "DELETE")?;
                let (df, _) = w.plan_query(q, &ctx).await?;
                w.write_frame(&id, None, WriteMode::Truncate, df, None, Some(read))
                    .await
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("changed by another writer"), "{e}");
        assert!(rows(&w, &ctx, "SELECT COUNT(*) AS n FROM t").contains("| 2 |"));
    }
}
