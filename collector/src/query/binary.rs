//! Binary operators: arithmetic, comparisons (filtering or `bool`), the set
//! operators and vector matching (`on`/`ignoring`, `group_left`/`group_right`),
//! with Prometheus 2.42's result-label and error rules.

use std::cell::RefCell;
use std::collections::HashSet;

use promql_parser::label::Labels as PLabels;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{Evaluated, Evaluator, Steps};
use super::groups::AddrMap;
use super::memo::{Derive, Memo, check_unique_canonical, identity};
use super::{InstantSample, QueryError};
use crate::model::{Labels, METRIC_NAME};

/// How two vectors are matched, taken from the expression's modifiers.
/// Signatures and result labels are cached (the same series meet at every
/// step of a range query), so one `Matching` serves one expression node: its
/// operator and `bool` must not change between calls.
#[derive(Debug)]
pub(crate) struct Matching {
    pub card: Card,
    /// `on(...)` when true, `ignoring(...)` (or nothing) when false.
    pub on: bool,
    pub labels: Vec<String>,
    /// `group_left(...)`/`group_right(...)` labels copied from the "one" side.
    pub include: Vec<String>,
    signatures: RefCell<Derive>,
    results: RefCell<Memo<Labels>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

impl Matching {
    pub fn new(card: Card, on: bool, labels: Vec<String>, include: Vec<String>) -> Matching {
        Matching {
            card,
            on,
            labels,
            include,
            signatures: RefCell::default(),
            results: RefCell::default(),
        }
    }

    fn from_expr(b: &BinaryExpr) -> Matching {
        let names = |l: &PLabels| l.labels.clone();
        let (card, include) = match b.modifier.as_ref().map(|m| &m.card) {
            None | Some(VectorMatchCardinality::OneToOne) => (Card::OneToOne, Vec::new()),
            Some(VectorMatchCardinality::ManyToOne(l)) => (Card::ManyToOne, names(l)),
            Some(VectorMatchCardinality::OneToMany(l)) => (Card::OneToMany, names(l)),
            Some(VectorMatchCardinality::ManyToMany) => (Card::ManyToMany, Vec::new()),
        };
        let (on, labels) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(l)) => (true, names(l)),
            Some(LabelModifier::Exclude(l)) => (false, names(l)),
            None => (false, Vec::new()),
        };
        Matching::new(card, on, labels, include)
    }

    /// The labels two samples must share to match, canonical: equal
    /// signatures share one allocation (see `memo`).
    pub fn signature(&self, l: &Labels) -> Labels {
        self.signatures
            .borrow_mut()
            .get(l, |l| self.compute_signature(l))
    }

    fn sig_id(&self, l: &Labels) -> (usize, usize) {
        identity(&self.signature(l))
    }

    fn fit(&self, step_len: usize) {
        self.signatures.borrow_mut().fit(step_len);
        self.results.borrow_mut().fit(step_len);
    }

    fn compute_signature(&self, l: &Labels) -> Labels {
        let names: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        if self.on {
            l.only(&names)
        } else {
            let mut names = names;
            names.push(METRIC_NAME);
            l.without(&names)
        }
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic drops the metric name; comparisons and atan2 keep it (2.42).
fn drops_metric_name(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD)
}

/// One operation on two floats: the value and whether a comparison holds
/// (always true for arithmetic). Comparisons yield the left value.
fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => {
            return Err(QueryError::BadData(format!(
                "operator {op} not allowed between these operands"
            )));
        }
    })
}

/// Scalar-scalar: comparisons (which need `bool`) give 0 or 1.
fn scalar_binop(op: TokenId, l: f64, r: f64) -> Result<f64, QueryError> {
    let (v, keep) = elem_binop(op, l, r)?;
    Ok(if is_comparison(op) {
        if keep { 1.0 } else { 0.0 }
    } else {
        v
    })
}

