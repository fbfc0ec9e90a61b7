//! Garbage in the log files: bad timestamps, a truncated CRI line, an unknown stream,
//! invalid UTF-8, NUL bytes, a 1 MiB and a 3 MiB line in a CRI file; truncated JSON, plain
//! text, JSON without `log` and a bad `time` in a Docker json-file. The agent must survive,
//! read the good lines after the garbage, and account for every line it was given: each is
//! kept (lossy UTF-8 is fine) or counted in `sonde_logs_lines_dropped_total`, and kept plus
//! dropped equals what was written. Then the collector's push endpoint gets garbage: each
//! answer is 4xx and what is stored does not change.

use std::{
    collections::BTreeSet,
    fs::OpenOptions,
    io::Write,
    time::{Duration, Instant},
};

use sonde_tests::{
    logs_rig::{LogsRig, line_problems, total},
    logs_writer::{ContainerLog, body, cri_line, docker_line, now_rfc3339},
    loki::{Entry, now_ns, seq_of},
};

const BODY_LEN: usize = 80;

fn append(log: &ContainerLog, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(log.live())
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.live().display()));
    f.write_all(bytes).expect("appending to the log file");
}

/// The CRI file: good lines 0..100, garbage 100..108, good lines 108..200.
fn write_cri(log: &ContainerLog) -> BTreeSet<u64> {
    let good = |range: std::ops::Range<u64>| -> Vec<u8> {
        range
            .flat_map(|s| cri_line(&now_rfc3339(), "stdout", "F", body(s, BODY_LEN).as_bytes()))
            .collect()
    };
    append(log, &good(0..100));
    let ts = now_rfc3339();
    let mut bad = Vec::new();
    bad.extend(b"yesterday stdout F seq=100 a word for a timestamp\n");
    bad.extend(b"2024-13-45T99:99:99.000000000Z stdout F seq=101 an impossible date\n");
    bad.extend(format!("{ts} stdout seq=102\n").as_bytes()); // no tag, no message
    bad.extend(format!("{ts} stdin F seq=103 an unknown stream\n").as_bytes());
    bad.extend(cri_line(
        &ts,
        "stdout",
        "F",
        b"seq=104 caf\xc3\x28 \xff\xfe invalid utf-8 end",
    ));
    bad.extend(cri_line(&ts, "stdout", "F", &long_body(105, 1 << 20)));
    bad.extend(cri_line(&ts, "stdout", "F", &long_body(106, 3 << 20)));
    bad.extend(cri_line(&ts, "stdout", "F", b"seq=107 nul\0bytes\0inside"));
    append(log, &bad);
    append(log, &good(108..200));
    (0..200).collect()
}

fn long_body(seq: u64, len: usize) -> Vec<u8> {
    let mut v = format!("seq={seq} ").into_bytes();
    v.resize(len, b'L');
    v
}

/// The Docker file: good lines 1000..1050, garbage 1050..1054, good lines 1054..1100.
fn write_docker(log: &ContainerLog) -> BTreeSet<u64> {
    let good = |range: std::ops::Range<u64>| -> Vec<u8> {
        range
            .flat_map(|s| docker_line(&now_rfc3339(), "stdout", &body(s, BODY_LEN), true))
            .collect()
    };
    append(log, &good(1000..1050));
    let ts = now_rfc3339();
    let mut bad = Vec::new();
    bad.extend(b"{\"log\":\"seq=1050 truncated json\\n\",\"stre\n");
    bad.extend(b"seq=1051 plain text in a docker file\n");
    bad.extend(
        format!("{{\"stream\":\"stdout\",\"time\":\"{ts}\",\"msg\":\"seq=1052 no log field\"}}\n")
            .as_bytes(),
    );
    bad.extend(
        b"{\"log\":\"seq=1053 bad time\\n\",\"stream\":\"stdout\",\"time\":\"not a time\"}\n",
    );
    append(log, &bad);
    append(log, &good(1054..1100));
    (1000..1100).collect()
}

/// Distinct sequence numbers among `entries`, and how many arrived more than once.
fn kept(entries: &[Entry]) -> (BTreeSet<u64>, usize) {
    let mut seen = BTreeSet::new();
    let mut dups = 0;
    for e in entries {
        if let Some(s) = seq_of(&e.line)
            && !seen.insert(s)
        {
            dups += 1;
        }
    }
    (seen, dups)
}

