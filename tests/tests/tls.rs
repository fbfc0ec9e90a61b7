//! Agent -> collector over TLS, with real certificates made in the test (rcgen):
//!
//! - the collector serves TLS with a bearer token for ingest, another for its HTTP API, and
//!   mutual TLS on the ingest ports; an agent with the right CA, client certificate and token
//!   delivers metrics, read back through the API over TLS with the API token;
//! - the API answers 401 (saying what is wanted) without the token or with a wrong one, 200
//!   with it; `/-/ready` and `/-/healthy` stay open;
//! - an agent with a wrong token is refused with UNAUTHENTICATED: the collector counts it,
//!   the agent's log says why, and its batches stay in its disk buffer (nothing dropped);
//! - an agent that does not trust the collector's CA says the certificate is not trusted;
//!   one whose client certificate the collector does not trust is refused at the handshake;
//!   both are counted by the collector;
//! - plaintext only by name: an agent given an http:// collector without
//!   `--collector-insecure` refuses to start with one line naming the flag.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use sonde_tests::{
    Agent, agent_binary,
    collector::{Collector, collector_binary},
    tls::{Ca, https_get, write},
};

const INGEST_TOKEN: &str = "ingest-0123456789";
const API_TOKEN: &str = "api-abcdef";

/// A collector serving TLS (server certificate from `ca`), both tokens, and client
/// certificates from `ca` required on the ingest ports.
fn tls_collector(dir: &Path, ca: &Ca) -> Collector {
    let server = ca.server();
    let cert = write(dir, "server.crt", &server.cert_pem);
    let key = write(dir, "server.key", &server.key_pem);
    let ca_file = write(dir, "ca.crt", &ca.cert_pem);
    let ingest = write(dir, "ingest.token", &format!("{INGEST_TOKEN}\n"));
    let api = write(dir, "api.token", &format!("{API_TOKEN}\n"));
    Collector::start_tls(
        &dir.join("collector"),
        &[
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-client-ca-file",
            &ca_file,
            "--auth-token-file",
            &ingest,
            "--api-token-file",
            &api,
        ],
        &ca.cert_pem,
    )
}

/// What an agent shows the collector: the CA it trusts, its client certificate and key, its token
/// (all file paths).
struct Creds<'a> {
    ca: &'a str,
    cert: &'a str,
    key: &'a str,
    token: &'a str,
}

