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
//!
//! The same rule, seeing the types, also gives BigQuery's meaning where
//! DataFusion's differs: `/` of INT64/FLOAT64 values divides as FLOAT64
//! (`bq_divide`: by zero and on overflow an error); `CAST(s AS BOOL)` of a
//! STRING takes only `true`/`false`; FLOAT64 → INT64 casts round half away
//! from zero; FLOAT64/NUMERIC/DATETIME/TIMESTAMP/RANGE → STRING casts write
//! BigQuery's text; NUMERIC arithmetic stays NUMERIC(38, 9); STRING → DATE/
//! TIME/DATETIME/INT64/NUMERIC and FLOAT64 → NUMERIC casts convert as
//! BigQuery does ([`super::casts`]); DATETIME/TIMESTAMP compared with a
//! STRING compare in microseconds; scalar subqueries may be NULL.

use std::collections::HashSet;
use std::sync::Arc;

use super::udf::DfResult;
use arrow::array::Float64Array;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::compute::kernels::numeric;
use arrow::datatypes::{DataType, FieldRef, Float64Type, Int64Type};
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

/// `a op b` of FLOAT64 values as IEEE compares them, as BigQuery does: a
/// NaN operand makes the comparison false (`!=`: true), a NULL one NULL
/// (Arrow's kernels order NaN above everything). One call, so an operand
/// that is a subquery is planned once.
fn ieee_compare_udf(op: Operator) -> ScalarUDF {
    let (name, f): (&str, fn(f64, f64) -> bool) = match op {
        Operator::Lt => ("bq_float_lt", |a, b| a < b),
        Operator::LtEq => ("bq_float_le", |a, b| a <= b),
        Operator::Gt => ("bq_float_gt", |a, b| a > b),
        Operator::GtEq => ("bq_float_ge", |a, b| a >= b),
        Operator::Eq => ("bq_float_eq", |a, b| a == b),
        _ => ("bq_float_ne", |a, b| a != b),
    };
    create_udf(
        name,
        vec![DataType::Float64, DataType::Float64],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalars = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (x, y) = (
                arrays[0].as_primitive::<Float64Type>(),
                arrays[1].as_primitive::<Float64Type>(),
            );
            let values =
                arrow::buffer::BooleanBuffer::collect_bool(x.len(), |i| f(x.value(i), y.value(i)));
            let nulls = arrow::buffer::NullBuffer::union(x.nulls(), y.nulls());
            let out: ArrayRef = Arc::new(BooleanArray::new(values, nulls));
            if scalars {
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            } else {
                Ok(ColumnarValue::Array(out))
            }
        }),
    )
}

/// `a / b` of FLOAT64 values (INT64 operands are cast first: BigQuery's `/`
/// always divides as FLOAT64): division by zero and a finite quotient
/// too large for FLOAT64 are errors, as in BigQuery.
fn divide_udf() -> ScalarUDF {
    create_udf(
        "bq_divide",
        vec![DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let scalars = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (x, y) = (
                arrays[0].as_primitive::<Float64Type>(),
                arrays[1].as_primitive::<Float64Type>(),
            );
            let n = x.len().max(y.len());
            let at = |a: &Float64Array, i: usize| {
                let i = if a.len() == 1 { 0 } else { i };
                (!a.is_null(i)).then(|| a.value(i))
            };
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match (at(x, i), at(y, i)) {
                    (Some(a), Some(b)) => {
                        if b == 0.0 {
                            return Err(DataFusionError::Execution(format!(
                                "division by zero: {a} / {b}"
                            )));
                        }
                        let q = a / b;
                        if q.is_infinite() && a.is_finite() && b.is_finite() {
                            return Err(DataFusionError::Execution(format!(
                                "double overflow: {a:e} / {b:e}"
                            )));
                        }
                        Some(q)
                    }
                    _ => None,
                });
            }
            let out: ArrayRef = Arc::new(Float64Array::from(out));
            if scalars {
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            } else {
                Ok(ColumnarValue::Array(out))
            }
        }),
    )
}

/// `LOG(x, base)`, BigQuery's argument order (DataFusion's `log` takes the
/// base first): NaN for a NaN argument or an infinite base, an error for a
/// finite value or base that is not positive, or a base of 1.
fn log_udf() -> ScalarUDF {
    create_udf(
        "bq_log",
        vec![DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let scalars = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (x, y) = (
                arrays[0].as_primitive::<Float64Type>(),
                arrays[1].as_primitive::<Float64Type>(),
            );
            let mut out = Vec::with_capacity(x.len());
            for i in 0..x.len() {
                if x.is_null(i) || y.is_null(i) {
                    out.push(None);
                    continue;
                }
                let (v, base) = (x.value(i), y.value(i));
                let r = if v.is_nan() || base.is_nan() || base.is_infinite() {
                    f64::NAN
                } else if v.is_infinite() {
                    v.ln() / base.ln()
                } else if v <= 0.0 || base <= 0.0 || base == 1.0 {
                    return Err(DataFusionError::Execution(format!(
                        "LOG({v}, {base}): the value and the base must be positive and the base not 1"
                    )));
                } else {
                    v.ln() / base.ln()
                };
                out.push(Some(r));
            }
            let out: ArrayRef = Arc::new(Float64Array::from(out));
            if scalars {
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            } else {
                Ok(ColumnarValue::Array(out))
            }
        }),
    )
}

