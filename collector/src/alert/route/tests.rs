//! The router's semantics end to end with an explicit clock: timers, grouping,
//! routing, muting, resolved handling and the webhook body.

use std::{cell::Cell, time::Duration};

use super::{
    Notification, Router,
    alert::{RoutedAlert, fingerprint},
    config::RouteConfig,
    silence::{ApiMatcher, PostableSilence},
    webhook::{Counters, deliver},
};
use crate::alert::notify::alertmanager::rfc3339;
use crate::model::Labels;

const T0: i64 = 1_700_000_000_000;
const S: i64 = 1000;

const BASE: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['team=~"db|web"']
      receiver: teams
receivers:
  - name: ops
    webhook_configs:
      - url: http://ops/hook
  - name: pager
    webhook_configs:
      - url: http://pager/hook
        send_resolved: false
  - name: teams
    webhook_configs:
      - url: http://teams/hook
        max_alerts: 1
inhibit_rules:
  - source_matchers: ['alertname="ClusterDown"']
    target_matchers: ['alertname="NodeDown"']
    equal: [cluster]
"#;

fn router(cfg: &str) -> Router {
    Router::new(RouteConfig::parse(cfg).unwrap(), "http://sonde:9090".into())
}

fn alert(pairs: &[(&str, &str)], starts_at: i64, ends_at: i64) -> RoutedAlert {
    let labels = Labels::from_pairs(pairs.iter().copied());
    RoutedAlert {
        fingerprint: fingerprint(&labels),
        labels,
        annotations: [("summary".to_string(), "it broke".to_string())].into(),
        starts_at,
        ends_at,
        generator_url: "http://sonde:9090/graph".into(),
    }
}

/// Due notifications, each reported as delivered.
fn flush(r: &mut Router, now: i64) -> Vec<Notification> {
    let out = r.due(now);
    for n in &out {
        r.report(n, true);
    }
    out
}

fn names(n: &Notification) -> Vec<String> {
    n.message
        .alerts
        .iter()
        .map(|a| a.labels["instance"].clone())
        .collect()
}

#[test]
fn group_wait_then_group_interval_then_repeat_interval() {
    let mut r = router(BASE);
    r.ingest_routed(
        [alert(&[("alertname", "Down"), ("instance", "a")], T0, 0)],
        T0,
    );
    assert!(flush(&mut r, T0 + 29 * S).is_empty(), "group_wait is 30s");
    let n = flush(&mut r, T0 + 30 * S);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].url, "http://ops/hook");
    assert_eq!(names(&n[0]), ["a"]);

    // A new alert in the group waits for the group_interval (5m) flush.
    r.ingest_routed(
        [alert(
            &[("alertname", "Down"), ("instance", "b")],
            T0 + 60 * S,
            0,
        )],
        T0 + 60 * S,
    );
    assert!(flush(&mut r, T0 + 329 * S).is_empty());
    let n = flush(&mut r, T0 + 330 * S);
    assert_eq!(n.len(), 1);
    assert_eq!(names(&n[0]), ["a", "b"]);

    // Unchanged: flushes every 5m send nothing until 4h after the last send.
    let mut t = T0 + 330 * S;
    let last_sent = t;
    let mut sent_at = None;
    for _ in 0..100 {
        t += 300 * S;
        if !flush(&mut r, t).is_empty() {
            sent_at = Some(t);
            break;
        }
    }
    assert_eq!(sent_at, Some(last_sent + 4 * 3600 * S));
}

#[test]
fn old_alert_skips_group_wait() {
    let mut r = router(BASE);
    r.ingest_routed(
        [alert(
            &[("alertname", "Down"), ("instance", "a")],
            T0 - 60 * S,
            0,
        )],
        T0,
    );
    assert_eq!(flush(&mut r, T0).len(), 1);
}

