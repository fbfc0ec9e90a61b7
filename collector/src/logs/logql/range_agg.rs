//! Range aggregations (`count_over_time`, `rate`, `bytes_over_time`,
//! `bytes_rate`, and the `*_over_time` of unwrapped values) evaluated at each
//! step with Loki's window: `(t - offset - range, t - offset]`, left-open,
//! right-closed; a series appears at a step only if its window has samples.

use std::collections::HashMap;
use std::ops::ControlFlow;

use crate::logs::model::{Direction, LogSource};
use crate::model::{Labels, MatchOp};

use super::ast::{Grouping, LogRange, RangeOp, Stage, UnwrapConv};
use super::error::LogQlError;
use super::label_filter;
use super::label_state::{ERROR_DETAILS_LABEL, ERROR_LABEL, LabelState};
use super::pipeline;
use super::units::{parse_bytes, parse_duration_ns};
use super::{Budget, StepVec, Steps};

pub(crate) const SAMPLE_EXTRACTION_ERR: &str = "SampleExtractionErr";

/// Evaluates one range aggregation at every step.
pub(crate) fn eval(
    src: &dyn LogSource,
    op: RangeOp,
    param: Option<f64>,
    r: &LogRange,
    grouping: Option<&Grouping>,
    steps: &Steps,
    budget: &mut Budget,
) -> Result<Vec<StepVec>, LogQlError> {
    // Entries in (first window start, last window end].
    let lo = steps
        .start
        .saturating_sub(r.offset_ns)
        .saturating_sub(r.range_ns);
    let hi = steps.end.saturating_sub(r.offset_ns);
    let (scan_start, scan_end) = (lo.saturating_add(1), hi.saturating_add(1));
    let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
    let refs = src.streams(&r.log.matchers, scan_start, scan_end)?;
    // Line filters only and no metadata: the series is the stream itself, so
    // skip building per-entry label sets (the common `rate({app="x"} |= "y" [5m])`).
    let fast = r.unwrap.is_none() && pipeline::only_line_filters(&r.log.stages);
    let by_bytes = matches!(op, RangeOp::BytesOverTime | RangeOp::BytesRate);
    for sref in &refs {
        let mut failed = None;
        let mut own: Vec<(i64, f64)> = Vec::new();
        src.scan(sref, scan_start, scan_end, Direction::Forward, &mut |e| {
            if let Err(err) = budget.read(e.line.len()) {
                failed = Some(err);
                return ControlFlow::Break(());
            }
            if fast && e.metadata.is_empty() {
                let keep = r.log.stages.iter().all(
                    |s| matches!(s, Stage::LineFilter(f) if pipeline::line_matches(f, &e.line)),
                );
                if keep {
                    own.push((e.ts_ns, if by_bytes { e.line.len() as f64 } else { 1.0 }));
                }
                return ControlFlow::Continue(());
            }
            let mut st = LabelState::new(&sref.labels, &e.metadata, e.ts_ns);
            let Some(line) = pipeline::run(&r.log.stages, &e.line, &mut st) else {
                return ControlFlow::Continue(());
            };
            let value = match &r.unwrap {
                None => match op {
                    RangeOp::BytesOverTime | RangeOp::BytesRate => line.len() as f64,
                    _ => 1.0,
                },
                Some(u) => {
                    let raw = st.get(&u.label).unwrap_or("").trim().to_string();
                    let mut v = 0.0;
                    if !st.has_err() {
                        let conv = match u.conv {
                            UnwrapConv::Number => raw
                                .parse::<f64>()
                                .map_err(|e| format!("strconv.ParseFloat: parsing {raw:?}: {e}")),
                            UnwrapConv::Duration => parse_duration_ns(&raw)
                                .map(|ns| ns as f64 / 1e9)
                                .ok_or_else(|| format!("time: invalid duration {raw:?}")),
                            UnwrapConv::Bytes => parse_bytes(&raw)
                                .ok_or_else(|| format!("invalid byte size {raw:?}")),
                        };
                        match conv {
                            Ok(x) => v = x,
                            Err(d) => st.set_err(SAMPLE_EXTRACTION_ERR, d),
                        }
                    }
                    if !r
                        .post_filters
                        .iter()
                        .all(|f| label_filter::eval(f, &mut st))
                    {
                        return ControlFlow::Continue(());
                    }
                    st.del(&u.label);
                    v
                }
            };
            let labels = group_labels(st.labels(), grouping);
            series.entry(labels).or_default().push((e.ts_ns, value));
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !own.is_empty() {
            let key = group_labels(sref.labels.clone(), grouping);
            series.entry(key).or_default().extend(own);
        }
    }
    let mut series: Vec<(Labels, Vec<(i64, f64)>)> = series.into_iter().collect();
    for (_, pts) in series.iter_mut() {
        // Several streams may feed one series; windows need time order.
        pts.sort_by_key(|p| p.0);
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));

    let range_secs = r.range_ns as f64 / 1e9;
    let mut cursors = vec![(0usize, 0usize); series.len()];
    let mut out = Vec::with_capacity(steps.count());
    for t in steps.iter() {
        let w_end = t.saturating_sub(r.offset_ns);
        let w_start = w_end.saturating_sub(r.range_ns);
        let mut vec = Vec::new();
        for (i, (labels, pts)) in series.iter().enumerate() {
            let (a, b) = &mut cursors[i];
            while *a < pts.len() && pts[*a].0 <= w_start {
                *a += 1;
            }
            if *b < *a {
                *b = *a;
            }
            while *b < pts.len() && pts[*b].0 <= w_end {
                *b += 1;
            }
            let window = &pts[*a..*b];
            if window.is_empty() || op == RangeOp::AbsentOverTime {
                continue;
            }
            if let Some(kind) = labels.get(ERROR_LABEL) {
                return Err(pipeline_error(kind, labels));
            }
            vec.push((
                labels.clone(),
                aggregate(op, param, window, range_secs, r.unwrap.is_some()),
            ));
        }
        if op == RangeOp::AbsentOverTime {
            let any = series
                .iter()
                .enumerate()
                .any(|(i, _)| cursors[i].1 > cursors[i].0);
            if !any {
                vec.push((absent_labels(r), 1.0));
            }
        }
        out.push(vec);
    }
    Ok(out)
}

/// A sample's series labels under `by`/`without` (from the query or pushed
/// down from an enclosing `sum`); error labels are kept so errors are reported.
fn group_labels(labels: Labels, grouping: Option<&Grouping>) -> Labels {
    let Some(g) = grouping else {
        return labels;
    };
    let names: Vec<&str> = g.labels.iter().map(String::as_str).collect();
    let grouped = if g.without {
        labels.without(&names)
    } else {
        labels.only(&names)
    };
    let errs: Vec<(String, String)> = [ERROR_LABEL, ERROR_DETAILS_LABEL]
        .iter()
        .filter(|n| grouped.get(n).is_none())
        .filter_map(|n| labels.get(n).map(|v| (n.to_string(), v.to_string())))
        .collect();
    if errs.is_empty() {
        return grouped;
    }
    let mut pairs = grouped.pairs().to_vec();
    pairs.extend(errs);
    Labels::new(pairs)
}

/// Labels of `absent_over_time`'s answer: the selector's equality matchers.
fn absent_labels(r: &LogRange) -> Labels {
    let mut pairs = Vec::new();
    let mut seen = Vec::new();
    for m in &r.log.matchers {
        if m.op == MatchOp::Equal {
            if seen.contains(&m.name) {
                // Two equality matchers on one name: Prometheus leaves it out.
                pairs.retain(|(k, _): &(String, String)| *k != m.name);
                continue;
            }
            seen.push(m.name.clone());
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    Labels::new(pairs)
}

fn pipeline_error(kind: &str, labels: &Labels) -> LogQlError {
    LogQlError::bad(format!(
        "pipeline error: '{kind}' for series: '{labels}'. Use a label filter to intentionally skip this error (e.g | __error__!=\"{kind}\"); to skip all errors match empty errors (e.g | __error__=\"\"); the filter can also follow unwrap (e.g | unwrap latency | __error__=\"\")"
    ))
}

fn aggregate(
    op: RangeOp,
    param: Option<f64>,
    w: &[(i64, f64)],
    range_secs: f64,
    unwrapped: bool,
) -> f64 {
    let n = w.len() as f64;
    let sum = || w.iter().map(|p| p.1).sum::<f64>();
    match op {
        RangeOp::CountOverTime => n,
        RangeOp::Rate if !unwrapped => n / range_secs,
        RangeOp::Rate => sum() / range_secs,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
        RangeOp::BytesRate => sum() / range_secs,
        RangeOp::AvgOverTime => sum() / n,
        RangeOp::MaxOverTime => w
            .iter()
            .map(|p| p.1)
            .fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m }),
        RangeOp::MinOverTime => w
            .iter()
            .map(|p| p.1)
            .fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m }),
        RangeOp::FirstOverTime => w[0].1,
        RangeOp::LastOverTime => w[w.len() - 1].1,
        RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
            let mean = sum() / n;
            let var = w.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / n;
            if op == RangeOp::StddevOverTime {
                var.sqrt()
            } else {
                var
            }
        }
        RangeOp::QuantileOverTime => {
            let q = param.unwrap_or(0.5);
            let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
            quantile(q, &mut vals)
        }
        RangeOp::AbsentOverTime => 1.0,
    }
}