impl Evaluator<'_> {
    pub(crate) fn binary(
        &mut self,
        b: &BinaryExpr,
        steps: &Steps,
    ) -> Result<Evaluated, QueryError> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, steps)?;
        let rhs = self.eval(&b.rhs, steps)?;
        self.untrack(lhs_rhs_count(&lhs, &rhs));
        let out = match (lhs, rhs) {
            (Evaluated::Scalar(l), Evaluated::Scalar(r)) => Evaluated::Scalar(
                l.into_iter()
                    .zip(r)
                    .map(|(l, r)| scalar_binop(op, l, r))
                    .collect::<Result<_, _>>()?,
            ),
            (Evaluated::Vector(l), Evaluated::Scalar(r)) => {
                Evaluated::Vector(self.vector_scalar_steps(op, l, &r, false, return_bool, steps)?)
            }
            (Evaluated::Scalar(l), Evaluated::Vector(r)) => {
                Evaluated::Vector(self.vector_scalar_steps(op, r, &l, true, return_bool, steps)?)
            }
            (Evaluated::Vector(l), Evaluated::Vector(r)) => {
                let matching = Matching::from_expr(b);
                let mut out = Vec::with_capacity(l.len());
                for (i, (lv, rv)) in l.into_iter().zip(r).enumerate() {
                    self.check_deadline()?;
                    matching.fit(lv.len() + rv.len());
                    // Unique by construction: set operators keep input series,
                    // arithmetic results are unique per matching signature.
                    let mut v = match op {
                        T_LAND => vector_and(lv, &rv, &matching),
                        T_LOR => vector_or(lv, rv, &matching),
                        T_LUNLESS => vector_unless(lv, &rv, &matching),
                        _ => vector_binop(op, lv, rv, &matching, return_bool)?,
                    };
                    let t = steps.at(i);
                    for s in &mut v {
                        s.t = t;
                    }
                    out.push(v);
                }
                Evaluated::Vector(out)
            }
            _ => {
                return Err(QueryError::BadData(
                    "binary expression must contain only scalar and instant vector types".into(),
                ));
            }
        };
        Ok(out)
    }

    fn vector_scalar_steps(
        &self,
        op: TokenId,
        vectors: Vec<Vec<InstantSample>>,
        scalars: &[f64],
        swap: bool,
        return_bool: bool,
        steps: &Steps,
    ) -> Result<Vec<Vec<InstantSample>>, QueryError> {
        let relabel = drops_metric_name(op) || return_bool;
        let mut names = Derive::new();
        let mut out = Vec::with_capacity(vectors.len());
        for (i, v) in vectors.into_iter().enumerate() {
            self.check_deadline()?;
            names.fit(v.len());
            let mut v = vector_scalar(op, v, scalars[i], swap, return_bool)?;
            let t = steps.at(i);
            for s in &mut v {
                s.t = t;
                if relabel {
                    s.labels = names.get(&s.labels, |l| l.without(&[METRIC_NAME]));
                }
            }
            // Dropping the name can make two series one.
            if relabel {
                check_unique_canonical(&v)?;
            }
            out.push(v);
        }
        Ok(out)
    }
}

fn lhs_rhs_count(l: &Evaluated, r: &Evaluated) -> usize {
    let count = |e: &Evaluated| match e {
        Evaluated::Scalar(v) => v.len(),
        Evaluated::Vector(v) => v.iter().map(Vec::len).sum(),
        _ => 0,
    };
    count(l) + count(r)
}

/// Vector op scalar (or scalar op vector when `swap`).
fn vector_scalar(
    op: TokenId,
    v: Vec<InstantSample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<InstantSample>, QueryError> {
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let (l, r) = if swap { (scalar, s.v) } else { (s.v, scalar) };
        let (mut value, mut keep) = elem_binop(op, l, r)?;
        // A comparison keeps the vector's value even when the scalar is on the left.
        if is_comparison(op) && swap {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            // The caller drops the metric name where due.
            s.v = value;
            out.push(s);
        }
    }
    Ok(out)
}

fn vector_and(lhs: Vec<InstantSample>, rhs: &[InstantSample], m: &Matching) -> Vec<InstantSample> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let right: HashSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| right.contains(&m.signature(&s.labels)))
        .collect()
}

fn vector_or(lhs: Vec<InstantSample>, rhs: Vec<InstantSample>, m: &Matching) -> Vec<InstantSample> {
    if lhs.is_empty() {
        return rhs;
    }
    if rhs.is_empty() {
        return lhs;
    }
    let left: HashSet<Labels> = lhs.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&m.signature(&s.labels))),
    );
    out
}

