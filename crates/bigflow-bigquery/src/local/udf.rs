//! What the warehouse's UDF modules share: DataFusion's result type, its
//! error kinds as the warehouse reports them (`Execution`: the query's
//! error at run time; `Plan`: the query's error before it runs), and the
//! result of a scalar function called with constants only.

use arrow::array::ArrayRef;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::ColumnarValue;

pub type DfResult<T> = datafusion::common::Result<T>;

/// An error while the query runs (a bad value).
pub fn exec_err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Execution(msg.into())
}

/// An error of the query itself (bad arguments, types).
pub fn plan_err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(msg.into())
}

/// `out` as a scalar when every argument was one (constant folding and
/// scalar calls), else as the array.
pub fn scalar_result(args: &[ColumnarValue], out: ArrayRef) -> DfResult<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) && out.len() == 1 {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}
