//! Reads: one trace by id, searches by service, operation, time, duration
//! and tags (the index narrows to traces with a matching (service,
//! operation); the rest is checked span by span, as Jaeger's own stores
//! do), the service and operation lists, and service dependencies.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    sync::Arc,
};

use super::{
    db::{Inner, State},
    segment::{OpKey, Segment, trace_links},
};
use crate::traces::model::{Span, TraceId};

/// A trace search, as Jaeger's `/api/traces` asks for it.
#[derive(Clone, Debug, Default)]
pub struct TraceQuery {
    pub service: String,
    pub operation: Option<String>,
    /// Every pair must match a tag of the span, of its process (resource), or
    /// a field of one of its events, compared as text.
    pub tags: Vec<(String, String)>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    /// Span start within `[start_ns, end_ns]`.
    pub start_ns: i64,
    pub end_ns: i64,
    pub limit: usize,
}

impl TraceQuery {
    /// Whether one span satisfies every condition (Jaeger matches all of
    /// them on the same span).
    pub fn matches(&self, s: &Span) -> bool {
        if s.resource.service != self.service
            || self.operation.as_ref().is_some_and(|o| *o != s.name)
            || s.start_ns < self.start_ns
            || s.start_ns > self.end_ns
            || self.min_duration_ns.is_some_and(|d| s.duration_ns < d)
            || self.max_duration_ns.is_some_and(|d| s.duration_ns > d)
        {
            return false;
        }
        self.tags.iter().all(|(k, v)| {
            let hit = |attrs: &crate::traces::model::Attributes| {
                attrs.iter().any(|(ak, av)| ak == k && av.as_text() == *v)
            };
            hit(&s.attributes)
                || hit(&s.resource.attributes)
                || s.derived_tags()
                    .iter()
                    .any(|(ak, av)| ak == k && av.as_text() == *v)
                || s.events
                    .iter()
                    .any(|e| hit(&e.attributes) || (k == "event" && e.name == *v))
        })
    }

    fn wants(&self, op: &OpKey) -> bool {
        op.service == self.service && self.operation.as_ref().is_none_or(|o| *o == op.operation)
    }
}

/// Blocks decoded during one request, so a search that touches many traces
/// of one block decodes it once.
#[derive(Default)]
struct BlockCache {
    blocks: HashMap<(u64, u32), Arc<Vec<Span>>>,
}

impl BlockCache {
    fn spans(&mut self, seg: &Segment, id: &TraceId, out: &mut Vec<Span>) -> io::Result<()> {
        let Some(t) = seg.find(id) else {
            return Ok(());
        };
        let key = (seg.seq, t.block);
        let block = match self.blocks.get(&key) {
            Some(b) => b.clone(),
            None => {
                let b = Arc::new(seg.read_block(t.block)?);
                self.blocks.insert(key, b.clone());
                b
            }
        };
        out.extend(block.iter().filter(|s| s.trace_id == *id).cloned());
        Ok(())
    }
}

/// A consistent view for one request: the head's spans are copied out under
/// the lock, segments are shared.
fn trace_in(st: &State, id: &TraceId, cache: &mut BlockCache) -> io::Result<Vec<Span>> {
    let mut spans = Vec::new();
    for seg in st.segments.values() {
        cache.spans(seg, id, &mut spans)?;
    }
    for h in st.sealed.iter().map(|h| &**h).chain([&st.head]) {
        if let Some(t) = h.traces.get(id) {
            spans.extend(t.spans.iter().cloned());
        }
    }
    // A resend that reached two segments is shown once.
    let mut seen = std::collections::HashSet::new();
    spans.retain(|s| seen.insert(s.span_id));
    spans.sort_by_key(|s| s.start_ns);
    Ok(spans)
}

impl Inner {
    /// Every stored span of the trace, oldest first; empty if unknown.
    pub fn trace(&self, id: &TraceId) -> io::Result<Vec<Span>> {
        trace_in(&self.read(), id, &mut BlockCache::default())
    }

    /// Traces with at least one span matching `q`, newest first, at most `q.limit`.
    pub fn search(&self, q: &TraceQuery) -> io::Result<Vec<Vec<Span>>> {
        let st = self.read();
        // Candidates: traces with a matching (service, operation) whose time
        // range overlaps the query's; newest start first.
        let mut cand: HashMap<TraceId, i64> = HashMap::new();
        let mut add = |id: TraceId, start: i64, end: i64| {
            if end >= q.start_ns && start <= q.end_ns {
                let e = cand.entry(id).or_insert(start);
                *e = (*e).max(start);
            }
        };
        for seg in st.segments.values() {
            if seg.max_ns < q.start_ns || seg.min_ns > q.end_ns {
                continue;
            }
            for (op, post) in seg.ops.iter().zip(&seg.postings) {
                if q.wants(op) {
                    for &i in post {
                        let t = &seg.traces[i as usize];
                        add(t.id, t.start_ns, t.end_ns);
                    }
                }
            }
        }
        for h in st.sealed.iter().map(|h| &**h).chain([&st.head]) {
            for (op, ids) in &h.ops {
                if q.wants(op) {
                    for id in ids {
                        if let Some(t) = h.traces.get(id) {
                            add(*id, t.start_ns, t.end_ns);
                        }
                    }
                }
            }
        }
        let mut order: Vec<(i64, TraceId)> = cand.into_iter().map(|(id, s)| (s, id)).collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        let mut cache = BlockCache::default();
        let mut out = Vec::new();
        for (_, id) in order {
            if out.len() >= q.limit {
                break;
            }
            let spans = trace_in(&st, &id, &mut cache)?;
            if spans.iter().any(|s| q.matches(s)) {
                out.push(spans);
            }
        }
        Ok(out)
    }

    /// (service, operation, kind) of every span held.
    fn ops(&self) -> BTreeSet<OpKey> {
        let st = self.read();
        let mut out = BTreeSet::new();
        for seg in st.segments.values() {
            out.extend(seg.ops.iter().cloned());
        }
        for h in st.sealed.iter().map(|h| &**h).chain([&st.head]) {
            out.extend(h.ops.keys().cloned());
        }
        out
    }

    pub fn services(&self) -> Vec<String> {
        let set: BTreeSet<String> = self.ops().into_iter().map(|o| o.service).collect();
        set.into_iter().collect()
    }

    /// (operation, span kind) pairs of a service, sorted.
    pub fn operations(&self, service: &str) -> Vec<(String, u8)> {
        self.ops()
            .into_iter()
            .filter(|o| o.service == service)
            .map(|o| (o.operation, o.kind))
            .collect()
    }

    /// Calls from one service to another in `[start_ns, end_ns]`: exact for
    /// spans in memory, by whole segment for segments that overlap.
    pub fn dependencies(&self, start_ns: i64, end_ns: i64) -> Vec<(String, String, u64)> {
        let st = self.read();
        let mut out: BTreeMap<(String, String), u64> = BTreeMap::new();
        for seg in st.segments.values() {
            if seg.max_ns < start_ns || seg.min_ns > end_ns {
                continue;
            }
            for (p, c, n) in &seg.links {
                *out.entry((p.clone(), c.clone())).or_default() += n;
            }
        }
        for h in st.sealed.iter().map(|h| &**h).chain([&st.head]) {
            for t in h.traces.values() {
                if t.end_ns < start_ns || t.start_ns > end_ns {
                    continue;
                }
                for (p, c) in trace_links(&t.spans) {
                    *out.entry((p.to_string(), c.to_string())).or_default() += 1;
                }
            }
        }
        out.into_iter().map(|((p, c), n)| (p, c, n)).collect()
    }
}
