//! client-go's event spam filter: a token bucket per key (burst 25, one token back
//! every 5 minutes by default; the reporter keys by source and reason), plus one
//! bucket over all keys so that many noisy sources together stay bounded too.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// A token bucket that starts full.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Rate {
    burst: f64,
    /// Tokens per second.
    per_sec: f64,
}

impl Rate {
    fn new(burst: u32, refill: Duration) -> Rate {
        let secs = refill.as_secs_f64();
        Rate {
            burst: f64::from(burst),
            // A zero refill time means "no limit over time": refill at once.
            per_sec: if secs > 0.0 {
                1.0 / secs
            } else {
                f64::INFINITY
            },
        }
    }
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_sec;
        self.tokens = (self.tokens + earned).min(rate.burst);
        self.at = now;
    }
}

/// Buckets kept per source before full ones (same as fresh) are forgotten; sources are
/// the monitors' names, so this bounds memory against a bug, not a normal load.
const MAX_SOURCES: usize = 4096;

#[derive(Debug)]
pub(super) struct Limiter {
    per_source: Rate,
    global: Rate,
    sources: HashMap<String, Bucket>,
    all: Bucket,
}

impl Limiter {
    pub(super) fn new(
        source_burst: u32,
        source_refill: Duration,
        global_burst: u32,
        global_refill: Duration,
        now: Instant,
    ) -> Limiter {
        let global = Rate::new(global_burst, global_refill);
        Limiter {
            per_source: Rate::new(source_burst, source_refill),
            global,
            sources: HashMap::new(),
            all: Bucket::full(global, now),
        }
    }

    /// Takes a token from `source`'s bucket and the global one if both have one; a
    /// refusal takes nothing, so one bucket never pays for the other's refusal.
    pub(super) fn allow(&mut self, source: &str, now: Instant) -> bool {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(source) {
            let rate = self.per_source;
            self.sources.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < rate.burst
            });
        }
        let rate = self.per_source;
        let bucket = self
            .sources
            .entry(source.to_string())
            .or_insert_with(|| Bucket::full(rate, now));
        bucket.refill(rate, now);
        self.all.refill(self.global, now);
        if bucket.tokens < 1.0 || self.all.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        self.all.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_refill_per_source() {
        let t0 = Instant::now();
        let mut l = Limiter::new(3, Duration::from_secs(60), 100, Duration::ZERO, t0);
        assert!((0..3).all(|_| l.allow("kernel", t0)));
        assert!(!l.allow("kernel", t0));
        assert!(l.allow("docker", t0), "another source has its own bucket");
        assert!(!l.allow("kernel", t0 + Duration::from_secs(59)));
        assert!(l.allow("kernel", t0 + Duration::from_secs(61)));
        assert!(!l.allow("kernel", t0 + Duration::from_secs(62)));
    }

    #[test]
    fn global_cap_spans_sources_and_refusals_cost_nothing() {
        let t0 = Instant::now();
        let mut l = Limiter::new(2, Duration::from_secs(60), 3, Duration::from_secs(10), t0);
        assert!(l.allow("a", t0) && l.allow("a", t0) && l.allow("b", t0));
        assert!(!l.allow("b", t0), "global bucket is empty");
        // 10s later the global bucket has one token; b's own bucket still has one left.
        assert!(l.allow("b", t0 + Duration::from_secs(10)));
        assert!(
            !l.allow("a", t0 + Duration::from_secs(20)),
            "a's bucket is empty"
        );
        assert!(
            l.allow("c", t0 + Duration::from_secs(20)),
            "a's refusal took no global token"
        );
    }
}
