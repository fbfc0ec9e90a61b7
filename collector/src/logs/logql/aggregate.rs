//! Vector aggregations (`sum`, `avg`, `min`, `max`, `count`, `stddev`,
//! `stdvar`, `topk`, `bottomk` with `by`/`without`) and binary operators
//! (arithmetic, comparisons with optional `bool`, and/or/unless) over the
//! per-step vectors range aggregations produce. Vector/vector operations
//! match samples with identical label sets (one-to-one), as PromQL does
//! without `on`/`ignoring`.

use std::collections::{HashMap, HashSet};

use crate::model::Labels;

use super::StepVec;
use super::ast::{BinOp, Grouping, VecOp, VectorMatching};

fn group_key(labels: &Labels, g: Option<&Grouping>) -> Labels {
    match g {
        None => Labels::default(),
        Some(g) => {
            let names: Vec<&str> = g.labels.iter().map(String::as_str).collect();
            if g.without {
                labels.without(&names)
            } else {
                labels.only(&names)
            }
        }
    }
}

pub(crate) fn vector(op: VecOp, param: Option<f64>, g: Option<&Grouping>, v: StepVec) -> StepVec {
    let mut groups: Vec<(Labels, Vec<(Labels, f64)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (labels, value) in v {
        let key = group_key(&labels, g);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((labels, value));
    }
    let mut out = Vec::new();
    for (key, members) in groups {
        let vals = || members.iter().map(|m| m.1);
        let n = members.len() as f64;
        let value = match op {
            VecOp::Sum => vals().sum(),
            VecOp::Avg => vals().sum::<f64>() / n,
            VecOp::Count => n,
            VecOp::Min => vals().fold(f64::NAN, |m, x| if x < m || m.is_nan() { x } else { m }),
            VecOp::Max => vals().fold(f64::NAN, |m, x| if x > m || m.is_nan() { x } else { m }),
            VecOp::Stddev | VecOp::Stdvar => {
                let mean = vals().sum::<f64>() / n;
                let var = vals().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                if op == VecOp::Stddev { var.sqrt() } else { var }
            }
            VecOp::Topk | VecOp::Bottomk => {
                let k = param.unwrap_or(1.0).max(0.0) as usize;
                let mut m = members;
                // NaN sorts last for both, as in Prometheus.
                m.sort_by(|a, b| {
                    let (x, y) = (a.1, b.1);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if op == VecOp::Topk => y.total_cmp(&x),
                        _ => x.total_cmp(&y),
                    }
                });
                m.truncate(k);
                out.extend(m);
                continue;
            }
        };
        out.push((key, value));
    }
    out
}

/// PromQL's `label_replace`: where `src`'s value matches `regex` (anchored),
/// set `dst` to the expanded `replacement` (an empty result removes `dst`).
pub(crate) fn label_replace(
    v: StepVec,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &regex::Regex,
) -> StepVec {
    v.into_iter()
        .map(|(labels, value)| {
            let src_value = labels.get(src).unwrap_or("");
            let Some(caps) = regex.captures(src_value) else {
                return (labels, value);
            };
            let mut out = String::new();
            caps.expand(replacement, &mut out);
            (labels.with(dst, &out), value)
        })
        .collect()
}

fn arith(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => f64::from(a == b),
        BinOp::Ne => f64::from(a != b),
        BinOp::Gt => f64::from(a > b),
        BinOp::Ge => f64::from(a >= b),
        BinOp::Lt => f64::from(a < b),
        BinOp::Le => f64::from(a <= b),
        BinOp::And | BinOp::Or | BinOp::Unless => f64::NAN,
    }
}

pub(crate) fn scalar_scalar(op: BinOp, a: f64, b: f64) -> f64 {
    arith(op, a, b)
}

/// vector op scalar (or scalar op vector when `scalar_left`).
pub(crate) fn vector_scalar(
    op: BinOp,
    return_bool: bool,
    v: StepVec,
    s: f64,
    scalar_left: bool,
) -> StepVec {
    let mut out = Vec::with_capacity(v.len());
    for (labels, x) in v {
        let (a, b) = if scalar_left { (s, x) } else { (x, s) };
        let r = arith(op, a, b);
        if op.is_comparison() {
            if return_bool {
                out.push((labels, r));
            } else if r == 1.0 {
                // A filter keeps the vector's own value.
                out.push((labels, x));
            }
        } else {
            out.push((labels, r));
        }
    }
    out
}

