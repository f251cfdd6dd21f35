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

/// `DIV(a, b)`: INT64 division rounding toward zero; by zero and
/// `DIV(-9223372036854775808, -1)` are errors.
fn int64_div_udf() -> ScalarUDF {
    create_udf(
        "bq_int64_div",
        vec![DataType::Int64, DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let scalars = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (x, y) = (
                arrays[0].as_primitive::<Int64Type>(),
                arrays[1].as_primitive::<Int64Type>(),
            );
            let n = x.len().max(y.len());
            let at = |a: &Int64Array, i: usize| {
                let i = if a.len() == 1 { 0 } else { i };
                (!a.is_null(i)).then(|| a.value(i))
            };
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match (at(x, i), at(y, i)) {
                    (Some(_), Some(0)) => {
                        return Err(DataFusionError::Execution(format!(
                            "division by zero: DIV({}, 0)",
                            at(x, i).unwrap_or_default()
                        )));
                    }
                    (Some(a), Some(b)) => Some(
                        a.checked_div(b)
                            .ok_or_else(|| overflow(format_args!("DIV({a}, {b})")))?,
                    ),
                    _ => None,
                });
            }
            let out: ArrayRef = Arc::new(Int64Array::from(out));
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
    div: Arc<ScalarUDF>,
    int_div: Arc<ScalarUDF>,
    string_to_bool: Arc<ScalarUDF>,
    safe_string_to_bool: Arc<ScalarUDF>,
    round: Arc<ScalarUDF>,
    to_string: Arc<ScalarUDF>,
    isnan: Arc<ScalarUDF>,
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
            int_div: Arc::new(int64_div_udf()),
            string_to_bool: Arc::new(super::typed::string_to_bool(false)),
            safe_string_to_bool: Arc::new(super::typed::string_to_bool(true)),
            round: datafusion::functions::math::round(),
            to_string: Arc::new(super::typed::to_string_udf()),
            isnan: datafusion::functions::math::isnan(),
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
    /// ascending (Arrow's puts NaN last): each FLOAT64 key is preceded by
    /// its rank among NULL/NaN/number.
    fn nan_first(
        &self,
        sort: datafusion::logical_expr::Sort,
        schema: &DFSchema,
    ) -> datafusion::logical_expr::Sort {
        use datafusion::logical_expr::{SortExpr, lit, when};
        let mut keys = Vec::with_capacity(sort.expr.len());
        for k in sort.expr {
            let float = k.expr.get_type(schema).is_ok_and(|t| t.is_floating());
            if float {
                let isnan = Expr::ScalarFunction(ScalarFunction::new_udf(
                    self.isnan.clone(),
                    vec![datafusion::logical_expr::cast(
                        k.expr.clone(),
                        DataType::Float64,
                    )],
                ));
                let null_rank = if k.nulls_first == k.asc { 0 } else { 3 };
                if let Ok(rank) = when(k.expr.clone().is_null(), lit(null_rank))
                    .when(isnan, lit(1))
                    .otherwise(lit(2))
                {
                    keys.push(SortExpr::new(rank, k.asc, k.nulls_first));
                }
            }
            keys.push(k);
        }
        datafusion::logical_expr::Sort {
            expr: keys,
            input: sort.input,
            fetch: sort.fetch,
        }
    }

    /// `l op r` where a NaN operand makes the comparison false (true for
    /// `!=`); a NULL operand makes it NULL, as any comparison.
    fn nan_aware(&self, l: Expr, op: Operator, r: Expr) -> Expr {
        let isnan = |e: &Expr| {
            Expr::ScalarFunction(ScalarFunction::new_udf(
                self.isnan.clone(),
                vec![datafusion::logical_expr::cast(e.clone(), DataType::Float64)],
            ))
        };
        let either = Expr::or(isnan(&l), isnan(&r));
        let either_null = Expr::or(l.clone().is_null(), r.clone().is_null());
        datafusion::logical_expr::when(either_null, Expr::Literal(ScalarValue::Boolean(None), None))
            .when(either, datafusion::logical_expr::lit(op == Operator::NotEq))
            .otherwise(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(l),
                op,
                Box::new(r),
            )))
            .unwrap_or_else(|_| Expr::Literal(ScalarValue::Boolean(None), None))
    }

    /// The UDFs the rule calls (registered so plans can be shown and re-planned).
    pub fn udfs(&self) -> Vec<Arc<ScalarUDF>> {
        vec![
            self.add.clone(),
            self.sub.clone(),
            self.mul.clone(),
            self.neg.clone(),
            self.div.clone(),
            self.int_div.clone(),
            self.string_to_bool.clone(),
            self.safe_string_to_bool.clone(),
            self.to_string.clone(),
        ]
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
        if src.is_floating()
            && let Some(scale) = decimal_scale(dst)
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
                Transformed::yes(self.nan_aware(*left, op, *right))
            }
            Expr::Between(b)
                if [&b.expr, &b.low, &b.high]
                    .iter()
                    .any(|e| e.get_type(schema).is_ok_and(|t| t.is_floating())) =>
            {
                let within = Expr::and(
                    self.nan_aware((*b.expr).clone(), Operator::GtEq, *b.low),
                    self.nan_aware(*b.expr, Operator::LtEq, *b.high),
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

impl AnalyzerRule for CheckedInt64 {
    fn name(&self) -> &str {
        "bigflow_checked_int64"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            // The columns expressions of this node may refer to.
            let schema = merge_schema(&plan.inputs());
            let plan = match plan {
                LogicalPlan::Sort(sort) => LogicalPlan::Sort(self.nan_first(sort, &schema)),
                other => other,
            };
            let names = NamePreserver::new(&plan);
            let t = plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| {
                    refuse_bytes_as_text(&e, &schema)?;
                    refuse_range_casts(&e, &schema)?;
                    Ok(self.rewrite(e, &schema))
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
        } else if is_float64_sum(&args) && !args.is_distinct {
            Ok(Box::new(FloatSumAccumulator::default()))
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

fn is_float64_sum(args: &AccumulatorArgs) -> bool {
    args.return_field.data_type() == &DataType::Float64
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
}
