//! A kernel log storm: 5,000 OOM-kill lines, written faster than the 5,000 a
//! minute the issue names (node-problem-detector saturates at about 4,500 OOM
//! kills a minute). Every line is read and counted, none is lost, and the
//! Events reaching the API server are rate limited, with the rest counted.
//!
//! What the storm costs in CPU is measured by `cargo xtask bench problems`, not
//! here: this machine is shared and a timed assertion would be noise.
//!
//! Its own test binary, so no other test's agent shares the kernel log with it.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use sonde_tests::{Agent, Exposition, fake_apiserver::FakeApiServer};

const NODE: &str = "node-s";
const LINES: usize = 5_000;

fn total(e: &Exposition, name: &str, want: &[(&str, &str)]) -> f64 {
    e.find(name, want).map(|s| s.value).sum()
}

#[test]
fn a_storm_of_oom_lines_is_counted_in_full_and_its_events_rate_limited() {
    let api = FakeApiServer::start();
    api.add_node(NODE);
    let agent = Agent::start_on_node(&api, NODE, &["--probes", "none"]);
    // Let the start-up lookback (the last 5 minutes of kernel log) settle first.
    let mut last = -1.0;
    let baseline = loop {
        std::thread::sleep(Duration::from_millis(700));
        let e = agent.scrape();
        let read = total(&e, "sonde_kmsg_records_total", &[]);
        if read == last && read > 0.0 {
            break e;
        }
        last = read;
    };
    let count0 = total(&baseline, "problem_counter", &[("reason", "OOMKilling")]);
    let lost0 = total(&baseline, "sonde_kmsg_records_lost_total", &[]);
    let events0 = total(&baseline, "sonde_problem_events_total", &[]);

    let tag = std::process::id();
    let started = Instant::now();
    for i in 0..LINES {
        // One open per line: the kernel rate limits /dev/kmsg writes per open file.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .expect("opening /dev/kmsg for writing (root)");
        // One write per record: each write(2) to /dev/kmsg is a record of its own.
        let line = format!(
            "Memory cgroup out of memory: Killed process {} (storm{tag}) total-vm:1024kB, anon-rss:512kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0\n",
            100_000 + i
        );
        f.write_all(line.as_bytes()).unwrap();
    }
    let wrote_in = started.elapsed();
    println!("wrote {LINES} kernel lines in {wrote_in:?}");
    assert!(
        wrote_in < Duration::from_secs(60),
        "the storm must be at least {LINES} lines a minute; writing took {wrote_in:?}"
    );

    let e = agent.scrape_until("every storm line counted", |e| {
        total(e, "problem_counter", &[("reason", "OOMKilling")]) - count0 >= LINES as f64
    });
    // A moment more: nothing beyond the storm should arrive.
    std::thread::sleep(Duration::from_secs(2));
    let e2 = agent.scrape();
    let counted = total(&e2, "problem_counter", &[("reason", "OOMKilling")]) - count0;
    assert_eq!(counted, LINES as f64, "each line is one problem");
    assert_eq!(
        total(&e, "sonde_kmsg_records_lost_total", &[]) - lost0,
        0.0,
        "the reader kept up with the kernel log"
    );

    let created = api
        .events()
        .into_iter()
        .filter(|ev| {
            ev["reason"] == "OOMKilling"
                && ev["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("(storm{tag})")))
        })
        .count();
    let outcomes = |r: &str| total(&e2, "sonde_problem_events_total", &[("result", r)]);
    // Refused by the reporter's rate limit, or (were the reporter slower than
    // the storm) by the hub at the reporter's full queue: counted either way.
    let limited = outcomes("rate_limited")
        + total(
            &e2,
            "sonde_problem_events_dropped_total",
            &[("output", "kube_queue_full")],
        );
    println!(
        "events: {created} created for the storm, {limited} rate limited, {} in all",
        total(&e2, "sonde_problem_events_total", &[]) - events0
    );
    assert!(
        created <= 30,
        "{created} Events reached the API server: the storm was not rate limited"
    );
    assert!(
        limited >= (LINES - 30) as f64,
        "only {limited} events counted as rate limited"
    );
    let accounted = total(&e2, "sonde_problem_events_total", &[]) - events0
        + total(
            &e2,
            "sonde_problem_events_dropped_total",
            &[("output", "kube_queue_full")],
        );
    assert!(
        accounted >= LINES as f64,
        "only {accounted} of {LINES} events have an outcome on /metrics"
    );
}
