//! Alerting end to end against the real Alertmanager (Debian's 0.25): a rule
//! file evaluated every second, pending -> firing -> resolved as the data
//! changes, the alert with its rendered annotation in Alertmanager, the
//! `ALERTS` series and a recording rule in the store, `/api/v1/rules` and
//! `/api/v1/alerts`, reloads that refuse a bad file, and firing state kept
//! across a restart.

mod alert_support;
mod api_support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use alert_support::{Collector, alertmanager, collector, get_json, push_depth, wait_for};
use api_support::{binary, enc, now_ms, request};
use serde_json::Value;

const RULES: &str = r#"groups:
  - name: queues
    interval: 1s
    rules:
      - record: job:queue_depth:sum
        expr: sum by (job) (queue_depth)
      - alert: QueueDeep
        expr: queue_depth > 10
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "Queue {{ $labels.queue }} holds {{ $value }} items"
"#;

fn alerts(c: &Collector) -> Vec<Value> {
    get_json(c.http, "/api/v1/alerts")
        .and_then(|j| j["data"]["alerts"].as_array().cloned())
        .unwrap_or_default()
}

fn state_of(c: &Collector) -> Option<String> {
    alerts(c)
        .first()
        .and_then(|a| a["state"].as_str().map(String::from))
}

#[test]
fn an_alert_goes_pending_firing_resolved_and_reaches_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let (_am, am) = alertmanager(dir.path());
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let args = vec![
        "--rule-files".to_string(),
        rules.display().to_string(),
        "--alertmanager-url".into(),
        format!("http://{am}"),
    ];
    let c = collector(&dir.path().join("data"), &dir.path().join("c.log"), &args);

    push_depth(&c, 17);
    wait_for("the alert pending", Duration::from_secs(10), || {
        (state_of(&c).as_deref() == Some("pending")).then_some(())
    });
    let firing_at = wait_for("the alert firing", Duration::from_secs(10), || {
        (state_of(&c).as_deref() == Some("firing")).then(Instant::now)
    });
    let a = &alerts(&c)[0];
    assert_eq!(a["labels"]["alertname"], "QueueDeep", "{a}");
    assert_eq!(a["labels"]["severity"], "page", "{a}");
    assert_eq!(a["labels"]["queue"], "q1", "{a}");
    assert_eq!(
        a["annotations"]["summary"], "Queue q1 holds 17 items",
        "{a}"
    );
    assert_eq!(a["value"], "17", "{a}");

    // In Alertmanager, with the same labels and annotation.
    let got = wait_for("the alert in Alertmanager", Duration::from_secs(10), || {
        get_json(am, "/api/v2/alerts")?
            .as_array()?
            .iter()
            .find(|x| x["labels"]["alertname"] == "QueueDeep")
            .cloned()
    });
    println!(
        "alert reached Alertmanager {:?} after it fired",
        firing_at.elapsed()
    );
    assert_eq!(got["annotations"]["summary"], "Queue q1 holds 17 items");
    assert_eq!(got["labels"]["queue"], "q1");
    assert_eq!(got["status"]["state"], "active", "{got}");
    assert!(
        got["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("/graph?g0.expr=queue_depth")),
        "{got}"
    );

    // The series a rule writes: ALERTS, ALERTS_FOR_STATE, and the recording rule.
    let q = |expr: &str| -> Vec<Value> {
        get_json(c.http, &format!("/api/v1/query?query={}", enc(expr)))
            .and_then(|j| j["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    };
    let firing = q(r#"ALERTS{alertname="QueueDeep",alertstate="firing"}"#);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(q("ALERTS_FOR_STATE").len(), 1);
    let sum = wait_for(
        "the recording rule's series",
        Duration::from_secs(5),
        || q("job:queue_depth:sum").first().cloned(),
    );
    assert_eq!(sum["value"][1], "17", "{sum}");
    assert_eq!(sum["metric"]["job"], "web", "{sum}");

    let rules_api = get_json(c.http, "/api/v1/rules").unwrap();
    let group = &rules_api["data"]["groups"][0];
    assert_eq!(group["name"], "queues");
    assert_eq!(group["interval"], 1.0);
    let r = &group["rules"];
    assert_eq!(r[0]["type"], "recording");
    assert_eq!(r[0]["health"], "ok", "{r}");
    assert_eq!(r[1]["type"], "alerting");
    assert_eq!(r[1]["state"], "firing");
    assert_eq!(r[1]["duration"], 2.0);
    assert_eq!(r[1]["alerts"].as_array().unwrap().len(), 1);
    let only_alerts = get_json(c.http, "/api/v1/rules?type=alert").unwrap();
    assert_eq!(
        only_alerts["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, bad) = {
        let r = request(c.http, "GET", "/api/v1/rules?type=nope", &[], b"").unwrap();
        (r.status, r.text())
    };
    assert_eq!(status, 400, "{bad}");

    // Resolved: gone from the API and, once told, from Alertmanager's active list.
    push_depth(&c, 3);
    wait_for("the alert resolved", Duration::from_secs(10), || {
        alerts(&c).is_empty().then_some(())
    });
    wait_for(
        "Alertmanager told it resolved",
        Duration::from_secs(10),
        || {
            let active = get_json(am, "/api/v2/alerts")?;
            (!active
                .as_array()?
                .iter()
                .any(|x| x["labels"]["alertname"] == "QueueDeep"))
            .then_some(())
        },
    );
    assert!(c.proc.log().contains("rules loaded"), "{}", c.proc.log());
}

#[test]
fn a_bad_reload_keeps_the_rules_and_a_bad_start_exits_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let args = vec!["--rule-files".to_string(), rules.display().to_string()];
    let c = collector(&dir.path().join("data"), &dir.path().join("c.log"), &args);
    let groups = |c: &Collector| {
        get_json(c.http, "/api/v1/rules").unwrap()["data"]["groups"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(groups(&c), 1);

    std::fs::write(&rules, RULES.replace("queue_depth > 10", "queue_depth >")).unwrap();
    let r = request(c.http, "POST", "/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("rules.yml") && r.text().contains("QueueDeep"),
        "the error names the file and the rule: {}",
        r.text()
    );
    assert_eq!(groups(&c), 1, "the old rules stay");

    // A good file with a second group reloads.
    std::fs::write(
        &rules,
        format!(
            "{RULES}  - name: more\n    rules:\n      - record: two\n        expr: vector(2)\n"
        ),
    )
    .unwrap();
    let r = request(c.http, "POST", "/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(groups(&c), 2);
    drop(c);

    // At start a bad file is a bad config: exit 2, one line naming it.
    std::fs::write(
        &rules,
        "groups:\n  - name: x\n    rules:\n      - alert: A\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["--data-dir", dir.path().join("d2").to_str().unwrap()])
        .args(["--rule-files", rules.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("rules.yml"), "{err}");
}

#[test]
fn a_firing_alert_stays_firing_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES.replace("for: 2s", "for: 4s")).unwrap();
    let args = vec!["--rule-files".to_string(), rules.display().to_string()];
    let data = dir.path().join("data");
    let mut c = collector(&data, &dir.path().join("c1.log"), &args);
    push_depth(&c, 17);
    wait_for("the alert firing", Duration::from_secs(15), || {
        (state_of(&c).as_deref() == Some("firing")).then_some(())
    });
    c.proc.terminate();

    let c = collector(&data, &dir.path().join("c2.log"), &args);
    let started = Instant::now();
    push_depth(&c, 17);
    // Without restoring, the alert would be pending for 4 s first.
    let state = wait_for("the first evaluation", Duration::from_secs(10), || {
        state_of(&c)
    });
    assert_eq!(
        state,
        "firing",
        "after a restart the alert waited its `for` again ({:?} after start)",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_log_rule_alerts_on_a_count_of_error_lines() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("log-rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: web-logs
    interval: 1s
    rules:
      - record: app:error_lines:count1m
        expr: sum by (app) (count_over_time({app="web"} |= "error" [1m]))
      - alert: WebErrors
        expr: sum by (app) (count_over_time({app="web"} |= "error" [1m])) > 2
        annotations:
          summary: "{{ $labels.app }} logged {{ $value }} errors in a minute"
"#,
    )
    .unwrap();
    let args = vec!["--log-rule-files".to_string(), rules.display().to_string()];
    let c = collector(&dir.path().join("data"), &dir.path().join("c.log"), &args);
    let now_ns = now_ms() as i128 * 1_000_000;
    let values: Vec<String> = (0..5)
        .map(|i| {
            let line = if i == 4 {
                "all fine"
            } else {
                "error: upstream timed out"
            };
            format!(r#"["{}","{line}"]"#, now_ns - 1_000_000_000 + i)
        })
        .collect();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"app":"web"}},"values":[{}]}}]}}"#,
        values.join(",")
    );
    let r = request(
        c.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let a = wait_for("the log alert", Duration::from_secs(10), || {
        alerts(&c)
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "WebErrors")
    });
    assert_eq!(a["labels"]["app"], "web", "{a}");
    assert_eq!(
        a["annotations"]["summary"], "web logged 4 errors in a minute",
        "{a}"
    );
    let rec = get_json(c.http, "/api/v1/query?query=app:error_lines:count1m").unwrap();
    assert_eq!(rec["data"]["result"][0]["value"][1], "4", "{rec}");

    // A log query is not a rule expression: refused naming the rule.
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: Lines\n        expr: '{app=\"web\"} |= \"error\"'\n",
    )
    .unwrap();
    let r = request(c.http, "POST", "/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("Lines") && r.text().contains("metric query"),
        "{}",
        r.text()
    );
}