/// Prometheus's quantile: linear interpolation between closest ranks.
fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| a.total_cmp(b));
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregators() {
        let w = [(1, 2.0), (2, 4.0), (3, 9.0)];
        assert_eq!(
            aggregate(RangeOp::CountOverTime, None, &w, 60.0, false),
            3.0
        );
        assert_eq!(aggregate(RangeOp::Rate, None, &w, 60.0, false), 0.05);
        assert_eq!(aggregate(RangeOp::Rate, None, &w, 5.0, true), 3.0);
        assert_eq!(aggregate(RangeOp::SumOverTime, None, &w, 1.0, true), 15.0);
        assert_eq!(aggregate(RangeOp::AvgOverTime, None, &w, 1.0, true), 5.0);
        assert_eq!(aggregate(RangeOp::MaxOverTime, None, &w, 1.0, true), 9.0);
        assert_eq!(aggregate(RangeOp::MinOverTime, None, &w, 1.0, true), 2.0);
        assert_eq!(aggregate(RangeOp::FirstOverTime, None, &w, 1.0, true), 2.0);
        assert_eq!(aggregate(RangeOp::LastOverTime, None, &w, 1.0, true), 9.0);
        assert_eq!(
            aggregate(RangeOp::QuantileOverTime, Some(0.5), &w, 1.0, true),
            4.0
        );
        assert_eq!(
            aggregate(RangeOp::QuantileOverTime, Some(0.75), &w, 1.0, true),
            6.5
        );
        let var = aggregate(RangeOp::StdvarOverTime, None, &w, 1.0, true);
        assert!((var - 26.0 / 3.0).abs() < 1e-9);
    }
}
