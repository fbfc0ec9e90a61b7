//! The reporter against the fake API server, through the real kube client and real JSON.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use serde_json::Value;
use sonde_tests::fake_apiserver::{FakeApiServer, RequestRecord, kubelet_conditions};
use tokio::sync::{mpsc, watch};

use super::{KubeReportOptions, spawn};
use crate::detect::problem::{NodeCondition, PodRef, ProblemEvent, Severity, Status};

const NODE: &str = "node-a";
const WAIT: Duration = Duration::from_secs(10);

struct Rig {
    server: FakeApiServer,
    registry: Registry,
    conditions: watch::Sender<Vec<NodeCondition>>,
    events: mpsc::Sender<ProblemEvent>,
}

/// Starts the reporter for [`NODE`] against a fresh fake server; `prepare` runs on the
/// server first (add the node, take it down, ...).
fn start(opts: KubeReportOptions, prepare: impl FnOnce(&FakeApiServer)) -> Rig {
    let server = FakeApiServer::start();
    prepare(&server);
    let client = crate::enrich::pods::client(Some(&server.kubeconfig_path()))
        .expect("a client for the fake API server");
    let (conditions, conditions_rx) = watch::channel(Vec::new());
    let (events, events_rx) = mpsc::channel(1024);
    let mut registry = Registry::default();
    spawn(
        client,
        NODE.into(),
        conditions_rx,
        events_rx,
        opts,
        &mut registry,
    );
    Rig {
        server,
        registry,
        conditions,
        events,
    }
}

/// The node, with the kubelet's conditions on it.
fn with_node(server: &FakeApiServer) {
    server.add_node(NODE);
    assert_eq!(server.node_conditions(NODE), kubelet_conditions());
}

/// Options for tests: quick retries, the given heartbeat.
fn quick(heartbeat: Duration) -> KubeReportOptions {
    KubeReportOptions {
        heartbeat,
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
        ..KubeReportOptions::default()
    }
}

impl Rig {
    fn metric(&self, name: &str, result: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        sonde_tests::parse_exposition(&text)
            .value(name, &[("result", result)])
            .unwrap_or_else(|| panic!("no {name}{{result={result}}} in:\n{text}"))
    }

    /// Waits for the reporter's count: the fake server holds a write a moment
    /// before the reporter has counted it.
    fn wait_metric(&self, name: &str, result: &str, pred: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self.metric(name, result)) {
            assert!(
                Instant::now() < deadline,
                "{name}{{result={result}}} stayed at {}",
                self.metric(name, result)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the node's condition `kind` satisfies `pred`, and returns it.
    fn wait_condition(&self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.server
            .wait_until(WAIT, &format!("condition {kind}"), |s| {
                s.node_condition(NODE, kind).filter(|c| pred(c))
            })
    }

    fn status_patches(&self) -> Vec<RequestRecord> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.is_node_status_patch(NODE))
            .collect()
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2026-01-01T00:00:00Z plus `secs`, as the API spells it.
fn api_text(secs: u64) -> String {
    humantime::format_rfc3339_seconds(at(1_767_225_600 + secs)).to_string()
}

fn condition(kind: &str, status: Status, reason: &str, message: &str, since: u64) -> NodeCondition {
    NodeCondition {
        kind: kind.into(),
        status,
        reason: reason.into(),
        message: message.into(),
        last_transition: at(1_767_225_600 + since),
        pods: vec![],
    }
}

fn problem(source: &str, reason: &str, message: &str, pods: Vec<PodRef>) -> ProblemEvent {
    ProblemEvent {
        source: source.into(),
        reason: reason.into(),
        message: message.into(),
        time: SystemTime::now(),
        severity: Severity::Warning,
        pods,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_merge_with_the_kubelets_and_keep_their_transition_time() {
    let rig = start(quick(Duration::from_secs(300)), with_node);
    let deadlock = |status, reason: &str, message: &str, since| {
        condition("KernelDeadlock", status, reason, message, since)
    };
    let readonly = condition(
        "ReadonlyFilesystem",
        Status::False,
        "FilesystemIsNotReadOnly",
        "Filesystem is not read-only",
        0,
    );
    rig.conditions
        .send(vec![
            deadlock(
                Status::False,
                "KernelHasNoDeadlock",
                "kernel has no deadlock",
                0,
            ),
            readonly.clone(),
        ])
        .unwrap();
    let c = rig.wait_condition("KernelDeadlock", |_| true);
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "KernelHasNoDeadlock");
    assert_eq!(c["message"], "kernel has no deadlock");
    assert_eq!(c["lastTransitionTime"], api_text(0));
    let heartbeat = c["lastHeartbeatTime"].as_str().expect("a heartbeat time");
    assert!(humantime::parse_rfc3339(heartbeat).is_ok(), "{heartbeat}");

    let all = rig.server.node_conditions(NODE);
    let kinds: Vec<&str> = all.iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "MemoryPressure",
            "DiskPressure",
            "PIDPressure",
            "Ready",
            "KernelDeadlock",
            "ReadonlyFilesystem"
        ]
    );
    let ready = rig.server.node_condition(NODE, "Ready").unwrap();
    assert_eq!(
        ready,
        kubelet_conditions()[3],
        "the kubelet's condition is untouched"
    );
    let patch = &rig.status_patches()[0];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );

