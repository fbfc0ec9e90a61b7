//! `sum by (...) (rate(x[5m]))` and the like in one pass: the aggregation
//! reads the range function's per-series columns (windowed.rs) directly, so
//! each series' group is looked up once per query and every step adds plain
//! `(series, value)` pairs into slots indexed by group id: no label set is
//! cloned, hashed or dropped per step.
//!
//! Results equal the two-node path's: within a step, series are added in
//! the same order (the matrix's), and groups come out in order of first
//! appearance. Only the operators that keep no samples are fused.

use promql_parser::parser::token::{
    T_AVG, T_COUNT, T_GROUP, T_MAX, T_MIN, T_STDDEV, T_STDVAR, T_SUM, TokenId,
};
use promql_parser::parser::{Call, Expr};

use super::QueryError;
use super::aggregate::{Group, NO_SLOT, finish_groups};
use super::eval::{Evaluated, Evaluator, Steps};
use super::functions::WindowFn;
use super::groups::GroupIndex;
use super::syntax::unwrap_parens;
use super::windowed::Columns;

/// The call under an aggregation that may take the fused path.
pub(super) fn fusable(op: TokenId, expr: &Expr) -> Option<&Call> {
    let fused_op = matches!(
        op,
        T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR
    );
    match unwrap_parens(expr) {
        Expr::Call(c) if fused_op && WindowFn::lookup(c.func.name).is_some() => Some(c),
        _ => None,
    }
}

pub(super) enum Fused {
    /// The aggregation's result.
    Done(Evaluated),
    /// The call's output, for the caller to aggregate step by step.
    Input(Evaluated),
}

impl Evaluator<'_> {
    /// Evaluates `op by/without (grouping) (call)`; `call` from `fusable`.
    pub(super) fn aggregate_call(
        &mut self,
        op: TokenId,
        grouping: &[String],
        without: bool,
        call: &Call,
        steps: &Steps,
    ) -> Result<Fused, QueryError> {
        let (args, held) = self.call_args(call, steps)?;
        let Some(cols) = self.windowed_columns(call.func.name, &args, steps)? else {
            // An argument shape the window path does not serve: the call
            // runs per step and the caller aggregates its vectors.
            let v = self.call_with_args(call, args, held, steps)?;
            self.track(v.sample_count())?;
            return Ok(Fused::Input(v));
        };
        drop(args);
        self.untrack(held);
        // The columns stand for the call's output vectors: count them while
        // held, as the two-node path would.
        let n = cols.sample_count();
        self.track(n)?;
        let out = self.fold_columns(op, grouping, without, cols, steps);
        self.untrack(n);
        Ok(Fused::Done(Evaluated::Vector(out?)))
    }

    fn fold_columns(
        &mut self,
        op: TokenId,
        grouping: &[String],
        without: bool,
        cols: Columns,
        steps: &Steps,
    ) -> Result<Vec<Vec<super::InstantSample>>, QueryError> {
        let mut index = GroupIndex::new(grouping, without);
        index.fit(cols.labels.len());
        let ids: Vec<u32> = cols.labels.iter().map(|l| index.id(l)).collect();
        let mut slots = vec![NO_SLOT; index.len()];
        let mut out = Vec::with_capacity(cols.steps.len());
        let mut touched: Vec<u32> = Vec::new();
        for (i, col) in cols.steps.iter().enumerate() {
            self.check_deadline()?;
            let mut groups: Vec<Group> = Vec::new();
            for &(k, v) in col {
                let id = ids[k as usize];
                match slots[id as usize] {
                    NO_SLOT => {
                        slots[id as usize] = groups.len() as u32;
                        touched.push(id);
                        groups.push(Group::first(op, index.key(id).clone(), v));
                    }
                    g => {
                        groups[g as usize].add(op, v);
                    }
                }
            }
            for id in touched.drain(..) {
                slots[id as usize] = NO_SLOT;
            }
            let t = steps.at(i);
            let mut res = finish_groups(op, 0.0, groups);
            for s in &mut res {
                s.t = t;
            }
            out.push(res);
        }
        Ok(out)
    }
}
