//! Log queries: the `limit` newest (backward) or oldest (forward) entries in
//! `[start, end)` across all selected streams, after the pipeline, grouped by
//! their final label set. Streams are scanned in `direction` with early stop:
//! once `limit` entries are held, a stream stops as soon as its next entry
//! could no longer make the cut, so `limit 100` over a long range reads little.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::ops::ControlFlow;

use crate::logs::model::{Direction, LogEntry, LogSource, StreamEntries};
use crate::model::Labels;

use super::ast::LogExpr;
use super::error::LogQlError;
use super::label_state::LabelState;
use super::pipeline;
use super::{Budget, LogQlLimits};

/// Rank of an entry in the result order: lower is better (newer for
/// backward, older for forward); ties by stream then scan order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    key: i128,
    stream: usize,
    seq: u64,
}

struct Cand {
    rank: Rank,
    labels: Labels,
    entry: LogEntry,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.rank == o.rank
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        self.rank.cmp(&o.rank)
    }
}

pub(crate) fn check_limit(limit: usize, limits: &LogQlLimits) -> Result<usize, LogQlError> {
    if limit == 0 {
        return Ok(limits.max_lines);
    }
    if limit > limits.max_lines {
        return Err(LogQlError::limit(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {}); ask for fewer lines or raise the collector's --logs-max-lines",
            limits.max_lines
        )));
    }
    Ok(limit)
}

pub(crate) fn run(
    src: &dyn LogSource,
    expr: &LogExpr,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
    direction: Direction,
    budget: &mut Budget,
) -> Result<Vec<StreamEntries>, LogQlError> {
    if end_ns <= start_ns || limit == 0 {
        return Ok(Vec::new());
    }
    let mut refs = src.streams(&expr.matchers, start_ns, end_ns)?;
    refs.sort_by(|a, b| a.labels.cmp(&b.labels));
    let filters_only = pipeline::only_line_filters(&expr.stages);
    let mut heap: BinaryHeap<Cand> = BinaryHeap::with_capacity(limit.min(4096) + 1);
    for (si, r) in refs.iter().enumerate() {
        if !crate::model::matches_all(&expr.matchers, &r.labels) {
            continue;
        }
        let mut seq = 0u64;
        let mut failed: Option<LogQlError> = None;
        src.scan(r, start_ns, end_ns, direction, &mut |e| {
            let key = match direction {
                Direction::Forward => e.ts_ns as i128,
                Direction::Backward => -(e.ts_ns as i128),
            };
            let rank = Rank {
                key,
                stream: si,
                seq,
            };
            seq += 1;
            if heap.len() >= limit && heap.peek().is_some_and(|worst| rank > worst.rank) {
                return ControlFlow::Break(());
            }
            if let Err(err) = budget.read(e.line.len()) {
                failed = Some(err);
                return ControlFlow::Break(());
            }
            let kept = if filters_only && e.metadata.is_empty() {
                expr.stages
                    .iter()
                    .all(|s| matches!(s, super::ast::Stage::LineFilter(f) if pipeline::line_matches(f, &e.line)))
                    .then(|| (r.labels.clone(), e.line.clone()))
            } else {
                let mut st = LabelState::new(&r.labels, &e.metadata, e.ts_ns);
                pipeline::run(&expr.stages, &e.line, &mut st).map(|l| (st.labels(), l.into_owned()))
            };
            if let Some((labels, line)) = kept {
                let metadata = e
                    .metadata
                    .iter()
                    .filter(|(k, v)| labels.get(k) == Some(v.as_str()))
                    .cloned()
                    .collect();
                heap.push(Cand {
                    rank,
                    labels,
                    entry: LogEntry {
                        ts_ns: e.ts_ns,
                        line,
                        metadata,
                    },
                });
                if heap.len() > limit {
                    heap.pop();
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    let cands = heap.into_sorted_vec();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StreamEntries> = Vec::new();
    for c in cands {
        let i = *index.entry(c.labels.clone()).or_insert_with(|| {
            out.push(StreamEntries {
                labels: c.labels.clone(),
                entries: Vec::new(),
            });
            out.len() - 1
        });
        out[i].entries.push(c.entry);
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