/// `IEEE_DIVIDE(a, b)`: FLOAT64 division as IEEE 754 has it (by zero:
/// infinity or NaN, never an error).
fn ieee_divide_udf() -> ScalarUDF {
    create_udf(
        "bq_ieee_divide",
        vec![DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let scalars = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let out = numeric::div(&arrays[0], &arrays[1]).map_err(arrow_error)?;
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

/// The key FLOAT64 values sort by in BigQuery's order (NULL, NaN, -inf,
/// …, +inf ascending) under Arrow's total order, which puts NaN last: a NaN
/// becomes a negative NaN (below -inf in that order, also when an offset
/// of a RANGE frame is added to it), -0 becomes 0 (its peer in BigQuery).
fn float_order_udf() -> ScalarUDF {
    fn key(v: f64) -> f64 {
        if v.is_nan() { -f64::NAN } else { v + 0.0 }
    }
    create_udf(
        FLOAT_ORDER,
        vec![DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| match &args[0] {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => {
                Ok(ColumnarValue::Scalar(ScalarValue::Float64(v.map(key))))
            }
            other => {
                let a = other.to_array(1)?;
                let a = a.as_primitive_opt::<Float64Type>().ok_or_else(|| {
                    DataFusionError::Internal(format!("{FLOAT_ORDER}: not FLOAT64"))
                })?;
                Ok(ColumnarValue::Array(Arc::new(
                    a.unary::<_, Float64Type>(key),
                )))
            }
        }),
    )
}

const FLOAT_ORDER: &str = "bq_float_order";

/// The analyzer rule of the module documentation.
#[derive(Debug)]
pub struct CheckedInt64 {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
    neg: Arc<ScalarUDF>,
    div: Arc<ScalarUDF>,
    string_to_bool: Arc<ScalarUDF>,
    safe_string_to_bool: Arc<ScalarUDF>,
    round: Arc<ScalarUDF>,
    to_string: Arc<ScalarUDF>,
    float_order: Arc<ScalarUDF>,
    /// [`ieee_compare_udf`] of each comparison operator.
    float_compare: Vec<(Operator, Arc<ScalarUDF>)>,
    /// BigQuery's casts ([`super::casts`]), each as `[plain, safe]`.
    to_civil: Vec<(super::casts::Civil, [Arc<ScalarUDF>; 2])>,
    to_int64: [Arc<ScalarUDF>; 2],
    decimal_text: Arc<ScalarUDF>,
    float_decimal_text: [Arc<ScalarUDF>; 2],
    nullable: Arc<ScalarUDF>,
}

impl Default for CheckedInt64 {
    fn default() -> Self {
        use super::casts::{self, Civil};
        CheckedInt64 {
            add: Arc::new(binary_udf("bq_int64_add", numeric::add)),
            sub: Arc::new(binary_udf("bq_int64_sub", numeric::sub)),
            mul: Arc::new(binary_udf("bq_int64_mul", numeric::mul)),
            neg: Arc::new(neg_udf()),
            div: Arc::new(divide_udf()),
            string_to_bool: Arc::new(super::typed::string_to_bool(false)),
            safe_string_to_bool: Arc::new(super::typed::string_to_bool(true)),
            round: datafusion::functions::math::round(),
            to_string: Arc::new(super::typed::to_string_udf()),
            float_order: Arc::new(float_order_udf()),
            float_compare: [
                Operator::Lt,
                Operator::LtEq,
                Operator::Gt,
                Operator::GtEq,
                Operator::Eq,
                Operator::NotEq,
            ]
            .into_iter()
            .map(|op| (op, Arc::new(ieee_compare_udf(op))))
            .collect(),
            to_civil: [Civil::Date, Civil::Time, Civil::DateTime]
                .into_iter()
                .map(|k| {
                    (
                        k,
                        [
                            Arc::new(casts::string_to_civil(k, false)),
                            Arc::new(casts::string_to_civil(k, true)),
                        ],
                    )
                })
                .collect(),
            to_int64: [
                Arc::new(casts::string_to_int64(false)),
                Arc::new(casts::string_to_int64(true)),
            ],
            decimal_text: Arc::new(casts::decimal_text_udf()),
            float_decimal_text: [
                Arc::new(casts::float_decimal_text_udf(false)),
                Arc::new(casts::float_decimal_text_udf(true)),
            ],
            nullable: Arc::new(casts::nullable_udf()),
        }
    }
}

/// Whether `e` may be a FLOAT64 NaN: `false` only where it cannot (a value
/// of a type without NaN, a literal that is not NaN, a cast of an INT64 or
/// NUMERIC, or `+`, `-`, `*` of finite values, which may overflow to an
/// infinity but never give NaN).
fn may_be_nan(e: &Expr, schema: &DFSchema) -> bool {
    fn exact(t: &DataType) -> bool {
        t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
    }
    fn finite(e: &Expr, schema: &DFSchema) -> bool {
        match e {
            Expr::Literal(v, _) => match v {
                ScalarValue::Float64(f) => f.is_none_or(f64::is_finite),
                ScalarValue::Float32(f) => f.is_none_or(f32::is_finite),
                ScalarValue::Null => true,
                v => exact(&v.data_type()),
            },
            Expr::Cast(datafusion::logical_expr::Cast { expr, .. })
            | Expr::TryCast(datafusion::logical_expr::TryCast { expr, .. }) => {
                match expr.get_type(schema) {
                    Ok(t) if t.is_floating() => finite(expr, schema),
                    Ok(t) => exact(&t),
                    Err(_) => false,
                }
            }
            e => e.get_type(schema).is_ok_and(|t| exact(&t)),
        }
    }
    if e.get_type(schema).is_ok_and(|t| !t.is_floating()) {
        return false;
    }
    match e {
        Expr::Literal(..) | Expr::Cast(_) | Expr::TryCast(_) => !finite(e, schema),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Plus | Operator::Minus | Operator::Multiply,
            right,
        }) => !(finite(left, schema) && finite(right, schema)),
        _ => true,
    }
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

fn decimal_scale(t: &DataType) -> Option<i8> {
    match t {
        DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => Some(*s),
        _ => None,
    }
}

/// Whether a cast from `src` to `dst` must go field by field (a STRUCT
/// with a FLOAT64 field becoming NUMERIC, which Arrow's cast of the whole
/// struct would convert inexactly).
fn struct_cast_by_field(src: &DataType, dst: &DataType) -> bool {
    match (src, dst) {
        (DataType::Struct(a), DataType::Struct(b)) if a.len() == b.len() => {
            a.iter().zip(b.iter()).any(|(x, y)| {
                (x.data_type().is_floating() && is_decimal(y.data_type()))
                    || struct_cast_by_field(x.data_type(), y.data_type())
            })
        }
        _ => false,
    }
}

fn is_float_or_int(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || *t == DataType::Null
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

impl CheckedInt64 {
    /// BigQuery's order of FLOAT64 values: NULL, NaN, -inf, …, +inf
    /// ascending (Arrow's puts NaN last): each FLOAT64 key is sorted by
    /// [`float_order_udf`]'s key.
    fn float_order(
        &self,
        keys: Vec<datafusion::logical_expr::SortExpr>,
        schema: &DFSchema,
    ) -> Transformed<Vec<datafusion::logical_expr::SortExpr>> {
        let mut changed = false;
        let keys = keys
            .into_iter()
            .map(|mut k| {
                let keyed =
                    matches!(&k.expr, Expr::ScalarFunction(f) if f.func.name() == FLOAT_ORDER);
                if !keyed && k.expr.get_type(schema).is_ok_and(|t| t.is_floating()) {
                    k.expr = Expr::ScalarFunction(ScalarFunction::new_udf(
                        self.float_order.clone(),
                        vec![datafusion::logical_expr::cast(k.expr, DataType::Float64)],
                    ));
                    changed = true;
                }
                k
            })
            .collect();
        if changed {
            Transformed::yes(keys)
        } else {
            Transformed::no(keys)
        }
    }

    /// A window function's ORDER BY in BigQuery's order ([`Self::float_order`]);
    /// a RANGE frame with offsets needs a numeric key (an error otherwise,
    /// as in BigQuery). With `widen` (the window node has such a frame
    /// over an INT64 key, see [`int64_range_offsets`]) the INT64 key is
    /// compared as NUMERIC(38, 0), so that `key ± offset` beyond INT64's
    /// range bounds the frame as BigQuery's does instead of wrapping
    /// around (all functions of the node alike: they share one sort).
    fn window_order(&self, e: Expr, schema: &DFSchema, widen: bool) -> DfResult<Transformed<Expr>> {
        use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
        let mut w = match e {
            Expr::WindowFunction(w) => w,
            // ARRAY_AGG(x ORDER BY f), STRING_AGG(…): the same order.
            Expr::AggregateFunction(mut a) if !a.params.order_by.is_empty() => {
                let order = self.float_order(std::mem::take(&mut a.params.order_by), schema);
                a.params.order_by = order.data;
                let e = Expr::AggregateFunction(a);
                return Ok(if order.transformed {
                    Transformed::yes(e)
                } else {
                    Transformed::no(e)
                });
            }
            e => return Ok(Transformed::no(e)),
        };
        let mut changed = false;
        let frame = &mut w.params.window_frame;
        if range_offsets(frame)
            && let [key] = w.params.order_by.as_slice()
        {
            let t = key.expr.get_type(schema)?;
            if !(t.is_integer()
                || t.is_floating()
                || matches!(
                    t,
                    DataType::Decimal128(..) | DataType::Decimal256(..) | DataType::Null
                ))
            {
                return Err(DataFusionError::Plan(format!(
                    "{}ORDER BY key must be numeric in a RANGE-based window with OFFSET PRECEDING or OFFSET FOLLOWING boundaries, but has type {}",
                    super::INVALID_QUERY,
                    super::bq_name(&t)
                )));
            }
        }
        if widen && let [key] = w.params.order_by.as_mut_slice() {
            let t = key.expr.get_type(schema)?;
            if t == DataType::Int64 {
                let wide = DataType::Decimal128(38, 0);
                let widen = |b: &mut WindowFrameBound| -> DfResult<()> {
                    match b {
                        WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) => {
                            *v = v.cast_to(&wide)?;
                        }
                        WindowFrameBound::CurrentRow => {}
                    }
                    Ok(())
                };
                if frame.units == WindowFrameUnits::Range {
                    widen(&mut frame.start_bound)?;
                    widen(&mut frame.end_bound)?;
                }
                key.expr = datafusion::logical_expr::cast(key.expr.clone(), wide.clone());
                changed = true;
            }
        }
        let order = self.float_order(std::mem::take(&mut w.params.order_by), schema);
        w.params.order_by = order.data;
        let e = Expr::WindowFunction(w);
        Ok(if changed || order.transformed {
            Transformed::yes(e)
        } else {
            Transformed::no(e)
        })
    }

    /// `l op r` where a NaN operand makes the comparison false (true for
    /// `!=`); a NULL operand makes it NULL, as any comparison.
    /// Where neither operand can be NaN (a NUMERIC or INT64 column compared
    /// with a FLOAT64 literal, say) it stays a plain comparison, which
    /// DataFusion can push into the Parquet scan.
    fn nan_aware(&self, l: Expr, op: Operator, r: Expr, schema: &DFSchema) -> Expr {
        if !may_be_nan(&l, schema) && !may_be_nan(&r, schema) {
            return Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)));
        }
        match self.float_compare.iter().find(|(o, _)| *o == op) {
            Some((_, udf)) => Expr::ScalarFunction(ScalarFunction::new_udf(
                udf.clone(),
                vec![
                    datafusion::logical_expr::cast(l, DataType::Float64),
                    datafusion::logical_expr::cast(r, DataType::Float64),
                ],
            )),
            None => Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r))),
        }
    }

    /// The UDFs the rule calls (registered so plans can be shown and re-planned).
    pub fn udfs(&self) -> Vec<Arc<ScalarUDF>> {
        vec![
            self.add.clone(),
            self.sub.clone(),
            self.mul.clone(),
            self.neg.clone(),
            self.div.clone(),
            self.string_to_bool.clone(),
            self.safe_string_to_bool.clone(),
            self.to_string.clone(),
            self.float_order.clone(),
        ]
        .into_iter()
        .chain(self.float_compare.iter().map(|(_, f)| f.clone()))
        .collect()
    }

    /// BigQuery's conversion of `e` to `dst` where Arrow's cast differs
    /// (`safe`: SAFE_CAST, NULL for a bad value), `None` where Arrow's is
    /// BigQuery's.
    fn bq_cast(&self, e: Expr, dst: &DataType, safe: bool, schema: &DFSchema) -> Option<Expr> {
        let src = e.get_type(schema).ok()?;
        let call = |udf: &Arc<ScalarUDF>, args: Vec<Expr>| {
            Expr::ScalarFunction(ScalarFunction::new_udf(udf.clone(), args))
        };
        let retyped = |e: Expr, made: DataType| {
            if made == *dst {
                e
            } else if safe {
                datafusion::logical_expr::try_cast(e, dst.clone())
            } else {
                datafusion::logical_expr::cast(e, dst.clone())
            }
        };
        let recast = |e: Expr| {
            if safe {
                datafusion::logical_expr::try_cast(e, dst.clone())
            } else {
                datafusion::logical_expr::cast(e, dst.clone())
            }
        };
        if is_string(&src) {
            if let Some(kind) = super::casts::Civil::of(dst) {
                let (_, udfs) = self.to_civil.iter().find(|(k, _)| *k == kind)?;
                let made = call(&udfs[safe as usize], vec![e]);
                return Some(retyped(made, kind.data_type()));
            }
            if *dst == DataType::Int64 {
                return Some(call(&self.to_int64[safe as usize], vec![e]));
            }
            if is_decimal(dst) {
                if matches!(&e, Expr::ScalarFunction(f) if f.func.name() == "bq_decimal_text") {
                    return None;
                }
                return Some(recast(call(&self.decimal_text, vec![e])));
            }
            return None;
        }
        // (Not into a type only DataFusion's coercion makes, DECIMAL(38, 15):
        // `uncoerce_decimals`/`uncoerce_union` retype those, seeing the cast.)
        if src.is_floating()
            && let Some(scale) = decimal_scale(dst)
            && !coerced_decimal(dst)
        {
            let text = call(
                &self.float_decimal_text[safe as usize],
                vec![e, datafusion::logical_expr::lit(i64::from(scale.max(0)))],
            );
            return Some(recast(text));
        }
        if struct_cast_by_field(&src, dst)
            && let (DataType::Struct(from), DataType::Struct(to)) = (&src, dst)
        {
            let mut args = Vec::with_capacity(to.len() * 2);
            for (a, b) in from.iter().zip(to.iter()) {
                let field =
                    datafusion::functions::core::expr_fn::get_field(e.clone(), a.name().as_str());
                let converted = self
                    .bq_cast(field.clone(), b.data_type(), safe, schema)
                    .unwrap_or_else(|| {
                        if safe {
                            datafusion::logical_expr::try_cast(field, b.data_type().clone())
                        } else {
                            datafusion::logical_expr::cast(field, b.data_type().clone())
                        }
                    });
                args.push(datafusion::logical_expr::lit(b.name().as_str()));
                args.push(converted);
            }
            let fields = Expr::ScalarFunction(ScalarFunction::new_udf(
                datafusion::functions::core::named_struct(),
                args,
            ));
            let null = ScalarValue::try_from(dst).ok()?;
            let value = datafusion::logical_expr::when(e.is_null(), Expr::Literal(null, None))
                .otherwise(fields)
                .ok()?;
            return Some(datafusion::logical_expr::cast(value, dst.clone()));
        }
        None
    }

    /// A comparison's operand `e` in microseconds where type coercion made
    /// it nanoseconds (DataFusion compares a DATETIME or TIMESTAMP with a
    /// STRING as nanoseconds, which cannot hold years past 2262).
    fn in_micros(&self, e: &Expr, schema: &DFSchema) -> Option<Expr> {
        use arrow::datatypes::TimeUnit;
        let Expr::Cast(c) = e else {
            return None;
        };
        let DataType::Timestamp(TimeUnit::Nanosecond, tz) = c.field.data_type() else {
            return None;
        };
        let src = c.expr.get_type(schema).ok()?;
        match &src {
            DataType::Timestamp(TimeUnit::Microsecond, t) if t == tz => Some((*c.expr).clone()),
            t if is_string(t) => {
                let dst = DataType::Timestamp(TimeUnit::Microsecond, tz.clone());
                Some(
                    self.bq_cast((*c.expr).clone(), &dst, false, schema)
                        .unwrap_or_else(|| datafusion::logical_expr::cast((*c.expr).clone(), dst)),
                )
            }
            _ => None,
        }
    }

    /// The operands of a comparison in microseconds, if coercion made
    /// microseconds nanoseconds (see [`Self::in_micros`]) and all can be.
    fn compared_in_micros(&self, operands: &[&Expr], schema: &DFSchema) -> Option<Vec<Expr>> {
        use arrow::datatypes::TimeUnit;
        let widened = operands.iter().any(|e| {
            matches!(e, Expr::Cast(c)
            if matches!(c.field.data_type(), DataType::Timestamp(TimeUnit::Nanosecond, _))
                && c.expr.get_type(schema).is_ok_and(|t| {
                    matches!(t, DataType::Timestamp(TimeUnit::Microsecond, _))
                }))
        });
        if !widened {
            return None;
        }
        operands
            .iter()
            .map(|e| match e.get_type(schema) {
                Ok(DataType::Null) => Some((*e).clone()),
                _ => self.in_micros(e, schema),
            })
            .collect()
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
        // Comparisons of DATETIME/TIMESTAMP with STRING in microseconds.
        match &e {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(
                    op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                ) =>
            {
                if let Some(v) = self.compared_in_micros(&[left, right], schema)
                    && let [l, r] = &v[..]
                {
                    let (l, r) = (l.clone(), r.clone());
                    return Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(l),
                        *op,
                        Box::new(r),
                    )));
                }
            }
            Expr::Between(b) => {
                if let Some(v) = self.compared_in_micros(&[&b.expr, &b.low, &b.high], schema)
                    && let [x, low, high] = &v[..]
                {
                    let (x, low, high) = (x.clone(), low.clone(), high.clone());
                    return Transformed::yes(Expr::Between(
                        datafusion::logical_expr::expr::Between::new(
                            Box::new(x),
                            b.negated,
                            Box::new(low),
                            Box::new(high),
                        ),
                    ));
                }
            }
            _ => {}
        }
        let call = |udf: &Arc<ScalarUDF>, args: Vec<Expr>| {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                udf.clone(),
                args,
            )))
        };
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
                    && self.is_int64(&right, schema)
                    && self.is_int64(&left, schema) =>
            {
                let udf = match op {
                    Operator::Plus => &self.add,
                    Operator::Minus => &self.sub,
                    _ => &self.mul,
                };
                call(udf, vec![*left, *right])
            }
            Expr::Negative(inner) if self.is_int64(&inner, schema) => call(&self.neg, vec![*inner]),
            // BigQuery's `/` of INT64 and FLOAT64 values is FLOAT64 division
            // (`10 / 4` is 2.5; DIV(10, 4) divides INT64s), an error by zero.
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Divide,
                right,
            }) if right.get_type(schema).is_ok_and(|t| is_float_or_int(&t))
                && left.get_type(schema).is_ok_and(|t| is_float_or_int(&t)) =>
            {
                let f = |e: Expr| datafusion::logical_expr::cast(e, DataType::Float64);
                call(&self.div, vec![f(*left), f(*right)])
            }
            // IEEE comparisons of FLOAT64: NaN is unequal and unordered
            // (Arrow's total order puts it above everything).
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(
                    op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                ) && [&right, &left]
                    .iter()
                    .any(|e| e.get_type(schema).is_ok_and(|t| t.is_floating())) =>
            {
                Transformed::yes(self.nan_aware(*left, op, *right, schema))
            }
            Expr::Between(b)
                if [&b.expr, &b.low, &b.high]
                    .iter()
                    .any(|e| e.get_type(schema).is_ok_and(|t| t.is_floating())) =>
            {
                let within = Expr::and(
                    self.nan_aware((*b.expr).clone(), Operator::GtEq, *b.low, schema),
                    self.nan_aware(*b.expr, Operator::LtEq, *b.high, schema),
                );
                Transformed::yes(if b.negated {
                    datafusion::logical_expr::not(within)
                } else {
                    within
                })
            }
            // NUMERIC op NUMERIC is NUMERIC (DataFusion widens the scale of
            // products and quotients).
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(
                    op,
                    Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide
                ) && [&right, &left].iter().all(|e| {
                    e.get_type(schema).is_ok_and(|t| {
                        t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Null)
                    })
                }) && [&right, &left].iter().any(|e| {
                    e.get_type(schema)
                        .is_ok_and(|t| t == DataType::Decimal128(38, 9))
                }) && Expr::BinaryExpr(BinaryExpr::new(left.clone(), op, right.clone()))
                    .get_type(schema)
                    .is_ok_and(|t| t != DataType::Decimal128(38, 9)) =>
            {
                Transformed::yes(datafusion::logical_expr::cast(
                    Expr::BinaryExpr(BinaryExpr::new(left, op, right)),
                    DataType::Decimal128(38, 9),
                ))
            }
            // FLOAT64, NUMERIC, DATETIME and TIMESTAMP are written as
            // BigQuery writes them.
            Expr::Cast(c)
                if matches!(c.field.data_type(), DataType::Utf8 | DataType::Utf8View)
                    && c.expr.get_type(schema).is_ok_and(|t| {
                        matches!(
                            t,
                            DataType::Float64
                                | DataType::Float32
                                | DataType::Timestamp(..)
                                | DataType::Decimal128(..)
                                | DataType::Decimal256(..)
                        ) || crate::range::element_of(&t).is_some()
                    }) =>
            {
                let text = call(&self.to_string, vec![*c.expr]);
                match c.field.data_type() {
                    DataType::Utf8 => text,
                    other => text.update_data(|e| datafusion::logical_expr::cast(e, other.clone())),
                }
            }
            // Civil times, INT64 and NUMERIC from STRING, NUMERIC from
            // FLOAT64, as BigQuery converts them.
            Expr::Cast(c) => {
                let dst = c.field.data_type().clone();
                match self.bq_cast((*c.expr).clone(), &dst, false, schema) {
                    Some(e) => Transformed::yes(e),
                    None => self.rewrite_rest(Expr::Cast(c), schema),
                }
            }
            Expr::TryCast(c) => {
                let dst = c.field.data_type().clone();
                match self.bq_cast((*c.expr).clone(), &dst, true, schema) {
                    Some(e) => Transformed::yes(e),
                    None => self.rewrite_rest(Expr::TryCast(c), schema),
                }
            }
            e => self.rewrite_rest(e, schema),
        }
    }

    /// The casts [`Self::rewrite`] leaves to Arrow but for these.
    fn rewrite_rest(&self, e: Expr, schema: &DFSchema) -> Transformed<Expr> {
        let call = |udf: &Arc<ScalarUDF>, args: Vec<Expr>| {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                udf.clone(),
                args,
            )))
        };
        match e {
            // CAST(string AS BOOL) takes only 'true' and 'false'.
            Expr::Cast(c)
                if *c.field.data_type() == DataType::Boolean
                    && c.expr.get_type(schema).is_ok_and(|t| is_string(&t)) =>
            {
                call(&self.string_to_bool, vec![*c.expr])
            }
            Expr::TryCast(c)
                if *c.field.data_type() == DataType::Boolean
                    && c.expr.get_type(schema).is_ok_and(|t| is_string(&t)) =>
            {
                call(&self.safe_string_to_bool, vec![*c.expr])
            }
            // FLOAT64 → INT64 rounds half away from zero in BigQuery
            // (DataFusion's cast truncates).
            Expr::Cast(c)
                if c.field.data_type().is_integer()
                    && c.expr.get_type(schema).is_ok_and(|t| t.is_floating()) =>
            {
                let rounded = Expr::ScalarFunction(ScalarFunction::new_udf(
                    self.round.clone(),
                    vec![*c.expr],
                ));
                Transformed::yes(datafusion::logical_expr::cast(
                    rounded,
                    c.field.data_type().clone(),
                ))
            }
            Expr::TryCast(c)
                if c.field.data_type().is_integer()
                    && c.expr.get_type(schema).is_ok_and(|t| t.is_floating()) =>
            {
                let rounded = Expr::ScalarFunction(ScalarFunction::new_udf(
                    self.round.clone(),
                    vec![*c.expr],
                ));
                Transformed::yes(datafusion::logical_expr::try_cast(
                    rounded,
                    c.field.data_type().clone(),
                ))
            }
            // A scalar subquery is NULL when it has no row, whatever its
            // column's type says.
            Expr::ScalarSubquery(q) => call(&self.nullable, vec![Expr::ScalarSubquery(q)]),
            e => Transformed::no(e),
        }
    }
}

