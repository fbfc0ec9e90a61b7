//! The in-memory part of the store: spans acknowledged since the last cut,
//! by trace, with the (service, operation, kind) postings searches use.
//! A cut freezes the whole head (behind an `Arc`, still read by queries)
//! and starts an empty one.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use super::segment::OpKey;
use crate::traces::model::{Span, SpanId, TraceId};

#[derive(Default)]
pub struct HeadTrace {
    pub spans: Vec<Span>,
    ids: HashSet<SpanId>,
    pub start_ns: i64,
    pub end_ns: i64,
}

#[derive(Default)]
pub struct Head {
    pub traces: HashMap<TraceId, HeadTrace>,
    pub ops: HashMap<OpKey, HashSet<TraceId>>,
    pub bytes: u64,
    pub spans: u64,
    /// Newest WAL batch applied.
    pub max_lsn: u64,
    /// When the first span arrived.
    pub started: Option<Instant>,
}

impl Head {
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    pub fn has_span(&self, trace: &TraceId, span: &SpanId) -> bool {
        self.traces.get(trace).is_some_and(|t| t.ids.contains(span))
    }

    pub fn span_count(&self, trace: &TraceId) -> u64 {
        self.traces.get(trace).map_or(0, |t| t.spans.len() as u64)
    }

    /// Adds a span unless one with its trace and span id is already here.
    pub fn push(&mut self, span: Span, lsn: u64, now: Instant) -> bool {
        let t = self
            .traces
            .entry(span.trace_id)
            .or_insert_with(|| HeadTrace {
                start_ns: i64::MAX,
                end_ns: i64::MIN,
                ..HeadTrace::default()
            });
        if !t.ids.insert(span.span_id) {
            return false;
        }
        t.start_ns = t.start_ns.min(span.start_ns);
        t.end_ns = t.end_ns.max(span.end_ns());
        let key = OpKey {
            service: span.resource.service.clone(),
            operation: span.name.clone(),
            kind: span.kind as u8,
        };
        self.ops.entry(key).or_default().insert(span.trace_id);
        self.bytes += span.approx_bytes();
        self.spans += 1;
        self.max_lsn = self.max_lsn.max(lsn);
        self.started.get_or_insert(now);
        t.spans.push(span);
        true
    }
}
