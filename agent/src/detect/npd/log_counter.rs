//! NPD's log-counter (`--journald-source=kernel`), done natively over the same
//! kmsg stream as the log monitors instead of as a process per invocation.
//!
//! NPD's semantics: at each invocation, walk the log from
//! `max(boot + delay, now - lookback)` to now, pushing each line into a
//! 1000-line buffer; a `--pattern` match counts +1, a `--revert-pattern` match
//! -1; a total `>= --count` is a problem ("Found N matching logs, which meets
//! the threshold of C"). Here the matches are counted as records arrive, kept
//! per second for the longest window (bounded memory in a storm), and summed
//! over the window at each invocation.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use super::{config::CounterSpec, matcher::RuleSet, stats::NpdStats};
use crate::detect::kmsg::Record;

/// NPD's log-counter buffer size.
const BUFFER_LINES: usize = 1000;

/// Net matches per second of record time, oldest first.
#[derive(Debug, Default)]
pub struct Tally {
    seconds: VecDeque<(u64, i64)>,
}

impl Tally {
    fn add(&mut self, time: SystemTime, delta: i64, keep: Duration) {
        let sec = secs(time);
        match self.seconds.back_mut() {
            Some((s, n)) if *s == sec => *n += delta,
            // Records arrive in time order; an older one (clock step) joins the newest bucket.
            Some((s, n)) if *s > sec => *n += delta,
            _ => self.seconds.push_back((sec, delta)),
        }
        let oldest = sec.saturating_sub(keep.as_secs() + 1);
        while self.seconds.front().is_some_and(|(s, _)| *s < oldest) {
            self.seconds.pop_front();
        }
    }

    /// Net matches with record time in `[from, to]` (whole seconds).
    pub fn sum(&self, from: SystemTime, to: SystemTime) -> i64 {
        let (from, to) = (secs(from), secs(to));
        self.seconds
            .iter()
            .filter(|(s, _)| *s >= from && *s <= to)
            .map(|(_, n)| n)
            .sum()
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The kmsg side of one log-counter rule.
pub struct CounterFeed {
    source: String,
    reason: String,
    set: RuleSet,
    lookback: Duration,
    tally: Arc<Mutex<Tally>>,
    stats: NpdStats,
}

impl CounterFeed {
    pub fn new(
        source: &str,
        reason: &str,
        spec: &CounterSpec,
        stats: NpdStats,
    ) -> Result<(CounterFeed, Arc<Mutex<Tally>>), String> {
        let mut patterns = vec![spec.pattern.as_str()];
        if let Some(r) = &spec.revert_pattern {
            patterns.push(r);
        }
        let set = RuleSet::new(&patterns, BUFFER_LINES)
            .map_err(|(_, e)| format!("invalid regex: {e}"))?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        stats.declare_rule(source, reason);
        Ok((
            CounterFeed {
                source: source.to_string(),
                reason: reason.to_string(),
                set,
                lookback: spec.lookback,
                tally: tally.clone(),
                stats,
            },
            tally,
        ))
    }

    pub fn on_record(&mut self, rec: &Record) {
        let msg = rec.message.trim();
        if msg.is_empty() {
            return;
        }
        let mut delta = 0;
        for m in self.set.push(rec.time, msg) {
            if m.rule == 0 {
                delta += 1;
                self.stats.rule_matched(&self.source, &self.reason);
            } else {
                delta -= 1;
            }
        }
        if delta != 0
            && let Ok(mut t) = self.tally.lock()
        {
            t.add(rec.time, delta, self.lookback);
        }
    }
}

/// One invocation: `Some(message)` when the count meets the threshold.
pub fn evaluate(
    tally: &Mutex<Tally>,
    spec: &CounterSpec,
    now: SystemTime,
    boot: SystemTime,
) -> Option<String> {
    let from = super::log_monitor::start_time(now, boot, spec.lookback, spec.delay);
    if spec.lookback.is_zero() || from > now {
        return None;
    }
    let n = tally.lock().map(|t| t.sum(from, now)).unwrap_or(0);
    (n >= spec.count).then(|| {
        format!(
            "Found {n} matching logs, which meets the threshold of {}",
            spec.count
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec(count: i64, revert: Option<&str>) -> CounterSpec {
        CounterSpec {
            kmsg: PathBuf::from("/dev/kmsg"),
            lookback: Duration::from_secs(600),
            delay: Duration::ZERO,
            count,
            pattern: "unregister_netdevice: waiting for \\w+ to become free. Usage count = \\d+"
                .into(),
            revert_pattern: revert.map(String::from),
        }
    }

    fn rec(t: SystemTime, msg: &str) -> Record {
        Record {
            facility: 0,
            level: 6,
            seq: 0,
            ts_usec: 0,
            time: t,
            message: msg.into(),
        }
    }

    #[test]
    fn counts_matches_in_the_window_minus_reverts() {
        let now = SystemTime::now();
        let boot = now - Duration::from_secs(86_400);
        let s = spec(3, Some("netdevice back"));
        let (mut feed, tally) = CounterFeed::new(
            "kernel-monitor",
            "UnregisterNetDevice",
            &s,
            NpdStats::default(),
        )
        .unwrap();
        let line = "unregister_netdevice: waiting for eth0 to become free. Usage count = 1";
        // Two old matches, out of the 10-minute window.
        feed.on_record(&rec(now - Duration::from_secs(3600), line));
        feed.on_record(&rec(now - Duration::from_secs(3599), line));
        feed.on_record(&rec(now - Duration::from_secs(60), line));
        feed.on_record(&rec(now - Duration::from_secs(50), "something else"));
        feed.on_record(&rec(now - Duration::from_secs(40), line));
        assert_eq!(evaluate(&tally, &s, now, boot), None, "2 in window");
        feed.on_record(&rec(now - Duration::from_secs(30), line));
        assert_eq!(
            evaluate(&tally, &s, now, boot).as_deref(),
            Some("Found 3 matching logs, which meets the threshold of 3")
        );
        feed.on_record(&rec(now - Duration::from_secs(20), "netdevice back"));
        assert_eq!(
            evaluate(&tally, &s, now, boot),
            None,
            "a revert takes one back"
        );
        // Delay: nothing counts before boot + delay.
        let mut delayed = s.clone();
        delayed.delay = Duration::from_secs(86_400 - 35);
        feed.on_record(&rec(now - Duration::from_secs(10), line));
        assert_eq!(evaluate(&tally, &delayed, now, boot), None);
        assert_eq!(
            evaluate(&tally, &s, now, boot).as_deref(),
            Some("Found 3 matching logs, which meets the threshold of 3")
        );
    }

    #[test]
    fn tally_stays_bounded_in_a_storm() {
        let mut t = Tally::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..100_000u64 {
            t.add(
                start + Duration::from_millis(i * 100),
                1,
                Duration::from_secs(60),
            );
        }
        assert!(t.seconds.len() <= 62, "{}", t.seconds.len());
    }
}