/// Whether `frame` is a RANGE frame with an offset (`n PRECEDING`, `n FOLLOWING`).
fn range_offsets(frame: &datafusion::logical_expr::WindowFrame) -> bool {
    use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
    let offset = |b: &WindowFrameBound| matches!(b, WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) if !v.is_null());
    frame.units == WindowFrameUnits::Range
        && (offset(&frame.start_bound) || offset(&frame.end_bound))
}

/// Whether a window node has a function whose RANGE frame has an offset
/// over an INT64 key (see [`CheckedInt64::window_order`]).
fn int64_range_offsets(plan: &LogicalPlan, schema: &DFSchema) -> bool {
    let LogicalPlan::Window(w) = plan else {
        return false;
    };
    w.window_expr.iter().any(|e| {
        let mut e = e;
        while let Expr::Alias(a) = e {
            e = &a.expr;
        }
        matches!(e, Expr::WindowFunction(f)
            if range_offsets(&f.params.window_frame)
                && matches!(f.params.order_by.as_slice(),
                    [k] if k.expr.get_type(schema).is_ok_and(|t| t == DataType::Int64)))
    })
}

/// Whether `t` is a decimal type DataFusion's coercion makes of NUMERIC
/// with FLOAT64 (it takes a FLOAT64 as DECIMAL(30, 15), so NUMERIC and
/// FLOAT64 values meet as DECIMAL(38, 15), where NUMERIC's largest values
/// overflow): BigQuery has no such type (NUMERIC(P, S) has S ≤ 9).
fn coerced_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(_, s) if *s > 9)
}

