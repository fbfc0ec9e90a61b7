//! PromQL's function library (being built): every function Prometheus v2.42
//! evaluates for float samples.
//!
//! The engine evaluates the arguments and calls `call` once per evaluation
//! step; a function never reads storage.

use super::{QueryError, Value};
use crate::model::Labels;

/// One call at one evaluation step.
pub struct FunctionCall<'a> {
    pub name: &'a str,
    /// Evaluated arguments. A range-vector argument arrives as `Value::Matrix`
    /// holding each series' samples inside the window `range`; an instant
    /// vector as `Value::Vector`; number and string literals as `Scalar`/`String`.
    pub args: Vec<Value>,
    /// The evaluation time (ms).
    pub t: i64,
    /// For a range-vector argument: its window `[start, end]` in ms, after
    /// offset and @ are applied (rate() extrapolates to these bounds).
    pub range: Option<(i64, i64)>,
    /// For absent()/absent_over_time(): the labels taken from the argument's
    /// equality matchers (Prometheus's rule), computed by the engine.
    pub absent_labels: Labels,
}

/// Evaluates one call. Unknown names are a `BadData` error.
pub fn call(c: FunctionCall<'_>) -> Result<Value, QueryError> {
    Err(QueryError::BadData(format!("function {:?} is not implemented yet", c.name)))
}
