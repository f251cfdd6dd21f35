//! INT64 arithmetic that fails on overflow, as in BigQuery, instead of
//! wrapping around as DataFusion's does.
//!
//! - [`CheckedInt64`], an analyzer rule, turns every `a + b`, `a - b`,
//!   `a * b` and `-a` of INT64 values in a plan (after type coercion, so the
//!   types are known) into the UDFs `bq_int64_add`, `bq_int64_sub`,
//!   `bq_int64_mul` and `bq_int64_neg`, which use Arrow's checked kernels.
//!   Constant folding evaluates them too: an overflow there leaves the call
//!   in the plan, so the error comes when the query runs, as BigQuery's does.
//! - [`CheckedSum`] replaces the `sum` aggregate: the same as DataFusion's,
//!   but an INT64 sum (plain, DISTINCT, grouped or in a window) that leaves
//!   the INT64 range is an error.
//!
//! The error says `int64 overflow` and the operation, like BigQuery's.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::compute::kernels::numeric;
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, ScalarValue};
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, BinaryExpr, ColumnarValue, Documentation, EmitTo,
    Expr, ExprSchemable, GroupsAccumulator, LogicalPlan, Operator, ReversedUDAF, ScalarUDF,
    Signature, Volatility, create_udf, utils::AggregateOrderSensitivity,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;

type DfResult<T> = datafusion::common::Result<T>;

fn overflow(what: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("int64 overflow: {what}"))
}

/// Arrow's overflow error as BigQuery's message; other errors as they are.
fn arrow_error(e: ArrowError) -> DataFusionError {
    match e {
        ArrowError::ArithmeticOverflow(m) => {
            overflow(m.trim_start_matches("Overflow happened on: "))
        }
        other => DataFusionError::ArrowError(Box::new(other), None),
    }
}

type Kernel =
    fn(&dyn arrow::array::Datum, &dyn arrow::array::Datum) -> Result<ArrayRef, ArrowError>;

/// A binary INT64 UDF computing with `kernel` (a checked Arrow kernel).
fn binary_udf(name: &str, kernel: Kernel) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int64, DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalars = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let out = kernel(&arrays[0], &arrays[1]).map_err(arrow_error)?;
            if scalars {
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            } else {
                Ok(ColumnarValue::Array(out))
            }
        }),
    )
}

fn neg_udf() -> ScalarUDF {
    create_udf(
        "bq_int64_neg",
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| match &args[0] {
            ColumnarValue::Scalar(ScalarValue::Int64(v)) => {
                let v = v
                    .map(|v| {
                        v.checked_neg()
                            .ok_or_else(|| overflow(format_args!("-({v})")))
                    })
                    .transpose()?;
                Ok(ColumnarValue::Scalar(ScalarValue::Int64(v)))
            }
            other => {
                let a = other.to_array(1)?;
                Ok(ColumnarValue::Array(numeric::neg(&a).map_err(arrow_error)?))
            }
        }),
    )
}

/// The analyzer rule of the module documentation.
#[derive(Debug)]
pub struct CheckedInt64 {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
    neg: Arc<ScalarUDF>,
}

impl Default for CheckedInt64 {
    fn default() -> Self {
        CheckedInt64 {
            add: Arc::new(binary_udf("bq_int64_add", numeric::add)),
            sub: Arc::new(binary_udf("bq_int64_sub", numeric::sub)),
            mul: Arc::new(binary_udf("bq_int64_mul", numeric::mul)),
            neg: Arc::new(neg_udf()),
        }
    }
}

impl CheckedInt64 {
    /// The UDFs the rule calls (registered so plans can be shown and re-planned).
    pub fn udfs(&self) -> Vec<Arc<ScalarUDF>> {
        vec![
            self.add.clone(),
            self.sub.clone(),
            self.mul.clone(),
            self.neg.clone(),
        ]
    }

    /// Whether `e` is an INT64 value. The rule's own calls are answered
    /// without recursion, so a long chain `1 + 1 + …` is not typed again
    /// and again.
    fn is_int64(&self, e: &Expr, schema: &DFSchema) -> bool {
        match e {
            Expr::ScalarFunction(f) if f.func.name().starts_with("bq_int64_") => true,
            Expr::Literal(v, _) => v.data_type() == DataType::Int64,
            e => e.get_type(schema).is_ok_and(|t| t == DataType::Int64),
        }
    }

    fn rewrite(&self, e: Expr, schema: &DFSchema) -> Transformed<Expr> {
        let call = |udf: &Arc<ScalarUDF>, args: Vec<Expr>| {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                udf.clone(),
                args,
            )))
        };
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
                    && self.is_int64(&left, schema)
                    && self.is_int64(&right, schema) =>
            {
                let udf = match op {
                    Operator::Plus => &self.add,
                    Operator::Minus => &self.sub,
                    _ => &self.mul,
                };
                call(udf, vec![*left, *right])
            }
            Expr::Negative(inner) if self.is_int64(&inner, schema) => call(&self.neg, vec![*inner]),
            e => Transformed::no(e),
        }
    }
}