/// Whether `e` is a literal (possibly negated or cast).
fn is_literal(e: &Expr) -> bool {
    match e {
        Expr::Literal(..) => true,
        Expr::Negative(x) => is_literal(x),
        Expr::Cast(c) => is_literal(&c.expr),
        Expr::TryCast(c) => is_literal(&c.expr),
        Expr::Alias(a) => is_literal(&a.expr),
        _ => false,
    }
}

/// BigQuery's common type of values DataFusion coerced to a
/// [`coerced_decimal`]: NUMERIC when every FLOAT64 among them is a literal
/// (a FLOAT64 literal coerces to NUMERIC), else FLOAT64.
fn numeric_or_float<'a>(sources: impl IntoIterator<Item = (&'a Expr, &'a DFSchema)>) -> DataType {
    let float_value = sources
        .into_iter()
        .any(|(e, schema)| !is_literal(e) && e.get_type(schema).is_ok_and(|t| t.is_floating()));
    if float_value {
        DataType::Float64
    } else {
        DataType::Decimal128(38, 9)
    }
}

/// `e` as a `to` value (a cast unless it is one already).
fn recast(e: Expr, to: &DataType, schema: &DFSchema) -> Expr {
    if e.get_type(schema).is_ok_and(|t| t == *to) {
        e
    } else {
        datafusion::logical_expr::cast(e, to.clone())
    }
}

