//! `cargo xtask`: Sonde's developer commands. Each prints what it is doing.
//!
//!   setup       install what a fresh machine lacks to build and test Sonde
//!   build-ebpf  compile the kernel programs for bpfel-unknown-none
//!   run         build and start the collector, and the agent exporting to it
//!   test        setup + build-ebpf + the whole test suite
//!   bench       side-by-side benchmarks against the real peers (agent, collector, logs, problems, traces)

mod bench;
mod bench_agent;
mod bench_collector;
mod bench_logs;
mod bench_problems;
mod bench_traces;
mod build;
mod setup;
mod step;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Sonde's developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install, idempotently, the eBPF toolchain (rust-src, LLVM 22, bpf-linker) and the
    /// peer programs the tests use (node_exporter, promtool, ...).
    Setup,
    /// Compile agent-ebpf for bpfel-unknown-none (release, with BTF); the agent build embeds it.
    BuildEbpf,
    /// Build the eBPF object, the collector and the agent (release), then run the collector
    /// (data in target/sonde-run) and the agent exporting to it, until Ctrl-C.
    Run {
        /// Arguments passed to sonde-agent (see `sonde-agent --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// setup + build-ebpf + every test. Extra arguments go to `cargo test`.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks against the real peers; results go to BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run(),
        Command::BuildEbpf => build::ebpf(),
        Command::Run { args } => build::run(&args),
        Command::Test { args } => test(&args),
        Command::Bench { which } => bench::run(which),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn test(args: &[String]) -> anyhow::Result<()> {
    setup::run()?;
    build::ebpf()?;
    step::say("building the agent with its eBPF object, and the collector");
    step::cargo(&["build", "-p", "sonde-agent", "-p", "sonde-collector"])?;
    let mut cmd = step::cargo_cmd(&["test", "--workspace", "--exclude", "sonde-agent-ebpf"]);
    cmd.args(args);
    // On a machine that can load BPF, an eBPF test that cannot run is a failure, not a skip.
    if build::can_load_bpf() {
        cmd.env("SONDE_REQUIRE_BPF", "1");
    } else {
        step::say(
            "this machine cannot load BPF (not root or no BTF): eBPF tests will print SKIPPED",
        );
    }
    step::say("running the test suite");
    step::run(cmd)
}