impl AnalyzerRule for CheckedInt64 {
    fn name(&self) -> &str {
        "bigflow_checked_int64"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            // The columns expressions of this node may refer to.
            let schema = merge_schema(&plan.inputs());
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| Ok(self.rewrite(e, &schema)))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .data()
    }
}

/// DataFusion's `sum`, with INT64 sums checked for overflow.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct CheckedSum {
    inner: Sum,
}

impl CheckedSum {
    /// As an aggregate function, named `sum` (registering it replaces DataFusion's).
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(CheckedSum::default())
    }
}

fn is_int64_sum(args: &AccumulatorArgs) -> bool {
    args.return_field.data_type() == &DataType::Int64
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        match (is_int64_sum(&args), args.is_distinct) {
            (true, false) => Ok(Box::new(SumAccumulator::default())),
            (true, true) => Ok(Box::new(DistinctSumAccumulator::default())),
            _ => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        if is_int64_sum(&args) {
            Ok(Box::new(SumGroups::default()))
        } else {
            self.inner.create_groups_accumulator(args)
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if is_int64_sum(&args) && !args.is_distinct {
            Ok(Box::new(SumAccumulator::default()))
        } else {
            self.inner.create_sliding_accumulator(args)
        }
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> datafusion::logical_expr::SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}

fn int64s(values: &[ArrayRef]) -> DfResult<&Int64Array> {
    values
        .first()
        .and_then(|a| a.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| DataFusionError::Internal("SUM: expected INT64 values".into()))
}

fn add(sum: Option<i64>, v: i64) -> DfResult<Option<i64>> {
    match sum {
        None => Ok(Some(v)),
        Some(s) => s
            .checked_add(v)
            .map(Some)
            .ok_or_else(|| overflow(format_args!("SUM ({s} + {v})"))),
    }
}

/// An INT64 `SUM` (also over a sliding window frame).
#[derive(Debug, Default)]
struct SumAccumulator {
    sum: Option<i64>,
    /// Non-NULL values in the frame (a frame that loses them all is NULL again).
    count: u64,
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for v in int64s(values)?.iter().flatten() {
            self.sum = add(self.sum, v)?;
            self.count += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for v in int64s(values)?.iter().flatten() {
            let s = self.sum.unwrap_or(0);
            self.sum = Some(
                s.checked_sub(v)
                    .ok_or_else(|| overflow(format_args!("SUM ({s} - {v})")))?,
            );
            self.count = self.count.saturating_sub(1);
            if self.count == 0 {
                self.sum = None;
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Int64(self.sum))
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(self.sum)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.update_batch(states)
    }

    fn size(&self) -> usize {
        size_of::<Self>()
    }
}

/// An INT64 `SUM(DISTINCT …)`; its state is the list of distinct values,
/// as DataFusion's.
#[derive(Debug, Default)]
struct DistinctSumAccumulator {
    values: HashSet<i64>,
}

impl Accumulator for DistinctSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.values.extend(int64s(values)?.iter().flatten());
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let mut sum = None;
        for v in &self.values {
            sum = add(sum, *v)?;
        }
        Ok(ScalarValue::Int64(sum))
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|v| ScalarValue::Int64(Some(*v)))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &DataType::Int64,
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let Some(lists) = states.first().and_then(|a| a.as_list_opt::<i32>()) else {
            return Err(DataFusionError::Internal(
                "SUM(DISTINCT): expected a list state".into(),
            ));
        };
        for list in lists.iter().flatten() {
            self.update_batch(&[list])?;
        }
        Ok(())
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.values.capacity() * size_of::<i64>()
    }
}

/// INT64 `SUM … GROUP BY`: a sum per group, `None` while a group has no
/// non-NULL value.
#[derive(Debug, Default)]
struct SumGroups {
    sums: Vec<Option<i64>>,
}

impl SumGroups {
    fn add(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total: usize,
    ) -> DfResult<()> {
        let values = int64s(values)?;
        self.sums.resize(total, None);
        for (i, &g) in groups.iter().enumerate() {
            if values.is_null(i) || filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
                continue;
            }
            self.sums[g] = add(self.sums[g], values.value(i))?;
        }
        Ok(())
    }
}

impl GroupsAccumulator for SumGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.add(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        Ok(Arc::new(Int64Array::from(
            emit_to.take_needed(&mut self.sums),
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.add(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let values = int64s(values)?;
        let state: Int64Array = values
            .iter()
            .enumerate()
            .map(|(i, v)| v.filter(|_| opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i))))
            .collect();
        Ok(vec![Arc::new(state)])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<Option<i64>>()
    }
}

/// Registers the checked arithmetic and `sum` in `ctx`.
pub fn register(ctx: &SessionContext) {
    let rule = CheckedInt64::default();
    for f in rule.udfs() {
        ctx.register_udf(f.as_ref().clone());
    }
    ctx.add_analyzer_rule(Arc::new(rule));
    ctx.register_udaf(CheckedSum::udaf());
}