/// `e` with its operands that DataFusion cast to a [`coerced_decimal`]
/// cast to BigQuery's common type instead ([`numeric_or_float`]). The
/// operands of a UNION's inputs are seen at the UNION ([`uncoerce_union`]).
fn uncoerce_decimals(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    if matches!(e, Expr::Alias(_)) {
        return Ok(Transformed::no(e));
    }
    let mut sources = Vec::new();
    e.apply_children(|c| {
        if let Expr::Cast(cast) = c
            && coerced_decimal(cast.field.data_type())
        {
            sources.push((*cast.expr).clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if sources.is_empty() {
        return Ok(Transformed::no(e));
    }
    let to = numeric_or_float(sources.iter().map(|e| (e, schema)));
    let t = e.map_children(|c| match c {
        Expr::Cast(cast) if coerced_decimal(cast.field.data_type()) => {
            Ok(Transformed::yes(recast(*cast.expr, &to, schema)))
        }
        c => Ok(Transformed::no(c)),
    })?;
    // The other operand of a binary operator may be of such a type without
    // a cast (`x < 0.2 * AVG(y)`, AVG of NUMERIC being DECIMAL(38, 13)
    // here): it becomes the recast one's type too, as Arrow's kernels take
    // operands of one type (BigQuery's NUMERIC has 9 decimal places).
    t.transform_data(|e| match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (lt, rt) = (left.get_type(schema)?, right.get_type(schema)?);
            let fix = |e: Box<Expr>, t: &DataType, other: &DataType| {
                if lt != rt && coerced_decimal(t) && !coerced_decimal(other) {
                    (Box::new(recast(*e, other, schema)), true)
                } else {
                    (e, false)
                }
            };
            let (left, l) = fix(left, &lt, &rt);
            let (right, r) = fix(right, &rt, &lt);
            let e = Expr::BinaryExpr(BinaryExpr { left, op, right });
            Ok(if l || r {
                Transformed::yes(e)
            } else {
                Transformed::no(e)
            })
        }
        e => Ok(Transformed::no(e)),
    })
}

/// A UNION whose columns DataFusion coerced to a [`coerced_decimal`],
/// with BigQuery's common type instead ([`numeric_or_float`]).
fn uncoerce_union(
    u: datafusion::logical_expr::Union,
) -> DfResult<Transformed<datafusion::logical_expr::Union>> {
    use datafusion::logical_expr::{Projection, Union};
    let columns: Vec<usize> = (0..u.schema.fields().len())
        .filter(|&i| coerced_decimal(u.schema.field(i).data_type()))
        .collect();
    if columns.is_empty() {
        return Ok(Transformed::no(u));
    }
    // Input `n`'s expression for column `i`, without the coercion's cast.
    let source = |input: &LogicalPlan, i: usize| -> Option<(Expr, Arc<DFSchema>)> {
        let LogicalPlan::Projection(p) = input else {
            return None;
        };
        let mut e = p.expr.get(i)?;
        if let Expr::Alias(a) = e {
            e = &a.expr;
        }
        if let Expr::Cast(c) = e
            && coerced_decimal(c.field.data_type())
        {
            e = &c.expr;
        }
        Some((e.clone(), p.input.schema().clone()))
    };
    let mut targets = Vec::with_capacity(columns.len());
    for &i in &columns {
        let sources: Vec<_> = u.inputs.iter().filter_map(|p| source(p, i)).collect();
        targets.push(numeric_or_float(
            sources.iter().map(|(e, s)| (e, s.as_ref())),
        ));
    }
    let mut inputs = Vec::with_capacity(u.inputs.len());
    for input in u.inputs {
        let (exprs, below) = match Arc::unwrap_or_clone(input) {
            LogicalPlan::Projection(p) => (p.expr, p.input),
            other => {
                let exprs = other
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                (exprs, Arc::new(other))
            }
        };
        let schema = below.schema().clone();
        let mut exprs = exprs;
        for (&i, to) in columns.iter().zip(&targets) {
            let Some(e) = exprs.get_mut(i) else { continue };
            let (name, mut inner) = match e.clone() {
                Expr::Alias(a) => (Some(a.name), *a.expr),
                other => (None, other),
            };
            if let Expr::Cast(c) = &inner
                && coerced_decimal(c.field.data_type())
            {
                inner = (*c.expr).clone();
            }
            let name = name.unwrap_or_else(|| u.schema.field(i).name().clone());
            *e = recast(inner, to, &schema).alias(name);
        }
        inputs.push(Arc::new(LogicalPlan::Projection(Projection::try_new(
            exprs, below,
        )?)));
    }
    Ok(Transformed::yes(Union::try_new(inputs)?))
}

impl AnalyzerRule for CheckedInt64 {
    fn name(&self) -> &str {
        "bigflow_checked_int64"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        // Whether a UNION's column changed type: the nodes above it are
        // typed again.
        let retyped = std::cell::Cell::new(false);
        plan.transform_up_with_subqueries(|plan| {
            let plan = if retyped.get() {
                plan.recompute_schema()?
            } else {
                plan
            };
            let plan = match plan {
                LogicalPlan::Union(u) => {
                    let t = uncoerce_union(u)?;
                    retyped.set(retyped.get() || t.transformed);
                    LogicalPlan::Union(t.data)
                }
                other => other,
            };
            // The columns expressions of this node may refer to.
            let schema = merge_schema(&plan.inputs());
            let plan = match plan {
                LogicalPlan::Sort(sort) => {
                    let expr = self.float_order(sort.expr, &schema).data;
                    LogicalPlan::Sort(datafusion::logical_expr::Sort { expr, ..sort })
                }
                other => other,
            };
            let widen = int64_range_offsets(&plan, &schema);
            let names = NamePreserver::new(&plan);
            let t = plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| {
                    refuse_bytes_as_text(&e, &schema)?;
                    refuse_range_casts(&e, &schema)?;
                    refuse_uint64_literals(&e)?;
                    uncoerce_decimals(e, &schema)?
                        .transform_data(|e| self.window_order(e, &schema, widen))?
                        .transform_data(|e| Ok(self.rewrite(e, &schema)))
                })
                .map(|t| t.update_data(|e| name.restore(e)))
            })?;
            // `/` makes FLOAT64 where DataFusion typed INT64: the node's
            // schema follows its expressions.
            if t.transformed {
                t.map_data(|p| p.recompute_schema())
            } else {
                Ok(t)
            }
        })
        .data()
    }
}

/// An integer literal beyond INT64 (DataFusion's UINT64 between 2^63 and
/// 2^64) is the query's error, as in BigQuery, which has no UINT64.
fn refuse_uint64_literals(e: &Expr) -> DfResult<()> {
    // (The planner's own UINT64 literals, e.g. of window frames, are small.)
    if let Expr::Literal(ScalarValue::UInt64(Some(v)), _) = e
        && i64::try_from(*v).is_err()
    {
        return Err(DataFusionError::Plan(format!(
            "{}Invalid integer literal: {v}",
            super::INVALID_QUERY
        )));
    }
    Ok(())
}

/// Whether a cast from `src` to `dst` changes a RANGE into something else or
/// something else into a RANGE (also inside arrays and structs): BigQuery
/// has no such conversion (a RANGE casts only to itself and to STRING, and
/// from STRING), where Arrow would convert field by field.
fn converts_range(src: &DataType, dst: &DataType) -> bool {
    use crate::range::element_of;
    if src == dst || *src == DataType::Null {
        return false;
    }
    if let (Some(a), Some(b)) = (element_of(src), element_of(dst)) {
        return a != b;
    }
    if element_of(dst).is_some() {
        return !matches!(
            src,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        );
    }
    if element_of(src).is_some() {
        return !matches!(
            dst,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        );
    }
    match (src, dst) {
        (
            DataType::List(a) | DataType::LargeList(a) | DataType::FixedSizeList(a, _),
            DataType::List(b) | DataType::LargeList(b) | DataType::FixedSizeList(b, _),
        ) => converts_range(a.data_type(), b.data_type()),
        (DataType::Struct(a), DataType::Struct(b)) => a
            .iter()
            .zip(b.iter())
            .any(|(x, y)| converts_range(x.data_type(), y.data_type())),
        _ => false,
    }
}

/// Casts, written or implied (a UNION or comparison of RANGE<DATE> and
/// RANGE<DATETIME>), that [`converts_range`]: refused, as BigQuery does;
/// so is access to the fields of a RANGE's struct, which has none in BigQuery.
fn refuse_range_casts(e: &Expr, schema: &DFSchema) -> DfResult<()> {
    if let Expr::ScalarFunction(f) = e
        && f.func.name() == "get_field"
        && let Some(Ok(t)) = f.args.first().map(|a| a.get_type(schema))
        && crate::range::element_of(&t).is_some()
    {
        return Err(DataFusionError::Plan(format!(
            "a {} has no fields: RANGE_START and RANGE_END give its bounds",
            super::typed::type_name(&t)
        )));
    }
    let (inner, dst) = match e {
        Expr::Cast(c) => (&c.expr, c.field.data_type()),
        Expr::TryCast(c) => (&c.expr, c.field.data_type()),
        _ => return Ok(()),
    };
    let Ok(src) = inner.get_type(schema) else {
        return Ok(());
    };
    if converts_range(&src, dst) {
        return Err(DataFusionError::Plan(format!(
            "no conversion from {} to {}",
            super::typed::type_name(&src),
            super::typed::type_name(dst)
        )));
    }
    Ok(())
}

