//! `REGEXP_INSTR` as BigQuery answers it: `bq_regexp_instr(value, regexp,
//! position, occurrence, occurrence_position)` (the rewriter fills the
//! defaults 1, 1, 0). DataFusion's `regexp_instr` takes its fifth argument
//! as regex flags and ignores capturing groups; BigQuery's gives the
//! position of the group when the regexp has one, and of the end of the
//! match (or group) with `occurrence_position` 1.

use std::collections::HashMap;
use std::sync::Arc;

use super::udf::{DfResult, exec_err};
use arrow::array::{Array, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

/// The 1-based character position BigQuery's REGEXP_INSTR gives for the
/// `occurrence`-th match of `re` in `value` from character `position`
/// (0: none); `end` for the position after the match rather than its
/// first character. Matches are found one after another, each from the end
/// of the one before (one character further after an empty match); with a
/// capturing group the position is the group's.
pub fn regexp_instr(
    value: &str,
    re: &Regex,
    position: i64,
    occurrence: i64,
    end: bool,
) -> DfResult<i64> {
    if position <= 0 || occurrence <= 0 {
        return Err(exec_err(
            "REGEXP_INSTR: the position and the occurrence must be positive",
        ));
    }
    if re.captures_len() > 2 {
        return Err(exec_err(
            "REGEXP_INSTR: the regular expression must not have more than 1 capturing group",
        ));
    }
    let chars = value.chars().count() as i64;
    if position > chars || re.as_str().is_empty() {
        return Ok(0);
    }
    let start = value
        .char_indices()
        .nth((position - 1) as usize)
        .map_or(value.len(), |(b, _)| b);
    let text = &value[start..];
    // Byte offsets in `text`: where the next search starts; the last
    // match's (or group's) start and end.
    let mut at = 0;
    let mut found: Option<(usize, usize)> = None;
    let mut finished = false;
    for _ in 0..occurrence {
        if finished {
            return Ok(0);
        }
        let Some(caps) = re.captures_at(text, at) else {
            return Ok(0);
        };
        let whole = caps.get(0).map_or(at..at, |m| m.range());
        found = if re.captures_len() == 2 {
            caps.get(1).map(|g| (g.start(), g.end()))
        } else {
            Some((whole.start, whole.end))
        };
        at = whole.end;
        if whole.is_empty() && at < text.len() {
            at += text[at..].chars().next().map_or(1, char::len_utf8);
        }
        if at >= text.len() {
            finished = true;
        }
    }
    let Some((s, e)) = found else {
        return Ok(0);
    };
    let before = if end { e } else { s };
    Ok(text[..before].chars().count() as i64 + position)
}

/// `bq_regexp_instr(value, regexp, position, occurrence, occurrence_position)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpInstr {
    signature: Signature,
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

impl ScalarUDFImpl for RegexpInstr {
    fn name(&self) -> &str {
        "bq_regexp_instr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 5 {
            return Err(DataFusionError::Plan(
                "REGEXP_INSTR takes 2 to 5 arguments".into(),
            ));
        }
        if !arg_types[..2].iter().all(is_text) {
            return Err(DataFusionError::NotImplemented(format!(
                "REGEXP_INSTR of {} values",
                super::typed::type_name(&arg_types[0])
            )));
        }
        let int = |t: &DataType| t.is_integer() || *t == DataType::Null;
        if !arg_types[2..].iter().all(int) {
            return Err(DataFusionError::Plan(
                "REGEXP_INSTR: the position, occurrence and occurrence_position must be INT64"
                    .into(),
            ));
        }
        Ok(vec![
            DataType::Utf8,
            DataType::Utf8,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = |i: usize| cast(&arrays[i], &DataType::Utf8);
        let int = |i: usize| cast(&arrays[i], &DataType::Int64);
        let (values, patterns) = (text(0)?, text(1)?);
        let (values, patterns) = (values.as_string::<i32>(), patterns.as_string::<i32>());
        let (position, occurrence, at_end) = (int(2)?, int(3)?, int(4)?);
        let position = position.as_primitive::<arrow::datatypes::Int64Type>();
        let occurrence = occurrence.as_primitive::<arrow::datatypes::Int64Type>();
        let at_end = at_end.as_primitive::<arrow::datatypes::Int64Type>();
        let mut compiled: HashMap<String, Regex> = HashMap::new();
        let mut out = Vec::with_capacity(values.len());
        for i in 0..values.len() {
            if values.is_null(i)
                || patterns.is_null(i)
                || position.is_null(i)
                || occurrence.is_null(i)
                || at_end.is_null(i)
            {
                out.push(None);
                continue;
            }
            let end = match at_end.value(i) {
                0 => false,
                1 => true,
                n => {
                    return Err(exec_err(format!(
                        "REGEXP_INSTR: occurrence_position must be 0 or 1, not {n}"
                    )));
                }
            };
            let pattern = patterns.value(i);
            if !compiled.contains_key(pattern) {
                // One per distinct pattern, and not without limit.
                if compiled.len() >= 64 {
                    compiled.clear();
                }
                let re = Regex::new(pattern)
                    .map_err(|e| exec_err(format!("Cannot parse regular expression: {e}")))?;
                compiled.insert(pattern.to_string(), re);
            }
            let re = &compiled[pattern];
            out.push(Some(regexp_instr(
                values.value(i),
                re,
                position.value(i),
                occurrence.value(i),
                end,
            )?));
        }
        let out = Int64Array::from(out);
        if scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(Arc::new(out)))
        }
    }
}

/// The UDFs of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(RegexpInstr {
        signature: Signature::user_defined(Volatility::Immutable),
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instr(v: &str, p: &str, position: i64, occurrence: i64, end: bool) -> i64 {
        regexp_instr(v, &Regex::new(p).unwrap(), position, occurrence, end).unwrap()
    }

    #[test]
    fn positions_of_matches_and_groups() {
        assert_eq!(instr("abcabc", "a(b)c", 2, 1, true), 6);
        assert_eq!(instr("щцфщфф", "щ(.).", 1, 2, false), 5);
        assert_eq!(instr("-2020-jack-class1", "", 2, 1, false), 0);
        assert_eq!(instr("abcdef", "ac.*e.", 1, 1, false), 0);
        assert_eq!(instr("ab@cd-ef", "@[^-]*", 1, 1, false), 3);
        assert_eq!(instr("ab@cd-ef", "@[^-]*", 1, 1, true), 6);
        assert_eq!(instr("a1a2a3", "a", 1, 3, false), 5);
        assert_eq!(instr("a1a2a3", "a", 1, 4, false), 0);
        assert_eq!(instr("abc", "b", 4, 1, false), 0);
        assert_eq!(instr("", "x*", 1, 1, false), 0);
        // Empty matches step one character on.
        assert_eq!(instr("ab", "x*", 1, 2, false), 2);
        assert_eq!(instr("ab", "x*", 1, 3, false), 0);
        // A group that takes no part in the match.
        assert_eq!(instr("ab", "a(x)?", 1, 1, false), 0);
        let re = Regex::new("(a)(b)").unwrap();
        assert!(regexp_instr("ab", &re, 1, 1, false).is_err());
        let re = Regex::new("a").unwrap();
        assert!(regexp_instr("ab", &re, 0, 1, false).is_err());
        assert!(regexp_instr("ab", &re, 1, 0, false).is_err());
        assert_eq!(
            regexp_instr("ab", &re, i64::MAX, i64::MAX, true).unwrap(),
            0
        );
        assert_eq!(regexp_instr("aaa", &re, 1, i64::MAX, true).unwrap(), 0);
    }
}