fn vector_unless(
    lhs: Vec<InstantSample>,
    rhs: &[InstantSample],
    m: &Matching,
) -> Vec<InstantSample> {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs;
    }
    let right: HashSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| !right.contains(&m.signature(&s.labels)))
        .collect()
}

/// Arithmetic or comparison between two vectors (Prometheus's VectorBinop).
pub(crate) fn vector_binop(
    op: TokenId,
    lhs: Vec<InstantSample>,
    rhs: Vec<InstantSample>,
    m: &Matching,
    return_bool: bool,
) -> Result<Vec<InstantSample>, QueryError> {
    if m.card == Card::ManyToMany {
        return Err(QueryError::BadData(
            "many-to-many matching is only allowed for set operators".into(),
        ));
    }
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    // One-to-many is many-to-one with the sides swapped; values are swapped back.
    let swapped = m.card == Card::OneToMany;
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };

    let mut one_side: AddrMap<(usize, usize), &InstantSample> =
        AddrMap::with_capacity_and_hasher(one.len(), Default::default());
    for s in &one {
        let sig = m.signature(&s.labels);
        if let Some(dup) = one_side.get(&identity(&sig)) {
            let side = if swapped { "left" } else { "right" };
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                s.labels, dup.labels
            )));
        }
        one_side.insert(identity(&sig), s);
    }

    // For one-to-one: which signatures matched. For many-to-one: the result
    // label sets per signature, to catch duplicates.
    let mut matched: AddrMap<(usize, usize), HashSet<Labels>> = AddrMap::default();
    let mut out = Vec::new();
    for ls in &many {
        let sig = m.sig_id(&ls.labels);
        let Some(rs) = one_side.get(&sig) else {
            continue;
        };
        let (vl, vr) = if swapped { (rs.v, ls.v) } else { (ls.v, rs.v) };
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let metric = m.result_metric(&ls.labels, &rs.labels, op, return_bool);
        let entry = matched.entry(sig);
        if m.card == Card::OneToOne {
            if matches!(entry, std::collections::hash_map::Entry::Occupied(_)) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            entry.or_default();
        } else if !entry.or_default().insert(metric.clone()) {
            return Err(QueryError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push(InstantSample {
            labels: metric,
            t: ls.t,
            v: value,
        });
    }
    Ok(out)
}

impl Matching {
    /// The labels of a vector-vector result, from the "many" side `l`.
    fn result_metric(&self, l: &Labels, r: &Labels, op: TokenId, return_bool: bool) -> Labels {
        self.results.borrow_mut().get2(l, r, |l, r| {
            let metric = result_metric(l, r, op, self);
            if return_bool {
                metric.without(&[METRIC_NAME])
            } else {
                metric
            }
        })
    }
}

fn result_metric(l: &Labels, r: &Labels, op: TokenId, m: &Matching) -> Labels {
    let mut pairs: Vec<(String, String)> = l.pairs().to_vec();
    if drops_metric_name(op) {
        pairs.retain(|(n, _)| n != METRIC_NAME);
    }
    if m.card == Card::OneToOne {
        if m.on {
            pairs.retain(|(n, _)| m.labels.contains(n));
        } else {
            pairs.retain(|(n, _)| !m.labels.contains(n));
        }
    }
    for name in &m.include {
        pairs.retain(|(n, _)| n != name);
        if let Some(v) = r.get(name) {
            pairs.push((name.clone(), v.to_string()));
        }
    }
    Labels::new(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(labels: &[(&str, &str)], v: f64) -> InstantSample {
        InstantSample {
            labels: Labels::from_pairs(labels.iter().copied()),
            t: 0,
            v,
        }
    }

    fn matching(card: Card, on: bool, labels: &[&str], include: &[&str]) -> Matching {
        Matching::new(
            card,
            on,
            labels.iter().map(|x| x.to_string()).collect(),
            include.iter().map(|x| x.to_string()).collect(),
        )
    }

    #[test]
    fn one_to_one_ignores_metric_name_and_drops_it() {
        let l = vec![
            s(&[("__name__", "a"), ("i", "1")], 10.0),
            s(&[("__name__", "a"), ("i", "2")], 20.0),
        ];
        let r = vec![s(&[("__name__", "b"), ("i", "1")], 1.0)];
        let out = vector_binop(
            T_SUB,
            l,
            r,
            &matching(Card::OneToOne, false, &[], &[]),
            false,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels.to_string(), r#"{i="1"}"#);
        assert_eq!(out[0].v, 9.0);
    }

    #[test]
    fn comparison_filters_and_keeps_name_unless_bool() {
        let l = vec![
            s(&[("__name__", "a"), ("i", "1")], 10.0),
            s(&[("__name__", "a"), ("i", "2")], 20.0),
        ];
        let r = vec![
            s(&[("__name__", "b"), ("i", "1")], 15.0),
            s(&[("__name__", "b"), ("i", "2")], 15.0),
        ];
        let m = matching(Card::OneToOne, false, &[], &[]);
        let out = vector_binop(T_GTR, l.clone(), r.clone(), &m, false).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels.to_string(), r#"a{i="2"}"#);
        // A Matching (and its caches) belongs to one expression node.
        let m = matching(Card::OneToOne, false, &[], &[]);
        let out = vector_binop(T_GTR, l, r, &m, true).unwrap();
        assert_eq!(out.iter().map(|s| s.v).collect::<Vec<_>>(), vec![0.0, 1.0]);
        assert!(out.iter().all(|s| s.labels.metric_name().is_none()));
    }

    #[test]
    fn group_left_copies_include_labels_and_many_to_many_fails() {
        let many = vec![
            s(&[("i", "1"), ("mode", "user")], 2.0),
            s(&[("i", "1"), ("mode", "sys")], 4.0),
        ];
        let one = vec![s(&[("i", "1"), ("role", "db")], 2.0)];
        let m = matching(Card::ManyToOne, true, &["i"], &["role"]);
        let out = vector_binop(T_DIV, many.clone(), one.clone(), &m, false).unwrap();
        // Cached signatures give the same answer on the next step.
        assert_eq!(
            vector_binop(T_DIV, many.clone(), one.clone(), &m, false).unwrap(),
            out
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].labels.get("role"), Some("db"));
        assert_eq!(out[1].v, 2.0);
        // Without group_left the many side is ambiguous.
        let err = vector_binop(
            T_DIV,
            many.clone(),
            one.clone(),
            &matching(Card::OneToOne, true, &["i"], &[]),
            false,
        );
        assert!(matches!(err, Err(QueryError::Execution(_))));
        // Duplicates on the "one" side are refused.
        let err = vector_binop(
            T_DIV,
            one,
            many,
            &matching(Card::ManyToOne, true, &["i"], &[]),
            false,
        );
        assert!(matches!(err, Err(QueryError::Execution(m)) if m.contains("many-to-many")));
    }

    #[test]
    fn group_right_keeps_values_in_operand_order() {
        let one = vec![s(&[("i", "1")], 10.0)];
        let many = vec![s(&[("i", "1"), ("x", "a")], 2.0)];
        let out = vector_binop(
            T_SUB,
            one,
            many,
            &matching(Card::OneToMany, true, &["i"], &[]),
            false,
        )
        .unwrap();
        assert_eq!(out[0].v, 8.0);
        assert_eq!(out[0].labels.get("x"), Some("a"));
    }

    #[test]
    fn set_operators_match_on_signature() {
        let m = matching(Card::ManyToMany, true, &["i"], &[]);
        let l = vec![s(&[("i", "1"), ("a", "x")], 1.0), s(&[("i", "2")], 2.0)];
        let r = vec![s(&[("i", "1"), ("a", "y")], 9.0), s(&[("i", "3")], 3.0)];
        assert_eq!(vector_and(l.clone(), &r, &m).len(), 1);
        assert_eq!(vector_unless(l.clone(), &r, &m)[0].v, 2.0);
        let or = vector_or(l, r, &m);
        assert_eq!(
            or.iter().map(|s| s.v).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0]
        );
    }
}