    // Only the message changes: the hub keeps the transition time, and so does the Node.
    rig.conditions
        .send(vec![
            deadlock(Status::False, "KernelHasNoDeadlock", "still no deadlock", 0),
            readonly.clone(),
        ])
        .unwrap();
    let c = rig.wait_condition("KernelDeadlock", |c| c["message"] == "still no deadlock");
    assert_eq!(c["lastTransitionTime"], api_text(0));

    // A real transition.
    rig.conditions
        .send(vec![
            deadlock(
                Status::True,
                "DockerHung",
                "task docker:7 blocked for more than 120 seconds",
                90,
            ),
            readonly,
        ])
        .unwrap();
    let c = rig.wait_condition("KernelDeadlock", |c| c["status"] == "True");
    assert_eq!(c["reason"], "DockerHung");
    assert_eq!(c["lastTransitionTime"], api_text(90));
    assert_eq!(rig.server.node_conditions(NODE).len(), 6);
    rig.wait_metric("sonde_node_condition_patches_total", "ok", |v| v == 3.0);
    assert_eq!(
        rig.metric("sonde_node_condition_patches_total", "failed"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_conditions_are_patched_once_per_heartbeat() {
    let heartbeat = Duration::from_millis(1500);
    let rig = start(quick(heartbeat), with_node);
    let set = vec![
        condition(
            "KernelDeadlock",
            Status::False,
            "KernelHasNoDeadlock",
            "ok",
            0,
        ),
        condition(
            "ReadonlyFilesystem",
            Status::False,
            "FilesystemIsNotReadOnly",
            "ok",
            0,
        ),
    ];
    rig.conditions.send(set.clone()).unwrap();
    rig.server
        .wait_for_requests(WAIT, "the first status patch", |log| {
            log.iter()
                .any(|r| r.is_node_status_patch(NODE) && r.status == 200)
        });
    let first = Instant::now();
    // The hub republishing the same set is no change.
    rig.conditions.send(set.clone()).unwrap();
    std::thread::sleep(heartbeat / 2);
    assert_eq!(
        rig.status_patches().len(),
        1,
        "no patch before the heartbeat"
    );

    rig.server
        .wait_for_requests(WAIT, "a heartbeat patch", |log| {
            log.iter().filter(|r| r.is_node_status_patch(NODE)).count() >= 2
        });
    let gap = first.elapsed();
    assert!(
        gap + Duration::from_millis(50) >= heartbeat,
        "heartbeat after {gap:?}, period {heartbeat:?}"
    );
    // One patch carries every condition.
    let body: Value = serde_json::from_str(&rig.status_patches()[1].body).unwrap();
    let kinds: Vec<&str> = body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(kinds, ["KernelDeadlock", "ReadonlyFilesystem"]);
    std::thread::sleep(heartbeat / 2);
    assert_eq!(rig.status_patches().len(), 2, "one patch per period");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_count_up_on_one_event() {
    let rig = start(quick(Duration::from_secs(300)), with_node);
    let pod = PodRef {
        namespace: "shop".into(),
        pod: "cart-7d9f".into(),
        container: "app".into(),
        uid: "0f3c2a9e-1111-4222-8333-444455556666".into(),
    };
    let oom = || {
        problem(
            "kernel-monitor",
            "OOMKilling",
            "Killed process 4242 (java) in pod shop/cart-7d9f container app",
            vec![pod.clone()],
        )
    };
    for _ in 0..3 {
        rig.events.send(oom()).await.unwrap();
    }
    let ev = rig.server.wait_until(WAIT, "an Event with count 3", |s| {
        s.events().into_iter().find(|e| e["count"] == 3)
    });
    assert_eq!(rig.server.events().len(), 1);
    assert_eq!(ev["metadata"]["namespace"], "default");
    assert!(
        ev["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("node-a.")
    );
    assert_eq!(ev["involvedObject"]["kind"], "Node");
    assert_eq!(ev["involvedObject"]["name"], NODE);
    assert_eq!(ev["involvedObject"]["uid"], NODE);
    assert_eq!(ev["related"]["kind"], "Pod");
    assert_eq!(ev["related"]["namespace"], "shop");
    assert_eq!(ev["related"]["name"], "cart-7d9f");
    assert_eq!(ev["related"]["uid"], pod.uid);
    assert_eq!(ev["related"]["fieldPath"], "spec.containers{app}");
    assert_eq!(ev["reason"], "OOMKilling");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["source"]["component"], "sonde-agent");
    assert_eq!(ev["source"]["host"], NODE);
    assert_eq!(ev["reportingComponent"], "sonde-agent");
    assert_eq!(ev["reportingInstance"], NODE);
    assert!(ev["firstTimestamp"].is_string() && ev["lastTimestamp"].is_string());
    rig.wait_metric("sonde_problem_events_total", "created", |v| v == 1.0);
    rig.wait_metric("sonde_problem_events_total", "updated", |v| v == 2.0);

    // Another message is another Event; a Normal one without pods has no `related`.
    let mut other = problem("kernel-monitor", "TaskHung", "task x blocked", vec![]);
    other.severity = Severity::Normal;
    rig.events.send(other).await.unwrap();
    let ev = rig.server.wait_until(WAIT, "the second Event", |s| {
        s.events().into_iter().find(|e| e["reason"] == "TaskHung")
    });
    assert_eq!(ev["count"], 1);
    assert_eq!(ev["type"], "Normal");
    assert!(ev.get("related").is_none());
    assert_eq!(rig.server.events().len(), 2);

    // The Event expired on the server (TTL): the next repeat starts a new one.
    rig.server.delete_events();
    rig.events.send(oom()).await.unwrap();
    let ev = rig.server.wait_until(WAIT, "a recreated Event", |s| {
        s.events().into_iter().find(|e| e["reason"] == "OOMKilling")
    });
    assert_eq!(ev["count"], 1);
    assert_eq!(rig.metric("sonde_problem_events_total", "failed"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spam_filter_drops_and_counts_past_the_burst() {
    let opts = KubeReportOptions {
        source_burst: 5,
        source_refill: Duration::from_secs(3600),
        ..quick(Duration::from_secs(300))
    };
    let rig = start(opts, with_node);
    for i in 0..20 {
        let ev = problem(
            "kernel-monitor",
            "IOError",
            &format!("I/O error, sector {i}"),
            vec![],
        );
        rig.events.send(ev).await.unwrap();
    }
    // Another source has its own bucket, and so has another reason of the same
    // source: a storm of one problem does not silence the next.
    let ev = problem(
        "readonly-monitor",
        "FilesystemIsReadOnly",
        "remounted ro",
        vec![],
    );
    rig.events.send(ev).await.unwrap();
    let ev = problem("kernel-monitor", "KernelOops", "BUG: oops", vec![]);
    rig.events.send(ev).await.unwrap();
    rig.wait_metric("sonde_problem_events_total", "created", |v| v >= 7.0);
    rig.wait_metric("sonde_problem_events_total", "rate_limited", |v| v >= 15.0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rig.metric("sonde_problem_events_total", "created"), 7.0);
    assert_eq!(
        rig.metric("sonde_problem_events_total", "rate_limited"),
        15.0
    );
    let events = rig.server.events();
    assert_eq!(events.len(), 7);
    let kernel: Vec<&str> = events
        .iter()
        .filter(|e| e["reason"] == "IOError")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(kernel.len(), 5);
    assert!(kernel.contains(&"I/O error, sector 0") && kernel.contains(&"I/O error, sector 4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_conditions_land_after_an_outage() {
    let opts = KubeReportOptions {
        event_attempts: 2,
        ..quick(Duration::from_secs(300))
    };
    let rig = start(opts, |s| {
        with_node(s);
        s.set_down(true);
    });
    let deadlock = |message: &str| {
        vec![condition(
            "KernelDeadlock",
            Status::True,
            "DockerHung",
            message,
            10,
        )]
    };
    rig.conditions.send(deadlock("first")).unwrap();
    rig.wait_metric("sonde_node_condition_patches_total", "failed", |v| v >= 2.0);
    rig.conditions.send(deadlock("latest")).unwrap();
    rig.events
        .send(problem("kernel-monitor", "OOMKilling", "lost", vec![]))
        .await
        .unwrap();
    rig.wait_metric("sonde_problem_events_total", "failed", |v| v >= 1.0);
    assert!(rig.server.requests().iter().any(|r| r.refused()));

    rig.server.set_down(false);
    let c = rig.wait_condition("KernelDeadlock", |_| true);
    assert_eq!(c["message"], "latest");
    assert_eq!(c["lastTransitionTime"], api_text(10));
    rig.wait_metric("sonde_node_condition_patches_total", "ok", |v| v == 1.0);
    assert_eq!(
        rig.server.node_conditions(NODE).len(),
        5,
        "kubelet's four and ours"
    );
    // Events work again too.
    rig.events
        .send(problem("kernel-monitor", "OOMKilling", "after", vec![]))
        .await
        .unwrap();
    rig.wait_metric("sonde_problem_events_total", "created", |v| v >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_node_is_retried_until_it_exists() {
    let rig = start(quick(Duration::from_secs(300)), |_| {});
    rig.conditions
        .send(vec![condition(
            "KernelDeadlock",
            Status::False,
            "KernelHasNoDeadlock",
            "ok",
            0,
        )])
        .unwrap();
    rig.wait_metric("sonde_node_condition_patches_total", "failed", |v| v >= 2.0);
    assert!(
        rig.status_patches().iter().all(|r| r.status == 404),
        "the fake answers 404 for an unknown node"
    );
    rig.server.add_node(NODE);
    let c = rig.wait_condition("KernelDeadlock", |_| true);
    assert_eq!(c["reason"], "KernelHasNoDeadlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_refused_by_the_spam_filter_still_count() {
    let opts = KubeReportOptions {
        source_burst: 2,
        source_refill: Duration::from_millis(400),
        ..quick(Duration::from_secs(300))
    };
    let rig = start(opts, with_node);
    let hung = || problem("kernel-monitor", "TaskHung", "task kworker blocked", vec![]);
    for _ in 0..5 {
        rig.events.send(hung()).await.unwrap();
    }
    rig.wait_metric("sonde_problem_events_total", "rate_limited", |v| v >= 1.0);
    // On a loaded machine a token may come back between the sends: "at least".
    let ev = rig.server.wait_until(WAIT, "the Event with count 2", |s| {
        s.events()
            .into_iter()
            .find(|e| e["count"].as_u64().is_some_and(|c| c >= 2))
    });
    // After a refill the next repeat carries every occurrence, refused ones included.
    std::thread::sleep(Duration::from_millis(500));
    rig.events.send(hung()).await.unwrap();
    let name = ev["metadata"]["name"].as_str().unwrap().to_string();
    let ev = rig.server.wait_until(WAIT, "the Event with count 6", |s| {
        s.event("default", &name).filter(|e| e["count"] == 6)
    });
    assert_eq!(rig.server.events().len(), 1, "{ev}");
    assert_eq!(rig.metric("sonde_problem_events_total", "created"), 1.0);
    // The server has the patch a moment before the reporter counts it.
    rig.wait_metric("sonde_problem_events_total", "updated", |v| v >= 2.0);
}