pub(crate) fn vector_vector(
    op: BinOp,
    return_bool: bool,
    m: &VectorMatching,
    l: StepVec,
    r: StepVec,
) -> Result<StepVec, String> {
    let names: Vec<&str> = m.labels.iter().map(String::as_str).collect();
    let key = |labels: &Labels| {
        if m.on {
            labels.only(&names)
        } else {
            labels.without(&names)
        }
    };
    match op {
        BinOp::And | BinOp::Unless => {
            let rkeys: HashSet<Labels> = r.iter().map(|(k, _)| key(k)).collect();
            let want = op == BinOp::And;
            return Ok(l
                .into_iter()
                .filter(|(k, _)| rkeys.contains(&key(k)) == want)
                .collect());
        }
        BinOp::Or => {
            let lkeys: HashSet<Labels> = l.iter().map(|(k, _)| key(k)).collect();
            let mut out = l;
            out.extend(r.into_iter().filter(|(k, _)| !lkeys.contains(&key(k))));
            return Ok(out);
        }
        _ => {}
    }
    let many_is_left = m.group.as_ref().is_none_or(|g| g.left);
    let (many, one) = if many_is_left { (l, r) } else { (r, l) };
    let one_side = if many_is_left { "right" } else { "left" };
    let mut ones: HashMap<Labels, (Labels, f64)> = HashMap::new();
    for (labels, v) in one {
        let k = key(&labels);
        if ones.insert(k.clone(), (labels, v)).is_some() {
            return Err(format!(
                "found duplicate series for the match group {k} on the {one_side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
            ));
        }
    }
    let mut seen: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for (labels, v) in many {
        let k = key(&labels);
        let Some((one_labels, ov)) = ones.get(&k) else {
            continue;
        };
        if m.group.is_none() && !seen.insert(k.clone()) {
            return Err(format!(
                "multiple matches for labels {k}: many-to-one matching must be explicit (group_left/group_right)"
            ));
        }
        let (a, b) = if many_is_left { (v, *ov) } else { (*ov, v) };
        let res = arith(op, a, b);
        let result_labels = match &m.group {
            None => key(&labels),
            Some(g) => {
                let mut pairs: Vec<(String, String)> = labels.pairs().to_vec();
                for inc in &g.include {
                    pairs.retain(|(n, _)| n != inc);
                    if let Some(v) = one_labels.get(inc) {
                        pairs.push((inc.clone(), v.to_string()));
                    }
                }
                Labels::new(pairs)
            }
        };
        if op.is_comparison() && !return_bool {
            if res == 1.0 {
                out.push((result_labels, a));
            }
        } else {
            out.push((result_labels, res));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn sample() -> StepVec {
        vec![
            (l(&[("app", "a"), ("lvl", "err")]), 3.0),
            (l(&[("app", "a"), ("lvl", "info")]), 5.0),
            (l(&[("app", "b"), ("lvl", "err")]), 1.0),
        ]
    }

    fn by(names: &[&str], without: bool) -> Grouping {
        Grouping {
            without,
            labels: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn sorted(mut v: StepVec) -> StepVec {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn aggregations() {
        assert_eq!(
            vector(VecOp::Sum, None, None, sample()),
            vec![(Labels::default(), 9.0)]
        );
        assert_eq!(
            sorted(vector(
                VecOp::Sum,
                None,
                Some(&by(&["app"], false)),
                sample()
            )),
            vec![(l(&[("app", "a")]), 8.0), (l(&[("app", "b")]), 1.0)]
        );
        assert_eq!(
            sorted(vector(
                VecOp::Max,
                None,
                Some(&by(&["app"], true)),
                sample()
            )),
            vec![(l(&[("lvl", "err")]), 3.0), (l(&[("lvl", "info")]), 5.0)]
        );
        assert_eq!(
            vector(VecOp::Count, None, None, sample()),
            vec![(Labels::default(), 3.0)]
        );
        assert_eq!(
            vector(VecOp::Avg, None, None, sample()),
            vec![(Labels::default(), 3.0)]
        );
        assert_eq!(
            vector(VecOp::Min, None, None, sample()),
            vec![(Labels::default(), 1.0)]
        );
        let top = vector(VecOp::Topk, Some(2.0), None, sample());
        assert_eq!(top.iter().map(|s| s.1).collect::<Vec<_>>(), vec![5.0, 3.0]);
        let bottom = vector(
            VecOp::Bottomk,
            Some(1.0),
            Some(&by(&["app"], false)),
            sample(),
        );
        assert_eq!(
            sorted(bottom).iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![3.0, 1.0]
        );
    }

    #[test]
    fn binary() {
        let v = vector_scalar(BinOp::Div, false, sample(), 2.0, false);
        assert_eq!(
            v.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![1.5, 2.5, 0.5]
        );
        let v = vector_scalar(BinOp::Gt, false, sample(), 2.0, false);
        assert_eq!(v.iter().map(|s| s.1).collect::<Vec<_>>(), vec![3.0, 5.0]);
        let v = vector_scalar(BinOp::Gt, true, sample(), 2.0, false);
        assert_eq!(
            v.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![1.0, 1.0, 0.0]
        );
        let v = vector_scalar(BinOp::Sub, false, sample(), 10.0, true);
        assert_eq!(
            v.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![7.0, 5.0, 9.0]
        );
        let other = vec![
            (l(&[("app", "a"), ("lvl", "err")]), 2.0),
            (l(&[("app", "z")]), 1.0),
        ];
        let exact = VectorMatching::default();
        let vv = |op, a: StepVec, b: StepVec, m: &VectorMatching| vector_vector(op, false, m, a, b);
        assert_eq!(
            vv(BinOp::Mul, sample(), other.clone(), &exact).unwrap(),
            vec![(l(&[("app", "a"), ("lvl", "err")]), 6.0)]
        );
        assert_eq!(
            vv(BinOp::And, sample(), other.clone(), &exact)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            vv(BinOp::Unless, sample(), other.clone(), &exact)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            vv(BinOp::Or, sample(), other.clone(), &exact)
                .unwrap()
                .len(),
            4
        );
        // on(app) with a per-app total: one-to-one needs unique sides...
        let totals = vec![(l(&[("app", "a")]), 8.0), (l(&[("app", "b")]), 2.0)];
        let on_app = VectorMatching {
            on: true,
            labels: vec!["app".into()],
            group: None,
        };
        assert!(vv(BinOp::Div, sample(), totals.clone(), &on_app).is_err());
        // ...and group_left keeps the many side's labels.
        let grouped = VectorMatching {
            group: Some(super::super::ast::Group {
                left: true,
                include: vec![],
            }),
            ..on_app.clone()
        };
        assert_eq!(
            sorted(vv(BinOp::Div, sample(), totals.clone(), &grouped).unwrap()),
            vec![
                (l(&[("app", "a"), ("lvl", "err")]), 0.375),
                (l(&[("app", "a"), ("lvl", "info")]), 0.625),
                (l(&[("app", "b"), ("lvl", "err")]), 0.5),
            ]
        );
        let ignoring_lvl = VectorMatching {
            on: false,
            labels: vec!["lvl".into()],
            group: None,
        };
        let errs = vec![(l(&[("app", "b"), ("lvl", "err")]), 1.0)];
        assert_eq!(
            vv(BinOp::Div, errs, totals, &ignoring_lvl).unwrap(),
            vec![(l(&[("app", "b")]), 0.5)]
        );
        assert_eq!(scalar_scalar(BinOp::Pow, 2.0, 10.0), 1024.0);
        let re = regex::Regex::new("^(?s:a-(.*))$").unwrap();
        let v = vec![(l(&[("pod", "a-123")]), 1.0), (l(&[("pod", "b")]), 2.0)];
        assert_eq!(
            label_replace(v, "id", "${1}", "pod", &re),
            vec![
                (l(&[("id", "123"), ("pod", "a-123")]), 1.0),
                (l(&[("pod", "b")]), 2.0)
            ]
        );
    }
}
