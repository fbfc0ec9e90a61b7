//! The agent pushing its metrics over OTLP/gRPC to a receiver that stands in for
//! the collector: what arrives matches `/metrics`, nothing is lost or reordered
//! while the receiver is away (down, or refusing with Unavailable), batches
//! survive an agent restart, and what a too-small buffer forces out is counted.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    common::v1::{KeyValue, any_value},
    metrics::v1::{AggregationTemporality, metric::Data, number_data_point},
};
use sonde_tests::{Agent, Exposition, free_port};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status, codec::CompressionEncoding, transport::Server};

// ---------------------------------------------------------------- the receiver

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Accept,
    Unavailable,
    /// A code retrying cannot fix.
    InvalidArgument,
    /// Accepted, but with 3 points refused (OTLP partial success).
    Partial,
}

#[derive(Default)]
struct Log {
    accepted: Vec<Received>,
    refused: usize,
}

struct Received {
    request: ExportMetricsServiceRequest,
    encoding: Option<String>,
}

#[derive(Clone)]
struct Service {
    log: Arc<Mutex<Log>>,
    mode: Arc<Mutex<Mode>>,
}

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mode = *self.mode.lock().unwrap();
        let mut log = self.log.lock().unwrap();
        match mode {
            Mode::Unavailable => {
                log.refused += 1;
                return Err(Status::unavailable("receiver is refusing on purpose"));
            }
            Mode::InvalidArgument => {
                log.refused += 1;
                return Err(Status::invalid_argument(
                    "receiver finds this batch malformed",
                ));
            }
            Mode::Accept | Mode::Partial => {}
        }
        let encoding = request
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        log.accepted.push(Received {
            request: request.into_inner(),
            encoding,
        });
        let mut response = ExportMetricsServiceResponse::default();
        if mode == Mode::Partial {
            response.partial_success = Some(ExportMetricsPartialSuccess {
                rejected_data_points: 3,
                error_message: "3 points refused".into(),
            });
        }
        Ok(Response::new(response))
    }
}

/// An OTLP/gRPC MetricsService on a fixed address that can be stopped and started
/// again (the agent sees connection refused in between) or told to refuse.
struct Receiver {
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    service: Service,
    running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Receiver {
    fn new() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let service = Service {
            log: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Accept)),
        };
        Receiver {
            addr,
            runtime,
            service,
            running: None,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn start(&mut self) {
        assert!(self.running.is_none());
        let listener = self.runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("rebinding {}: {e}; retrying", self.addr);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("binding {}: {e}", self.addr),
                }
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let svc = MetricsServiceServer::new(self.service.clone())
            .accept_compressed(CompressionEncoding::Gzip);
        let task = self.runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    /// Stops accepting connections and closes the open ones.
    fn stop(&mut self) {
        let (stop, task) = self.running.take().expect("receiver not running");
        let _ = stop.send(());
        self.runtime.block_on(async {
            // Graceful shutdown waits for the agent to leave; it normally does at once.
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                panic!("receiver did not stop within 5s");
            }
        });
    }

    fn set_mode(&self, mode: Mode) {
        *self.service.mode.lock().unwrap() = mode;
    }

    fn accepted(&self) -> usize {
        self.service.log.lock().unwrap().accepted.len()
    }

    fn refused(&self) -> usize {
        self.service.log.lock().unwrap().refused
    }

    /// Runs `f` over the accepted requests so far.
    fn with_accepted<T>(&self, f: impl FnOnce(&[Received]) -> T) -> T {
        f(&self.service.log.lock().unwrap().accepted)
    }

    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        agent: &Agent,
        pred: impl Fn(&Receiver) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "{what} not seen within {timeout:?}; agent log:\n{}",
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ------------------------------------------------- OTLP -> Prometheus samples

/// Series `name{sorted labels}` -> value, after the collector's mapping (contracts.md).
type Samples = BTreeMap<String, f64>;

fn key(name: &str, labels: impl IntoIterator<Item = (String, String)>) -> String {
    let mut labels: Vec<(String, String)> = labels
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "le" {
                v.parse::<f64>().map(|f| f.to_string()).unwrap_or(v)
            } else {
                v
            };
            (k, v)
        })
        .collect();
    labels.sort();
    let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", body.join(","))
}

