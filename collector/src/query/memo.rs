//! Per-node caches that make a range query cost per series, not per series
//! and step. A label set (`Labels`, an `Arc`) flows unchanged from step to
//! step, so its allocation identifies it cheaply; hashing the label strings
//! for every sample at every step was the dominant cost of range queries.

use std::collections::{HashMap, HashSet};

use super::groups::AddrMap;
use super::{InstantSample, QueryError};
use crate::model::Labels;

/// Identity of a label set: its shared allocation and length.
pub(crate) fn identity(l: &Labels) -> (usize, usize) {
    (l.pairs().as_ptr() as usize, l.len())
}

/// Memoizes a value derived from one label set (or a pair of them) by
/// identity. Entries hold a clone of their keys, so an address cannot be
/// freed and reused for another label set while it is in the memo. The memo
/// is cleared when it outgrows a bound scaled to the step size, so inputs
/// whose labels are fresh allocations every step cannot make it grow without
/// limit (such inputs simply miss).
#[derive(Debug)]
pub(crate) struct Memo<V> {
    map: AddrMap<[usize; 4], (Labels, Option<Labels>, V)>,
    limit: usize,
}

impl<V> Default for Memo<V> {
    fn default() -> Memo<V> {
        Memo {
            map: AddrMap::default(),
            limit: 1 << 14,
        }
    }
}

impl<V: Clone> Memo<V> {
    pub fn new() -> Memo<V> {
        Memo {
            map: AddrMap::default(),
            limit: 1 << 14,
        }
    }

    /// Lets the memo hold a few steps' worth of distinct inputs.
    pub fn fit(&mut self, step_len: usize) {
        self.limit = self.limit.max(step_len.saturating_mul(4));
    }

    pub fn get(&mut self, l: &Labels, f: impl FnOnce(&Labels) -> V) -> V {
        let (p, n) = identity(l);
        self.lookup([p, n, 0, 0], l, None, || f(l))
    }

    pub fn get2(&mut self, l: &Labels, r: &Labels, f: impl FnOnce(&Labels, &Labels) -> V) -> V {
        let (p1, n1) = identity(l);
        let (p2, n2) = identity(r);
        self.lookup([p1, n1, p2, n2], l, Some(r), || f(l, r))
    }

    fn lookup(
        &mut self,
        key: [usize; 4],
        l: &Labels,
        r: Option<&Labels>,
        f: impl FnOnce() -> V,
    ) -> V {
        if let Some((_, _, v)) = self.map.get(&key) {
            return v.clone();
        }
        if self.map.len() >= self.limit {
            self.map.clear();
        }
        let v = f();
        self.map.insert(key, (l.clone(), r.cloned(), v.clone()));
        v
    }
}

/// Derives label sets from label sets (signatures, grouping keys, the metric
/// name dropped): memoized by identity, and canonical by content, so equal
/// results share one allocation and can be compared by identity.
#[derive(Debug, Default)]
pub(crate) struct Derive {
    memo: Memo<Labels>,
    canon: HashSet<Labels>,
}

impl Derive {
    pub fn new() -> Derive {
        Derive {
            memo: Memo::new(),
            canon: HashSet::new(),
        }
    }

    pub fn fit(&mut self, step_len: usize) {
        self.memo.fit(step_len);
    }

    pub fn get(&mut self, l: &Labels, f: impl FnOnce(&Labels) -> Labels) -> Labels {
        let canon = &mut self.canon;
        self.memo.get(l, |l| {
            let d = f(l);
            match canon.get(&d) {
                Some(c) => c.clone(),
                None => {
                    canon.insert(d.clone());
                    d
                }
            }
        })
    }
}

/// Prometheus's rule that a step result never holds one label set twice,
/// for results whose label sets are canonical (equal means same allocation).
pub(crate) fn check_unique_canonical(v: &[InstantSample]) -> Result<(), QueryError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen: HashSet<_, foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(v.len(), Default::default());
    for s in v {
        if !seen.insert(identity(&s.labels)) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Gives every label set produced by a node one shared allocation across
/// steps (so the memos downstream hit) and enforces Prometheus's rule that a
/// step result never holds one label set twice. One hash per sample.
#[derive(Default)]
pub(crate) struct Interner {
    /// Canonical label sets and the last step each was seen at (+1).
    seen: HashMap<Labels, usize>,
}

impl Interner {
    pub fn step(&mut self, step: usize, v: &mut [InstantSample]) -> Result<(), QueryError> {
        let mark = step + 1;
        for s in v.iter_mut() {
            match self.seen.get_key_value(&s.labels) {
                Some((_, &last)) if last == mark => {
                    return Err(QueryError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                Some((canonical, _)) => {
                    let canonical = canonical.clone();
                    self.seen.insert(canonical.clone(), mark);
                    s.labels = canonical;
                }
                None => {
                    self.seen.insert(s.labels.clone(), mark);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(l: &Labels) -> InstantSample {
        InstantSample {
            labels: l.clone(),
            t: 0,
            v: 1.0,
        }
    }

    #[test]
    fn memo_keys_by_identity_and_computes_once() {
        let a = Labels::from_pairs([("a", "1")]);
        let mut m: Memo<usize> = Memo::new();
        let mut calls = 0;
        for _ in 0..3 {
            m.get(&a, |_| {
                calls += 1;
                7
            });
        }
        assert_eq!(calls, 1);
        // An equal label set in another allocation is just computed again.
        let b = Labels::from_pairs([("a", "1")]);
        assert_eq!(m.get(&b, |_| 7), 7);
    }

    #[test]
    fn derive_makes_equal_results_share_an_allocation() {
        let mut d = Derive::new();
        let a = Labels::from_pairs([("__name__", "x"), ("i", "1")]);
        let b = Labels::from_pairs([("__name__", "y"), ("i", "1")]);
        let da = d.get(&a, |l| l.without(&["__name__"]));
        let db = d.get(&b, |l| l.without(&["__name__"]));
        assert_eq!(identity(&da), identity(&db));
        assert!(check_unique_canonical(&[s(&da), s(&db)]).is_err());
        assert!(check_unique_canonical(&[s(&da), s(&a)]).is_ok());
    }

    #[test]
    fn interner_shares_allocations_and_rejects_duplicates() {
        let mut i = Interner::default();
        let a1 = Labels::from_pairs([("a", "1")]);
        let a2 = Labels::from_pairs([("a", "1")]);
        let mut step0 = vec![s(&a1)];
        i.step(0, &mut step0).unwrap();
        let mut step1 = vec![s(&a2)];
        i.step(1, &mut step1).unwrap();
        assert_eq!(step1[0].labels.pairs().as_ptr(), a1.pairs().as_ptr());
        let mut dup = vec![s(&a1), s(&a2)];
        assert!(i.step(2, &mut dup).is_err());
    }
}
