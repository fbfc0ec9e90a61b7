//! Hysteresis over consecutive windows: a state flips only after every window
//! for at least `sustain` said the opposite, so a brief spike (or a brief lull
//! in a real problem) does not flap the condition.

use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub(super) struct Sustain {
    sustain: Duration,
    active: bool,
    /// Start of the run of windows that contradict `active`.
    since: Option<Instant>,
}

impl Sustain {
    pub fn new(sustain: Duration) -> Sustain {
        Sustain {
            sustain,
            active: false,
            since: None,
        }
    }

    pub fn active(&self) -> bool {
        self.active
    }

    /// Whether nothing is pending: inactive with no run of bad windows (such a
    /// state can be forgotten).
    pub fn idle(&self) -> bool {
        !self.active && self.since.is_none()
    }

    /// One window `[start, end]` judged bad or not; returns the state after it.
    pub fn observe(&mut self, start: Instant, end: Instant, bad: bool) -> bool {
        if bad == self.active {
            self.since = None;
        } else {
            let since = *self.since.get_or_insert(start);
            if end.saturating_duration_since(since) >= self.sustain {
                self.active = bad;
                self.since = None;
            }
        }
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 30 s windows; returns the state after each.
    fn run(s: &mut Sustain, bad: &[bool]) -> Vec<bool> {
        let t0 = Instant::now();
        let w = Duration::from_secs(30);
        bad.iter()
            .enumerate()
            .map(|(i, &b)| s.observe(t0 + w * i as u32, t0 + w * (i as u32 + 1), b))
            .collect()
    }

    #[test]
    fn turns_on_after_sustain_and_off_after_sustain() {
        let mut s = Sustain::new(Duration::from_secs(120));
        // 4 bad windows of 30 s = 2 min: on at the 4th.
        assert_eq!(
            run(
                &mut s,
                &[true, true, true, true, false, false, false, false]
            ),
            [false, false, false, true, true, true, true, false]
        );
    }

    #[test]
    fn a_break_restarts_the_run() {
        let mut s = Sustain::new(Duration::from_secs(120));
        assert_eq!(
            run(&mut s, &[true, true, true, false, true, true, true, true]),
            [false, false, false, false, false, false, false, true]
        );
        assert!(!s.idle());
        let mut quiet = Sustain::new(Duration::from_secs(120));
        run(&mut quiet, &[true, false]);
        assert!(quiet.idle(), "a single bad window leaves nothing pending");
    }

    #[test]
    fn one_long_window_is_enough() {
        let mut s = Sustain::new(Duration::from_secs(120));
        let t0 = Instant::now();
        assert!(s.observe(t0, t0 + Duration::from_secs(180), true));
    }
}
