//! One test group run as promtool 2.42's `testGroup.test` runs it: the input
//! series in an in-memory store, every rule group evaluated at 0, then every
//! `evaluation_interval` up to the last `eval_time` (in `group_eval_order`),
//! the firing alerts of each `alert_rule_test` compared with the evaluation
//! at or just before its `eval_time`, then the `promql_expr_test`s queried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::{
    expand,
    group::{GroupRun, RuleSpec, Sources},
    load,
    rules::Lang,
    state::AlertState,
};
use crate::model::Labels;
use crate::query::{Engine, EngineOptions};
use crate::store::{Storage, memory::MemStorage};

use super::file::{AlertTest, ExpectedAlert, ExprTest, TestFile, TestGroup};

/// Runs one group; returns its failures, each a readable paragraph.
pub fn group(file: &TestFile, g: &TestGroup) -> Vec<String> {
    let mem = Arc::new(MemStorage::new());
    if let Err(e) = mem.append(&g.series) {
        return vec![format!("loading input_series: {e}")];
    }
    let storage: Arc<dyn Storage> = mem;
    let rule_files: Vec<_> = file
        .rule_files
        .iter()
        .map(|p| (p.clone(), Lang::PromQL))
        .collect();
    // promtool loads the groups with the test's `interval` as their default.
    let mut specs = match load::groups(&rule_files, ms(g.interval)) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    // Stable, and unnamed groups are position 0: promtool's partial order.
    specs.sort_by_key(|s| file.group_order.get(&s.name).copied().unwrap_or(0));
    let mut groups: Vec<GroupRun> = specs.into_iter().map(GroupRun::new).collect();

    let src = Sources {
        engine: Engine::new(storage.clone(), EngineOptions::default()),
        logs: None,
        log_limits: Default::default(),
    };
    let expander = expand::Prometheus::new(
        storage.clone(),
        EngineOptions::default(),
        g.external_url.clone(),
    )
    .with_external_labels(g.external_labels.clone());

    let mut tests: Vec<&AlertTest> = g.alert_tests.iter().collect();
    tests.sort_by_key(|t| t.eval_time);
    let last = g
        .alert_tests
        .iter()
        .map(|t| t.eval_time)
        .chain(g.expr_tests.iter().map(|t| t.eval_time))
        .max()
        .unwrap_or(0);
    let step = file.evaluation_interval;
    let mut failures = Vec::new();
    let mut next = 0;
    let mut ts = 0;
    while ts <= last {
        let mut errors = Vec::new();
        for run in &mut groups {
            run.eval(ts, &storage, &src, &expander, Duration::from_secs(60));
            for rule in &run.rules {
                if let Some(e) = &rule.health.last_error {
                    errors.push(format!("rule {} at {}: {e}", rule.spec.name(), show_ms(ts)));
                }
            }
        }
        // A rule that cannot be evaluated ends the group, as in promtool.
        if !errors.is_empty() {
            failures.extend(errors);
            return failures;
        }
        // Tests with ts <= eval_time < ts + step see this evaluation.
        while next < tests.len() && tests[next].eval_time < ts + step {
            if let Some(f) = check_alerts(tests[next], &groups) {
                failures.push(f);
            }
            next += 1;
        }
        ts += step;
    }
    failures.extend(g.expr_tests.iter().filter_map(|t| check_expr(t, &src)));
    failures
}

fn check_alerts(t: &AlertTest, groups: &[GroupRun]) -> Option<String> {
    let to_map = |l: &Labels| -> BTreeMap<String, String> {
        l.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // The same alert name may be in several groups: all count.
    let mut got: Vec<ExpectedAlert> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| matches!(&r.spec, RuleSpec::Alert(a) if a.name == t.alertname))
        .flat_map(|r| r.state.active())
        .filter(|a| a.state == AlertState::Firing)
        .map(|a| ExpectedAlert {
            labels: to_map(&a.labels),
            annotations: a.annotations.clone(),
        })
        .collect();
    let mut want = t.expected.clone();
    got.sort();
    want.sort();
    if got == want {
        return None;
    }
    Some(format!(
        "alertname {} at {}:\n{}",
        t.alertname,
        t.eval_text,
        diff_alerts(&want, &got).trim_end()
    ))
}

/// Each alert only expected (`-`) or only got (`+`); for one whose labels
/// match, the annotations that differ.
fn diff_alerts(want: &[ExpectedAlert], got: &[ExpectedAlert]) -> String {
    let mut out = String::new();
    let show = |m: &BTreeMap<String, String>| {
        let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", pairs.join(", "))
    };
    let mut got: Vec<&ExpectedAlert> = got.iter().collect();
    for w in want {
        if let Some(i) = got.iter().position(|g| *g == w) {
            got.remove(i);
            continue;
        }
        match got.iter().position(|g| g.labels == w.labels) {
            Some(i) => {
                let g = got.remove(i);
                out += &format!("  ~ {} annotations differ:\n", show(&w.labels));
                let keys: std::collections::BTreeSet<&String> =
                    w.annotations.keys().chain(g.annotations.keys()).collect();
                for k in keys {
                    let (a, b) = (w.annotations.get(k), g.annotations.get(k));
                    let text = |v: Option<&String>| v.map_or("(none)".into(), |v| format!("{v:?}"));
                    if a != b {
                        out += &format!(
                            "      {k}:\n        expected: {}\n        got:      {}\n",
                            text(a),
                            text(b)
                        );
                    }
                }
            }
            None => {
                out += &format!(
                    "  - expected, not firing: {}\n      annotations: {}\n",
                    show(&w.labels),
                    show(&w.annotations)
                )
            }
        }
    }
    for g in got {
        out += &format!(
            "  + firing, not expected: {}\n      annotations: {}\n",
            show(&g.labels),
            show(&g.annotations)
        );
    }
    out
}

fn check_expr(t: &ExprTest, src: &Sources) -> Option<String> {
    let head = format!("expr {:?} at {}", t.expr, t.eval_text);
    let mut got = match src.vector(Lang::PromQL, &t.expr, t.eval_time) {
        Ok(v) => v,
        Err(e) => return Some(format!("{head}: {e}")),
    };
    let mut want = t.expected.clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    // Exact, as promtool's reflect.DeepEqual (so NaN never matches).
    let same =
        got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g.0 == w.0 && g.1 == w.1);
    if same {
        return None;
    }
    let show = |v: &[(Labels, f64)]| -> String {
        let items: Vec<String> = v.iter().map(|(l, x)| format!("{l} {x}")).collect();
        format!("[{}]", items.join(", "))
    };
    Some(format!(
        "{head}:\n  expected: {}\n  got:      {}",
        show(&want),
        show(&got)
    ))
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

fn show_ms(v: i64) -> String {
    humantime::format_duration(ms(v)).to_string()
}
