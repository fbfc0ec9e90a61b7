//! Building the kernel programs and running the agent.

use std::{path::Path, process::Command};

use anyhow::Result;

use crate::step::{self, say, succeeds};

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
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS", "-C debuginfo=2 -C link-arg=--btf");
    step::run(cmd)?;
    say(&format!("eBPF object: {EBPF_OBJECT}"));
    Ok(())
}

/// Root with kernel BTF: what loading the probes needs here.
pub fn can_load_bpf() -> bool {
    (unsafe { libc::geteuid() } == 0) && Path::new("/sys/kernel/btf/vmlinux").exists()
}

pub fn run_agent(args: &[String]) -> Result<()> {
    if succeeds("bpf-linker", &["--version"]) {
        ebpf()?;
    } else {
        say("bpf-linker is missing (`cargo xtask setup` installs it): the agent runs without probes");
    }
    say("building sonde-agent (release)");
    step::cargo(&["build", "--release", "-p", "sonde-agent"])?;
    if !can_load_bpf() {
        say("not root (or no kernel BTF): the agent serves host metrics; probes stay off and /metrics says why");
    }
    say("starting sonde-agent (Ctrl-C stops it)");
    let mut cmd = Command::new(step::workspace_root().join("target/release/sonde-agent"));
    cmd.args(args);
    step::run(cmd)
}
