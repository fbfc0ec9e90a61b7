//! `timex`: the kernel clock discipline's state from adjtimex(2), read-only
//! (`modes` 0), converted to seconds and ratios as node_exporter does.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Timex;

/// adjtimex's return value when the clock is not synchronised.
const TIME_ERROR: libc::c_int = 5;
/// `status` bit: offset and jitter are in nanoseconds, not microseconds.
const STA_NANO: libc::c_int = 0x2000;
/// Frequencies are in ppm with a 16-bit fraction (adjtimex(2), NOTES).
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;
const MICROS: f64 = 1_000_000.0;

impl Collect for Timex {
    fn name(&self) -> &'static str {
        "timex"
    }

    fn collect(&self, _: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        // SAFETY: an all-zero timex is valid and asks for no change (modes 0).
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: tx is a valid, writable timex.
        let state = unsafe { libc::adjtimex(&mut tx) };
        if state < 0 {
            return Err(Error::io("adjtimex(2)", std::io::Error::last_os_error()));
        }
        let divisor = if tx.status & STA_NANO != 0 {
            1_000_000_000.0
        } else {
            MICROS
        };
        let synced = if state == TIME_ERROR { 0.0 } else { 1.0 };

        let gauges: [(&str, &str, f64); 13] = [
            (
                "node_timex_sync_status",
                "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
                synced,
            ),
            (
                "node_timex_offset_seconds",
                "Time offset in between local system and reference clock.",
                tx.offset as f64 / divisor,
            ),
            (
                "node_timex_frequency_adjustment_ratio",
                "Local clock frequency adjustment.",
                1.0 + tx.freq as f64 / PPM16FRAC,
            ),
            (
                "node_timex_maxerror_seconds",
                "Maximum error in seconds.",
                tx.maxerror as f64 / MICROS,
            ),
            (
                "node_timex_estimated_error_seconds",
                "Estimated error in seconds.",
                tx.esterror as f64 / MICROS,
            ),
            (
                "node_timex_status",
                "Value of the status array bits.",
                tx.status as f64,
            ),
            (
                "node_timex_loop_time_constant",
                "Phase-locked loop time constant.",
                tx.constant as f64,
            ),
            (
                "node_timex_tick_seconds",
                "Seconds between clock ticks.",
                tx.tick as f64 / MICROS,
            ),
            (
                "node_timex_pps_frequency_hertz",
                "Pulse per second frequency.",
                tx.ppsfreq as f64 / PPM16FRAC,
            ),
            (
                "node_timex_pps_jitter_seconds",
                "Pulse per second jitter.",
                tx.jitter as f64 / divisor,
            ),
            (
                "node_timex_pps_shift_seconds",
                "Pulse per second interval duration.",
                tx.shift as f64,
            ),
            (
                "node_timex_pps_stability_hertz",
                "Pulse per second stability, average of recent frequency changes.",
                tx.stabil as f64 / PPM16FRAC,
            ),
            (
                "node_timex_tai_offset_seconds",
                "International Atomic Time (TAI) offset.",
                tx.tai as f64,
            ),
        ];
        for (name, help, value) in gauges {
            families::gauge(enc, name, help, [(NO_LABELS, value)])?;
        }
        let counters: [(&str, &str, f64); 4] = [
            (
                "node_timex_pps_jitter",
                "Pulse per second count of jitter limit exceeded events.",
                tx.jitcnt as f64,
            ),
            (
                "node_timex_pps_calibration",
                "Pulse per second count of calibration intervals.",
                tx.calcnt as f64,
            ),
            (
                "node_timex_pps_error",
                "Pulse per second count of calibration errors.",
                tx.errcnt as f64,
            ),
            (
                "node_timex_pps_stability_exceeded",
                "Pulse per second count of stability limit exceeded events.",
                tx.stbcnt as f64,
            ),
        ];
        for (name, help, value) in counters {
            families::counter(enc, name, help, [(NO_LABELS, value)])?;
        }
        Ok(())
    }
}
