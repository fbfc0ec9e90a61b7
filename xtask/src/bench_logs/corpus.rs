//! The bench's input: CRI log files in the kubelet layout
//! (`<root>/bench_<pod>_<uid>/app/0.log`), written before anything starts. Lines are
//! 100-300 bytes of realistic text, a mix of JSON, logfmt and plain messages, with
//! timestamps spread evenly over the half hour before the run, so the collector takes
//! them all (not too old, not in the future) and a count over time windows can check them.

use std::{
    fs::{self, File},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

/// The namespace every bench container is in (the stream selector of the checks).
pub const NAMESPACE: &str = "bench";
/// The span of the timestamps, ending a minute before generation.
pub const SPAN_NS: i64 = 30 * 60 * 1_000_000_000;

pub struct Container {
    /// `bench_<pod>_<uid>`, the directory the agent finds under its `--log-dir`.
    pub pod_dir: String,
    pub lines: u64,
    pub bytes: u64,
    /// First timestamp and the step between lines (ns).
    pub first_ns: i64,
    pub step_ns: i64,
}

pub struct Corpus {
    /// Where the pod directories are kept between runs.
    pub store: PathBuf,
    pub containers: Vec<Container>,
}

impl Corpus {
    pub fn lines(&self) -> u64 {
        self.containers.iter().map(|c| c.lines).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.containers.iter().map(|c| c.bytes).sum()
    }
}

/// A small fixed-seed xorshift: the corpus is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/users/profile",
    "/healthz",
    "/api/v2/cart/items",
    "/static/app.js",
    "/api/v1/search",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const LEVELS: &[&str] = &["info", "info", "info", "debug", "warn", "error"];
const WORDS: &[&str] = &[
    "connection",
    "pool",
    "exhausted",
    "retrying",
    "request",
    "completed",
    "cache",
    "miss",
    "upstream",
    "timeout",
    "user",
    "session",
    "renewed",
    "payment",
    "authorized",
    "queue",
    "depth",
    "scheduled",
    "worker",
    "finished",
    "batch",
    "flushed",
    "to",
    "disk",
];

/// One message body (without timestamp and tag), 100-300 bytes.
fn message(rng: &mut Rng, out: &mut String) {
    use std::fmt::Write as _;
    let target = 100 + rng.below(201) as usize;
    let start = out.len();
    match rng.below(3) {
        0 => {
            let _ = write!(
                out,
                r#"{{"level":"{}","ts":{}.{:03},"caller":"server/handler.go:{}","msg":"{} {}","method":"{}","path":"{}","status":{},"duration_ms":{},"request_id":"{:016x}""#,
                rng.pick(LEVELS),
                1_700_000_000 + rng.below(10_000_000),
                rng.below(1000),
                rng.below(900) + 10,
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(METHODS),
                rng.pick(PATHS),
                [200, 200, 200, 201, 404, 500][rng.below(6) as usize],
                rng.below(2000),
                rng.next()
            );
            while out.len() - start + 1 < target {
                let _ = write!(out, r#","{}":"{}""#, rng.pick(WORDS), rng.pick(WORDS));
            }
            out.push('}');
        }
        1 => {
            let _ = write!(
                out,
                "level={} component={} msg=\"{} {} {}\" trace_id={:032x}",
                rng.pick(LEVELS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                (u128::from(rng.next()) << 64) | u128::from(rng.next())
            );
            while out.len() - start < target {
                let _ = write!(out, " {}={}", rng.pick(WORDS), rng.below(100_000));
            }
        }
        _ => {
            let _ = write!(
                out,
                "{} {} {} {} - ",
                ["INFO", "INFO", "WARN", "ERROR"][rng.below(4) as usize],
                rng.pick(METHODS),
                rng.pick(PATHS),
                rng.below(600)
            );
            while out.len() - start < target {
                out.push_str(rng.pick(WORDS));
                out.push(' ');
            }
        }
    }
    out.truncate(start + target.min(out.len() - start));
}

/// Unix nanoseconds as RFC3339 with nine fraction digits, UTC. Hand-written (Howard
/// Hinnant's days-to-civil) because xtask carries no date crate and this is the hot loop.
pub fn rfc3339(ns: i64, out: &mut String) {
    use std::fmt::Write as _;
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
}

/// Writes `containers` files of `mib / containers` MiB each under `store`.
pub fn generate(store: &Path, mib: u64, containers: usize) -> Result<Corpus> {
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as i64;
    let end_ns = now_ns - 60_000_000_000;
    let per = mib * (1 << 20) / containers as u64;
    let mut out = Vec::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..containers {
        let pod = format!("loadgen-{i}");
        let pod_dir = format!("{NAMESPACE}_{pod}_0000-bench-{i:04}");
        let dir = store.join(&pod_dir).join("app");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("0.log");
        // Lines average ~230 B with the prefix; the step spreads them over the span.
        let est_lines = (per / 230).max(1) as i64;
        let step_ns = (SPAN_NS / est_lines).max(1);
        let first_ns = end_ns - step_ns * est_lines;
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let (mut lines, mut bytes) = (0u64, 0u64);
        let mut line = String::with_capacity(512);
        while bytes < per {
            line.clear();
            rfc3339(first_ns + step_ns * lines as i64, &mut line);
            line.push_str(if rng.below(10) == 0 {
                " stderr F "
            } else {
                " stdout F "
            });
            message(&mut rng, &mut line);
            line.push('\n');
            w.write_all(line.as_bytes())?;
            bytes += line.len() as u64;
            lines += 1;
        }
        w.flush()?;
        out.push(Container {
            pod_dir,
            lines,
            bytes,
            first_ns,
            step_ns,
        });
    }
    Ok(Corpus {
        store: store.to_path_buf(),
        containers: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_messages() {
        let mut s = String::new();
        rfc3339(1_700_000_000_123_456_789, &mut s);
        assert_eq!(s, "2023-11-14T22:13:20.123456789Z");
        s.clear();
        rfc3339(951_782_400_000_000_000, &mut s); // 2000-02-29
        assert_eq!(s, "2000-02-29T00:00:00.000000000Z");
        let mut rng = Rng(7);
        for _ in 0..300 {
            let mut m = String::new();
            message(&mut rng, &mut m);
            assert!((100..=300).contains(&m.len()), "{} bytes: {m}", m.len());
            assert!(!m.contains('\n'));
        }
    }
}