fn attrs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(
            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => (kv.key.clone(), s.clone()),
                other => panic!("attribute {} is not a string: {other:?}", kv.key),
            },
        )
        .collect()
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => panic!("point without a value"),
    }
}

/// A pushed snapshot read back as Prometheus samples, checking the OTLP shape on the way.
struct Snapshot {
    samples: Samples,
    /// Prometheus type per metric name, as the collector would record it.
    types: BTreeMap<String, &'static str>,
    time: u64,
    start: u64,
    resource: Vec<(String, String)>,
}

fn snapshot(req: &ExportMetricsServiceRequest) -> Snapshot {
    assert_eq!(req.resource_metrics.len(), 1);
    let rm = &req.resource_metrics[0];
    let resource = attrs(&rm.resource.as_ref().expect("no resource").attributes);
    let (mut samples, mut types, mut times, mut starts) = (
        Samples::new(),
        BTreeMap::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
        match m.data.as_ref().expect("metric without data") {
            Data::Sum(s) => {
                assert!(s.is_monotonic && m.name.ends_with("_total"), "{}", m.name);
                assert_eq!(
                    s.aggregation_temporality,
                    AggregationTemporality::Cumulative as i32,
                    "{}",
                    m.name
                );
                types.insert(m.name.clone(), "counter");
                for p in &s.data_points {
                    times.insert(p.time_unix_nano);
                    starts.insert(p.start_time_unix_nano);
                    samples.insert(key(&m.name, attrs(&p.attributes)), number(&p.value));
                }
            }
            Data::Gauge(g) => {
                types.insert(m.name.clone(), "gauge");
                for p in &g.data_points {
                    times.insert(p.time_unix_nano);
                    samples.insert(key(&m.name, attrs(&p.attributes)), number(&p.value));
                }
            }
            Data::Histogram(h) => {
                assert_eq!(
                    h.aggregation_temporality,
                    AggregationTemporality::Cumulative as i32,
                    "{}",
                    m.name
                );
                types.insert(m.name.clone(), "histogram");
                for p in &h.data_points {
                    times.insert(p.time_unix_nano);
                    starts.insert(p.start_time_unix_nano);
                    assert_eq!(
                        p.bucket_counts.len(),
                        p.explicit_bounds.len() + 1,
                        "{}",
                        m.name
                    );
                    assert_eq!(
                        p.bucket_counts.iter().sum::<u64>(),
                        p.count,
                        "{}: per-bucket counts",
                        m.name
                    );
                    let labels = attrs(&p.attributes);
                    let mut cumulative = 0;
                    for (bound, n) in p
                        .explicit_bounds
                        .iter()
                        .copied()
                        .chain([f64::INFINITY])
                        .zip(&p.bucket_counts)
                    {
                        cumulative += n;
                        let mut l = labels.clone();
                        l.push(("le".into(), bound.to_string()));
                        samples.insert(key(&format!("{}_bucket", m.name), l), cumulative as f64);
                    }
                    samples.insert(
                        key(&format!("{}_sum", m.name), labels.clone()),
                        p.sum.expect("histogram sum"),
                    );
                    samples.insert(key(&format!("{}_count", m.name), labels), p.count as f64);
                }
            }
            other => panic!("{}: unexpected {other:?}", m.name),
        }
    }
    assert_eq!(times.len(), 1, "one snapshot time per batch: {times:?}");
    assert_eq!(
        starts.len(),
        1,
        "one start time for cumulative points: {starts:?}"
    );
    let (time, start) = (times.pop_first().unwrap(), starts.pop_first().unwrap());
    assert!(start > 0 && start <= time, "start {start} time {time}");
    Snapshot {
        samples,
        types,
        time,
        start,
        resource,
    }
}

fn text_samples(e: &Exposition) -> Samples {
    e.samples
        .iter()
        .map(|s| (key(&s.name, s.labels.clone()), s.value))
        .collect()
}

