//! Engine-level tests: range evaluation, storage access pattern, subquery
//! alignment, lookback and staleness across steps, limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{Engine, EngineOptions, QueryError, Value};
use crate::model::{Labels, Matcher, MetricMetadata, Sample, TimeSeries, stale_nan};
use crate::store::memory::MemStorage;
use crate::store::{AppendError, AppendStats, SeriesData, Storage};

/// Counts `select` calls to check each selector reads storage once.
#[derive(Default)]
struct Counting {
    inner: MemStorage,
    selects: AtomicUsize,
}

impl Storage for Counting {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        self.inner.append(batch)
    }
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<SeriesData>> {
        self.selects.fetch_add(1, Ordering::SeqCst);
        self.inner.select(matchers, mint, maxt)
    }
    fn series(&self, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> std::io::Result<Vec<Labels>> {
        self.inner.series(sets, mint, maxt)
    }
    fn set_metadata(&self, m: &[(String, MetricMetadata)]) -> std::io::Result<()> {
        self.inner.set_metadata(m)
    }
    fn metadata(&self) -> std::io::Result<BTreeMap<String, Vec<MetricMetadata>>> {
        self.inner.metadata()
    }
    fn active_series(&self) -> usize {
        self.inner.active_series()
    }
}

fn series(name: &str, label: &str, points: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: Labels::from_pairs([("__name__", name), ("i", label)]),
        samples: points.iter().map(|&(t, v)| Sample { t, v }).collect(),
    }
}

/// `x{i="a"}` every 10s from 0 to 600s with value t/10s; `x{i="b"}` likewise doubled.
fn setup(opts: EngineOptions) -> (Arc<Counting>, Engine) {
    let storage = Arc::new(Counting::default());
    let a: Vec<(i64, f64)> = (0..=60).map(|k| (k * 10_000, k as f64)).collect();
    let b: Vec<(i64, f64)> = (0..=60).map(|k| (k * 10_000, 2.0 * k as f64)).collect();
    storage
        .append(&[series("x", "a", &a), series("x", "b", &b)])
        .unwrap();
    let engine = Engine::new(storage.clone(), opts);
    (storage, engine)
}

fn matrix(v: Value) -> Vec<(String, Vec<(i64, f64)>)> {
    let Value::Matrix(m) = v else {
        panic!("expected a matrix, got {}", v.type_name())
    };
    m.into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.iter().map(|p| (p.t, p.v)).collect(),
            )
        })
        .collect()
}

#[test]
fn range_query_reads_each_selector_once() {
    let (storage, engine) = setup(EngineOptions::default());
    let res = engine
        .range(
            "sum_over_time(x[1m]) + x * 2 + max_over_time(x[2m:10s])",
            0,
            600_000,
            1_000,
        )
        .unwrap();
    assert_eq!(storage.selects.load(Ordering::SeqCst), 3);
    let m = matrix(res);
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].1.len(), 601);
}

