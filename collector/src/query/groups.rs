//! Group ids for an aggregation node (`sum by (mode)`, ...), shared by all
//! of its steps. An input label set flows unchanged from step to step (one
//! `Arc` per series), so its address finds its group with one cheap hash;
//! the grouping key is derived and hashed by content only once per series.
//! Steps then gather into a `Vec` indexed by group id instead of building a
//! hash map per step.

use std::collections::HashMap;

use super::memo::identity;
use crate::model::{Labels, METRIC_NAME};

/// Address-keyed maps: keys are addresses this process chose, so SipHash's
/// flood resistance buys nothing, and it was a visible share of query time.
pub(crate) type AddrMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) struct GroupIndex {
    grouping: Vec<String>,
    without: bool,
    /// Input label set (by identity) -> group id. Entries hold a clone of
    /// their key so an address cannot be freed and reused while mapped.
    by_input: AddrMap<(usize, usize), (Labels, u32)>,
    /// Grouping key (by content) -> group id.
    by_key: HashMap<Labels, u32>,
    keys: Vec<Labels>,
    /// Bound on `by_input`: inputs whose label sets are fresh allocations
    /// every step (for example `count_values`'s) would otherwise grow it
    /// without limit; such inputs simply miss.
    limit: usize,
}

impl GroupIndex {
    /// `grouping`: the `by`/`without` label names; `without` also drops the
    /// metric name, as Prometheus does.
    pub fn new(grouping: &[String], without: bool) -> GroupIndex {
        let mut grouping = grouping.to_vec();
        if without {
            grouping.push(METRIC_NAME.to_string());
        }
        GroupIndex {
            grouping,
            without,
            by_input: AddrMap::default(),
            by_key: HashMap::new(),
            keys: Vec::new(),
            limit: 1 << 14,
        }
    }

    /// Lets the index hold a few steps' worth of distinct inputs.
    pub fn fit(&mut self, step_len: usize) {
        self.limit = self.limit.max(step_len.saturating_mul(4));
    }

    /// Group ids handed out so far; every id is below this.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The grouping key's labels of a group id.
    pub fn key(&self, id: u32) -> &Labels {
        &self.keys[id as usize]
    }

    pub fn id(&mut self, l: &Labels) -> u32 {
        let addr = identity(l);
        if let Some(&(_, id)) = self.by_input.get(&addr) {
            return id;
        }
        let names: Vec<&str> = self.grouping.iter().map(String::as_str).collect();
        let key = if self.without {
            l.without(&names)
        } else {
            l.only(&names)
        };
        let id = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.keys.len() as u32;
                self.keys.push(key.clone());
                self.by_key.insert(key, id);
                id
            }
        };
        if self.by_input.len() >= self.limit {
            self.by_input.clear();
        }
        self.by_input.insert(addr, (l.clone(), id));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_share_an_id_and_without_drops_the_name() {
        let a = Labels::from_pairs([("__name__", "m"), ("i", "1"), ("j", "x")]);
        let b = Labels::from_pairs([("__name__", "n"), ("i", "1"), ("j", "y")]);
        let mut by = GroupIndex::new(&["i".to_string()], false);
        assert_eq!(by.id(&a), by.id(&b));
        let id = by.id(&a);
        assert_eq!(by.key(id).to_string(), r#"{i="1"}"#);
        let mut without = GroupIndex::new(&["j".to_string()], true);
        assert_eq!(without.id(&a), without.id(&b));
        assert_eq!(without.key(0).to_string(), r#"{i="1"}"#);
        assert_eq!(without.len(), 1);
        // Same content in another allocation still finds its group.
        let a2 = Labels::from_pairs([("__name__", "m"), ("i", "2")]);
        assert_eq!(by.id(&a2), 1);
    }
}
