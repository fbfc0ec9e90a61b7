//! Evaluates a metric query at every step: range aggregations read the logs,
//! vector aggregations and binary operators combine the per-step vectors.

use crate::logs::model::LogSource;

use super::aggregate;
use super::ast::{MetricExpr, RangeOp, VecOp};
use super::error::LogQlError;
use super::range_agg;
use super::{Budget, StepVec, Steps};

pub(crate) enum Value {
    Scalar(f64),
    /// One vector per step.
    Vector(Vec<StepVec>),
}

pub(crate) fn eval(
    src: &dyn LogSource,
    e: &MetricExpr,
    steps: &Steps,
    budget: &mut Budget,
) -> Result<Value, LogQlError> {
    Ok(match e {
        MetricExpr::Literal(v) => Value::Scalar(*v),
        MetricExpr::LabelReplace {
            inner,
            dst,
            replacement,
            src: src_label,
            regex,
        } => match eval(src, inner, steps, budget)? {
            Value::Vector(v) => Value::Vector(
                v.into_iter()
                    .map(|step| aggregate::label_replace(step, dst, replacement, src_label, regex))
                    .collect(),
            ),
            Value::Scalar(_) => {
                return Err(LogQlError::bad(
                    "label_replace needs a vector expression, got a scalar",
                ));
            }
        },
        MetricExpr::VectorLit(v) => Value::Vector(
            steps
                .iter()
                .map(|_| vec![(crate::model::Labels::default(), *v)])
                .collect(),
        ),
        MetricExpr::Range {
            op,
            param,
            range,
            grouping,
        } => Value::Vector(range_agg::eval(
            src,
            *op,
            *param,
            range,
            grouping.as_ref(),
            steps,
            budget,
        )?),
        MetricExpr::Vector {
            op,
            param,
            grouping,
            inner,
        } => {
            // `sum by (x) (count_over_time(...))` and friends: group samples
            // while reading, as Loki does, so a parser that makes every line
            // its own series does not build one series per line first. Only
            // for `sum` of additive range functions, where it is the same answer.
            if *op == VecOp::Sum
                && let MetricExpr::Range {
                    op: rop,
                    param: rparam,
                    range,
                    grouping: None,
                } = inner.as_ref()
                && matches!(
                    rop,
                    RangeOp::CountOverTime
                        | RangeOp::Rate
                        | RangeOp::BytesOverTime
                        | RangeOp::BytesRate
                        | RangeOp::SumOverTime
                )
            {
                let pushed = grouping.clone().unwrap_or_default();
                let per_step =
                    range_agg::eval(src, *rop, *rparam, range, Some(&pushed), steps, budget)?;
                return Ok(Value::Vector(
                    per_step
                        .into_iter()
                        .map(|v| aggregate::vector(VecOp::Sum, None, grouping.as_ref(), v))
                        .collect(),
                ));
            }
            match eval(src, inner, steps, budget)? {
                Value::Vector(steps_v) => Value::Vector(
                    steps_v
                        .into_iter()
                        .map(|v| aggregate::vector(*op, *param, grouping.as_ref(), v))
                        .collect(),
                ),
                // The parser only lets metric expressions in; a scalar inside an
                // aggregation has no series to aggregate.
                Value::Scalar(_) => {
                    return Err(LogQlError::bad(
                        "expected a vector expression in aggregation, got a scalar",
                    ));
                }
            }
        }
        MetricExpr::Binary {
            op,
            return_bool,
            matching,
            lhs,
            rhs,
        } => {
            let l = eval(src, lhs, steps, budget)?;
            let r = eval(src, rhs, steps, budget)?;
            match (l, r) {
                (Value::Scalar(a), Value::Scalar(b)) => {
                    Value::Scalar(aggregate::scalar_scalar(*op, a, b))
                }
                (Value::Vector(v), Value::Scalar(s)) => Value::Vector(
                    v.into_iter()
                        .map(|x| aggregate::vector_scalar(*op, *return_bool, x, s, false))
                        .collect(),
                ),
                (Value::Scalar(s), Value::Vector(v)) => Value::Vector(
                    v.into_iter()
                        .map(|x| aggregate::vector_scalar(*op, *return_bool, x, s, true))
                        .collect(),
                ),
                (Value::Vector(a), Value::Vector(b)) => Value::Vector(
                    a.into_iter()
                        .zip(b)
                        .map(|(x, y)| aggregate::vector_vector(*op, *return_bool, matching, x, y))
                        .collect::<Result<_, _>>()
                        .map_err(LogQlError::bad)?,
                ),
            }
        }
    })
}
