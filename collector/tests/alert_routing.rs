//! Built-in notification end to end (`--alert-routes`, for clusters without
//! Alertmanager): rule alerts routed and grouped into Alertmanager's webhook
//! JSON (version 4) posted to a real HTTP receiver, with a retry after a 500,
//! silences created and expired through the API v2 and kept across a
//! restart, inhibition, dedup within repeat_interval, a resolved
//! notification, and the real `amtool` managing silences. The timing rules (group_wait, group_interval,
//! repeat_interval) are tested with a driven clock in `alert::route::tests`.

mod alert_support;
mod api_support;

use std::{process::Command, time::Duration};

use alert_support::{collector, get_json, push_queue, sink::Sink, wait_for};
use api_support::{binary, request};
use serde_json::{Value, json};

const RULES: &str = r#"groups:
  - name: queues
    interval: 1s
    rules:
      - alert: QueueDeep
        expr: queue_depth > 10
        labels:
          severity: warning
        annotations:
          summary: "Queue {{ $labels.queue }} holds {{ $value }} items"
      - alert: QueueOverflow
        expr: queue_depth > 1000
        labels:
          severity: critical
        annotations:
          summary: "Queue {{ $labels.queue }} overflows"
"#;

fn routes(sink: &Sink) -> String {
    format!(
        r#"route:
  receiver: hook
  group_by: [alertname, queue]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://{}/hook
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [queue]
"#,
        sink.addr
    )
}

