//! eBPF HTTP spans for unmodified services (`--probes http`): a real Python
//! HTTP server and a real `http.client` client, each in a kubelet-style
//! container cgroup of a pod the fake API server knows, talk HTTP/1.1 over one
//! kept-alive connection; the agent's spans reach a fake OTLP TraceService
//! standing in for the collector. Checked: method, path (query cut off),
//! status and error status, pod and container, peer addresses and ports, each
//! span's duration against what the client measured itself (within 1 ms), and
//! that the client's `traceparent` makes the server span a child in its trace.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::Child,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};
use serde_json::Value as Json;
use sonde_tests::{
    Agent, Exposition,
    cgroup::{TestCgroup, kubelet_ids, kubelet_path},
    fake_apiserver::{FakeApiServer, pod_json},
    require_bpf,
};
use tonic::{Request, Response, Status, codec::CompressionEncoding, transport::Server};

const NODE: &str = "node-a";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

// ---------------------------------------------------------------- the receiver

#[derive(Clone, Default)]
struct Traces(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC TraceService on a free port; metric pushes to it are refused
/// (unimplemented), which the agent survives.
struct Receiver {
    addr: SocketAddr,
    traces: Traces,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let traces = Traces::default();
        let svc =
            TraceServiceServer::new(traces.clone()).accept_compressed(CompressionEncoding::Gzip);
        runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        Receiver {
            addr,
            traces,
            _runtime: runtime,
        }
    }

    /// Every span received so far with its resource's attributes.
    fn spans(&self) -> Vec<Got> {
        let mut out = Vec::new();
        for req in self.traces.0.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| strings(&r.attributes))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push(Got {
                            resource: resource.clone(),
                            span: span.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug)]
struct Got {
    resource: BTreeMap<String, String>,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&Value> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }
    fn string(&self, key: &str) -> Option<&str> {
        match self.attr(key)? {
            Value::StringValue(s) => Some(s),
            _ => None,
        }
    }
    fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            Value::IntValue(i) => Some(*i),
            _ => None,
        }
    }
    fn duration_ns(&self) -> i64 {
        self.span.end_time_unix_nano as i64 - self.span.start_time_unix_nano as i64
    }
    fn is_error(&self) -> bool {
        self.span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32)
    }
}

fn strings(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            Value::IntValue(i) => Some((kv.key.clone(), i.to_string())),
            _ => None,
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- the workloads

/// Answers /ok (after 30 ms) 200, /fail 503, /missing 404, anything else 500;
/// HTTP/1.1 keep-alive.
const SERVER: &str = r#"
import http.server, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = self.path.split("?")[0]
        if path == "/ok":
            time.sleep(0.03)
        code = {"/ok": 200, "/fail": 503, "/missing": 404}.get(path, 500)
        body = b"hello\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = any
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// Four requests on one connection, the last with a head longer than the kernel
/// keeps; prints its own measurement of each, from just before the request is
/// sent to the parsed response head.
const CLIENT: &str = r#"
import http.client, json, sys, time
port, traceparent = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port)
c.connect()
print(json.dumps({"local_port": c.sock.getsockname()[1]}), flush=True)
for method, path, headers, body in [
    ("GET", "/ok?item=7&full=1", {"traceparent": traceparent}, None),
    ("POST", "/fail", {"Content-Type": "application/json"}, b'{"a": 1}'),
    ("GET", "/missing", {}, None),
    ("GET", "/big", {"X-Pad": "a" * 600}, None),
]:
    t0 = time.monotonic_ns()
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    t1 = time.monotonic_ns()
    r.read()
    print(json.dumps({"method": method, "path": path, "status": r.status, "ns": t1 - t0}), flush=True)
c.close()
"#;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn followed(e: &Exposition) -> f64 {
    e.value("sonde_http_cgroups", &[]).unwrap_or(-1.0)
}