#[test]
fn garbage_lines_are_kept_or_counted_and_the_agent_lives_on() {
    let rig = LogsRig::start(&[]);
    let cri = ContainerLog::new(&rig.log_root, "malformed", "cri", "app");
    let docker = ContainerLog::new(&rig.log_root, "malformed", "docker", "app");
    let start_ns = now_ns() - 5_000_000_000;
    cri.create().unwrap();
    docker.create().unwrap();
    let mut written = write_cri(&cri);
    written.extend(write_docker(&docker));
    eprintln!(
        "wrote {} lines, 12 of them malformed, two of 1 and 3 MiB",
        written.len()
    );

    let loki = rig.loki();
    let query = "{namespace=\"malformed\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    let (entries, seqs, dups, dropped) = loop {
        let entries = loki
            .query_all(query, start_ns, now_ns() + 60_000_000_000, 1000)
            .unwrap_or_else(|e| panic!("querying {query}: {e}\n{}", rig.logs_for_failure()));
        let (seqs, dups) = kept(&entries);
        let dropped = total(&rig.agent().scrape(), "sonde_logs_lines_dropped_total");
        let accounted = seqs.len() as f64 + dropped;
        eprintln!(
            "  kept {} + dropped {dropped} of {} written",
            seqs.len(),
            written.len()
        );
        if accounted >= written.len() as f64 || Instant::now() > deadline {
            break (entries, seqs, dups, dropped);
        }
        std::thread::sleep(Duration::from_secs(2));
    };

    // Survived: still serving, and every good line after the garbage arrived intact.
    let healthz = sonde_tests::http_get(rig.agent().addr, "/healthz", None);
    assert!(
        healthz.as_ref().is_ok_and(|(c, _)| *c == 200),
        "the agent does not answer /healthz after the garbage: {healthz:?}\n{}",
        rig.logs_for_failure()
    );
    let good: Vec<u64> = (0..100)
        .chain(108..200)
        .chain(1000..1050)
        .chain(1054..1100)
        .collect();
    let lost_good: Vec<u64> = good.iter().copied().filter(|s| !seqs.contains(s)).collect();
    assert!(
        lost_good.is_empty(),
        "good lines missing (first {:?}); the garbage stopped the tailer?\n{}",
        &lost_good[..lost_good.len().min(10)],
        rig.logs_for_failure()
    );
    let good_entries: Vec<Entry> = entries
        .iter()
        .filter(|e| seq_of(&e.line).is_some_and(|s| good.contains(&s)))
        .cloned()
        .collect();
    for (log, range) in [(&cri, 0..1000), (&docker, 1000..2000)] {
        let mine: Vec<Entry> = good_entries
            .iter()
            .filter(|e| seq_of(&e.line).is_some_and(|s| range.contains(&s)))
            .cloned()
            .collect();
        let problems = line_problems(&mine, log, "stdout", BODY_LEN);
        assert!(
            problems.is_empty(),
            "{}: good lines changed: {problems:#?}",
            log.pod
        );
    }
    // Invalid UTF-8, if kept, is kept lossily: the valid text around it survives.
    if let Some(e) = entries.iter().find(|e| seq_of(&e.line) == Some(104)) {
        assert!(
            e.line.contains("invalid utf-8 end"),
            "seq 104 kept as {:?}",
            e.line
        );
    }
    let garbage: Vec<u64> = (100..108).chain(1050..1054).collect();
    let fate: Vec<String> = garbage
        .iter()
        .map(|s| {
            let len = entries
                .iter()
                .find(|e| seq_of(&e.line) == Some(*s))
                .map(|e| e.line.len());
            format!(
                "{s}: {}",
                len.map_or("dropped".into(), |l| format!("kept ({l} B)"))
            )
        })
        .collect();
    eprintln!("garbage lines: {}", fate.join(", "));
    eprintln!("{}", rig.agent_progress());
    assert_eq!(dups, 0, "some lines arrived twice");
    assert_eq!(
        seqs.len() as f64 + dropped,
        written.len() as f64,
        "kept ({}) + dropped ({dropped}) must equal written ({}); garbage: {}\n{}",
        seqs.len(),
        written.len(),
        fate.join(", "),
        rig.logs_for_failure()
    );

    // The push endpoint refuses garbage and stores nothing from it.
    let before = loki
        .query_all(
            "{namespace=~\".+\"}",
            start_ns,
            now_ns() + 60_000_000_000,
            1000,
        )
        .expect("querying everything")
        .len();
    let garbage_pushes: [(&str, Option<&str>, &[u8]); 5] = [
        (
            "application/json",
            None,
            b"{\"streams\": [{\"stream\": {\"a\": \"b\"}, \"values\": [[\"notanumber\"",
        ),
        (
            "application/json",
            None,
            b"{\"streams\": [{\"stream\": {}, \"values\": [[\"1\", \"empty labels\"]]}]}",
        ),
        (
            "application/json",
            Some("gzip"),
            b"\x1f\x8b this is not gzip",
        ),
        (
            "application/x-protobuf",
            None,
            b"\xff\xff\xff\xff not snappy",
        ),
        (
            "application/x-protobuf",
            None,
            &snap::raw::Encoder::new()
                .compress_vec(b"\x0a\xff\xff\xff\x0f")
                .unwrap(),
        ),
    ];
    for (ct, enc, body) in garbage_pushes {
        let (status, text) = loki.push_raw(ct, enc, body).expect("pushing");
        assert!(
            (400..500).contains(&status),
            "push of garbage ({ct}, {enc:?}) answered {status}: {text}"
        );
        assert!(
            !text.trim().is_empty(),
            "a {status} without a message ({ct})"
        );
        eprintln!(
            "garbage push ({ct}, {enc:?}) -> {status}: {}",
            text.trim().chars().take(100).collect::<String>()
        );
    }
    let after = loki
        .query_all(
            "{namespace=~\".+\"}",
            start_ns,
            now_ns() + 60_000_000_000,
            1000,
        )
        .expect("querying everything")
        .len();
    assert_eq!(before, after, "garbage pushes changed what is stored");
}
