//! Reading kernel structures at offsets the agent resolved from BTF, and the
//! per-CPU loss counters every probe shares.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::map, maps::PerCpuArray};
use sonde_probe_abi::{KernelOffsets, LOSS_KINDS, Loss};

/// Filled in by the agent before load (`EbpfLoader::override_global`); read-only,
/// so the verifier sees constants.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_comm: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    sock_cgroup: 0,
    sock_protocol: 0,
    request_q: 0,
    request_bio: 0,
    request_cmd_flags: 0,
    request_data_len: 0,
    request_queue_disk: 0,
    gendisk_major: 0,
    gendisk_first_minor: 0,
};

#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_KINDS as u32, 0);

/// Counts one lost event.
#[inline(always)]
pub fn lose(why: Loss) {
    if let Some(n) = LOST.get_ptr_mut(why as u32) {
        unsafe { *n += 1 }
    }
}

macro_rules! offset {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(&raw const $crate::kernel::OFFSETS.$field) as usize }
    };
}
pub(crate) use offset;

/// Loads a `T` at `base + off` straight from a BTF-typed kernel pointer.
///
/// The programs' pointer arguments are typed by BTF, and `OFFSETS` lives in a
/// frozen read-only map, so the verifier knows each offset as a constant, checks
/// the load against the field's type, and lets it run as a plain memory load
/// (a fault reads as zero). That is several times cheaper than calling
/// `bpf_probe_read_kernel`, and this sits on the scheduler's hottest path.
/// `volatile` keeps LLVM from splitting or merging loads the verifier checks.
#[inline(always)]
pub fn load<T: Copy>(base: *const u8, off: usize) -> T {
    unsafe { core::ptr::read_volatile(base.wrapping_add(off) as *const T) }
}

/// Reads a `T` at `base + off` with `bpf_probe_read_kernel`: for what a direct load
/// cannot do (copying a whole array such as `comm`), off the hot paths.
#[inline(always)]
pub fn read<T>(base: *const u8, off: usize) -> Option<T> {
    match unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) } {
        Ok(v) => Some(v),
        Err(_) => {
            lose(Loss::KernelReadFailed);
            None
        }
    }
}

/// The root cgroup's id: what happens with no task or socket to blame is the host's.
pub const ROOT_CGROUP_ID: u64 = 1;

/// `cgrp->kn->id`: the cgroup v2 id, the same number as the directory's inode.
#[inline(always)]
pub fn cgroup_id(cgrp: *const u8) -> u64 {
    let kn: *const u8 = load(cgrp, offset!(cgroup_kn));
    load(kn, offset!(kernfs_node_id))
}

/// The cgroup v2 id of a task: `task->cgroups->dfl_cgrp->kn->id`.
#[inline(always)]
pub fn task_cgroup_id(task: *const u8) -> u64 {
    let cset: *const u8 = load(task, offset!(task_cgroups));
    let cgrp: *const u8 = load(cset, offset!(css_set_dfl_cgrp));
    cgroup_id(cgrp)
}

/// The cgroup v2 id a socket was created in: `sk->sk_cgrp_data.cgroup->kn->id`.
#[inline(always)]
pub fn sock_cgroup_id(sk: *const u8) -> u64 {
    let cgrp: *const u8 = load(sk, offset!(sock_cgroup));
    cgroup_id(cgrp)
}

#[inline(always)]
pub fn task_pid(task: *const u8) -> u32 {
    load(task, offset!(task_pid))
}
