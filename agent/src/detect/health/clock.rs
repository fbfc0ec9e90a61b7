//! `ClockUnsynchronized`: the kernel's clock discipline, read with adjtimex(2)
//! (`modes` 0, read-only, as `host::timex` does), says the clock is not
//! synchronised (`STA_UNSYNC`, or the call's `TIME_ERROR` state) or its bound on
//! the clock's error (`maxerror`) exceeds `clock_max_error`.
//!
//! A node whose clock no daemon disciplines (no NTP/chrony at all) reports this
//! from boot: that is the point (certificates, leases and log order depend on it).

use std::time::Duration;

use futures::future::BoxFuture;
use tracing::warn;

use super::{Check, Verdict, condition};
use crate::detect::problem::ConditionDefault;

const KIND: &str = "ClockUnsynchronized";
const UNSYNCED: &str = "ClockNotSynchronized";
const ERROR_LARGE: &str = "ClockMaxErrorTooLarge";

/// adjtimex's return value when the clock is not synchronised.
const TIME_ERROR: libc::c_int = 5;
/// `status` bit: the clock is not synchronised.
const STA_UNSYNC: libc::c_int = 0x0040;

pub(super) struct Clock {
    max_error: Duration,
    warned: bool,
}

impl Clock {
    pub fn new(max_error: Duration) -> Clock {
        Clock {
            max_error,
            warned: false,
        }
    }
}

/// What adjtimex said: its return value, `status` and `maxerror` (µs).
#[derive(Clone, Copy, Debug)]
struct Timex {
    state: libc::c_int,
    status: libc::c_int,
    maxerror_us: i64,
}

fn adjtimex() -> std::io::Result<Timex> {
    // SAFETY: an all-zero timex is valid and asks for no change (modes 0).
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: tx is a valid, writable timex.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Timex {
        state,
        status: tx.status,
        maxerror_us: tx.maxerror as i64,
    })
}

impl Check for Clock {
    fn defaults(&self) -> Vec<ConditionDefault> {
        vec![condition(
            KIND,
            "ClockIsSynchronized",
            "the system clock is synchronized",
            &[UNSYNCED, ERROR_LARGE],
        )]
    }

    fn round(&mut self) -> BoxFuture<'_, Vec<(&'static str, Verdict)>> {
        Box::pin(async move {
            match adjtimex() {
                Ok(t) => vec![(KIND, judge(t, self.max_error))],
                Err(e) => {
                    if !self.warned {
                        self.warned = true;
                        warn!(error = %e, "adjtimex(2) failed; the clock check reports nothing");
                    }
                    Vec::new()
                }
            }
        })
    }
}

fn judge(t: Timex, max_error: Duration) -> Verdict {
    let maxerror = Duration::from_micros(t.maxerror_us.max(0) as u64);
    if t.state == TIME_ERROR || t.status & STA_UNSYNC != 0 {
        Verdict::Problem {
            reason: UNSYNCED.to_string(),
            message: format!(
                "the kernel reports the system clock unsynchronized (adjtimex state {}, status {:#x}, maxerror {:?})",
                t.state, t.status, maxerror
            ),
        }
    } else if maxerror > max_error {
        Verdict::Problem {
            reason: ERROR_LARGE.to_string(),
            message: format!(
                "the system clock's maximum error is {maxerror:?} (above {max_error:?})"
            ),
        }
    } else {
        Verdict::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(state: i32, status: i32, maxerror_us: i64) -> Timex {
        Timex {
            state,
            status,
            maxerror_us,
        }
    }

    #[test]
    fn decisions() {
        let max = Duration::from_secs(1);
        assert_eq!(judge(t(0, 0x2001, 20_000), max), Verdict::Healthy);
        let Verdict::Problem { reason, .. } = judge(t(0, STA_UNSYNC, 0), max) else {
            panic!("STA_UNSYNC");
        };
        assert_eq!(reason, UNSYNCED);
        let Verdict::Problem { reason, .. } = judge(t(TIME_ERROR, 0, 0), max) else {
            panic!("TIME_ERROR");
        };
        assert_eq!(reason, UNSYNCED);
        let Verdict::Problem { reason, message } = judge(t(0, 0, 1_500_000), max) else {
            panic!("maxerror 1.5 s");
        };
        assert_eq!(reason, ERROR_LARGE);
        assert_eq!(
            message,
            "the system clock's maximum error is 1.5s (above 1s)"
        );
    }

    #[tokio::test]
    async fn real_adjtimex() {
        // Any machine answers adjtimex read-only; with an unlimited bound only
        // the synchronisation state can matter, and it must agree with the call.
        let real = adjtimex().unwrap();
        let mut c = Clock::new(Duration::MAX);
        let out = c.round().await;
        let unsynced = real.state == TIME_ERROR || real.status & STA_UNSYNC != 0;
        assert_eq!(out.len(), 1);
        assert_eq!(
            matches!(out[0].1, Verdict::Problem { .. }),
            unsynced,
            "{real:?}"
        );
    }
}
