//! The warehouse's limits: what would otherwise overflow the stack, exhaust
//! memory or run forever is refused with an error that names the limit.
//!
//! - [`check_nesting`]: expressions nested deeper than
//!   [`MAX_EXPRESSION_DEPTH`] (a long chain `1 + 1 + …` is a deep tree) and
//!   statements with more than [`MAX_SET_OPERATIONS`] `UNION`s/`EXCEPT`s/
//!   `INTERSECT`s, before anything recursive walks them. Statements also
//!   run on a thread with a large stack ([`STATEMENT_STACK`]), so what is
//!   allowed is planned and run without overflowing it.
//! - [`check_nesting`] also refuses more than [`MAX_JOINS`] joins, whose
//!   planning time grows steeply (a chain of 400 took minutes).
//! - [`cap_string_functions`]: `REPEAT`, `LPAD`, `RPAD` and `REPLACE` refuse
//!   a result over [`MAX_STRING_BYTES`] (or a batch of results over
//!   [`MAX_BATCH_BYTES`], or a negative length) before allocating it.
//! - [`RecursionLimit`]: a recursive CTE stops with an error after
//!   [`MAX_RECURSION_ITERATIONS`] iterations, as in BigQuery.
//! - [`out_of_range`]: DATE/DATETIME/TIMESTAMP values outside BigQuery's
//!   0001-01-01 .. 9999-12-31, checked in results and in rows written.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Date64Type, TimeUnit};
use chrono::{DateTime, NaiveDate};
use datafusion::common::DataFusionError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Spanned, Statement, Visit, Visitor};
use futures_util::StreamExt;

use super::dialect::position;
use super::functions::{MAX_DATE_DAYS, MAX_TIMESTAMP_MICROS, MIN_DATE_DAYS, MIN_TIMESTAMP_MICROS};
use super::udf::DfResult;
use crate::error::{BqError, Result};

/// How deep expressions may nest (a chain `a + b + c + …` of n terms nests n deep).
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;
/// How many set operations (`UNION ALL`, …) one statement may have.
pub const MAX_SET_OPERATIONS: usize = 1_000;
/// The stack of the thread a statement is planned and run on: enough for
/// the deepest statement the limits above allow, in a debug build.
pub const STATEMENT_STACK: usize = 256 << 20;
/// The stack of the query engine's worker threads, which evaluate the expressions.
pub const WORKER_STACK: usize = 64 << 20;
/// The largest STRING value `REPEAT`, `LPAD`, `RPAD` and `REPLACE` make: 10 MiB.
pub const MAX_STRING_BYTES: u64 = 10 << 20;
/// The most bytes one call of `REPEAT`, `LPAD`, … makes for a batch of rows: 256 MiB.
pub const MAX_BATCH_BYTES: u64 = 256 << 20;
/// Joins per statement: DataFusion's planning time grows steeply with them
/// (measured in a debug build: 100 joins 2.4 s, 200 joins 19 s, 400 joins
/// 185 s), so more are refused rather than left to run for minutes.
pub const MAX_JOINS: usize = 100;

/// BigQuery's limit on the iterations of a recursive CTE.
pub const MAX_RECURSION_ITERATIONS: usize = 500;