/// String functions DataFusion runs on BYTES by casting them to STRING
/// (`LPAD(b'abc', 5)` would be a STRING): refused rather than answered
/// with another type.
fn refuse_bytes_as_text(e: &Expr, schema: &DFSchema) -> DfResult<()> {
    let Expr::ScalarFunction(f) = e else {
        return Ok(());
    };
    let text_only = matches!(
        f.func.name(),
        "lpad"
            | "rpad"
            | "repeat"
            | "reverse"
            | "ltrim"
            | "rtrim"
            | "btrim"
            | "lower"
            | "upper"
            | "replace"
            | "starts_with"
            | "ends_with"
            | "strpos"
            | "instr"
            | "left"
            | "right"
            | "initcap"
            | "translate"
            | "regexp_replace"
            | "regexp_like"
            | "regexp_count"
    );
    let bytes = f.args.iter().any(|a| match a {
        Expr::Cast(c) => c.expr.get_type(schema).is_ok_and(|t| {
            matches!(
                t,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            )
        }),
        _ => false,
    });
    if text_only && bytes {
        return Err(DataFusionError::NotImplemented(format!(
            "{} of BYTES values",
            f.func.name().to_uppercase()
        )));
    }
    Ok(())
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
            _ if is_float64_sum(&args) && !args.is_distinct => {
                Ok(Box::new(FloatSumAccumulator::default()))
            }
            _ if is_float64_sum(&args) => Ok(Box::new(DistinctFloatSumAccumulator::default())),
            _ if is_numeric_sum(&args) => {
                Ok(Box::new(CheckedNumeric(self.inner.accumulator(args)?)))
            }
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
        } else if is_numeric_sum(&args) {
            Ok(Box::new(CheckedNumericGroups(
                self.inner.create_groups_accumulator(args)?,
            )))
        } else {
            self.inner.create_groups_accumulator(args)
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if is_int64_sum(&args) && !args.is_distinct {
            Ok(Box::new(SumAccumulator::default()))
        } else if is_float64_sum(&args) && !args.is_distinct {
            Ok(Box::new(ExactFloatSumAccumulator::default()))
        } else if is_numeric_sum(&args) {
            Ok(Box::new(CheckedNumeric(
                self.inner.create_sliding_accumulator(args)?,
            )))
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

/// DataFusion's `min` or `max`, with BigQuery's answer for FLOAT64 values
/// with a NaN: NaN (DataFusion's skips NaN or not depending on the plan).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NanMinMax<T> {
    inner: T,
}

impl<T: AggregateUDFImpl + PartialEq + Eq + std::hash::Hash + 'static> NanMinMax<T> {
    /// As an aggregate function, named as `inner` (registering it replaces DataFusion's).
    pub fn udaf(inner: T) -> AggregateUDF {
        AggregateUDF::new_from_impl(NanMinMax { inner })
    }
}

fn is_float64_arg(args: &AccumulatorArgs) -> bool {
    args.return_field.data_type() == &DataType::Float64
}

impl<T: AggregateUDFImpl + PartialEq + Eq + std::hash::Hash> AggregateUDFImpl for NanMinMax<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let nan = is_float64_arg(&args);
        let inner = self.inner.accumulator(args)?;
        Ok(if nan {
            Box::new(NanAccumulator { inner, nans: 0 })
        } else {
            inner
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        let nan = is_float64_arg(&args);
        let inner = self.inner.create_groups_accumulator(args)?;
        Ok(if nan {
            Box::new(NanGroups {
                inner,
                nans: Vec::new(),
            })
        } else {
            inner
        })
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let nan = is_float64_arg(&args);
        let inner = self.inner.create_sliding_accumulator(args)?;
        Ok(if nan {
            Box::new(NanAccumulator { inner, nans: 0 })
        } else {
            inner
        })
    }

    // Not `is_descending`: DataFusion would take the first value of a
    // sorted input instead, NaN or not.
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> datafusion::logical_expr::SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}

/// The NaNs among FLOAT64 values (a count the compiler vectorizes when
/// there is no NULL).
fn nans(values: &[ArrayRef]) -> usize {
    let Some(a) = values
        .first()
        .and_then(|a| a.as_primitive_opt::<Float64Type>())
    else {
        return 0;
    };
    if a.null_count() == 0 {
        a.values().iter().map(|v| usize::from(v.is_nan())).sum()
    } else {
        a.iter().flatten().filter(|v| v.is_nan()).count()
    }
}

/// [`NanMinMax`]'s accumulator: the NaNs in the frame decide.
#[derive(Debug)]
struct NanAccumulator {
    inner: Box<dyn Accumulator>,
    nans: usize,
}

impl Accumulator for NanAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.nans += nans(values);
        self.inner.update_batch(values)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.nans = self.nans.saturating_sub(nans(values));
        self.inner.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if self.nans > 0 {
            return Ok(ScalarValue::Float64(Some(f64::NAN)));
        }
        self.inner.evaluate()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let mut state = self.inner.state()?;
        if self.nans > 0
            && let Some(first) = state.first_mut()
        {
            *first = ScalarValue::Float64(Some(f64::NAN));
        }
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.nans += nans(states);
        self.inner.merge_batch(states)
    }

    fn size(&self) -> usize {
        self.inner.size() + size_of::<usize>()
    }
}

/// [`NanMinMax`] with `GROUP BY`: whether each group has seen a NaN.
struct NanGroups {
    inner: Box<dyn GroupsAccumulator>,
    nans: Vec<bool>,
}

impl NanGroups {
    fn see(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total: usize,
    ) {
        self.nans.resize(total, false);
        if nans(values) == 0 {
            return;
        }
        let Some(values) = values
            .first()
            .and_then(|a| a.as_primitive_opt::<Float64Type>())
        else {
            return;
        };
        for (i, &g) in groups.iter().enumerate() {
            if values.is_valid(i)
                && values.value(i).is_nan()
                && filter.is_none_or(|f| f.is_valid(i) && f.value(i))
            {
                self.nans[g] = true;
            }
        }
    }

    /// `values` with NaN for the groups that have seen one.
    fn with_nans(&mut self, values: ArrayRef, emit_to: EmitTo) -> ArrayRef {
        let nans = emit_to.take_needed(&mut self.nans);
        let Some(floats) = values.as_primitive_opt::<Float64Type>() else {
            return values;
        };
        if !nans.iter().any(|n| *n) {
            return values;
        }
        let out: Float64Array = floats
            .iter()
            .zip(nans.iter().chain(std::iter::repeat(&false)))
            .map(|(v, nan)| if *nan { Some(f64::NAN) } else { v })
            .collect();
        Arc::new(out)
    }
}