#[test]
fn http_exchanges_become_spans_with_the_callers_trace() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApiServer::start();
    api.add_node(NODE);
    let (server_id, server_uid) = kubelet_ids(81, "5e");
    let (client_id, client_uid) = kubelet_ids(82, "c1");
    for (pod, uid, container, id) in [
        ("web-1", &server_uid, "web", &server_id),
        ("caller-1", &client_uid, "caller", &client_id),
    ] {
        api.add_pod(pod_json(
            "shop",
            pod,
            uid,
            NODE,
            &[(
                container,
                &format!("containerd://{id}"),
                "registry.example/app:1",
            )],
            &[],
            None,
        ));
    }
    let receiver = Receiver::start();
    let agent = Agent::start_on_node(
        &api,
        NODE,
        &[
            "--probes",
            "http",
            "--probe-interval",
            "200ms",
            "--logs",
            "off",
            "--collector",
            &format!("http://{}", receiver.addr),
            "--buffer-dir",
            dir.path().join("buffer").to_str().unwrap(),
        ],
    );
    let e = agent.scrape_until("the http probe's first look at the cgroups", |e| {
        followed(e) >= 0.0
    });
    assert_eq!(
        e.value("sonde_probe_up", &[("probe", "http")]),
        Some(1.0),
        "http probe down:\n{}",
        agent.log_text()
    );
    let before = followed(&e);
    let server_cg = TestCgroup::at_path(&kubelet_path(
        "systemd",
        "containerd",
        &server_uid,
        &server_id,
    ));
    let client_cg = TestCgroup::at_path(&kubelet_path(
        "systemd",
        "containerd",
        &client_uid,
        &client_id,
    ));
    agent.scrape_until("both containers followed", |e| followed(e) >= before + 2.0);
    api.wait_for_requests(Duration::from_secs(20), "the pod watch", |log| {
        log.iter().any(|r| r.is_pod_watch())
    });

    let server_py = dir.path().join("server.py");
    let client_py = dir.path().join("client.py");
    std::fs::write(&server_py, SERVER).unwrap();
    std::fs::write(&client_py, CLIENT).unwrap();
    let mut server = Killed(server_cg.spawn(&format!("exec python3 {}", server_py.display())));
    let mut port = String::new();
    BufReader::new(server.0.stdout.as_mut().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the server did not say its port: {port:?}"));

    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let out = client_cg
        .spawn(&format!(
            "exec python3 {} {port} {traceparent}",
            client_py.display()
        ))
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let local_port = lines[0]["local_port"].as_i64().unwrap();
    let measured: Vec<(String, String, i64, i64)> = lines[1..]
        .iter()
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_string(),
                l["path"]
                    .as_str()
                    .unwrap()
                    .split('?')
                    .next()
                    .unwrap()
                    .to_string(),
                l["status"].as_i64().unwrap(),
                l["ns"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        measured.iter().map(|m| m.2).collect::<Vec<_>>(),
        [200, 503, 404, 500],
        "the server answered as written"
    );

    // Four exchanges, each seen from both sides.
    let pod = |g: &Got| g.resource.get("k8s.pod.name").cloned().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ours = loop {
        let ours: Vec<Got> = receiver
            .spans()
            .into_iter()
            .filter(|g| pod(g) == "web-1" || pod(g) == "caller-1")
            .collect();
        if ours.len() >= 8 || Instant::now() > deadline {
            break ours;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let all = receiver.spans();
    assert_eq!(
        ours.len(),
        8,
        "4 server and 4 client spans; got {} of ours ({} in all): {ours:#?}\nagent log:\n{}",
        ours.len(),
        all.len(),
        agent.log_text()
    );

    for (method, path, status, client_ns) in &measured {
        let name = format!("{method} {path}");
        for (side, pod_name, container, id, kind) in [
            ("server", "web-1", "web", &server_id, SpanKind::Server),
            ("client", "caller-1", "caller", &client_id, SpanKind::Client),
        ] {
            let found: Vec<&Got> = ours
                .iter()
                .filter(|g| pod(g) == pod_name && g.span.name == name)
                .collect();
            assert_eq!(found.len(), 1, "one {side} span {name:?}: {ours:#?}");
            let g = found[0];
            assert_eq!(g.span.kind, kind as i32, "{side} {name}");
            assert_eq!(g.string("http.request.method"), Some(method.as_str()));
            assert_eq!(g.string("url.path"), Some(path.as_str()));
            assert_eq!(g.int("http.response.status_code"), Some(*status));
            let want_error = *status >= 500 || (side == "client" && *status >= 400);
            assert_eq!(g.is_error(), want_error, "{side} {name} error status");
            assert_eq!(g.string("network.peer.address"), Some("127.0.0.1"));
            let peer_port = if side == "server" {
                local_port
            } else {
                i64::from(port)
            };
            assert_eq!(
                g.int("network.peer.port"),
                Some(peer_port),
                "{side} {name} peer port"
            );
            if side == "server" {
                assert_eq!(g.string("client.address"), Some("127.0.0.1"));
            } else {
                assert_eq!(g.string("server.address"), Some("127.0.0.1"));
                assert_eq!(g.int("server.port"), Some(i64::from(port)));
            }
            for (key, want) in [
                ("k8s.namespace.name", "shop"),
                ("k8s.pod.name", pod_name),
                ("k8s.container.name", container),
                ("service.name", container),
                ("container.id", id.as_str()),
                ("k8s.node.name", NODE),
            ] {
                assert_eq!(
                    g.resource.get(key).map(String::as_str),
                    Some(want),
                    "{side} {name} resource {key}"
                );
            }
            let diff = g.duration_ns() - client_ns;
            println!(
                "{side} span {name:<14} status {status}: {:>9.3} ms; client measured {:>9.3} ms; difference {:+.3} ms",
                g.duration_ns() as f64 / 1e6,
                *client_ns as f64 / 1e6,
                diff as f64 / 1e6
            );
            // The client's own measurement brackets its span (Python's request
            // building and header parsing are inside it): within 1 ms. The server
            // cannot see the network or the client's wakeups: its span must lie
            // inside the client's (checked below).
            if side == "client" {
                assert!(
                    diff.abs() < 1_000_000,
                    "{side} span of {name} lasted {} ns, the client measured {client_ns} ns",
                    g.duration_ns()
                );
            }
            let traced = path == "/ok";
            if traced {
                assert_eq!(
                    hex(&g.span.trace_id),
                    TRACE_ID,
                    "{side} {name} joins the trace"
                );
                assert_eq!(
                    hex(&g.span.parent_span_id),
                    PARENT_ID,
                    "{side} {name}'s parent is the traceparent's"
                );
            } else {
                assert_ne!(
                    hex(&g.span.trace_id),
                    TRACE_ID,
                    "{side} {name}: a new trace"
                );
                assert!(
                    g.span.parent_span_id.is_empty(),
                    "{side} {name}: a root span"
                );
            }
            assert_eq!(g.span.span_id.len(), 8);
            assert_ne!(hex(&g.span.span_id), PARENT_ID);
        }
    }
    // Each server span lies inside its client span: the same kernel clock on
    // both sides (50 µs for the two conversions to wall time).
    for (method, path, _, _) in &measured {
        let name = format!("{method} {path}");
        let of = |pod_name: &str| {
            ours.iter()
                .find(|g| pod(g) == pod_name && g.span.name == name)
                .unwrap()
        };
        let (server, client) = (of("web-1"), of("caller-1"));
        let after_start =
            server.span.start_time_unix_nano as i64 - client.span.start_time_unix_nano as i64;
        let before_end =
            client.span.end_time_unix_nano as i64 - server.span.end_time_unix_nano as i64;
        println!(
            "{name:<14}: the server span starts {:+.3} ms after the client span's start and ends {:+.3} ms before its end",
            after_start as f64 / 1e6,
            before_end as f64 / 1e6
        );
        assert!(
            after_start > -50_000 && before_end > -50_000,
            "{name}: the server span is not inside the client span: {server:#?}\n{client:#?}"
        );
        if path == "/ok" {
            assert!(
                server.duration_ns() >= 30_000_000,
                "the handler slept 30 ms"
            );
        }
    }

    let truncated = |e: &Exposition| {
        e.value(
            "sonde_probe_events_lost_total",
            &[("probe", "http"), ("reason", "head_truncated")],
        )
    };
    let e = agent.scrape_until("the cut head counted", |e| truncated(e) >= Some(2.0));
    let lost: Vec<(String, f64)> = e
        .find("sonde_probe_events_lost_total", &[("probe", "http")])
        .map(|s| (s.labels["reason"].clone(), s.value))
        .collect();
    println!("http probe losses: {lost:?}");
    assert_eq!(lost.len(), 6, "every loss reason is on /metrics");
    for (reason, n) in &lost {
        // The big head, cut where the kernel stops keeping it: once written
        // (client), once read (server).
        let want = if reason == "head_truncated" { 2.0 } else { 0.0 };
        assert_eq!(*n, want, "lost {reason}");
    }
    assert_eq!(
        e.value(
            "sonde_http_spans_dropped_total",
            &[("reason", "queue_full")]
        ),
        Some(0.0)
    );
    assert!(e.value("sonde_http_spans_total", &[]).unwrap_or(0.0) >= 8.0);
    drop(server);
}

/// Off by a switch: the probe loads only with spans on, and says so when not.
#[test]
fn without_spans_the_http_probe_is_off_and_says_why() {
    require_bpf!();
    let agent = Agent::start(&["--probes", "http,oom", "--spans", "off"]);
    let e = agent.scrape();
    assert_eq!(e.value("sonde_probe_up", &[("probe", "http")]), Some(0.0));
    assert_eq!(
        e.value("sonde_probe_up", &[("probe", "oom")]),
        Some(1.0),
        "the other probes load: {}",
        agent.log_text()
    );
    let line = agent.wait_for_log(Duration::from_secs(10), |v| {
        v["fields"]["message"] == "probe is off" && v["fields"]["probe"] == "http"
    });
    assert!(
        line["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("needs spans")),
        "{line}"
    );
    assert_eq!(e.value("sonde_http_cgroups", &[]), None);
}
