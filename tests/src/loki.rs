//! A small client for the Loki HTTP API the collector serves (`query_range` with
//! forward pagination, `labels`, `series`, raw `push`), and the check the log tests
//! share: which sequence numbers (`seq=<n>` in the line) arrived, which twice, which never.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    ops::Range,
    time::{Duration, Instant},
};

use serde_json::Value as Json;

use crate::promapi::PromApi;

pub type Labels = BTreeMap<String, String>;

/// One log line as the API returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub labels: Labels,
    pub ts_ns: i64,
    pub line: String,
}

/// A Loki API client for one server, e.g. `http://127.0.0.1:9090`: the same HTTP
/// and JSON handling as [`PromApi`], Loki's paths and shapes.
#[derive(Clone)]
pub struct Loki {
    api: PromApi,
}

impl Loki {
    pub fn new(base: &str) -> Loki {
        Loki {
            api: PromApi::new(base),
        }
    }

    pub fn base(&self) -> &str {
        &self.api.base
    }

    /// `GET path?params`: (status, JSON body); an error names the URL and what came back.
    pub fn get_json(&self, path: &str, params: &[(&str, &str)]) -> Result<(u16, Json), String> {
        self.api.get_json(path, params)
    }

    /// `GET path` and the `data` of a `success` answer, else an error with the status and message.
    fn data(&self, path: &str, params: &[(&str, &str)]) -> Result<Json, String> {
        let (status, json) = self.get_json(path, params)?;
        if status != 200 || json["status"] != "success" {
            return Err(format!("{path} answered {status}: {json:.500}"));
        }
        Ok(json["data"].clone())
    }

    /// One `query_range` call for a log query: every entry, oldest first across streams
    /// when `forward` (ties keep the API's order).
    pub fn query_range(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
        forward: bool,
    ) -> Result<Vec<Entry>, String> {
        let (start, end, limit) = (start_ns.to_string(), end_ns.to_string(), limit.to_string());
        let direction = if forward { "forward" } else { "backward" };
        let data = self.data(
            "/loki/api/v1/query_range",
            &[
                ("query", query),
                ("start", &start),
                ("end", &end),
                ("limit", &limit),
                ("direction", direction),
            ],
        )?;
        if data["resultType"] != "streams" {
            return Err(format!(
                "query_range {query}: resultType {} (want streams)",
                data["resultType"]
            ));
        }
        let mut out = Vec::new();
        for stream in data["result"].as_array().ok_or("result is not an array")? {
            let labels = labels_of(&stream["stream"])?;
            for v in stream["values"].as_array().ok_or("stream without values")? {
                let ts = v[0]
                    .as_str()
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or_else(|| format!("value without a nanosecond string time: {v:.200}"))?;
                let line = v[1]
                    .as_str()
                    .ok_or_else(|| format!("value without a line: {v:.200}"))?;
                out.push(Entry {
                    labels: labels.clone(),
                    ts_ns: ts,
                    line: line.to_string(),
                });
            }
        }
        if forward {
            out.sort_by_key(|e| e.ts_ns);
        } else {
            out.sort_by_key(|e| std::cmp::Reverse(e.ts_ns));
        }
        Ok(out)
    }

    /// Every entry of a log query in `[start_ns, end_ns)`, paging forward `page` lines at a
    /// time as Loki's clients do: the next page starts at the last page's newest timestamp,
    /// and the entries already seen at that timestamp are skipped once each.
    pub fn query_all(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        page: usize,
    ) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        let mut start = start_ns;
        // (labels, line) -> how many were already taken at `start`.
        let mut seen_at_start: HashMap<(Labels, String), usize> = HashMap::new();
        loop {
            let got = self.query_range(query, start, end_ns, page, true)?;
            let full = got.len() >= page;
            let newest = got.last().map(|e| e.ts_ns);
            for e in &got {
                if e.ts_ns == start
                    && let Some(n) = seen_at_start.get_mut(&(e.labels.clone(), e.line.clone()))
                    && *n > 0
                {
                    *n -= 1;
                    continue;
                }
                out.push(e.clone());
            }
            let Some(newest) = newest.filter(|_| full) else {
                return Ok(out);
            };
            if newest == start {
                return Err(format!(
                    "more than {page} entries at one timestamp ({start} ns): raise the page size"
                ));
            }
            seen_at_start.clear();
            for e in got.iter().filter(|e| e.ts_ns == newest) {
                *seen_at_start
                    .entry((e.labels.clone(), e.line.clone()))
                    .or_default() += 1;
            }
            start = newest;
        }
    }

    /// Label names with entries in the range.
    pub fn labels(&self, start_ns: i64, end_ns: i64) -> Result<Vec<String>, String> {
        let (s, e) = (start_ns.to_string(), end_ns.to_string());
        let data = self.data("/loki/api/v1/labels", &[("start", &s), ("end", &e)])?;
        strings(&data)
    }

    /// Values of one label.
    pub fn label_values(
        &self,
        name: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, String> {
        let (s, e) = (start_ns.to_string(), end_ns.to_string());
        let data = self.data(
            &format!("/loki/api/v1/label/{name}/values"),
            &[("start", &s), ("end", &e)],
        )?;
        strings(&data)
    }

    /// Label sets of the streams matching `selector`.
    pub fn series(
        &self,
        selector: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, String> {
        let (s, e) = (start_ns.to_string(), end_ns.to_string());
        let data = self.data(
            "/loki/api/v1/series",
            &[("match[]", selector), ("start", &s), ("end", &e)],
        )?;
        data.as_array()
            .ok_or_else(|| format!("series data is not an array: {data:.200}"))?
            .iter()
            .map(labels_of)
            .collect()
    }

    /// `POST /loki/api/v1/push` with a raw body: (status, body text).
    pub fn push_raw(
        &self,
        content_type: &str,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Result<(u16, String), String> {
        let url = format!("{}/loki/api/v1/push", self.api.base);
        let mut req = self
            .api
            .http()
            .post(&url)
            .header("Content-Type", content_type);
        if let Some(enc) = content_encoding {
            req = req.header("Content-Encoding", enc);
        }
        let mut resp = req.send(body).map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Ok((status, text))
    }
}

fn labels_of(v: &Json) -> Result<Labels, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("labels are not an object: {v:.200}"))?;
    Ok(obj
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect())
}