#[test]
fn range_result_is_sorted_and_matches_instant_queries() {
    let (_, engine) = setup(EngineOptions::default());
    let m = matrix(engine.range("x offset 15s", 0, 120_000, 30_000).unwrap());
    assert_eq!(m[0].0, r#"x{i="a"}"#);
    assert_eq!(m[1].0, r#"x{i="b"}"#);
    // At 0 the offset reaches before the first sample: no point.
    assert_eq!(
        m[0].1,
        vec![(30_000, 1.0), (60_000, 4.0), (90_000, 7.0), (120_000, 10.0)]
    );
    for (t, v) in &m[1].1 {
        let Value::Vector(inst) = engine.instant(r#"x{i="b"} offset 15s"#, *t).unwrap() else {
            panic!()
        };
        assert_eq!(inst[0].v, *v);
    }
}

#[test]
fn scalar_range_result_is_one_unlabelled_series_and_strings_are_refused() {
    let (_, engine) = setup(EngineOptions::default());
    let m = matrix(engine.range("1 + 2", 0, 120_000, 60_000).unwrap());
    assert_eq!(
        m,
        vec![(
            "{}".to_string(),
            vec![(0, 3.0), (60_000, 3.0), (120_000, 3.0)]
        )]
    );
    for q in [r#""hello""#, "x[5m]"] {
        let err = engine.range(q, 0, 60_000, 60_000).unwrap_err();
        assert_eq!(err.error_type(), "bad_data", "{q}: {err}");
    }
    assert!(matches!(
        engine.range("x", 0, 60_000, 0),
        Err(QueryError::BadData(_))
    ));
    assert!(matches!(
        engine.instant("x +", 0),
        Err(QueryError::BadData(_))
    ));
}

#[test]
fn subquery_steps_align_to_multiples_of_the_step() {
    let (_, engine) = setup(EngineOptions::default());
    // At 150s, [2m:1m] covers (30s..150s]: aligned steps at 60s and 120s.
    let m = matrix(engine.instant(r#"x{i="a"}[2m:1m]"#, 150_000).unwrap());
    assert_eq!(m[0].1, vec![(60_000, 6.0), (120_000, 12.0)]);
    // A step on the left edge is included; offsets shift before aligning.
    let m = matrix(
        engine
            .instant(r#"x{i="a"}[2m:1m] offset 30s"#, 150_000)
            .unwrap(),
    );
    assert_eq!(m[0].1, vec![(0, 0.0), (60_000, 6.0), (120_000, 12.0)]);
    // No step given: 1m, as Prometheus's default evaluation interval.
    let m = matrix(engine.instant(r#"x{i="a"}[3m:]"#, 200_000).unwrap());
    assert_eq!(
        m[0].1,
        vec![(60_000, 6.0), (120_000, 12.0), (180_000, 18.0)]
    );
}

#[test]
fn lookback_and_staleness_across_steps() {
    let storage = Arc::new(MemStorage::new());
    storage
        .append(&[
            series("up", "gone", &[(0, 1.0)]),
            series(
                "up",
                "stale",
                &[(0, 1.0), (60_000, stale_nan()), (120_000, 2.0)],
            ),
        ])
        .unwrap();
    let engine = Engine::new(
        storage,
        EngineOptions {
            lookback: Duration::from_secs(120),
            ..Default::default()
        },
    );
    let m = matrix(engine.range("up", 0, 180_000, 30_000).unwrap());
    // Visible for the 2m lookback, inclusive at the edge, then gone.
    assert_eq!(
        m[0].1,
        vec![
            (0, 1.0),
            (30_000, 1.0),
            (60_000, 1.0),
            (90_000, 1.0),
            (120_000, 1.0)
        ]
    );
    // The staleness marker hides it at once; the next sample brings it back.
    assert_eq!(
        m[1].1,
        vec![
            (0, 1.0),
            (30_000, 1.0),
            (120_000, 2.0),
            (150_000, 2.0),
            (180_000, 2.0)
        ]
    );
}

#[test]
fn at_modifier_fixes_the_time_for_every_step() {
    let (_, engine) = setup(EngineOptions::default());
    let m = matrix(
        engine
            .range(r#"x{i="a"} @ 100"#, 0, 120_000, 60_000)
            .unwrap(),
    );
    assert_eq!(m[0].1, vec![(0, 10.0), (60_000, 10.0), (120_000, 10.0)]);
    let m = matrix(
        engine
            .range(r#"x{i="a"} @ end()"#, 0, 120_000, 60_000)
            .unwrap(),
    );
    assert_eq!(m[0].1, vec![(0, 12.0), (60_000, 12.0), (120_000, 12.0)]);
}

#[test]
fn limits_are_enforced() {
    let (_, engine) = setup(EngineOptions {
        max_samples: 50,
        ..Default::default()
    });
    assert!(matches!(
        engine.range("x", 0, 600_000, 10_000),
        Err(QueryError::TooManySamples)
    ));
    assert!(engine.instant(r#"x{i="a"}"#, 0).is_ok());
    let (_, engine) = setup(EngineOptions {
        timeout: Duration::ZERO,
        ..Default::default()
    });
    assert!(matches!(
        engine.range("x", 0, 600_000, 1_000),
        Err(QueryError::Timeout(_))
    ));
}

#[test]
fn many_to_many_and_duplicate_labelsets_are_execution_errors() {
    let (_, engine) = setup(EngineOptions::default());
    let err = engine.instant("x + on() x", 60_000).unwrap_err();
    assert_eq!(err.error_type(), "execution", "{err}");
    let storage = Arc::new(MemStorage::new());
    storage
        .append(&[series("a", "1", &[(0, 1.0)]), series("b", "1", &[(0, 1.0)])])
        .unwrap();
    let engine = Engine::new(storage, EngineOptions::default());
    let err = engine.instant(r#"-{__name__=~"a|b"}"#, 0).unwrap_err();
    assert!(err.to_string().contains("same labelset"), "{err}");
}

#[test]
fn every_range_step_equals_the_instant_query_at_that_time() {
    let storage = Arc::new(MemStorage::new());
    // Gaps, a staleness marker and a counter reset, one sample per minute.
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut c = Vec::new();
    for k in 0..40i64 {
        let t = k * 60_000;
        a.push((t, 10.0 * k as f64));
        match k {
            0..=9 => b.push((t, 5.0 + 3.0 * k as f64)),
            10 => b.push((t, stale_nan())),
            20.. => b.push((t, (k - 20) as f64)),
            _ => {}
        }
        if k % 3 != 0 {
            c.push((t, (k % 7) as f64));
        }
    }
    storage
        .append(&[
            series("x", "a", &a),
            series("x", "b", &b),
            series("y", "a", &c),
        ])
        .unwrap();
    let engine = Engine::new(storage, EngineOptions::default());
    let queries = [
        "x",
        "x offset 3m",
        "x offset -2m",
        "y",
        "x + on(i) y",
        "x > bool 100",
        "x and on(i) y",
        "x or y",
        "sum by (i) (x)",
        "topk(1, x)",
        "count_values(\"v\", y)",
        "-x",
        "sum_over_time(x[5m])",
        "max_over_time(x[4m:90s])",
        "sum_over_time(x[7m:2m] offset 3m)",
        "sum_over_time(sum(x)[10m:3m] @ 900)",
        "max_over_time(max_over_time(x[3m:1m])[6m:2m])",
        "count_over_time(y[10m:1m])",
        "timestamp(x)",
        "timestamp(x @ 300)",
        "time() - timestamp(y)",
        "scalar(y) * x",
        "vector(time())",
        "absent(nope)",
        "x @ 600 - x",
        // The per-series window path (windowed.rs) and group ids (groups.rs).
        "rate(x[5m])",
        "increase(x[5m] offset 2m)",
        "delta(y[7m] @ 900)",
        "irate(x[5m])",
        "resets(x[20m])",
        "changes(y[10m])",
        "deriv(y[10m])",
        "predict_linear(x[10m], 60)",
        "quantile_over_time(0.5, x[10m])",
        "last_over_time(x[3m])",
        "stddev_over_time(x[10m:2m])",
        "sum by (i) (rate(x[5m]))",
        "avg without (i) (x)",
        "stddev(x)",
        "quantile(0.5, x)",
        "bottomk(1, x)",
        "count_values without (i) (\"v\", y)",
        // Aggregations fused with the window path (aggregate_fused.rs).
        "stddev by (i) (rate(x[5m]))",
        "count(irate(x[5m]))",
        "max without (i) (sum_over_time(x[5m]))",
        "avg(quantile_over_time(0.9, x[10m]))",
        "group by (__name__) (last_over_time({__name__=~\"x|y\"}[3m]))",
    ];
    let (start, end, step) = (0, 2_700_000, 45_000);
    for q in queries {
        let got = matrix(
            engine
                .range(q, start, end, step)
                .unwrap_or_else(|e| panic!("{q}: {e}")),
        );
        let mut t = start;
        while t <= end {
            let mut expect: Vec<(String, f64)> = match engine.instant(q, t).unwrap() {
                Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
                Value::Scalar { v, .. } => vec![("{}".to_string(), v)],
                other => panic!("{q}: unexpected {}", other.type_name()),
            };
            expect.sort_by(|x, y| x.0.cmp(&y.0));
            let mut at_t: Vec<(String, f64)> = got
                .iter()
                .filter_map(|(l, pts)| pts.iter().find(|p| p.0 == t).map(|p| (l.clone(), p.1)))
                .collect();
            at_t.sort_by(|x, y| x.0.cmp(&y.0));
            let same = expect.len() == at_t.len()
                && expect
                    .iter()
                    .zip(&at_t)
                    .all(|(e, g)| e.0 == g.0 && (e.1 == g.1 || (e.1.is_nan() && g.1.is_nan())));
            assert!(same, "{q} at {t}: instant {expect:?}, range {at_t:?}");
            t += step;
        }
    }
}

#[test]
fn window_functions_whose_outputs_clash_fail_as_before() {
    let storage = Arc::new(MemStorage::new());
    let pts: Vec<(i64, f64)> = (0..10).map(|k| (k * 60_000, k as f64)).collect();
    storage
        .append(&[series("x", "a", &pts), series("y", "a", &pts)])
        .unwrap();
    let engine = Engine::new(storage, EngineOptions::default());
    // Both series lose their name and then share {i="a"}.
    for q in [
        r#"rate({__name__=~"x|y"}[5m])"#,
        r#"sum(rate({__name__=~"x|y"}[5m]))"#,
    ] {
        let err = engine.range(q, 300_000, 540_000, 60_000).unwrap_err();
        assert!(err.to_string().contains("same labelset"), "{q}: {err}");
    }
}
