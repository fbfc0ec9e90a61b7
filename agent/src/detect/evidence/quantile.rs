//! Histogram arithmetic on the kernel's log2 buckets: the change between two
//! readings, and quantiles of it.

use std::time::Duration;

use sonde_probe_abi::{HIST_BUCKETS, Hist, bucket_upper_ns};

/// `cur - prev`, bucket by bucket. If any bucket went down the map entry was
/// dropped and recreated in between, so all of `cur` is new.
pub(super) fn delta(cur: &Hist, prev: Option<&Hist>) -> Hist {
    let Some(prev) = prev else { return *cur };
    if cur.buckets.iter().zip(&prev.buckets).any(|(c, p)| c < p) || cur.sum_ns < prev.sum_ns {
        return *cur;
    }
    let mut out = Hist::ZERO;
    for (i, o) in out.buckets.iter_mut().enumerate() {
        *o = cur.buckets[i] - prev.buckets[i];
    }
    out.sum_ns = cur.sum_ns - prev.sum_ns;
    out
}

pub(super) fn add(into: &mut Hist, h: &Hist) {
    for (a, b) in into.buckets.iter_mut().zip(&h.buckets) {
        *a += b;
    }
    into.sum_ns += h.sum_ns;
}

pub(super) fn count(h: &Hist) -> u64 {
    h.buckets.iter().sum()
}

/// The `q` quantile (0..=1), interpolating linearly inside the bucket that holds
/// it, as Prometheus's `histogram_quantile` does: taking the bucket's upper
/// bound instead would overstate by up to 2x and make thresholds jump in powers
/// of two. Bucket `i` holds `[2^(i-1), 2^i)` ns (bucket 0 holds 0); a quantile in
/// the last, open bucket is its lower bound (at least that slow). `None` when empty.
pub(super) fn quantile(h: &Hist, q: f64) -> Option<Duration> {
    let total = count(h);
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in h.buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (below + n) as f64 >= rank {
            let lower = if i == 0 {
                0.0
            } else {
                (1u64 << (i - 1)) as f64
            };
            let Some(upper) = bucket_upper_ns(i) else {
                return Some(Duration::from_nanos(lower as u64));
            };
            let upper = if i == 0 { 0.0 } else { upper as f64 };
            let frac = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(Duration::from_nanos(
                (lower + (upper - lower) * frac) as u64,
            ));
        }
        below += n;
    }
    // Unreachable with rank <= total; be safe: the top of the last used bucket.
    let last = h.buckets.iter().rposition(|&n| n > 0)?;
    Some(Duration::from_nanos(
        bucket_upper_ns(last).unwrap_or(1u64 << (HIST_BUCKETS - 2)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(usize, u64)]) -> Hist {
        let mut h = Hist::ZERO;
        for &(i, n) in pairs {
            h.buckets[i] = n;
        }
        h
    }

    #[test]
    fn p99_interpolates_inside_the_bucket() {
        // 99 fast (bucket 10: [512, 1024) ns) and 1 slow (bucket 30: [2^29, 2^30) ns).
        let h = hist(&[(10, 99), (30, 1)]);
        // rank 99 falls at the very top of bucket 10.
        assert_eq!(quantile(&h, 0.99), Some(Duration::from_nanos(1024)));
        // rank 99.5 is half way through bucket 30.
        let q = quantile(&h, 0.995).unwrap();
        assert_eq!(q, Duration::from_nanos((1u64 << 29) + (1u64 << 28)));
        // All in one bucket: p50 is its middle.
        let h = hist(&[(20, 100)]);
        assert_eq!(
            quantile(&h, 0.5),
            Some(Duration::from_nanos((1 << 19) + (1 << 18)))
        );
    }

    #[test]
    fn edges() {
        assert_eq!(quantile(&Hist::ZERO, 0.99), None);
        assert_eq!(quantile(&hist(&[(0, 5)]), 0.99), Some(Duration::ZERO));
        let open = hist(&[(HIST_BUCKETS - 1, 3)]);
        assert_eq!(
            quantile(&open, 0.99),
            Some(Duration::from_nanos(1u64 << (HIST_BUCKETS - 2)))
        );
    }

    #[test]
    fn delta_subtracts_and_survives_resets() {
        let prev = hist(&[(3, 5), (4, 1)]);
        let cur = hist(&[(3, 7), (4, 1), (5, 2)]);
        assert_eq!(delta(&cur, Some(&prev)).buckets[..6], [0, 0, 0, 2, 0, 2]);
        assert_eq!(delta(&cur, None).buckets, cur.buckets);
        let reset = hist(&[(3, 1)]);
        assert_eq!(delta(&reset, Some(&prev)).buckets, reset.buckets);
        let mut sum = Hist::ZERO;
        add(&mut sum, &prev);
        add(&mut sum, &cur);
        assert_eq!(count(&sum), 6 + 10);
    }
}
