//! Building the kernel programs, and running the collector with the agent exporting to it.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context, Result, bail};

use crate::{
    bench_agent::{
        guard::{self, Running},
        http,
    },
    step::{self, say, succeeds},
};

/// Where the eBPF object lands; `agent/build.rs` embeds it from here.
pub const EBPF_OBJECT: &str = "target/bpfel-unknown-none/release/sonde-probes";

/// Compiles `agent-ebpf`. Stable rustc builds `core` for the BPF target only with
/// RUSTC_BOOTSTRAP (as aya's own templates do); BTF comes from debuginfo + `--btf`.
pub fn ebpf() -> Result<()> {
    if !succeeds("bpf-linker", &["--version"]) {
        anyhow::bail!("bpf-linker is not installed; run `cargo xtask setup`");
    }
    say("compiling the eBPF programs (agent-ebpf -> bpfel-unknown-none)");
    let mut cmd = step::cargo_cmd(&[
        "build",
        "-p",
        "sonde-agent-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--release",
    ]);
    cmd.env("RUSTC_BOOTSTRAP", "1").env(
        "CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS",
        "-C debuginfo=2 -C link-arg=--btf",
    );
    step::run(cmd)?;
    say(&format!("eBPF object: {EBPF_OBJECT}"));
    Ok(())
}

/// Root with kernel BTF: what loading the probes needs here.
pub fn can_load_bpf() -> bool {
    (unsafe { libc::geteuid() } == 0) && Path::new("/sys/kernel/btf/vmlinux").exists()
}

/// Where `cargo xtask run` keeps the collector's data and the agent's disk buffer, so a
/// second run finds the first one's data.
const RUN_DIR: &str = "target/sonde-run";
const COLLECTOR_HTTP: &str = "127.0.0.1:9090";
const COLLECTOR_GRPC: &str = "127.0.0.1:4317";
const COLLECTOR_OTLP_HTTP: &str = "127.0.0.1:4318";
/// The agent's span receiver: OTLP's ports are the collector's on this one machine.
const AGENT_OTLP_GRPC: &str = "127.0.0.1:14317";
const AGENT_OTLP_HTTP: &str = "127.0.0.1:14318";

/// Builds both programs (release) and runs the collector and, exporting to it, the agent,
/// until Ctrl-C or until either exits. `args` go to the agent.
pub fn run(args: &[String]) -> Result<()> {
    // The agent's build needs protoc, and its probes need bpf-linker: install what is
    // missing first (quick when everything is present).
    crate::setup::run()?;
    if succeeds("bpf-linker", &["--version"]) {
        ebpf()?;
    } else {
        say(
            "bpf-linker is missing (`cargo xtask setup` installs it): the agent runs without probes",
        );
    }
    say("building sonde-collector and sonde-agent (release)");
    step::cargo(&[
        "build",
        "--release",
        "-p",
        "sonde-collector",
        "-p",
        "sonde-agent",
    ])?;
    if !can_load_bpf() {
        say(
            "not root (or no kernel BTF): the agent serves host metrics; probes stay off and /metrics says why",
        );
    }
    let root = step::workspace_root();
    let (data, buffer) = (
        root.join(RUN_DIR).join("collector-data"),
        root.join(RUN_DIR).join("agent-buffer"),
    );
    for dir in [&data, &buffer] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    guard::stop_on_interrupt();

    say(&format!(
        "starting sonde-collector; its data: {}",
        data.display()
    ));
    let mut cmd = Command::new(step::target_dir().join("release/sonde-collector"));
    cmd.arg("--data-dir").arg(&data).args([
        "--http-listen",
        COLLECTOR_HTTP,
        "--grpc-listen",
        COLLECTOR_GRPC,
    ]);
    cmd.args(["--otlp-http-listen", COLLECTOR_OTLP_HTTP]);
    let mut collector = Running::spawn("sonde-collector", cmd)?;
    let port: u16 = COLLECTOR_HTTP
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("collector port")?;
    guard::wait_until(
        "sonde-collector's /-/ready",
        Duration::from_secs(300),
        || {
            if collector.exited()? {
                bail!(
                    "sonde-collector exited (its log is above; is {COLLECTOR_HTTP} or {COLLECTOR_GRPC} taken?)"
                );
            }
            Ok(http::get(port, "/-/ready").is_ok_and(|r| r.status == 200))
        },
    )?;

    say(&format!(
        "starting sonde-agent, exporting to http://{COLLECTOR_GRPC}; its buffer: {}",
        buffer.display()
    ));
    let mut cmd = Command::new(step::target_dir().join("release/sonde-agent"));
    // Log positions beside the buffer, so a run as an ordinary user needs no /var/lib.
    let positions = buffer.with_file_name("log-positions.json");
    // Both on this machine, so plaintext, asked for by name (the agent wants that).
    cmd.args(["--collector", &format!("http://{COLLECTOR_GRPC}")])
        .arg("--collector-insecure")
        .arg("--buffer-dir")
        .arg(&buffer)
        .arg("--log-positions")
        .arg(&positions);
    if !args.iter().any(|a| a.starts_with("--otlp-grpc-listen")) {
        cmd.args(["--otlp-grpc-listen", AGENT_OTLP_GRPC]);
    }
    if !args.iter().any(|a| a.starts_with("--otlp-http-listen")) {
        cmd.args(["--otlp-http-listen", AGENT_OTLP_HTTP]);
    }
    cmd.args(args);
    let mut agent = Running::spawn("sonde-agent", cmd)?;

    let agent_listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--listen=").map(str::to_string))
        })
        .unwrap_or_else(|| "127.0.0.1:9101".into())
        .replace("0.0.0.0", "127.0.0.1");
    say(&format!(
        "query:  http://{COLLECTOR_HTTP}/api/v1/query?query=node_load1 (the Prometheus API; Grafana: a Prometheus data source at http://{COLLECTOR_HTTP})"
    ));
    say(&format!(
        "logs:   http://{COLLECTOR_HTTP}/loki/api/v1/query_range?query={{namespace=~\".+\"}} (Loki's API, from /var/log/pods; Grafana: a Loki data source at http://{COLLECTOR_HTTP})"
    ));
    say(&format!("agent:  http://{agent_listen}/metrics"));
    say(&format!(
        "spans:  send OTLP to the agent at {AGENT_OTLP_GRPC} (gRPC) or http://{AGENT_OTLP_HTTP}/v1/traces"
    ));
    say("Ctrl-C stops both");
    loop {
        if let Err(e) = guard::sleep(Duration::from_millis(200)) {
            say("stopping sonde-agent and sonde-collector");
            drop(agent);
            drop(collector);
            return if e.to_string() == "interrupted" {
                Ok(())
            } else {
                Err(e)
            };
        }
        if agent.exited()? {
            bail!("sonde-agent exited (its log is above)");
        }
        if collector.exited()? {
            bail!("sonde-collector exited (its log is above)");
        }
    }
}