/// Refuses a statement nested deeper, or with more set operations, than
/// the limits allow. Stops walking at the limit, so the walk itself stays
/// shallow.
pub fn check_nesting(stmt: &Statement) -> Result<()> {
    struct Depth {
        depth: usize,
        set_operations: usize,
        joins: usize,
    }
    impl Visitor for Depth {
        type Break = BqError;
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<BqError> {
            // Set operations form a left-deep tree: counted without recursion.
            let mut stack = vec![q.body.as_ref()];
            while let Some(body) = stack.pop() {
                match body {
                    SetExpr::SetOperation { left, right, .. } => {
                        self.set_operations += 1;
                        stack.push(left);
                        stack.push(right);
                    }
                    SetExpr::Select(select) => {
                        self.joins += select.from.iter().map(|t| t.joins.len()).sum::<usize>();
                    }
                    _ => {}
                }
            }
            if self.joins > MAX_JOINS {
                return ControlFlow::Break(BqError::Sql {
                    message: format!(
                        "the statement has {} joins; the local warehouse plans at most {MAX_JOINS} (planning time grows steeply beyond): join in stages, e.g. write intermediate tables in several statements",
                        self.joins
                    ),
                    position: None,
                });
            }
            if self.set_operations > MAX_SET_OPERATIONS {
                return ControlFlow::Break(BqError::Sql {
                    message: format!(
                        "the statement has {} set operations (UNION, EXCEPT, INTERSECT); the local warehouse allows at most {MAX_SET_OPERATIONS}: combine the rows another way (e.g. a table, UNNEST of an array, or several statements)",
                        self.set_operations
                    ),
                    position: None,
                });
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<BqError> {
            self.depth += 1;
            if self.depth > MAX_EXPRESSION_DEPTH {
                return ControlFlow::Break(BqError::Sql {
                    message: format!(
                        "an expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (a chain `a + b + …` of n terms nests n deep), the local warehouse's limit: split it up, e.g. into several columns or a subquery, or aggregate rows instead"
                    ),
                    position: position(e.span()),
                });
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<BqError> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
    }
    match stmt.visit(&mut Depth {
        depth: 0,
        set_operations: 0,
        joins: 0,
    }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Runs `f` on a new thread with a [`STATEMENT_STACK`] stack (and the
/// caller's tracing span), returning its result; a panic is passed on.
pub fn on_large_stack<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let span = tracing::Span::current();
    std::thread::scope(|s| {
        let thread = std::thread::Builder::new()
            .name("bigflow-statement".into())
            .stack_size(STATEMENT_STACK)
            .spawn_scoped(s, move || span.in_scope(f))
            .map_err(|e| {
                BqError::Engine(format!("cannot start a thread for the statement: {e}"))
            })?;
        match thread.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

// ---------------------------------------------------------------------------
// String sizes

/// How a capped function's result grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `REPEAT(s, n)`: `n` times `s`.
    Repeat,
    /// `LPAD/RPAD(s, n[, fill])`: `n` characters of `s` and `fill`.
    Pad,
    /// `REPLACE(s, from, to)`: every `from` in `s` becomes `to`.
    Replace,
}

/// A string function with a cap on its result's size.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

/// One argument, per row (a scalar is the same for every row).
struct Arg {
    values: ArrayRef,
    scalar: bool,
}

impl Arg {
    fn new(v: &ColumnarValue) -> DfResult<Arg> {
        Ok(match v {
            ColumnarValue::Array(a) => Arg {
                values: a.clone(),
                scalar: false,
            },
            ColumnarValue::Scalar(s) => Arg {
                values: s.to_array_of_size(1)?,
                scalar: true,
            },
        })
    }

    fn row(&self, i: usize) -> usize {
        if self.scalar { 0 } else { i }
    }

    /// Byte lengths of a string argument (NULL: 0).
    fn byte_lengths(&self) -> DfResult<Int64Array> {
        let lengths = arrow::compute::kernels::length::length(&self.values)?;
        Ok(cast(&lengths, &DataType::Int64)?.as_primitive().clone())
    }

    /// An integer argument (NULL: 0).
    fn integers(&self) -> DfResult<Int64Array> {
        Ok(cast(&self.values, &DataType::Int64)?.as_primitive().clone())
    }

    /// The string values (NULL: "").
    fn strings(&self) -> DfResult<Vec<String>> {
        let s = cast(&self.values, &DataType::Utf8)?;
        Ok(s.as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    }
}

/// What a call of a capped function would make: its largest value and
/// all its values together, in bytes (upper bounds).
struct Sizes {
    largest: u64,
    total: u64,
}

impl Capped {
    fn error(&self, message: String) -> DataFusionError {
        DataFusionError::Execution(format!("{}: {message}", self.inner.name().to_uppercase()))
    }

    /// The sizes of the results, before they are made; a negative count
    /// or length is an error (as in BigQuery; DataFusion would try to
    /// allocate for it).
    fn sizes(&self, args: &[ColumnarValue], rows: usize) -> DfResult<Sizes> {
        let args: Vec<Arg> = args.iter().map(Arg::new).collect::<DfResult<_>>()?;
        let mut sizes = Sizes {
            largest: 0,
            total: 0,
        };
        let Some(s) = args.first() else {
            return Ok(sizes);
        };
        let len = s.byte_lengths()?;
        let at = |a: &Int64Array, arg: &Arg, i: usize| -> u64 {
            let r = arg.row(i);
            if a.is_null(r) {
                0
            } else {
                a.value(r).max(0) as u64
            }
        };
        let mut add = |bytes: u64| {
            sizes.largest = sizes.largest.max(bytes);
            sizes.total = sizes.total.saturating_add(bytes);
        };
        match self.growth {
            Growth::Repeat | Growth::Pad => {
                let Some(n_arg) = args.get(1) else {
                    return Ok(sizes);
                };
                let n = n_arg.integers()?;
                if let Some(negative) = n.iter().flatten().find(|k| *k < 0) {
                    let what = match self.growth {
                        Growth::Repeat => "the number of repetitions",
                        _ => "the length",
                    };
                    return Err(self.error(format!("{what} {negative} is negative")));
                }
                // The widest character of each row's fill (default ' ').
                let widths: Option<(Vec<u64>, &Arg)> = match (self.growth, args.get(2)) {
                    (Growth::Pad, Some(fill)) => Some((
                        fill.strings()?
                            .iter()
                            .map(|f| f.chars().map(char::len_utf8).max().unwrap_or(1) as u64)
                            .collect(),
                        fill,
                    )),
                    _ => None,
                };
                for i in 0..rows {
                    let (l, k) = (at(&len, s, i), at(&n, n_arg, i));
                    add(match self.growth {
                        Growth::Repeat => l.saturating_mul(k),
                        _ => {
                            let w = widths.as_ref().map_or(1, |(w, a)| w[a.row(i)]);
                            l.saturating_add(k.saturating_mul(w))
                        }
                    });
                }
            }
            Growth::Replace => {
                let (Some(from_arg), Some(to_arg)) = (args.get(1), args.get(2)) else {
                    return Ok(sizes);
                };
                let (from, to) = (from_arg.byte_lengths()?, to_arg.byte_lengths()?);
                let mut texts: Option<(Vec<String>, Vec<String>)> = None;
                for i in 0..rows {
                    let (l, f, t) = (at(&len, s, i), at(&from, from_arg, i), at(&to, to_arg, i));
                    // At most l / f matches (l + 1 insertions for an empty `from`).
                    let bound = l.saturating_add((l / f.max(1) + 1).saturating_mul(t));
                    add(if t <= f {
                        l
                    } else if bound <= MAX_STRING_BYTES {
                        bound
                    } else {
                        // Count the matches to know better.
                        let (ss, fs) = match &texts {
                            Some(x) => x,
                            None => texts.insert((s.strings()?, from_arg.strings()?)),
                        };
                        let (text, pat) = (&ss[s.row(i)], &fs[from_arg.row(i)]);
                        let matches = if pat.is_empty() {
                            text.chars().count() as u64 + 1
                        } else {
                            text.matches(pat.as_str()).count() as u64
                        };
                        l.saturating_add(matches.saturating_mul(t))
                    });
                }
            }
        }
        Ok(sizes)
    }
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows.max(1);
        let Sizes { largest, total } = self.sizes(&args.args, rows)?;
        if largest > MAX_STRING_BYTES {
            return Err(self.error(format!(
                "the result would be {largest} bytes, more than the {MAX_STRING_BYTES} bytes (10 MiB) a STRING value may have in the local warehouse"
            )));
        }
        if total > MAX_BATCH_BYTES {
            return Err(self.error(format!(
                "the results of {rows} rows would be {total} bytes together, more than the {MAX_BATCH_BYTES} bytes (256 MiB) the local warehouse makes at once"
            )));
        }
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// Replaces `repeat`, `lpad`, `rpad` and `replace` in `ctx` with capped versions.
pub fn cap_string_functions(ctx: &SessionContext) {
    let functions = ctx.state().scalar_functions().clone();
    for (name, growth) in [
        ("repeat", Growth::Repeat),
        ("lpad", Growth::Pad),
        ("rpad", Growth::Pad),
        ("replace", Growth::Replace),
    ] {
        if let Some(inner) = functions.get(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Capped {
                inner: inner.clone(),
                growth,
            }));
        }
    }
}

// ---------------------------------------------------------------------------
// Recursive CTEs

/// A physical optimizer rule: each recursive CTE counts its iterations and
/// fails once an iteration beyond [`MAX_RECURSION_ITERATIONS`] still
/// produces rows (DataFusion's own would run forever).
#[derive(Debug, Default)]
pub struct RecursionLimit;

impl PhysicalOptimizerRule for RecursionLimit {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|p| {
            let Some(r) = p.downcast_ref::<RecursiveQueryExec>() else {
                return Ok(Transformed::no(p));
            };
            if r.recursive_term().is::<Iterations>() {
                return Ok(Transformed::no(p));
            }
            let count = Arc::new(AtomicUsize::new(0));
            let wrap = |input: &Arc<dyn ExecutionPlan>, start: bool| -> Arc<dyn ExecutionPlan> {
                Arc::new(Iterations {
                    input: input.clone(),
                    name: r.name().to_string(),
                    count: count.clone(),
                    start,
                })
            };
            let limited = RecursiveQueryExec::try_new(
                r.name().to_string(),
                r.schema(),
                wrap(r.static_term(), true),
                wrap(r.recursive_term(), false),
                r.is_distinct(),
            )?;
            Ok(Transformed::yes(Arc::new(limited) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "bigflow_recursion_limit"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Counts the executions of a recursive CTE's recursive term (`start`:
/// wraps the static term, whose execution starts the count again).
#[derive(Debug)]
struct Iterations {
    input: Arc<dyn ExecutionPlan>,
    name: String,
    count: Arc<AtomicUsize>,
    start: bool,
}

impl DisplayAs for Iterations {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RecursionLimitExec: {}, at most {MAX_RECURSION_ITERATIONS} iterations",
            if self.start { "start" } else { "iteration" }
        )
    }
}

impl ExecutionPlan for Iterations {
    fn name(&self) -> &str {
        "RecursionLimitExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "RecursionLimitExec has one child".into(),
            ));
        }
        Ok(Arc::new(Iterations {
            input: children.swap_remove(0),
            name: self.name.clone(),
            count: self.count.clone(),
            start: self.start,
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if self.start {
            self.count.store(0, Ordering::SeqCst);
            return self.input.execute(partition, context);
        }
        let iteration = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let stream = self.input.execute(partition, context)?;
        if iteration <= MAX_RECURSION_ITERATIONS {
            return Ok(stream);
        }
        // One more iteration is allowed to find that there is nothing left.
        let name = self.name.clone();
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.map(move |batch| match batch {
                Ok(b) if b.num_rows() > 0 => Err(DataFusionError::Execution(format!(
                    "recursive query `{name}` still produces rows after {MAX_RECURSION_ITERATIONS} iterations, BigQuery's limit: make its recursive part stop (e.g. WHERE n < 100)"
                ))),
                other => other,
            }),
        )))
    }
}

// ---------------------------------------------------------------------------
// Date and time ranges

/// The first DATE/DATETIME/TIMESTAMP value of `array` (or of the arrays
/// nested in it) outside BigQuery's range 0001-01-01 .. 9999-12-31, shown.
pub fn out_of_range(array: &dyn Array) -> Option<String> {
    let bad = |v: i64, lo: i64, hi: i64| v < lo || v > hi;
    match array.data_type() {
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            a.iter()
                .flatten()
                .find(|d| bad(i64::from(*d), MIN_DATE_DAYS.into(), MAX_DATE_DAYS.into()))
                .map(|d| {
                    NaiveDate::from_num_days_from_ce_opt(d.saturating_add(719_163))
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| format!("{d} days from 1970-01-01"))
                })
        }
        DataType::Date64 => {
            let a = array.as_primitive::<Date64Type>();
            let (lo, hi) = (MIN_TIMESTAMP_MICROS / 1000, MAX_TIMESTAMP_MICROS / 1000);
            a.iter()
                .flatten()
                .find(|v| bad(*v, lo, hi))
                .map(|v| format!("{v} ms from 1970-01-01"))
        }
        DataType::Timestamp(unit, _) => {
            let per_micro = match unit {
                TimeUnit::Second => 1_000_000,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1,
                // ±292 years around 1970: always in range.
                TimeUnit::Nanosecond => return None,
            };
            let (lo, hi) = (
                MIN_TIMESTAMP_MICROS / per_micro,
                MAX_TIMESTAMP_MICROS / per_micro,
            );
            let values = cast(array, &DataType::Int64).ok()?;
            values
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .flatten()
                .find(|v| bad(*v, lo, hi))
                .map(|v| {
                    v.checked_mul(per_micro)
                        .and_then(DateTime::from_timestamp_micros)
                        .map(|t| t.naive_utc().to_string())
                        .unwrap_or_else(|| format!("{v} {unit:?}s from 1970-01-01"))
                })
        }
        DataType::List(_) => out_of_range(array.as_list::<i32>().values()),
        DataType::LargeList(_) => out_of_range(array.as_list::<i64>().values()),
        DataType::FixedSizeList(..) => out_of_range(array.as_fixed_size_list().values()),
        // A RANGE: its bounds, not the sentinels of its unbounded sides.
        DataType::Struct(_) if crate::range::element_of(array.data_type()).is_some() => {
            let s = array.as_struct();
            let element = crate::range::element_of(array.data_type())?;
            let (lo, hi) = match element {
                crate::range::Element::Date => (i64::from(MIN_DATE_DAYS), i64::from(MAX_DATE_DAYS)),
                _ => (MIN_TIMESTAMP_MICROS, MAX_TIMESTAMP_MICROS),
            };
            (0..s.len())
                .filter(|i| s.is_valid(*i))
                .flat_map(|i| {
                    let (a, b) = crate::range::bounds(s, i);
                    [a, b]
                })
                .flatten()
                .find(|v| bad(*v, lo, hi))
                .map(|v| crate::range::bound_text(element, Some(v)))
        }
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .find_map(|c| out_of_range(c.as_ref())),
        _ => None,
    }
}

/// The error for a value [`out_of_range`] found in `column`.
pub fn out_of_range_error(column: &str, value: &str, table: Option<&str>) -> BqError {
    let place = match table {
        Some(t) => format!("writing into `{t}`, column `{column}`"),
        None => format!("column `{column}` of the result"),
    };
    BqError::Engine(format!(
        "{place}: the value {value} is out of range (BigQuery dates and timestamps go from 0001-01-01 to 9999-12-31)"
    ))
}
