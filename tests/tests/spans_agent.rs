//! Application spans through the agent, end to end: the real OpenTelemetry
//! Python SDK (its OTLP gRPC and HTTP exporters, from PyPI) runs in a
//! kubelet-style cgroup of a pod the fake API server knows, sends to the
//! agent's node-local receiver over loopback, and the traces come back whole
//! from the collector's Jaeger API with the pod's Kubernetes attributes, which
//! the agent found from the process holding the connection. The agent's span
//! metrics count them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde_json::Value;
use sonde_tests::{
    Agent,
    cgroup::{TestCgroup, kubelet_path},
    collector::Collector,
    fake_apiserver::FakeApiServer,
    free_port, http_get, require_root, workspace_root,
};

const NODE: &str = "node-a";

/// One trace: a server span "GET /cart/{id}" with a child, service "cart",
/// no Kubernetes attributes of its own. Prints the exporter's result and the trace id.
const SEND: &str = r#"
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

mode, endpoint = sys.argv[1:3]
if mode == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=10)
memory = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "cart"}))
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("sonde-test")
with tracer.start_as_current_span("GET /cart/{id}", kind=SpanKind.SERVER) as root:
    with tracer.start_as_current_span("load cart"):
        pass
spans = memory.get_finished_spans()
print(exporter.export(spans).name, format(root.get_span_context().trace_id, "032x"))
exporter.shutdown()
"#;

fn python() -> PathBuf {
    let py = workspace_root().join("target/sonde-py/bin/python3");
    assert!(
        py.exists(),
        "{} is missing: run `cargo xtask setup` (it installs the OpenTelemetry SDK there)",
        py.display()
    );
    py
}

fn get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    let (status, body) = http_get(addr, path, None).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// The trace from the collector's Jaeger API, once it has both spans.
fn trace(collector: &Collector, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = get_json(collector.http_addr(), &format!("/api/traces/{id}"))
            .and_then(|j| j["data"].get(0).cloned())
            .filter(|t| t["spans"].as_array().is_some_and(|s| s.len() == 2))
        {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "trace {id} not in the collector within 30 s; collector log:\n{}",
            collector.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a str> {
    tags.as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}

#[test]
fn sdk_spans_through_the_agent_arrive_with_the_pod_that_sent_them() {
    require_root!("creates a cgroup and reads the sender's /proc entries,");
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("data"), &[]);
    let api = FakeApiServer::start();
    api.add_node(NODE);
    let (id, uid) = api.add_app_pod(NODE, "shop", "cart-1", (71, "ab"));
    let (grpc, http) = (free_port(), free_port());
    let agent = Agent::start_on_node(
        &api,
        NODE,
        &[
            "--probes",
            "none",
            "--collector",
            &collector.grpc_url(),
            "--buffer-dir",
            dir.path().join("buffer").to_str().unwrap(),
            "--logs",
            "off",
            "--otlp-grpc-listen",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http-listen",
            &format!("127.0.0.1:{http}"),
        ],
    );
    api.wait_for_requests(Duration::from_secs(20), "the pod watch", |log| {
        log.iter().any(|r| r.is_pod_watch())
    });
    let script = dir.path().join("send.py");
    std::fs::write(&script, SEND).unwrap();
    let cg = TestCgroup::at_path(&kubelet_path("systemd", "containerd", &uid, &id));

    for (mode, endpoint) in [
        ("grpc", format!("127.0.0.1:{grpc}")),
        ("http", format!("http://127.0.0.1:{http}/v1/traces")),
    ] {
        let out = cg
            .spawn(&format!(
                "exec {} {} {mode} {endpoint}",
                py.display(),
                script.display()
            ))
            .wait_with_output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (result, trace_id) = stdout.trim().split_once(' ').unwrap_or_else(|| {
            panic!(
                "{mode}: {stdout}{}\nagent log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                agent.log_text()
            )
        });
        assert_eq!(result, "SUCCESS", "{mode}: {stdout}\n{}", agent.log_text());

        let t = trace(&collector, trace_id);
        let process = t["processes"]
            .as_object()
            .and_then(|p| p.values().next())
            .unwrap()
            .clone();
        assert_eq!(process["serviceName"], "cart", "{mode}: {process}");
        let tags = &process["tags"];
        assert_eq!(
            tag(tags, "k8s.namespace.name"),
            Some("shop"),
            "{mode}: {tags}"
        );
        assert_eq!(tag(tags, "k8s.pod.name"), Some("cart-1"), "{mode}: {tags}");
        assert_eq!(
            tag(tags, "k8s.container.name"),
            Some("app"),
            "{mode}: {tags}"
        );
        assert_eq!(tag(tags, "k8s.node.name"), Some(NODE), "{mode}: {tags}");
        assert_eq!(
            tag(tags, "container.id"),
            Some(id.as_str()),
            "{mode}: {tags}"
        );
        // Whole: the child refers to the root.
        let spans = t["spans"].as_array().unwrap();
        let root = spans
            .iter()
            .find(|s| s["operationName"] == "GET /cart/{id}")
            .unwrap();
        let child = spans
            .iter()
            .find(|s| s["operationName"] == "load cart")
            .unwrap();
        assert_eq!(
            child["references"][0]["spanID"], root["spanID"],
            "{mode}: {t}"
        );
    }

    let e = agent.scrape_until("spans counted", |e| {
        e.value("sonde_spans_received_total", &[("protocol", "grpc")]) == Some(2.0)
            && e.value("sonde_spans_received_total", &[("protocol", "http")]) == Some(2.0)
    });
    let server = [
        ("service", "cart"),
        ("span_name", "GET /cart/{id}"),
        ("span_kind", "SPAN_KIND_SERVER"),
        ("status_code", "STATUS_CODE_UNSET"),
    ];
    assert_eq!(
        e.value("traces_spanmetrics_calls_total", &server),
        Some(2.0)
    );
}