impl GroupsAccumulator for NanGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.see(values, group_indices, opt_filter, total_num_groups);
        self.inner
            .update_batch(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let values = self.inner.evaluate(emit_to)?;
        Ok(self.with_nans(values, emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let mut state = self.inner.state(emit_to)?;
        match state.first_mut() {
            Some(first) => *first = self.with_nans(first.clone(), emit_to),
            None => {
                emit_to.take_needed(&mut self.nans);
            }
        }
        Ok(state)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.see(values, group_indices, None, total_num_groups);
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size() + self.nans.capacity()
    }
}

fn is_float64_sum(args: &AccumulatorArgs) -> bool {
    args.return_field.data_type() == &DataType::Float64
}

fn is_numeric_sum(args: &AccumulatorArgs) -> bool {
    matches!(args.return_field.data_type(), DataType::Decimal128(38, _))
}

/// NUMERIC's largest magnitude in units of its scale: 10^38 - 1.
const NUMERIC_MAX: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;

fn numeric_overflow() -> DataFusionError {
    DataFusionError::Execution(
        "numeric overflow: SUM of NUMERIC values beyond NUMERIC's range".into(),
    )
}

/// `v`, or the overflow error when it is a NUMERIC beyond NUMERIC's range
/// (DataFusion's decimal sum keeps 38 digits' overflow as a value).
fn checked_numeric(v: ScalarValue) -> DfResult<ScalarValue> {
    match &v {
        ScalarValue::Decimal128(Some(x), ..) if !(-NUMERIC_MAX..=NUMERIC_MAX).contains(x) => {
            Err(numeric_overflow())
        }
        _ => Ok(v),
    }
}

fn checked_numerics(a: ArrayRef) -> DfResult<ArrayRef> {
    if let Some(d) = a.as_primitive_opt::<arrow::datatypes::Decimal128Type>()
        && d.iter()
            .flatten()
            .any(|x| !(-NUMERIC_MAX..=NUMERIC_MAX).contains(&x))
    {
        return Err(numeric_overflow());
    }
    Ok(a)
}

/// A NUMERIC `SUM` (DataFusion's, also in a window) whose result beyond
/// NUMERIC's range is an error, as in BigQuery.
#[derive(Debug)]
struct CheckedNumeric(Box<dyn Accumulator>);

impl Accumulator for CheckedNumeric {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.0.update_batch(values)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.0.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.0.supports_retract_batch()
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        checked_numeric(self.0.evaluate()?)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.0.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.0.merge_batch(states)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// [`CheckedNumeric`] of `SUM … GROUP BY`.
struct CheckedNumericGroups(Box<dyn GroupsAccumulator>);

impl GroupsAccumulator for CheckedNumericGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.0
            .update_batch(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        checked_numerics(self.0.evaluate(emit_to)?)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        self.0.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// A FLOAT64 `SUM(DISTINCT …)` (also in a window), with
/// [`FloatSumAccumulator`]'s infinities, NaNs and overflow error; its
/// state is the list of distinct values, as DataFusion's.
#[derive(Debug, Default)]
struct DistinctFloatSumAccumulator {
    /// The bits of each distinct value (NaNs as one NaN, -0 as 0).
    values: HashSet<u64>,
}

impl DistinctFloatSumAccumulator {
    fn values(&self) -> Float64Array {
        self.values
            .iter()
            .map(|b| Some(f64::from_bits(*b)))
            .collect()
    }
}

impl Accumulator for DistinctFloatSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let Some(values) = values
            .first()
            .and_then(|a| a.as_primitive_opt::<Float64Type>())
        else {
            return Err(DataFusionError::Internal(
                "SUM: expected FLOAT64 values".into(),
            ));
        };
        self.values.extend(values.iter().flatten().map(|v| {
            if v.is_nan() {
                f64::NAN.to_bits()
            } else {
                (v + 0.0).to_bits()
            }
        }));
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let mut sum = FloatSumAccumulator::default();
        sum.update_batch(&[Arc::new(self.values())])?;
        sum.evaluate()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|b| ScalarValue::Float64(Some(f64::from_bits(*b))))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &DataType::Float64,
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
        size_of::<Self>() + self.values.capacity() * size_of::<u64>()
    }
}

/// An exact sum of finite FLOAT64 values, added and removed in any order:
/// a two's complement integer in units of 2^-1074 (the smallest FLOAT64),
/// wide enough for 2^64 of the largest values.
#[derive(Debug, Clone)]
struct ExactSum {
    /// Little-endian 64-bit limbs.
    limbs: [u64; ExactSum::LIMBS],
}

impl Default for ExactSum {
    fn default() -> Self {
        ExactSum {
            limbs: [0; ExactSum::LIMBS],
        }
    }
}

impl ExactSum {
    /// 2^-1074 … 2^1024 is 2098 bits; with 64 bits of headroom and a sign.
    const LIMBS: usize = 35;

    /// Adds (`negate`: subtracts) `v`, a finite value.
    fn add(&mut self, v: f64, negate: bool) {
        let bits = v.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as usize;
        let fraction = bits & ((1 << 52) - 1);
        // v = mantissa × 2^(shift - 1074)
        let (mantissa, shift) = if exponent == 0 {
            (fraction, 0)
        } else {
            (fraction | (1 << 52), exponent - 1)
        };
        if mantissa == 0 {
            return;
        }
        let subtract = (bits >> 63 == 1) != negate;
        let (limb, offset) = (shift / 64, shift % 64);
        let wide = u128::from(mantissa) << offset;
        let parts = [wide as u64, (wide >> 64) as u64];
        let mut carry = false;
        for (i, part) in parts.iter().enumerate() {
            let slot = &mut self.limbs[limb + i];
            (*slot, carry) = if subtract {
                let (a, b1) = slot.overflowing_sub(*part);
                let (a, b2) = a.overflowing_sub(u64::from(carry));
                (a, b1 || b2)
            } else {
                let (a, c1) = slot.overflowing_add(*part);
                let (a, c2) = a.overflowing_add(u64::from(carry));
                (a, c1 || c2)
            };
        }
        let mut i = limb + 2;
        while carry && i < Self::LIMBS {
            let slot = &mut self.limbs[i];
            (*slot, carry) = if subtract {
                slot.overflowing_sub(1)
            } else {
                slot.overflowing_add(1)
            };
            i += 1;
        }
    }

    /// The sum rounded to the nearest FLOAT64 (ties to even); infinite
    /// beyond FLOAT64's range.
    fn value(&self) -> f64 {
        let negative = self.limbs[Self::LIMBS - 1] >> 63 == 1;
        let mut m = self.limbs;
        if negative {
            // Two's complement negation.
            let mut carry = true;
            for limb in &mut m {
                (*limb, carry) = (!*limb).overflowing_add(u64::from(carry));
            }
        }
        let Some(top) = (0..Self::LIMBS).rev().find(|&i| m[i] != 0) else {
            return 0.0;
        };
        // The highest set bit.
        let high = top * 64 + 63 - m[top].leading_zeros() as usize;
        let bit = |i: usize| (m[i / 64] >> (i % 64)) & 1;
        let magnitude = if high < 53 {
            // Exact: a multiple of 2^-1074 below 2^-1021.
            (m[0] as f64) * f64::from_bits(1)
        } else {
            // The 53 bits from `low` to `high`, the next one down (to round
            // by) and whether any below it is set.
            let low = high - 52;
            let (limb, offset) = (low / 64, low % 64);
            let next = m.get(limb + 1).copied().unwrap_or(0);
            let wide = u128::from(m[limb]) | (u128::from(next) << 64);
            let mut mantissa = ((wide >> offset) as u64) & ((1 << 53) - 1);
            let round = bit(low - 1) == 1;
            let below = low - 1;
            let sticky = m[..below / 64].iter().any(|l| *l != 0)
                || m[below / 64] & ((1u64 << (below % 64)) - 1) != 0;
            let mut exponent = low as i64 - 1074;
            if round && (sticky || mantissa & 1 == 1) {
                mantissa += 1;
                if mantissa == 1 << 53 {
                    mantissa >>= 1;
                    exponent += 1;
                }
            }
            // mantissa × 2^exponent, in two exact steps.
            let pow2 = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
            if exponent + 52 > 1023 {
                f64::INFINITY
            } else {
                let half = exponent / 2;
                (mantissa as f64) * pow2(half) * pow2(exponent - half)
            }
        };
        if negative { -magnitude } else { magnitude }
    }
}

/// A FLOAT64 `SUM` over a sliding window frame: as
/// [`FloatSumAccumulator`], but the finite values are summed exactly, so
/// that removing a large value from the frame gives back the small ones
/// it had absorbed (BigQuery sums each frame afresh).
#[derive(Debug, Default)]
struct ExactFloatSumAccumulator {
    finite: ExactSum,
    positive_infinities: u64,
    negative_infinities: u64,
    nans: u64,
    count: u64,
}

impl ExactFloatSumAccumulator {
    fn apply(&mut self, values: &[ArrayRef], retract: bool) -> DfResult<()> {
        let Some(values) = values
            .first()
            .and_then(|a| a.as_primitive_opt::<Float64Type>())
        else {
            return Err(DataFusionError::Internal(
                "SUM: expected FLOAT64 values".into(),
            ));
        };
        let step = |n: &mut u64| {
            *n = if retract { n.saturating_sub(1) } else { *n + 1 };
        };
        for v in values.iter().flatten() {
            if v.is_nan() {
                step(&mut self.nans);
            } else if v == f64::INFINITY {
                step(&mut self.positive_infinities);
            } else if v == f64::NEG_INFINITY {
                step(&mut self.negative_infinities);
            } else {
                self.finite.add(v, retract);
            }
            step(&mut self.count);
        }
        Ok(())
    }
}