/// `sonde_export_snapshots_total` as the snapshot carried it: its own sequence number.
fn seq(s: &Snapshot) -> u64 {
    s.samples[&key("sonde_export_snapshots_total", [])] as u64
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn start_agent(receiver: &Receiver, buffer: &Path, extra: &[&str]) -> Agent {
    let url = receiver.url();
    let mut args = vec![
        "--probes",
        "none",
        "--collector",
        &url,
        "--buffer-dir",
        buffer.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Agent::start(&args)
}

fn metric(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.value(name, labels).unwrap_or(0.0)
}

// ---------------------------------------------------------------------- tests

#[test]
fn pushed_snapshots_match_metrics_endpoint() {
    let mut receiver = Receiver::new();
    receiver.start();
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&receiver, dir.path(), &["--export-interval", "300ms"]);
    // A few sends first, so the request-duration histogram has counts to compare.
    receiver.wait_for("3 pushed batches", Duration::from_secs(30), &agent, |r| {
        r.accepted() >= 3
    });

    // Bracket one pushed snapshot between two scrapes: counters may only grow.
    let before = agent.scrape();
    let after_before = unix_nanos();
    let n = receiver.accepted();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pushed = loop {
        let found = receiver.with_accepted(|all| {
            all[n..]
                .iter()
                .map(|r| snapshot(&r.request))
                .find(|s| s.time > after_before)
        });
        if let Some(s) = found {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot after the first scrape:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let after = agent.scrape();
    let (a, b) = (text_samples(&before), text_samples(&after));

    receiver.with_accepted(|all| {
        for r in all {
            assert_eq!(
                r.encoding.as_deref(),
                Some("gzip"),
                "requests are gzip-compressed"
            );
        }
    });
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    for (k, v) in [
        ("service.name", "sonde-agent"),
        ("service.instance.id", hostname.as_str()),
        ("k8s.node.name", hostname.as_str()),
    ] {
        assert!(
            pushed.resource.contains(&(k.into(), v.into())),
            "resource lacks {k}={v}: {:?}",
            pushed.resource
        );
    }

    // Same series: every node_* series seen in both scrapes was pushed, and nothing
    // was pushed that neither scrape had.
    let node = |s: &Samples| -> BTreeSet<String> {
        s.keys()
            .filter(|k| k.starts_with("node_"))
            .cloned()
            .collect()
    };
    let stable: BTreeSet<_> = node(&a).intersection(&node(&b)).cloned().collect();
    let pushed_node = node(&pushed.samples);
    assert!(
        stable.len() > 50,
        "too few node_* series to compare: {}",
        stable.len()
    );
    let missing: Vec<_> = stable.difference(&pushed_node).collect();
    assert!(missing.is_empty(), "served but not pushed: {missing:?}");
    let extra: Vec<_> = pushed_node
        .iter()
        .filter(|k| !a.contains_key(*k) && !b.contains_key(*k))
        .collect();
    assert!(extra.is_empty(), "pushed but never served: {extra:?}");

    // Same types and values: counters (and histogram buckets) between the scrapes,
    // values that do not change equal.
    let mut compared = 0;
    for k in &stable {
        let family = k.split('{').next().unwrap();
        let pv = pushed.samples[k];
        match before.types.get(family).map(String::as_str) {
            Some("counter") => {
                assert_eq!(pushed.types.get(family), Some(&"counter"), "{family}");
                assert!(
                    a[k] <= pv && pv <= b[k],
                    "{k}: {} <= {pv} <= {} does not hold",
                    a[k],
                    b[k]
                );
                compared += 1;
            }
            Some("gauge")
                if a[k] == b[k]
                    && (family.ends_with("_info")
                        || family.starts_with("node_memory_MemTotal")
                        || family == "node_boot_time_seconds") =>
            {
                assert_eq!(pv, a[k], "{k}");
                compared += 1;
            }
            _ => {}
        }
    }
    assert!(compared > 20, "compared only {compared} values");
    assert!(
        stable
            .iter()
            .any(|k| k.starts_with("node_cpu_seconds_total{"))
    );
    let uname = before
        .samples
        .iter()
        .find(|s| s.name == "node_uname_info")
        .expect("node_uname_info served");
    assert_eq!(
        pushed
            .samples
            .get(&key("node_uname_info", uname.labels.clone())),
        Some(&1.0)
    );

    // A histogram: buckets, sum and count, cumulative after the mapping.
    let hist = "sonde_export_request_duration_seconds";
    assert_eq!(pushed.types.get(hist), Some(&"histogram"));
    let buckets: Vec<_> = pushed
        .samples
        .keys()
        .filter(|k| k.starts_with(&format!("{hist}_bucket{{")))
        .collect();
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(pushed.samples[&key(&format!("{hist}_count"), [])] >= 2.0);
    for k in buckets.iter().copied().chain([
        &key(&format!("{hist}_count"), []),
        &key(&format!("{hist}_sum"), []),
    ]) {
        let (lo, hi) = (a.get(k).copied().unwrap_or(0.0), b[k]);
        assert!(
            lo <= pushed.samples[k] && pushed.samples[k] <= hi,
            "{k}: {lo} <= {} <= {hi}",
            pushed.samples[k]
        );
    }
    assert!(pushed.time > after_before && pushed.time < unix_nanos());
}

#[test]
fn buffers_while_the_collector_is_away_then_drains_in_order() {
    let mut receiver = Receiver::new();
    receiver.start();
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&receiver, dir.path(), &["--export-interval", "200ms"]);
    receiver.wait_for("2 pushed batches", Duration::from_secs(30), &agent, |r| {
        r.accepted() >= 2
    });

    // Down: connection refused.
    receiver.stop();
    agent.scrape_until("batches buffered while the receiver is down", |e| {
        metric(e, "sonde_export_buffered_batches", &[]) >= 4.0
            && metric(e, "sonde_export_buffered_bytes", &[]) > 0.0
    });
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() >= 4,
        "batches are files in --buffer-dir"
    );

    // Up but refusing with Unavailable: retried, not dropped.
    receiver.set_mode(Mode::Unavailable);
    receiver.start();
    receiver.wait_for("refused retries", Duration::from_secs(30), &agent, |r| {
        r.refused() >= 2
    });
    let e = agent.scrape_until("failed requests counted", |e| {
        metric(
            e,
            "sonde_export_failed_requests_total",
            &[("code", "Unavailable")],
        ) >= 2.0
    });
    let buffered = metric(&e, "sonde_export_buffered_batches", &[]);
    assert!(buffered >= 4.0, "{buffered}");

    // Back: everything buffered arrives, oldest first.
    let accepted_before = receiver.accepted();
    receiver.set_mode(Mode::Accept);
    receiver.wait_for(
        "the buffered batches",
        Duration::from_secs(60),
        &agent,
        |r| r.accepted() >= accepted_before + buffered as usize + 2,
    );
    agent.scrape_until("the buffer drained", |e| {
        metric(e, "sonde_export_buffered_batches", &[]) <= 1.0
    });

    // Each snapshot carries how many came before it: consecutive, in order. A batch
    // whose answer was lost in the shutdown may come twice (at least once delivery).
    let seqs: Vec<(u64, u64)> = receiver.with_accepted(|all| {
        all.iter()
            .map(|r| snapshot(&r.request))
            .map(|s| (seq(&s), s.time))
            .collect()
    });
    let mut deduped = seqs.clone();
    deduped.dedup();
    for w in deduped.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0 + 1,
            "lost or reordered batches: {:?}",
            seqs.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        assert!(w[1].1 > w[0].1, "snapshot times go forward");
    }
    let e = agent.scrape();
    for reason in ["buffer_full", "rejected", "corrupt", "write_error"] {
        assert_eq!(
            metric(
                &e,
                "sonde_export_dropped_batches_total",
                &[("reason", reason)]
            ),
            0.0,
            "{reason}"
        );
    }
    assert!(metric(&e, "sonde_export_sent_batches_total", &[]) >= deduped.len() as f64 - 1.0);
}

