//! Adding to per-CPU, per-key aggregates in place.

use aya_ebpf::{bindings::BPF_NOEXIST, maps::PerCpuHashMap};
use sonde_probe_abi::{HIST_BUCKETS, Hist, Loss, bucket_of};

use crate::kernel::lose;

/// Returns this CPU's value for `key`, creating it from `zero` the first time.
/// A full map is counted as `full` and yields `None`.
#[inline(always)]
pub fn entry<K, V>(map: &PerCpuHashMap<K, V>, key: &K, zero: &V, full: Loss) -> Option<*mut V> {
    if let Some(v) = map.get_ptr_mut(key) {
        return Some(v);
    }
    // NOEXIST: another CPU may have created it meanwhile; then the lookup below finds it.
    let _ = map.insert(key, zero, BPF_NOEXIST as u64);
    let v = map.get_ptr_mut(key);
    if v.is_none() {
        lose(full);
    }
    v
}

/// Records one observation of `ns` nanoseconds.
#[inline(always)]
pub fn observe(h: *mut Hist, ns: u64) {
    // LLVM folds `bucket_of`'s clamp into a test on `ns`, which leaves the verifier
    // unable to bound the index. Reading the bucket back through a volatile load
    // hides its origin, so the bound check below stays on the index itself.
    let b = bucket_of(ns);
    let b = unsafe { core::ptr::read_volatile(&b) };
    if b < HIST_BUCKETS {
        unsafe {
            *(*h).buckets.as_mut_ptr().add(b) += 1;
            (*h).sum_ns += ns;
        }
    }
}
