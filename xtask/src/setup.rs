//! `cargo xtask setup`: everything a fresh machine of our kind lacks, installed
//! idempotently. Each item is checked first and skipped when present.

use std::process::Command;

use anyhow::{Result, bail};

use crate::step::{self, say, succeeds};

/// Debian packages: the eBPF toolchain's LLVM, and the real peers the tests run.
const PACKAGES: &[(&str, &str)] = &[
    (
        "protobuf-compiler",
        "protoc, which prometheus-client's protobuf encoder (the agent's OTLP export) builds with",
    ),
    (
        "libprotobuf-dev",
        "google/protobuf/*.proto, which prometheus-client's metrics.proto imports",
    ),
    ("llvm-22-dev", "LLVM 22, for bpf-linker"),
    (
        "libpolly-22-dev",
        "LLVM 22's Polly, which bpf-linker links against",
    ),
    ("libzstd-dev", "zstd, for bpf-linker"),
    ("zlib1g-dev", "zlib, for bpf-linker"),
    (
        "prometheus-node-exporter",
        "the real node_exporter, for parity tests and benchmarks",
    ),
    (
        "prometheus",
        "the real Prometheus 2.42 and promtool: /metrics checks, PromQL differential tests, benchmarks",
    ),
    (
        "victoria-metrics",
        "the real VictoriaMetrics, the collector's other storage peer in benchmarks",
    ),
    (
        "prometheus-alertmanager",
        "the real Alertmanager, which the collector's alerts are sent to",
    ),
    ("iproute2", "network namespaces for the TCP probe tests"),
    (
        "kubectl",
        "`kubectl kustomize` (kustomize v5), which builds deploy/ in the manifest tests",
    ),
    (
        "python3-venv",
        "the venv the tests' OpenTelemetry SDK is installed into",
    ),
    ("util-linux", "losetup, for the block I/O probe tests"),
    (
        "bpftrace",
        "the reference per-cgroup run-queue histogram in benchmarks",
    ),
    (
        "rsyslog",
        "a real file-tailing log shipper (imfile -> TCP), the log path's peer in benchmarks",
    ),
];

/// PyPI packages the tests drive the collector with, installed into a venv at
/// [`PY_VENV`] (Debian's Python refuses system-wide pip installs): the real
/// OpenTelemetry SDK and its OTLP trace exporters (gRPC and HTTP); and
/// kubernetes-validate (with PyYAML), which `tests/tests/deploy_manifests.rs` checks
/// deploy/'s manifests with.
const PYPI: &[&str] = &[
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
    "kubernetes-validate",
];
/// Relative to the workspace root; `collector/tests/traces_api.rs` looks here.
pub const PY_VENV: &str = "target/sonde-py";

pub fn run() -> Result<()> {
    install_packages()?;
    install_pypi()?;
    if !Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("rust-src"))
        })
    {
        say("installing rustup component rust-src (to build core for bpfel-unknown-none)");
        step::run({
            let mut c = Command::new("rustup");
            c.args(["component", "add", "rust-src"]);
            c
        })?;
    } else {
        say("rust-src: present");
    }
    if succeeds("bpf-linker", &["--version"]) {
        say("bpf-linker: present");
    } else {
        say("installing bpf-linker against Debian's LLVM 22 (takes a minute or two)");
        let prefix = Command::new("llvm-config-22").arg("--prefix").output()?;
        let prefix = String::from_utf8_lossy(&prefix.stdout).trim().to_string();
        let mut c = Command::new("cargo");
        c.args([
            "install",
            "bpf-linker",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", prefix);
        step::run(c)?;
    }
    Ok(())
}

/// The venv and its packages; skipped when every package already imports.
fn install_pypi() -> Result<()> {
    let venv = step::workspace_root().join(PY_VENV);
    let python = venv.join("bin/python3");
    let check = "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, \
                 opentelemetry.exporter.otlp.proto.http.trace_exporter, kubernetes_validate, yaml";
    if Command::new(&python)
        .args(["-c", check])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        say(&format!("PyPI packages in {PY_VENV}: present"));
        return Ok(());
    }
    if !python.exists() {
        say(&format!("creating the Python venv {PY_VENV}"));
        let mut c = Command::new("python3");
        c.args(["-m", "venv"]).arg(&venv);
        step::run(c)?;
    }
    say(&format!("pip install {} (into {PY_VENV})", PYPI.join(" ")));
    let mut c = Command::new(venv.join("bin/pip"));
    c.args(["install", "-q"]).args(PYPI);
    step::run(c)
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn install_packages() -> Result<()> {
    let (present, missing): (Vec<_>, Vec<_>) = PACKAGES.iter().partition(|(p, _)| installed(p));
    for (p, _) in &present {
        say(&format!("{p}: present"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    if unsafe { libc::geteuid() } != 0 {
        let names: Vec<_> = missing.iter().map(|(p, _)| *p).collect();
        bail!("missing Debian packages {names:?}; run `cargo xtask setup` as root to install them");
    }
    for (p, why) in &missing {
        say(&format!("will install {p}: {why}"));
    }
    say("apt-get update");
    step::run({
        let mut c = Command::new("apt-get");
        c.args(["update", "-q"]);
        c
    })?;
    let mut c = Command::new("apt-get");
    c.args(["install", "-y", "-q", "--no-install-recommends"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    c.args(missing.iter().map(|(p, _)| *p));
    say("apt-get install");
    step::run(c)?;
    // Debian starts these as services on install; the tests and benchmarks start their own.
    let _ = Command::new("systemctl")
        .args([
            "disable",
            "--now",
            "prometheus-node-exporter",
            "prometheus",
            "victoria-metrics",
            "prometheus-alertmanager",
        ])
        .status();
    Ok(())
}
