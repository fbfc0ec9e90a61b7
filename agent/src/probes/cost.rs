//! What the probes cost: the kernel's own per-program run time and run count
//! (kept while BPF stats are on, which the agent turns on while it runs).

use aya::Ebpf;

use super::load::programs;
use crate::config::Probe;

#[derive(Clone, Debug)]
pub struct ProgramCost {
    pub probe: Probe,
    pub program: &'static str,
    pub run_ns: u64,
    pub runs: u64,
}

pub fn read(ebpf: &Ebpf, up: &[Probe]) -> Vec<ProgramCost> {
    let mut out = Vec::new();
    for &probe in up {
        for &program in programs(probe) {
            let Some(info) = ebpf.program(program).and_then(|p| p.info().ok()) else {
                continue;
            };
            out.push(ProgramCost {
                probe,
                program,
                run_ns: info.run_time().as_nanos() as u64,
                runs: info.run_count(),
            });
        }
    }
    out
}
