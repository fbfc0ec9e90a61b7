//! Aggregation operators (`sum`, `avg`, ..., `topk`, `quantile`,
//! `count_values`) with `by`/`without`, following Prometheus 2.42's
//! arithmetic and output order (groups in order of first appearance; topk and
//! bottomk in heap order, as Go's container/heap leaves it).

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::aggregate_fused::{Fused, fusable};
use super::eval::{Evaluated, Evaluator, Steps};
use super::groups::GroupIndex;
use super::syntax::unwrap_parens;
use super::{InstantSample, QueryError};
use crate::model::Labels;

enum Param {
    None,
    Scalars(Vec<f64>),
    Label(String),
}

impl Evaluator<'_> {
    pub(crate) fn aggregate(
        &mut self,
        a: &AggregateExpr,
        steps: &Steps,
    ) -> Result<Evaluated, QueryError> {
        let op = a.op.id();
        let param = match a.param.as_deref().map(unwrap_parens) {
            None => Param::None,
            Some(Expr::StringLiteral(s)) => {
                Param::Label(super::syntax::unescape(&s.val).map_err(QueryError::BadData)?)
            }
            Some(p) => Param::Scalars(self.eval_scalar(p, steps, "the aggregation parameter")?),
        };
        let (without, mut grouping): (bool, Vec<String>) = match &a.modifier {
            None => (false, Vec::new()),
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        };
        grouping.sort();
        let evaluated = match (&param, fusable(op, &a.expr)) {
            (Param::None, Some(call)) => {
                match self.aggregate_call(op, &grouping, without, call, steps)? {
                    Fused::Done(v) => return Ok(v),
                    Fused::Input(v) => v,
                }
            }
            _ => self.eval(&a.expr, steps)?,
        };
        let input = match evaluated {
            Evaluated::Vector(v) => v,
            other => {
                self.untrack(other.sample_count());
                return Err(QueryError::BadData(
                    "aggregation expects an instant vector".into(),
                ));
            }
        };
        self.untrack(input.iter().map(Vec::len).sum());
        if let Param::Label(l) = &param {
            // count_values groups by its new label too (unless `without`).
            if !without {
                grouping.push(l.clone());
                grouping.sort();
            }
        }
        let mut out = Vec::with_capacity(input.len());
        let mut groups = GroupIndex::new(&grouping, without);
        let mut slots = Vec::new();
        for (i, vec) in input.into_iter().enumerate() {
            self.check_deadline()?;
            let t = steps.at(i);
            let mut res = match &param {
                Param::Label(l) => count_values(l, vec, &mut groups, &mut slots)?,
                Param::Scalars(p) => aggregate_step(op, p[i], vec, &mut groups, &mut slots)?,
                Param::None => aggregate_step(op, 0.0, vec, &mut groups, &mut slots)?,
            };
            // Unique by construction: one sample per group, or (topk,
            // bottomk) input samples, which are unique.
            for s in &mut res {
                s.t = t;
            }
            out.push(res);
        }
        Ok(Evaluated::Vector(out))
    }
}

pub(super) struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: u64,
    heap: Vec<InstantSample>,
}

impl Group {
    /// A group started by its first sample's value (heap operators push
    /// the sample themselves).
    pub(super) fn first(op: TokenId, labels: Labels, v: f64) -> Group {
        let value = match op {
            T_STDVAR | T_STDDEV => 0.0,
            T_GROUP => 1.0,
            _ => v,
        };
        Group {
            labels,
            value,
            mean: v,
            count: 1,
            heap: Vec::new(),
        }
    }

    /// Adds a later value, for the operators that keep no samples; `false`
    /// for the others (topk, bottomk, quantile), which the caller handles.
    pub(super) fn add(&mut self, op: TokenId, v: f64) -> bool {
        match op {
            T_SUM => self.value += v,
            T_AVG => {
                self.count += 1;
                if self.mean.is_infinite() {
                    // Inf mean stays unless a NaN or an opposite Inf arrives:
                    // the incremental formula below would turn it into NaN.
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return true;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return true;
                    }
                }
                let n = self.count as f64;
                self.mean += v / n - self.mean / n;
            }
            T_GROUP => {}
            T_MAX => {
                if self.value < v || self.value.is_nan() {
                    self.value = v;
                }
            }
            T_MIN => {
                if self.value > v || self.value.is_nan() {
                    self.value = v;
                }
            }
            T_COUNT | T_COUNT_VALUES => self.count += 1,
            T_STDVAR | T_STDDEV => {
                self.count += 1;
                let delta = v - self.mean;
                self.mean += delta / self.count as f64;
                self.value += delta * (v - self.mean);
            }
            _ => return false,
        }
        true
    }
}

