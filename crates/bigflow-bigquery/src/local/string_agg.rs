//! `STRING_AGG` as BigQuery's: of STRINGs a STRING (DataFusion's own
//! aggregate), of BYTES BYTES, joined with a BYTES delimiter (DataFusion's
//! would cast the BYTES to STRING and make a STRING). Registered under
//! DataFusion's name, it replaces it.

use std::sync::Arc;

use super::udf::DfResult;
use arrow::array::{ArrayRef, AsArray, BinaryArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::functions_aggregate::array_agg::ArrayAgg;
use datafusion::functions_aggregate::string_agg::StringAgg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, Signature,
    Volatility,
};
use datafusion::physical_expr::expressions::Literal;

fn is_bytes(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// `string_agg`: DataFusion's for STRINGs, BYTES joined for BYTES.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BqStringAgg {
    signature: Signature,
    inner: StringAgg,
    array_agg: ArrayAgg,
}

impl BqStringAgg {
    /// As an aggregate function named `string_agg`.
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(BqStringAgg {
            signature: Signature::user_defined(Volatility::Immutable),
            inner: StringAgg::new(),
            array_agg: ArrayAgg::default(),
        })
    }
}

/// The delimiter of a BYTES aggregate: the second argument, a literal.
fn bytes_delimiter(args: &AccumulatorArgs) -> DfResult<Vec<u8>> {
    let Some(lit) = args.exprs.get(1).and_then(|e| e.downcast_ref::<Literal>()) else {
        return Err(DataFusionError::NotImplemented(
            "STRING_AGG with a delimiter other than a literal".into(),
        ));
    };
    match lit.value() {
        ScalarValue::Binary(b) | ScalarValue::LargeBinary(b) | ScalarValue::BinaryView(b) => {
            Ok(b.clone().unwrap_or_default())
        }
        ScalarValue::Null => Ok(Vec::new()),
        other => Err(DataFusionError::Plan(format!(
            "STRING_AGG of BYTES takes a BYTES delimiter, not {}",
            other.data_type()
        ))),
    }
}

impl AggregateUDFImpl for BqStringAgg {
    fn name(&self) -> &str {
        "string_agg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.first().is_some_and(is_bytes) {
            if arg_types.len() != 2 {
                return Err(DataFusionError::Plan(
                    "STRING_AGG takes a value and a delimiter".into(),
                ));
            }
            let delimiter = &arg_types[1];
            if !(is_bytes(delimiter) || is_text(delimiter) || *delimiter == DataType::Null) {
                return Err(DataFusionError::Plan(format!(
                    "STRING_AGG of BYTES takes a BYTES delimiter, not {delimiter}"
                )));
            }
            return Ok(vec![DataType::Binary, DataType::Binary]);
        }
        // DataFusion's own coercion of its signature.
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| Arc::new(Field::new(format!("a{i}"), t.clone(), true)))
            .collect();
        let inner = AggregateUDF::new_from_impl(StringAgg::new());
        let coerced =
            datafusion::logical_expr::type_coercion::functions::fields_with_udf(&fields, &inner)?;
        Ok(coerced.iter().map(|f| f.data_type().clone()).collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if arg_types.first().is_some_and(is_bytes) {
            Ok(DataType::Binary)
        } else {
            self.inner.return_type(arg_types)
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        if !is_bytes(args.return_field.data_type()) {
            return self.inner.state_fields(args);
        }
        if !args.is_distinct && args.ordering_fields.is_empty() {
            return Ok(vec![Arc::new(Field::new(
                format!("{}[string_agg]", args.name),
                DataType::Binary,
                true,
            ))]);
        }
        let values = &args.input_fields[..1];
        self.array_agg.state_fields(StateFieldsArgs {
            name: args.name,
            input_fields: values,
            return_field: Arc::new(Field::new(
                "f",
                DataType::new_list(DataType::Binary, true),
                true,
            )),
            ordering_fields: args.ordering_fields,
            is_distinct: args.is_distinct,
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if !is_bytes(args.return_field.data_type()) {
            return self.inner.accumulator(args);
        }
        let delimiter = bytes_delimiter(&args)?;
        if !args.is_distinct && args.order_bys.is_empty() {
            return Ok(Box::new(JoinBytes {
                joined: None,
                delimiter,
            }));
        }
        let array_agg = self.array_agg.accumulator(AccumulatorArgs {
            return_field: Arc::new(Field::new(
                "f",
                DataType::new_list(DataType::Binary, true),
                true,
            )),
            exprs: &args.exprs[..1],
            expr_fields: &args.expr_fields[..1],
            schema: args.schema,
            ignore_nulls: args.ignore_nulls,
            order_bys: args.order_bys,
            is_reversed: args.is_reversed,
            name: args.name,
            is_distinct: args.is_distinct,
        })?;
        Ok(Box::new(JoinListedBytes {
            array_agg,
            delimiter,
        }))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Reversed(Arc::new(BqStringAgg::udaf()))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !is_bytes(args.return_field.data_type()) && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }
}

/// Appends `value` to `joined` after the delimiter (the first value alone).
fn append(joined: &mut Option<Vec<u8>>, value: &[u8], delimiter: &[u8]) {
    match joined {
        Some(j) => {
            j.extend_from_slice(delimiter);
            j.extend_from_slice(value);
        }
        None => *joined = Some(value.to_vec()),
    }
}

/// BYTES joined in the order they come (no DISTINCT, no ORDER BY).
#[derive(Debug)]
struct JoinBytes {
    joined: Option<Vec<u8>>,
    delimiter: Vec<u8>,
}

impl Accumulator for JoinBytes {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let b = cast(&values[0], &DataType::Binary)?;
        for v in b.as_binary::<i32>().iter().flatten() {
            append(&mut self.joined, v, &self.delimiter);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Binary(self.joined.clone()))
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.joined.as_ref().map_or(0, Vec::capacity)
            + self.delimiter.capacity()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.update_batch(states)
    }
}

/// BYTES gathered by ARRAY_AGG (which keeps DISTINCT and ORDER BY), joined
/// at the end.
#[derive(Debug)]
struct JoinListedBytes {
    array_agg: Box<dyn Accumulator>,
    delimiter: Vec<u8>,
}

impl Accumulator for JoinListedBytes {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        // The delimiter (argument 1) is not gathered; ORDER BY keys follow it.
        let kept: Vec<ArrayRef> = values
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, v)| v.clone())
            .collect();
        self.array_agg.update_batch(&kept)
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let ScalarValue::List(list) = self.array_agg.evaluate()? else {
            return Err(DataFusionError::Internal(
                "STRING_AGG: ARRAY_AGG gave no list".into(),
            ));
        };
        let values = cast(list.values(), &DataType::Binary)?;
        let values: &BinaryArray = values.as_binary::<i32>();
        let mut joined = None;
        for v in values.iter().flatten() {
            append(&mut joined, v, &self.delimiter);
        }
        Ok(ScalarValue::Binary(joined))
    }

    fn size(&self) -> usize {
        size_of_val(self) - size_of_val(&self.array_agg)
            + self.array_agg.size()
            + self.delimiter.capacity()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.array_agg.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.array_agg.merge_batch(states)
    }
}