#[test]
fn grouping_by_labels() {
    let mut r = router(BASE);
    r.ingest_routed(
        [
            alert(&[("alertname", "Down"), ("instance", "a")], T0, 0),
            alert(&[("alertname", "Down"), ("instance", "b")], T0, 0),
            alert(&[("alertname", "Slow"), ("instance", "a")], T0, 0),
        ],
        T0,
    );
    let mut n = flush(&mut r, T0 + 30 * S);
    n.sort_by(|a, b| a.message.group_key.cmp(&b.message.group_key));
    assert_eq!(n.len(), 2);
    assert_eq!(n[0].message.group_key, r#"{}:{alertname="Down"}"#);
    assert_eq!(names(&n[0]), ["a", "b"]);
    assert_eq!(
        n[0].message.group_labels,
        [("alertname".to_string(), "Down".to_string())].into()
    );
    assert_eq!(names(&n[1]), ["a"]);

    // "..." = every label: one group per alert.
    let mut r = router(&BASE.replace("group_by: [alertname]", "group_by: ['...']"));
    r.ingest_routed(
        [
            alert(&[("alertname", "Down"), ("instance", "a")], T0, 0),
            alert(&[("alertname", "Down"), ("instance", "b")], T0, 0),
        ],
        T0,
    );
    assert_eq!(flush(&mut r, T0 + 30 * S).len(), 2);
}

#[test]
fn child_routes_and_continue() {
    let mut r = router(BASE);
    r.ingest_routed(
        [alert(
            &[
                ("alertname", "Down"),
                ("instance", "a"),
                ("severity", "critical"),
                ("team", "db"),
            ],
            T0,
            0,
        )],
        T0,
    );
    let mut urls: Vec<String> = flush(&mut r, T0 + 30 * S)
        .iter()
        .map(|n| n.url.to_string())
        .collect();
    urls.sort();
    assert_eq!(urls, ["http://pager/hook", "http://teams/hook"]);
}

#[test]
fn silenced_alerts_are_not_sent_until_the_silence_expires() {
    let mut r = router(BASE);
    let id = r
        .silences
        .create(
            PostableSilence {
                id: None,
                matchers: vec![ApiMatcher {
                    name: "instance".into(),
                    value: "a".into(),
                    is_regex: false,
                    is_equal: true,
                }],
                starts_at: rfc3339(T0),
                ends_at: rfc3339(T0 + 3600 * S),
                created_by: "me".into(),
                comment: "".into(),
            },
            T0,
        )
        .unwrap();
    r.ingest_routed(
        [alert(&[("alertname", "Down"), ("instance", "a")], T0, 0)],
        T0,
    );
    assert!(flush(&mut r, T0 + 30 * S).is_empty());
    r.silences.expire(&id, T0 + 100 * S).unwrap();
    assert_eq!(
        flush(&mut r, T0 + 330 * S).len(),
        1,
        "next flush after expiry"
    );
}

#[test]
fn inhibition_needs_equal_labels() {
    let mut r = router(BASE);
    r.ingest_routed(
        [
            alert(&[("alertname", "ClusterDown"), ("cluster", "x")], T0, 0),
            alert(
                &[
                    ("alertname", "NodeDown"),
                    ("cluster", "x"),
                    ("instance", "a"),
                ],
                T0,
                0,
            ),
            alert(
                &[
                    ("alertname", "NodeDown"),
                    ("cluster", "y"),
                    ("instance", "b"),
                ],
                T0,
                0,
            ),
        ],
        T0,
    );
    let n = flush(&mut r, T0 + 30 * S);
    let node = n
        .iter()
        .find(|n| n.message.group_labels["alertname"] == "NodeDown")
        .unwrap();
    assert_eq!(
        names(node),
        ["b"],
        "a is inhibited by ClusterDown in cluster x"
    );
    assert_eq!(n.len(), 2);
}

#[test]
fn resolved_alerts_are_sent_then_dropped() {
    let mut r = router(BASE);
    let labels = [("alertname", "Down"), ("instance", "a")];
    r.ingest_routed([alert(&labels, T0, 0)], T0);
    assert_eq!(flush(&mut r, T0 + 30 * S).len(), 1);
    r.ingest_routed([alert(&labels, T0, T0 + 100 * S)], T0 + 100 * S);
    let n = flush(&mut r, T0 + 330 * S);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].message.status, "resolved");
    assert_eq!(n[0].message.alerts[0].status, "resolved");
    assert_eq!(n[0].message.alerts[0].ends_at, rfc3339(T0 + 100 * S));
    assert_eq!(r.group_count(), 0, "dropped after a successful flush");

    // send_resolved = false (pager): nothing is posted, the group still goes.
    let mut r = router(BASE);
    let labels = [
        ("alertname", "Down"),
        ("instance", "a"),
        ("severity", "critical"),
    ];
    r.ingest_routed([alert(&labels, T0, 0)], T0);
    assert_eq!(flush(&mut r, T0 + 30 * S)[0].url, "http://pager/hook");
    r.ingest_routed([alert(&labels, T0, T0 + 100 * S)], T0 + 100 * S);
    assert!(flush(&mut r, T0 + 330 * S).is_empty());
    assert_eq!(r.group_count(), 0);
}

