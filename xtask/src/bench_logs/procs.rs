//! What the bench reads about the two programs: CPU seconds (the agent bench's
//! reader) and peak RSS from /proc, and counters from their `/metrics`.

use anyhow::{Result, bail};

use crate::bench_agent::http;

pub use crate::bench_agent::scrape::cpu_seconds;

/// VmHWM (peak resident set) in bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    crate::bench_agent::scrape::status_bytes(pid, "VmHWM:")
}

/// The sum of every sample of `name` (all label sets) on 127.0.0.1:`port`/metrics.
pub fn metric_sum(port: u16, name: &str) -> Result<f64> {
    let r = http::get(port, "/metrics")?;
    if r.status != 200 {
        bail!("/metrics on port {port} answered {}", r.status);
    }
    Ok(sum(&r.body, name))
}

fn sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>()
        // An empty f64 sum is -0.0, which prints as "-0".
        + 0.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_a_family() {
        let body =
            "# TYPE a counter\na_total{r=\"x\"} 2\na_total{r=\"y\"} 3\na_total_other 9\nb 1\n";
        assert_eq!(super::sum(body, "a_total"), 5.0);
        assert_eq!(super::sum(body, "b"), 1.0);
    }
}