fn strings(v: &Json) -> Result<Vec<String>, String> {
    Ok(v.as_array()
        .ok_or_else(|| format!("not an array: {v:.200}"))?
        .iter()
        .filter_map(|s| s.as_str().map(String::from))
        .collect())
}

/// The number in the first `seq=<digits>` of a line.
pub fn seq_of(line: &str) -> Option<u64> {
    let at = line.find("seq=")?;
    let digits: String = line[at + 4..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Which of the expected sequence numbers arrived, and how often.
#[derive(Clone, Debug, Default)]
pub struct SeqCheck {
    pub expected: u64,
    pub entries: u64,
    /// Expected numbers that never arrived.
    pub missing: Vec<u64>,
    /// Arrivals beyond the first, over all numbers.
    pub duplicates: u64,
    /// Lines with no `seq=` or a number outside the expected range (first few).
    pub unexpected: Vec<String>,
    pub unexpected_count: u64,
}

impl SeqCheck {
    pub fn exactly_once(&self) -> bool {
        self.missing.is_empty() && self.duplicates == 0 && self.unexpected_count == 0
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} of {} expected lines arrived ({} entries): {} missing, {} duplicates, {} unexpected",
            self.expected - self.missing.len() as u64,
            self.expected,
            self.entries,
            self.missing.len(),
            self.duplicates,
            self.unexpected_count
        );
        if !self.missing.is_empty() {
            let _ = write!(s, "; missing runs: {}", runs(&self.missing, 10));
        }
        if !self.unexpected.is_empty() {
            let _ = write!(s, "; unexpected lines: {:?}", self.unexpected);
        }
        s
    }
}

/// `[a..b]` runs of consecutive numbers, the first `max` of them.
fn runs(v: &[u64], max: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() && out.len() < max {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}..={}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// Checks that `entries` hold each number of `expected` (and nothing else).
pub fn check_seqs(entries: &[Entry], expected: Range<u64>) -> SeqCheck {
    let n = (expected.end - expected.start) as usize;
    let mut counts = vec![0u32; n];
    let mut check = SeqCheck {
        expected: n as u64,
        entries: entries.len() as u64,
        ..SeqCheck::default()
    };
    for e in entries {
        match seq_of(&e.line).filter(|s| expected.contains(s)) {
            Some(s) => counts[(s - expected.start) as usize] += 1,
            None => {
                check.unexpected_count += 1;
                if check.unexpected.len() < 5 {
                    check.unexpected.push(e.line.chars().take(120).collect());
                }
            }
        }
    }
    for (i, c) in counts.iter().enumerate() {
        match c {
            0 => check.missing.push(expected.start + i as u64),
            c => check.duplicates += u64::from(c - 1),
        }
    }
    check
}

/// Polls the query every 2 s until no expected number is missing (or `timeout`), printing
/// progress; returns the last check and entries. Duplicates do not end the wait early.
pub fn wait_for_seqs(
    loki: &Loki,
    query: &str,
    start_ns: i64,
    expected: Range<u64>,
    timeout: Duration,
) -> (SeqCheck, Vec<Entry>) {
    let deadline = Instant::now() + timeout;
    loop {
        // End a minute ahead: the writer's timestamps are its clock's, and the query must cover them.
        let end_ns = now_ns() + 60_000_000_000;
        let entries = loki
            .query_all(query, start_ns, end_ns, PAGE)
            .unwrap_or_else(|e| panic!("querying {query}: {e}"));
        let check = check_seqs(&entries, expected.clone());
        if check.missing.is_empty() || Instant::now() >= deadline {
            eprintln!("{query}: {}", check.summary());
            return (check, entries);
        }
        eprintln!("{query}: waiting, {} still missing", check.missing.len());
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The page size the tests ask for; their collectors run with `--logs-max-lines` at least this.
pub const PAGE: usize = 50_000;

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> Entry {
        Entry {
            labels: Labels::new(),
            ts_ns: 0,
            line: line.into(),
        }
    }

    #[test]
    fn finds_missing_duplicate_and_unexpected_lines() {
        let entries: Vec<Entry> = [
            "seq=0 a", "seq=1 b", "seq=1 b", "seq=3 c", "noise", "x seq=99",
        ]
        .iter()
        .map(|l| entry(l))
        .collect();
        let c = check_seqs(&entries, 0..5);
        assert_eq!(c.missing, vec![2, 4]);
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.unexpected_count, 2);
        assert!(!c.exactly_once());
        assert!(
            c.summary().contains("missing runs: 2, 4"),
            "{}",
            c.summary()
        );
        assert_eq!(runs(&[1, 2, 3, 7, 9, 10], 10), "1..=3, 7, 9..=10");
        assert_eq!(seq_of("x seq=12abc"), Some(12));
        assert_eq!(seq_of("seq=x"), None);
    }
}
