//! Inverted index from label pairs to series (postings lists), shared by the
//! head (series ids) and blocks (series positions), and the matcher
//! evaluation over it: intersect the lists of every matcher that cannot
//! match an absent label; the caller then checks all matchers on the
//! (much smaller) candidate set.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Labels, MatchOp, Matcher};

/// name -> value -> ascending series references.
pub type Postings<T> = BTreeMap<String, BTreeMap<String, Vec<T>>>;

pub fn add<T: Ord + Copy>(p: &mut Postings<T>, labels: &Labels, r: T) {
    for (k, v) in labels.iter() {
        let list = p
            .entry(k.to_string())
            .or_default()
            .entry(v.to_string())
            .or_default();
        // References are handed out in increasing order, so this is a push.
        match list.last() {
            Some(last) if *last >= r => {
                if let Err(i) = list.binary_search(&r) {
                    list.insert(i, r);
                }
            }
            _ => list.push(r),
        }
    }
}

fn intersect<T: Ord + Copy>(a: &[T], b: &[T]) -> Vec<T> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Label names (`name == None`) or values of `name` whose postings hold a
/// reference for which `live` is true, added to `out`. Stops looking at a
/// name or value as soon as one live reference is found.
pub fn label_index<T: Copy>(
    p: &Postings<T>,
    name: Option<&str>,
    out: &mut BTreeSet<String>,
    live: impl Fn(&T) -> bool,
) {
    match name {
        None => {
            for (n, values) in p {
                if !out.contains(n) && values.values().any(|l| l.iter().any(&live)) {
                    out.insert(n.clone());
                }
            }
        }
        Some(n) => {
            for (v, l) in p.get(n).into_iter().flatten() {
                if !out.contains(v) && l.iter().any(&live) {
                    out.insert(v.clone());
                }
            }
        }
    }
}

/// Candidate references for `matchers`, ascending; `None` when no matcher
/// narrows the set (every one matches the empty value), meaning "all series".
/// A superset: callers must still check every matcher against the labels.
pub fn candidates<T: Ord + Copy>(p: &Postings<T>, matchers: &[Matcher]) -> Option<Vec<T>> {
    let mut lists: Vec<Vec<T>> = Vec::new();
    for m in matchers.iter().filter(|m| !m.matches_empty()) {
        let Some(values) = p.get(&m.name) else {
            return Some(Vec::new());
        };
        let list = if m.op == MatchOp::Equal {
            values.get(&m.value).cloned().unwrap_or_default()
        } else {
            let mut u: Vec<T> = values
                .iter()
                .filter(|(v, _)| m.matches(v))
                .flat_map(|(_, l)| l.iter().copied())
                .collect();
            u.sort_unstable();
            u.dedup();
            u
        };
        if list.is_empty() {
            return Some(Vec::new());
        }
        lists.push(list);
    }
    // Smallest first keeps the intersections cheap.
    lists.sort_by_key(|l| l.len());
    let mut it = lists.into_iter();
    let first = it.next()?;
    Some(it.fold(first, |acc, l| intersect(&acc, &l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_and_regex_union() {
        let mut p: Postings<u32> = Postings::new();
        add(
            &mut p,
            &Labels::from_pairs([("__name__", "a"), ("job", "x")]),
            0,
        );
        add(
            &mut p,
            &Labels::from_pairs([("__name__", "a"), ("job", "y")]),
            1,
        );
        add(
            &mut p,
            &Labels::from_pairs([("__name__", "b"), ("job", "x")]),
            2,
        );
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert_eq!(
            candidates(
                &p,
                &[
                    m(MatchOp::Equal, "__name__", "a"),
                    m(MatchOp::Equal, "job", "x")
                ]
            ),
            Some(vec![0])
        );
        assert_eq!(
            candidates(&p, &[m(MatchOp::Regex, "job", "x|y")]),
            Some(vec![0, 1, 2])
        );
        assert_eq!(
            candidates(&p, &[m(MatchOp::Equal, "job", "z")]),
            Some(vec![])
        );
        assert_eq!(candidates(&p, &[m(MatchOp::NotEqual, "job", "x")]), None);
        assert_eq!(
            candidates(&p, &[m(MatchOp::NotEqual, "job", "")]),
            Some(vec![0, 1, 2])
        );
    }
}