#[test]
fn failed_sends_are_retried_at_the_next_flush() {
    let mut r = router(BASE);
    r.ingest_routed(
        [alert(&[("alertname", "Down"), ("instance", "a")], T0, 0)],
        T0,
    );
    let n = r.due(T0 + 30 * S);
    assert_eq!(n.len(), 1);
    r.report(&n[0], false);
    assert_eq!(flush(&mut r, T0 + 330 * S).len(), 1, "not logged as sent");
    assert!(flush(&mut r, T0 + 630 * S).is_empty());
}

#[test]
fn webhook_json_shape() {
    let mut r = router(BASE);
    r.ingest_routed(
        [
            alert(
                &[("alertname", "Down"), ("instance", "b"), ("team", "db")],
                T0,
                0,
            ),
            alert(
                &[("alertname", "Down"), ("instance", "a"), ("team", "db")],
                T0,
                T0 + 10 * S,
            ),
        ],
        T0,
    );
    let n = flush(&mut r, T0 + 30 * S);
    assert_eq!(n.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&n[0].body()).unwrap();
    let fp = format!(
        "{:016x}",
        fingerprint(&Labels::from_pairs([
            ("alertname", "Down"),
            ("instance", "a"),
            ("team", "db")
        ]))
    );
    // max_alerts = 1 on "teams": one alert sent (sorted by instance), one counted.
    assert_eq!(
        v,
        serde_json::json!({
            "receiver": "teams",
            "status": "firing",
            "alerts": [{
                "status": "resolved",
                "labels": {"alertname": "Down", "instance": "a", "team": "db"},
                "annotations": {"summary": "it broke"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:13:30.000Z",
                "generatorURL": "http://sonde:9090/graph",
                "fingerprint": fp,
            }],
            "groupLabels": {"alertname": "Down"},
            "commonLabels": {"alertname": "Down", "instance": "a", "team": "db"},
            "commonAnnotations": {"summary": "it broke"},
            "externalURL": "http://sonde:9090",
            "version": "4",
            "groupKey": r#"{}/{team=~"db|web"}/1:{alertname="Down"}"#,
            "truncatedAlerts": 1,
        })
    );
}

#[tokio::test]
async fn deliver_retries_with_backoff_then_counts() {
    let url: hyper::Uri = "http://hook/".parse().unwrap();
    let calls = Cell::new(0);
    let slept = std::cell::RefCell::new(Vec::new());
    let c = Counters::default();
    let res = deliver(
        &url,
        "{}".into(),
        Duration::from_secs(300),
        &c,
        |_, _| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err("503".to_string())
                } else {
                    Ok(())
                }
            }
        },
        |d| {
            slept.borrow_mut().push(d);
            async {}
        },
    )
    .await;
    assert!(res.is_ok());
    assert_eq!(calls.get(), 3);
    assert_eq!(
        *slept.borrow(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!((c.sent.get(), c.failed.get()), (1, 0));

    // Always failing: gives up after the attempts, or sooner when the budget
    // (group_interval) would be exceeded.
    let refusing = |budget: u64| {
        calls.set(0);
        deliver(
            &url,
            "{}".into(),
            Duration::from_secs(budget),
            &c,
            |_, _| {
                calls.set(calls.get() + 1);
                async { Err("refused".to_string()) }
            },
            |_| async {},
        )
    };
    let res = refusing(300).await;
    assert!(res.unwrap_err().contains("refused (after 4 attempts)"));
    assert_eq!(calls.get(), super::webhook::MAX_ATTEMPTS);
    let _ = refusing(2).await;
    assert_eq!(calls.get(), 2, "1s wait fits in 2s, the next 2s does not");
    assert_eq!(c.failed.get(), 2);
}