#[test]
fn buffered_batches_survive_an_agent_restart() {
    let mut receiver = Receiver::new();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listening: the first agent only buffers.
    let first = start_agent(&receiver, dir.path(), &["--export-interval", "200ms"]);
    let e = first.scrape_until("3 buffered batches", |e| {
        metric(e, "sonde_export_buffered_batches", &[]) >= 3.0
    });
    let buffered = metric(&e, "sonde_export_buffered_batches", &[]) as usize;
    drop(first);

    receiver.start();
    let second = start_agent(&receiver, dir.path(), &["--export-interval", "200ms"]);
    receiver.wait_for(
        "old and new batches",
        Duration::from_secs(30),
        &second,
        |r| r.accepted() >= buffered + 2,
    );
    let snaps: Vec<(u64, u64)> = receiver.with_accepted(|all| {
        all.iter()
            .map(|r| snapshot(&r.request))
            .map(|s| (s.start, seq(&s)))
            .collect()
    });
    let first_start = snaps[0].0;
    let old: Vec<u64> = snaps
        .iter()
        .take_while(|s| s.0 == first_start)
        .map(|s| s.1)
        .collect();
    assert!(
        old.len() >= buffered,
        "only {} of {buffered} buffered batches came back: {snaps:?}",
        old.len()
    );
    assert_eq!(
        old,
        (0..old.len() as u64).collect::<Vec<_>>(),
        "the first run's batches, in order"
    );
    assert!(
        snaps[old.len()..].iter().all(|s| s.0 > first_start),
        "new batches only after the old: {snaps:?}"
    );
}