impl Accumulator for ExactFloatSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.apply(values, false)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.apply(values, true)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let v = if self.count == 0 {
            None
        } else if self.nans > 0 || (self.positive_infinities > 0 && self.negative_infinities > 0) {
            Some(f64::NAN)
        } else if self.positive_infinities > 0 {
            Some(f64::INFINITY)
        } else if self.negative_infinities > 0 {
            Some(f64::NEG_INFINITY)
        } else {
            let sum = self.finite.value();
            if !sum.is_finite() {
                return Err(DataFusionError::Execution(
                    "double overflow: SUM of FLOAT64 values beyond FLOAT64's range".into(),
                ));
            }
            Some(sum)
        };
        Ok(ScalarValue::Float64(v))
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.update_batch(states)
    }

    fn size(&self) -> usize {
        size_of::<Self>()
    }
}

/// A FLOAT64 `SUM` (also over a sliding window frame): infinities and NaNs
/// are counted apart from the finite sum, so a frame that loses an
/// infinity is finite again (subtracting it would leave NaN); a finite
/// sum that leaves FLOAT64's range is an error, as in BigQuery. The finite
/// sum is kept divided by 4 (exact but for subnormal values), so a sliding
/// frame may pass through a sum up to 4 times FLOAT64's largest value on
/// its way to a result in range.
#[derive(Debug, Default)]
struct FloatSumAccumulator {
    /// The sum of the finite values, divided by 4.
    finite: f64,
    positive_infinities: u64,
    negative_infinities: u64,
    nans: u64,
    /// Non-NULL values.
    count: u64,
}

impl FloatSumAccumulator {
    fn apply(&mut self, values: &[ArrayRef], sign: f64) -> DfResult<()> {
        let Some(values) = values
            .first()
            .and_then(|a| a.as_primitive_opt::<Float64Type>())
        else {
            return Err(DataFusionError::Internal(
                "SUM: expected FLOAT64 values".into(),
            ));
        };
        let step = |n: u64| {
            if sign > 0.0 {
                n + 1
            } else {
                n.saturating_sub(1)
            }
        };
        for v in values.iter().flatten() {
            if v.is_nan() {
                self.nans = step(self.nans);
            } else if v == f64::INFINITY {
                self.positive_infinities = step(self.positive_infinities);
            } else if v == f64::NEG_INFINITY {
                self.negative_infinities = step(self.negative_infinities);
            } else {
                self.finite += sign * v * 0.25;
            }
            self.count = step(self.count);
        }
        if self.count == 0 {
            self.finite = 0.0;
        }
        Ok(())
    }
}

impl Accumulator for FloatSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.apply(values, 1.0)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.apply(values, -1.0)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let v = if self.count == 0 {
            None
        } else if self.nans > 0 || (self.positive_infinities > 0 && self.negative_infinities > 0) {
            Some(f64::NAN)
        } else if self.positive_infinities > 0 {
            Some(f64::INFINITY)
        } else if self.negative_infinities > 0 {
            Some(f64::NEG_INFINITY)
        } else {
            let sum = self.finite * 4.0;
            if !sum.is_finite() {
                return Err(DataFusionError::Execution(
                    "double overflow: SUM of FLOAT64 values beyond FLOAT64's range".into(),
                ));
            }
            Some(sum)
        };
        Ok(ScalarValue::Float64(v))
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.update_batch(states)
    }

    fn size(&self) -> usize {
        size_of::<Self>()
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

/// A sum kept in 128 bits as INT64, or the overflow error: only the sum
/// of the values counts, not the order they were added (or, in a sliding
/// window frame, added and removed) in.
fn as_int64(sum: Option<i128>) -> DfResult<Option<i64>> {
    sum.map(|s| i64::try_from(s).map_err(|_| overflow(format_args!("SUM = {s}"))))
        .transpose()
}

/// An INT64 `SUM` (also over a sliding window frame).
#[derive(Debug, Default)]
struct SumAccumulator {
    sum: Option<i128>,
    /// Non-NULL values in the frame (a frame that loses them all is NULL again).
    count: u64,
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for v in int64s(values)?.iter().flatten() {
            self.sum = Some(self.sum.unwrap_or(0) + i128::from(v));
            self.count += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for v in int64s(values)?.iter().flatten() {
            self.sum = Some(self.sum.unwrap_or(0) - i128::from(v));
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
        Ok(ScalarValue::Int64(as_int64(self.sum)?))
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(as_int64(self.sum)?)])
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
    ctx.register_udf(ieee_divide_udf());
    ctx.register_udf(log_udf());
    ctx.add_analyzer_rule(Arc::new(rule));
    ctx.register_udaf(CheckedSum::udaf());
    ctx.register_udaf(NanMinMax::udaf(
        datafusion::functions_aggregate::min_max::Min::new(),
    ));
    ctx.register_udaf(NanMinMax::udaf(
        datafusion::functions_aggregate::min_max::Max::new(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(values: &[(f64, bool)]) -> f64 {
        let mut s = ExactSum::default();
        for &(v, retract) in values {
            s.add(v, retract);
        }
        s.value()
    }

    #[test]
    fn exact_sums_give_back_what_large_values_absorbed() {
        let max = f64::MAX;
        assert_eq!(exact(&[]), 0.0);
        assert_eq!(exact(&[(1.5, false), (-2.25, false)]), -0.75);
        // 1 + 2 once the largest value has left the frame.
        assert_eq!(
            exact(&[(max, false), (1.0, false), (max, true), (2.0, false)]),
            3.0
        );
        assert_eq!(exact(&[(-max, false), (1.0, false), (-max, true)]), 1.0);
        // Rounded once, to the nearest (ties to even).
        assert_eq!(exact(&[(max, false), (-2.0, false)]), max);
        assert_eq!(exact(&[(1.0, false), (f64::EPSILON / 2.0, false)]), 1.0);
        assert_eq!(
            exact(&[
                (1.0, false),
                (f64::EPSILON / 2.0, false),
                (f64::EPSILON / 4.0, false)
            ]),
            1.0 + f64::EPSILON
        );
        assert_eq!(exact(&[(0.1, false), (0.2, false)]), 0.30000000000000004);
        // Subnormal values and their sums are exact.
        let tiny = f64::from_bits(1);
        assert_eq!(
            exact(&[(tiny, false), (tiny, false), (tiny, false)]),
            3.0 * tiny
        );
        assert_eq!(
            exact(&[(f64::MIN_POSITIVE, false), (-tiny, false)]),
            f64::MIN_POSITIVE - tiny
        );
        // Beyond FLOAT64: infinite (the accumulator's overflow error).
        assert_eq!(exact(&[(max, false), (max, false)]), f64::INFINITY);
        assert_eq!(exact(&[(-max, false), (-max, false)]), f64::NEG_INFINITY);
        assert_eq!(exact(&[(max, false), (max, false), (max, true)]), max);
    }

    #[test]
    fn exact_sums_round_as_ieee_addition() {
        // The correctly rounded sum of two values is IEEE's `a + b`.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = f64::from_bits(state);
            // Some of similar magnitudes, some subnormal, some far apart.
            match state % 4 {
                0 => v.rem_euclid(1e6) - 5e5,
                1 => f64::from_bits(state % (1 << 53)),
                _ => v,
            }
        };
        for _ in 0..20_000 {
            let (a, b) = (next(), next());
            if !a.is_finite() || !b.is_finite() || !(a + b).is_finite() {
                continue;
            }
            assert_eq!(
                exact(&[(a, false), (b, false)]).to_bits(),
                (a + b + 0.0).to_bits(),
                "{a:e} + {b:e}"
            );
            // Removing a value gives the other back exactly.
            assert_eq!(
                exact(&[(a, false), (b, false), (a, true)]),
                b,
                "{a:e} + {b:e} - {a:e}"
            );
        }
    }

    #[test]
    fn float_order_keys() {
        let udf = float_order_udf();
        let args = datafusion::logical_expr::ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(Arc::new(Float64Array::from(vec![
                Some(f64::NAN),
                Some(-0.0),
                None,
                Some(f64::NEG_INFINITY),
            ])))],
            arg_fields: vec![Arc::new(arrow::datatypes::Field::new(
                "x",
                DataType::Float64,
                true,
            ))],
            number_rows: 4,
            return_field: Arc::new(arrow::datatypes::Field::new("k", DataType::Float64, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(out) = udf.invoke_with_args(args).unwrap() else {
            panic!("an array");
        };
        let out = out.as_primitive::<Float64Type>();
        // NaN sorts below -inf in Arrow's total order, -0 is 0.
        assert!(out.value(0).is_nan());
        assert_eq!(
            out.value(0).total_cmp(&f64::NEG_INFINITY),
            std::cmp::Ordering::Less
        );
        assert_eq!(out.value(1).to_bits(), 0.0f64.to_bits());
        assert!(out.is_null(2));
        assert_eq!(out.value(3), f64::NEG_INFINITY);
    }
}
