//! Sonde's kernel programs. Each probe aggregates in per-CPU maps; only OOM kills
//! travel as events. The agent (`agent/src/probes`) loads this object, fills in
//! the kernel struct offsets (`kernel::OFFSETS`) from BTF, and attaches each
//! program to its BTF tracepoint (`tp_btf`): stable tracepoint hooks with typed
//! arguments, no tracefs needed, and cheaper than classic tracepoints because the
//! kernel does not format a trace record for us.
#![no_std]
#![no_main]

mod blockio;
mod counters;
mod hist;
mod http;
mod kernel;
mod oom;
mod runqueue;
mod stdio;
mod task_storage;
mod tcp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that loops.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