#[test]
fn refusals_retrying_cannot_fix_are_dropped_counted_and_logged() {
    let mut receiver = Receiver::new();
    receiver.set_mode(Mode::InvalidArgument);
    receiver.start();
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&receiver, dir.path(), &["--export-interval", "200ms"]);
    let e = agent.scrape_until("rejected batches", |e| {
        metric(
            e,
            "sonde_export_dropped_batches_total",
            &[("reason", "rejected")],
        ) >= 2.0
    });
    assert!(
        metric(
            &e,
            "sonde_export_dropped_points_total",
            &[("reason", "rejected")]
        ) > 100.0
    );
    assert!(
        metric(
            &e,
            "sonde_export_failed_requests_total",
            &[("code", "InvalidArgument")]
        ) >= 2.0
    );
    agent.wait_for_log(Duration::from_secs(5), |l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused a batch for good"))
    });
    // Not retried: one refusal per batch (one more may be on its way), and the queue moves on.
    let refused = receiver.refused() as f64;
    let dropped = metric(
        &agent.scrape(),
        "sonde_export_dropped_batches_total",
        &[("reason", "rejected")],
    );
    assert!(
        refused <= dropped + 1.0,
        "{refused} refusals for {dropped} dropped batches"
    );

    // Partial success: the batch is delivered, its refused points counted.
    receiver.set_mode(Mode::Partial);
    receiver.wait_for(
        "batches after the refusals",
        Duration::from_secs(30),
        &agent,
        |r| r.accepted() >= 2,
    );
    agent.scrape_until("partially rejected points", |e| {
        metric(
            e,
            "sonde_export_dropped_points_total",
            &[("reason", "partially_rejected")],
        ) >= 6.0
            && metric(e, "sonde_export_sent_batches_total", &[]) >= 2.0
    });
}

#[test]
fn a_full_buffer_drops_the_oldest_and_counts_it() {
    let receiver = Receiver::new(); // never started: the collector stays away
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(
        &receiver,
        dir.path(),
        &["--export-interval", "200ms", "--buffer-max-bytes", "1KiB"],
    );
    let e = agent.scrape_until("dropped batches", |e| {
        metric(
            e,
            "sonde_export_dropped_batches_total",
            &[("reason", "buffer_full")],
        ) >= 3.0
    });
    assert!(
        metric(
            &e,
            "sonde_export_dropped_points_total",
            &[("reason", "buffer_full")]
        ) > 100.0
    );
    // Only the batch the sender holds may stay over the bound.
    assert!(metric(&e, "sonde_export_buffered_batches", &[]) <= 1.0);
    // (The span queue's `traces/` directory sits beside the batches.)
    let batches = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".batch"))
        .count();
    assert!(batches <= 2, "{batches} batch files");
    agent.wait_for_log(Duration::from_secs(5), |l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("export buffer full"))
            && l["fields"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(".batch"))
    });
}

#[test]
fn bad_export_flags_are_refused_naming_the_flag() {
    for (args, flag) in [
        (&["--collector", "collector:4317"][..], "--collector"),
        (&["--buffer-max-bytes", "lots"][..], "--buffer-max-bytes"),
        (&["--export-interval", "0s"][..], "--export-interval"),
    ] {
        let out = std::process::Command::new(sonde_tests::agent_binary())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let out = std::process::Command::new(sonde_tests::agent_binary())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--collector",
        "--export-interval",
        "--buffer-dir",
        "--buffer-max-bytes",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // A buffer directory that cannot be used stops the agent at startup, named.
    let port = free_port().to_string();
    let out = std::process::Command::new(sonde_tests::agent_binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--probes", "none"])
        .args([
            "--collector",
            "http://127.0.0.1:1",
            "--collector-insecure",
            "--buffer-dir",
            "/proc/version/buffer",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--buffer-dir") && err.contains("/proc/version/buffer"),
        "{err}"
    );
}