/// An agent pushing to `collector` every second with `creds`, nothing but host metrics.
fn agent(collector: &Collector, buffer: &Path, creds: Creds) -> Agent {
    let tls = [
        "--collector-ca-file",
        creds.ca,
        "--collector-cert-file",
        creds.cert,
        "--collector-key-file",
        creds.key,
        "--collector-token-file",
        creds.token,
    ];
    let mut args = vec![
        "--collector".to_string(),
        collector.grpc_url(),
        "--export-interval".into(),
        "1s".into(),
        "--buffer-dir".into(),
        buffer.display().to_string(),
        "--probes".into(),
        "none".into(),
        "--logs".into(),
        "off".into(),
        "--spans".into(),
        "off".into(),
    ];
    args.extend(tls.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Agent::start(&args)
}

/// Client certificate files signed by `ca`, as agent flags' values: (cert, key).
fn client_files(dir: &Path, ca: &Ca, name: &str) -> (String, String) {
    let leaf = ca.client(name);
    (
        write(dir, &format!("{name}.crt"), &leaf.cert_pem),
        write(dir, &format!("{name}.key"), &leaf.key_pem),
    )
}

/// `GET https://...{path}` with the API token; panics unless 200.
fn api_get(c: &Collector, ca: &Ca, path: &str) -> String {
    let (code, body) = https_get(c.http_addr(), path, &ca.cert_pem, Some(API_TOKEN))
        .unwrap_or_else(|e| panic!("GET {path}: {e}\ncollector log:\n{}", c.log_text()));
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

/// The value of the sample line that starts with `series` (name and labels exactly as the
/// collector writes them) in its /metrics, 0 if absent.
fn collector_metric(c: &Collector, ca: &Ca, series: &str) -> f64 {
    api_get(c, ca, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn wait_until(what: &str, timeout: Duration, logs: &dyn Fn() -> String, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent's log line (JSON) at `level` whose message contains every one of `words`.
fn log_line(agent: &Agent, level: &str, words: &[&str]) -> Option<serde_json::Value> {
    agent.log_json().into_iter().find(|l| {
        l["level"] == level
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| words.iter().all(|w| m.contains(w)))
    })
}

fn both_logs(agent: &Agent, collector: &Collector) -> String {
    format!(
        "agent log:\n{}\ncollector log:\n{}",
        agent.log_text(),
        collector.log_text()
    )
}

#[test]
fn agent_with_ca_client_certificate_and_token_delivers_and_the_api_wants_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Sonde test CA");
    let collector = tls_collector(dir.path(), &ca);
    let (cert, key) = client_files(dir.path(), &ca, "agent");
    let ca_file = write(dir.path(), "agent-ca.crt", &ca.cert_pem);
    let token = write(dir.path(), "agent.token", INGEST_TOKEN);
    let agent = agent(
        &collector,
        &dir.path().join("buffer"),
        Creds {
            ca: &ca_file,
            cert: &cert,
            key: &key,
            token: &token,
        },
    );
    let logs = || both_logs(&agent, &collector);
    wait_until(
        "node_load1 from the agent, queried over TLS",
        Duration::from_secs(60),
        &logs,
        || {
            let body = api_get(&collector, &ca, "/api/v1/query?query=node_load1");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        },
    );
    let e = agent.scrape();
    assert_eq!(
        e.value(
            "sonde_export_dropped_batches_total",
            &[("reason", "rejected")]
        )
        .unwrap_or(0.0),
        0.0
    );

    // The HTTP API: 401 without the token or with a wrong one, saying what it wants.
    let http = collector.http_addr();
    let get = |path: &str, token: Option<&str>| {
        https_get(http, path, &ca.cert_pem, token).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    };
    let (code, body) = get("/api/v1/query?query=up", None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let (code, body) = get("/api/v1/query?query=up", Some("guess"));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("--api-token-file"), "{body}");
    assert_eq!(get("/api/v1/query?query=up", Some(API_TOKEN)).0, 200);
    assert_eq!(get("/metrics", None).0, 401);
    assert_eq!(get("/api/v1/labels", None).0, 401);
    // Probes stay open.
    assert_eq!(get("/-/ready", None).0, 200);
    assert_eq!(get("/-/healthy", None).0, 200);
    // Writes on the API port want the ingest token, not the API token.
    assert_eq!(get("/api/v1/query?query=up", Some(INGEST_TOKEN)).0, 401);
    assert!(
        collector_metric(
            &collector,
            &ca,
            "sonde_collector_auth_failures_total{listener=\"http\",reason=\"wrong\"}"
        ) >= 2.0
    );
    // Plain HTTP to a TLS port gets nowhere.
    assert!(sonde_tests::http_get(http, "/-/ready", None).map_or(true, |(code, _)| code != 200));
}

#[test]
fn wrong_token_is_refused_counted_and_the_batches_stay_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Sonde test CA");
    let collector = tls_collector(dir.path(), &ca);
    let (cert, key) = client_files(dir.path(), &ca, "agent");
    let ca_file = write(dir.path(), "agent-ca.crt", &ca.cert_pem);
    let wrong = write(dir.path(), "wrong.token", "not-the-token\n");
    let agent = agent(
        &collector,
        &dir.path().join("buffer"),
        Creds {
            ca: &ca_file,
            cert: &cert,
            key: &key,
            token: &wrong,
        },
    );
    let logs = || both_logs(&agent, &collector);
    // The agent says why, once, as an error.
    wait_until(
        "the agent's log of the refusal",
        Duration::from_secs(30),
        &logs,
        || {
            log_line(
                &agent,
                "ERROR",
                &["unauthenticated", "--collector-token-file"],
            )
            .is_some()
        },
    );
    let line = log_line(&agent, "ERROR", &["unauthenticated"]).unwrap();
    assert_eq!(line["fields"]["code"], "Unauthenticated", "{line}");
    // The collector counts it.
    assert!(
        collector_metric(
            &collector,
            &ca,
            "sonde_collector_auth_failures_total{listener=\"grpc\",reason=\"wrong\"}"
        ) >= 1.0,
        "{}",
        logs()
    );
    // Nothing dropped: the snapshots pile up in the disk buffer.
    wait_until(
        "batches kept in the buffer",
        Duration::from_secs(30),
        &logs,
        || {
            agent
                .scrape()
                .value("sonde_export_buffered_batches", &[])
                .is_some_and(|n| n >= 2.0)
        },
    );
    let e = agent.scrape();
    for reason in ["rejected", "partially_rejected"] {
        assert_eq!(
            e.value("sonde_export_dropped_batches_total", &[("reason", reason)])
                .unwrap_or(0.0),
            0.0,
            "{reason}"
        );
    }
    assert_eq!(
        e.value("sonde_export_sent_batches_total", &[])
            .unwrap_or(0.0),
        0.0
    );
    // And nothing got in.
    let body = api_get(&collector, &ca, "/api/v1/query?query=node_load1");
    assert!(body.contains("\"result\":[]"), "{body}");
}

#[test]
fn untrusted_certificates_are_refused_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Sonde test CA");
    let other = Ca::new("Someone else's CA");
    let collector = tls_collector(dir.path(), &ca);
    let token = write(dir.path(), "agent.token", INGEST_TOKEN);
    let (cert, key) = client_files(dir.path(), &ca, "agent");

    // An agent that trusts another CA than the one of the collector's certificate.
    let other_ca = write(dir.path(), "other-ca.crt", &other.cert_pem);
    let a = agent(
        &collector,
        &dir.path().join("buffer-a"),
        Creds {
            ca: &other_ca,
            cert: &cert,
            key: &key,
            token: &token,
        },
    );
    let logs = || both_logs(&a, &collector);
    wait_until(
        "the agent's log of the untrusted certificate",
        Duration::from_secs(30),
        &logs,
        || log_line(&a, "WARN", &["not trusted", "--collector-ca-file"]).is_some(),
    );
    assert!(
        log_line(&a, "WARN", &["UnknownIssuer"]).is_some(),
        "the log names rustls's reason:\n{}",
        a.log_text()
    );

    // An agent whose client certificate the collector does not trust.
    let ca_file = write(dir.path(), "agent-ca.crt", &ca.cert_pem);
    let (bad_cert, bad_key) = client_files(dir.path(), &other, "impostor");
    let b = agent(
        &collector,
        &dir.path().join("buffer-b"),
        Creds {
            ca: &ca_file,
            cert: &bad_cert,
            key: &bad_key,
            token: &token,
        },
    );
    let logs = || both_logs(&b, &collector);
    wait_until(
        "the agent's log of the refused handshake",
        Duration::from_secs(30),
        &logs,
        || {
            log_line(
                &b,
                "WARN",
                &["export to the collector failed", "--collector-cert-file"],
            )
            .is_some()
        },
    );
    let failures = |reason: &str| {
        collector_metric(
            &collector,
            &ca,
            &format!(
                "sonde_collector_tls_handshake_failures_total{{listener=\"grpc\",reason=\"{reason}\"}}"
            ),
        )
    };
    wait_until(
        "the collector's counts of both",
        Duration::from_secs(30),
        &logs,
        || failures("client_alert") >= 1.0 && failures("bad_client_certificate") >= 1.0,
    );
    // Neither delivered anything; both keep their batches.
    for agent in [&a, &b] {
        let e = agent.scrape();
        assert_eq!(
            e.value("sonde_export_sent_batches_total", &[])
                .unwrap_or(0.0),
            0.0
        );
    }
}

#[test]
fn plaintext_only_when_asked_for_by_name() {
    let port = sonde_tests::free_port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
    let out = std::process::Command::new(agent_binary())
        .args(["--listen", &listen, "--probes", "none"])
        .args(["--collector", "http://127.0.0.1:4317"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--collector-insecure") && err.contains("http://127.0.0.1:4317"),
        "{err}"
    );
    // A TLS file that cannot be read is named, as one line.
    let out = std::process::Command::new(agent_binary())
        .args(["--listen", &listen, "--probes", "none"])
        .args(["--collector", "https://127.0.0.1:4317"])
        .args(["--collector-ca-file", "/nonexistent/ca.crt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim_end().lines().count() == 1
            && err.contains("--collector-ca-file /nonexistent/ca.crt"),
        "{err}"
    );
    // The collector: half a key pair is a configuration error, named.
    let out = std::process::Command::new(collector_binary())
        .args(["--tls-cert-file", "/nonexistent/c.crt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-cert-file needs --tls-key-file"),
        "{err}"
    );
}