/// The (alertname, queue, status) of each message's alerts, one entry per message.
fn seen(sink: &Sink) -> Vec<(String, String, String)> {
    sink.received()
        .iter()
        .map(|m| {
            let a = &m["alerts"][0]["labels"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (s(&a["alertname"]), s(&a["queue"]), s(&m["status"]))
        })
        .collect()
}

fn count(sink: &Sink, alert: &str, queue: &str, status: &str) -> usize {
    seen(sink)
        .iter()
        .filter(|(a, q, s)| a == alert && q == queue && s == status)
        .count()
}

fn post_json(addr: std::net::SocketAddr, path: &str, body: &Value) -> (u16, String) {
    let r = request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    (r.status, r.text())
}

#[test]
fn routed_alerts_reach_a_webhook_grouped_silenced_inhibited_and_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(1);
    let (rules, routes_file) = (dir.path().join("rules.yml"), dir.path().join("routes.yml"));
    std::fs::write(&rules, RULES).unwrap();
    std::fs::write(&routes_file, routes(&sink)).unwrap();
    let args = vec![
        "--rule-files".to_string(),
        rules.display().to_string(),
        "--alert-routes".into(),
        routes_file.display().to_string(),
    ];
    let data = dir.path().join("data");
    let mut c = collector(&data, &dir.path().join("c1.log"), &args);

    // A silence for queue q2, made before its alert exists.
    let now = chrono::Utc::now();
    let silence = json!({
        "matchers": [{"name": "queue", "value": "q2", "isRegex": false, "isEqual": true}],
        "startsAt": (now - chrono::Duration::seconds(1)).to_rfc3339(),
        "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "createdBy": "test",
        "comment": "maintenance on q2",
    });
    let (status, body) = post_json(c.http, "/api/v2/silences", &silence);
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();

    // Bad requests: a 4xx with a message, and nothing changes.
    let (status, body) = post_json(c.http, "/api/v2/silences", &json!({"matchers": []}));
    assert_eq!(status, 400, "{body}");
    assert!(body.len() > 2, "an error message: {body}");
    let r = request(c.http, "DELETE", "/api/v2/silence/nope", &[], b"").unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let listed = get_json(c.http, "/api/v2/silences").unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // q1 deep; q2 deep but silenced; q3 overflowing, which inhibits its own QueueDeep.
    push_queue(&c, "q1", 50);
    push_queue(&c, "q2", 60);
    push_queue(&c, "q3", 5000);
    wait_for("q1 and q3 notified", Duration::from_secs(15), || {
        (count(&sink, "QueueDeep", "q1", "firing") == 1
            && count(&sink, "QueueOverflow", "q3", "firing") == 1)
            .then_some(())
    });
    // Two more group intervals: nothing else may arrive.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        count(&sink, "QueueDeep", "q2", "firing"),
        0,
        "silenced: {:?}",
        seen(&sink)
    );
    assert_eq!(
        count(&sink, "QueueDeep", "q3", "firing"),
        0,
        "inhibited: {:?}",
        seen(&sink)
    );
    assert_eq!(
        count(&sink, "QueueDeep", "q1", "firing"),
        1,
        "deduplicated: {:?}",
        seen(&sink)
    );
    assert!(
        sink.posts() > sink.received().len(),
        "the first post got a 500 and was retried"
    );

    // The webhook body, as Alertmanager's.
    let m = sink
        .received()
        .into_iter()
        .find(|m| m["alerts"][0]["labels"]["queue"] == "q1")
        .unwrap();
    assert_eq!(m["version"], "4", "{m}");
    assert_eq!(m["receiver"], "hook", "{m}");
    assert_eq!(
        m["groupLabels"],
        json!({"alertname": "QueueDeep", "queue": "q1"}),
        "{m}"
    );
    assert_eq!(m["commonLabels"]["severity"], "warning", "{m}");
    assert_eq!(
        m["groupKey"], r#"{}:{alertname="QueueDeep", queue="q1"}"#,
        "{m}"
    );
    let a = &m["alerts"][0];
    assert_eq!(a["status"], "firing", "{m}");
    assert_eq!(
        a["annotations"]["summary"], "Queue q1 holds 50 items",
        "{m}"
    );
    assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16), "{m}");
    assert!(
        a["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("queue_depth")),
        "{m}"
    );

    // Expiring the silence lets q2 through at its group's next flush.
    let r = request(c.http, "DELETE", &format!("/api/v2/silence/{id}"), &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for(
        "q2 notified once unsilenced",
        Duration::from_secs(10),
        || (count(&sink, "QueueDeep", "q2", "firing") == 1).then_some(()),
    );

    // Resolved: q1 drops below the threshold.
    push_queue(&c, "q1", 0);
    wait_for("q1 resolved", Duration::from_secs(15), || {
        (count(&sink, "QueueDeep", "q1", "resolved") == 1).then_some(())
    });
    let metrics = request(c.http, "GET", "/metrics", &[], b"").unwrap().text();
    assert!(
        metrics.contains("sonde_collector_webhook_notifications_sent_total"),
        "{metrics}"
    );

    // The silence (now expired) survives a restart.
    c.proc.terminate();
    let c = collector(&data, &dir.path().join("c2.log"), &args);
    let listed = get_json(c.http, "/api/v2/silences").unwrap();
    let s = &listed.as_array().unwrap()[0];
    assert_eq!(s["id"], id.as_str(), "{listed}");
    assert_eq!(s["status"]["state"], "expired", "{listed}");
    assert_eq!(s["comment"], "maintenance on q2", "{listed}");
}

#[test]
fn a_bad_routes_file_exits_with_one_line_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("routes.yml");
    std::fs::write(
        &f,
        "route:\n  receiver: hook\n  routes:\n    - receiver: nobody\nreceivers:\n  - name: hook\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--alert-routes")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--alert-routes") && err.contains("route.routes[0].receiver"),
        "{err}"
    );
    assert!(!dir.path().join("data").exists(), "nothing started: {err}");
}

/// The real `amtool` (Debian's prometheus-alertmanager) manages Sonde's silences.
#[test]
fn amtool_adds_queries_and_expires_silences() {
    let amtool = "/usr/bin/amtool";
    assert!(
        std::path::Path::new(amtool).exists(),
        "{amtool} missing: `cargo xtask setup` installs prometheus-alertmanager"
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("routes.yml");
    std::fs::write(&f, "route:\n  receiver: r\nreceivers:\n  - name: r\n").unwrap();
    let args = vec!["--alert-routes".to_string(), f.display().to_string()];
    let c = collector(&dir.path().join("data"), &dir.path().join("c.log"), &args);
    let url = format!("--alertmanager.url=http://{}", c.http);
    let run = |args: &[&str]| {
        let out = Command::new(amtool).arg(&url).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "amtool {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let id = run(&[
        "silence",
        "add",
        "queue=q2",
        "--comment=upgrade",
        "--author=ops",
        "--duration=1h",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let active = run(&["silence", "query", "-q"]);
    assert_eq!(active.trim(), id);
    run(&["silence", "expire", id]);
    assert_eq!(run(&["silence", "query", "-q"]).trim(), "");
    assert_eq!(run(&["silence", "query", "-q", "--expired"]).trim(), id);
}