/// `groups` must group by the new label as well (see `aggregate`).
fn count_values(
    label: &str,
    vec: Vec<InstantSample>,
    groups: &mut GroupIndex,
    slots: &mut Vec<u32>,
) -> Result<Vec<InstantSample>, QueryError> {
    if !is_valid_label_name(label) {
        return Err(QueryError::Execution(format!(
            "invalid label name {label:?}"
        )));
    }
    let relabeled = vec
        .into_iter()
        .map(|s| InstantSample {
            labels: s.labels.with(label, &format_value(s.v)),
            t: s.t,
            v: s.v,
        })
        .collect();
    aggregate_step(T_COUNT_VALUES, 0.0, relabeled, groups, slots)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
fn format_value(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    format!("{v}")
}

fn is_valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Marks a group id without a group at the current step in `slots`.
pub(super) const NO_SLOT: u32 = u32::MAX;

/// One aggregation at one step. `slots` maps group ids to this step's groups
/// (all `NO_SLOT` between steps), so a step needs no map of its own.
fn aggregate_step(
    op: TokenId,
    param: f64,
    vec: Vec<InstantSample>,
    keys: &mut GroupIndex,
    slots: &mut Vec<u32>,
) -> Result<Vec<InstantSample>, QueryError> {
    let mut k: i64 = 0;
    if op == T_TOPK || op == T_BOTTOMK {
        if !(param <= i64::MAX as f64 && param >= i64::MIN as f64) {
            return Err(QueryError::Execution(format!(
                "Scalar value {param} overflows int64"
            )));
        }
        k = param as i64;
        if k < 1 {
            return Ok(Vec::new());
        }
    }
    let input_len = vec.len() as i64;
    let mut groups: Vec<Group> = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    keys.fit(vec.len());
    let result = fold_groups(op, k, input_len, vec, keys, slots, &mut groups, &mut ids);
    for id in ids {
        slots[id as usize] = NO_SLOT;
    }
    result?;
    Ok(finish_groups(op, param, groups))
}

/// Adds one step's samples into `groups` (first appearance order), noting
/// in `ids` the group ids whose slots it set.
#[allow(clippy::too_many_arguments)]
fn fold_groups(
    op: TokenId,
    k: i64,
    input_len: i64,
    vec: Vec<InstantSample>,
    keys: &mut GroupIndex,
    slots: &mut Vec<u32>,
    groups: &mut Vec<Group>,
    ids: &mut Vec<u32>,
) -> Result<(), QueryError> {
    for s in vec {
        // `by ()` (or no clause) gives the empty key: one group, no labels.
        let id = keys.id(&s.labels);
        if id as usize >= slots.len() {
            slots.resize(keys.len().max(id as usize + 1), NO_SLOT);
        }
        let gi = slots[id as usize];
        if gi == NO_SLOT {
            let mut g = Group::first(op, keys.key(id).clone(), s.v);
            if matches!(op, T_TOPK | T_BOTTOMK | T_QUANTILE) {
                g.heap.reserve(k.min(input_len).max(1) as usize);
                g.heap.push(s);
            }
            slots[id as usize] = groups.len() as u32;
            ids.push(id);
            groups.push(g);
            continue;
        }
        let g = &mut groups[gi as usize];
        if g.add(op, s.v) {
            continue;
        }
        match op {
            T_TOPK => {
                let less = |a: &InstantSample, b: &InstantSample| a.v.is_nan() || a.v < b.v;
                if (g.heap.len() as i64) < k || g.heap[0].v < s.v || g.heap[0].v.is_nan() {
                    if g.heap.len() as i64 == k {
                        heap_pop(&mut g.heap, less);
                    }
                    heap_push(&mut g.heap, s, less);
                }
            }
            T_BOTTOMK => {
                let less = |a: &InstantSample, b: &InstantSample| a.v.is_nan() || a.v > b.v;
                if (g.heap.len() as i64) < k || g.heap[0].v > s.v || g.heap[0].v.is_nan() {
                    if g.heap.len() as i64 == k {
                        heap_pop(&mut g.heap, less);
                    }
                    heap_push(&mut g.heap, s, less);
                }
            }
            T_QUANTILE => g.heap.push(s),
            _ => {
                return Err(QueryError::BadData(format!(
                    "unknown aggregation operator {op}"
                )));
            }
        }
    }
    Ok(())
}

/// Each group's value (topk/bottomk: its samples).
pub(super) fn finish_groups(op: TokenId, param: f64, groups: Vec<Group>) -> Vec<InstantSample> {
    let mut out = Vec::with_capacity(groups.len());
    for mut g in groups {
        let value = match op {
            T_AVG => g.mean,
            T_COUNT | T_COUNT_VALUES => g.count as f64,
            T_STDVAR => g.value / g.count as f64,
            T_STDDEV => (g.value / g.count as f64).sqrt(),
            T_TOPK | T_BOTTOMK => {
                // The heap has its least wanted element on top; Go reverses it
                // with sort.Sort(sort.Reverse(heap)).
                let less: fn(&InstantSample, &InstantSample) -> bool = if op == T_TOPK {
                    |a, b| a.v.is_nan() || a.v < b.v
                } else {
                    |a, b| a.v.is_nan() || a.v > b.v
                };
                sort_reverse(&mut g.heap, less);
                out.extend(g.heap);
                continue;
            }
            T_QUANTILE => quantile(param, g.heap.iter().map(|s| s.v).collect()),
            _ => g.value,
        };
        out.push(InstantSample {
            labels: g.labels,
            t: 0,
            v: value,
        });
    }
    out
}

/// Prometheus's `quantile` aggregation: linear interpolation between ranks.
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as Go's vectorByValueHeap does.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

// Go's container/heap, reproduced so that ties come out in Prometheus's order.

fn heap_push<T>(h: &mut Vec<T>, x: T, less: impl Fn(&T, &T) -> bool) {
    h.push(x);
    let mut j = h.len() - 1;
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_pop<T>(h: &mut Vec<T>, less: impl Fn(&T, &T) -> bool) -> Option<T> {
    let n = h.len().checked_sub(1)?;
    h.swap(0, n);
    heap_down(h, 0, n, &less);
    h.pop()
}

fn heap_down<T>(h: &mut [T], i0: usize, n: usize, less: &impl Fn(&T, &T) -> bool) {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(&h[j2], &h[j1]) {
            j = j2;
        }
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

/// `sort.Sort(sort.Reverse(h))`: Go sorts up to 12 elements by insertion
/// sort (stable), which decides the order of ties; larger inputs are sorted
/// stably by the same ordering (NaN last).
fn sort_reverse<T>(h: &mut [T], less: fn(&T, &T) -> bool) {
    if h.len() <= 12 {
        for i in 1..h.len() {
            let mut j = i;
            while j > 0 && less(&h[j - 1], &h[j]) {
                h.swap(j, j - 1);
                j -= 1;
            }
        }
        return;
    }
    h.sort_by(|a, b| match (less(b, a), less(a, b)) {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => std::cmp::Ordering::Equal,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(i: &str, v: f64) -> InstantSample {
        InstantSample {
            labels: Labels::from_pairs([("__name__", "m"), ("i", i)]),
            t: 0,
            v,
        }
    }

    #[test]
    fn topk_orders_descending_and_respects_k() {
        let v = vec![s("a", 1.0), s("b", 5.0), s("c", 3.0), s("d", f64::NAN)];
        let out = aggregate_step(
            T_TOPK,
            2.0,
            v.clone(),
            &mut GroupIndex::new(&[], false),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(out.iter().map(|s| s.v).collect::<Vec<_>>(), vec![5.0, 3.0]);
        let out = aggregate_step(
            T_BOTTOMK,
            2.0,
            v,
            &mut GroupIndex::new(&[], false),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(out.iter().map(|s| s.v).collect::<Vec<_>>(), vec![1.0, 3.0]);
    }

    #[test]
    fn without_drops_metric_name_and_by_keeps_only_listed() {
        let v = vec![s("a", 1.0), s("a", 2.0), s("b", 4.0)];
        let out = aggregate_step(
            T_SUM,
            0.0,
            v.clone(),
            &mut GroupIndex::new(&[], true),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].labels.to_string(), r#"{i="a"}"#);
        let out = aggregate_step(
            T_SUM,
            0.0,
            v,
            &mut GroupIndex::new(&[], false),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(out[0].v, 7.0);
        assert!(out[0].labels.is_empty());
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, vec![1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(2.0, vec![1.0]), f64::INFINITY);
    }
}
