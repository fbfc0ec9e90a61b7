//! Rotation under load: 10k lines/s into a CRI file rotated every second, by rename (as
//! the kubelet does, gzipping an old one and deleting the oldest) and by copytruncate (as
//! logrotate does). Every sequence number must reach the collector exactly once, with
//! its exact text and the container's labels, and the agent must have seen the rotations.

use std::{sync::Mutex, time::Duration};

use sonde_tests::{
    logs_rig::{LogsRig, line_problems, sleep_with_progress},
    logs_writer::{ContainerLog, LogWriter, Rotation, WriterOptions},
    loki::{now_ns, wait_for_seqs},
};

const RATE: u64 = 10_000;
const WRITE_FOR: Duration = Duration::from_secs(10);
const BODY_LEN: usize = 100;

/// One test at a time: two 10k lines/s pipelines on a small machine would measure the machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn every_line_once_through(rotation: Rotation, pod: &str, kind: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = LogsRig::start(&[]);
    let log = ContainerLog::new(&rig.log_root, "rotation", pod, "app");
    let start_ns = now_ns() - 5_000_000_000;
    let opts = WriterOptions {
        lines_per_sec: RATE,
        rotation,
        rotate_every: Duration::from_secs(1),
        body_len: BODY_LEN,
        ..WriterOptions::default()
    };
    eprintln!("writing {RATE} lines/s for {WRITE_FOR:?}, rotating every second ({rotation:?})");
    let writer = LogWriter::start(log.clone(), opts, 0);
    sleep_with_progress(WRITE_FOR, Duration::from_secs(2), || {
        format!("written {}; {}", writer.written(), rig.agent_progress())
    });
    let report = writer.stop();
    eprintln!("writer done: {report:?}");
    assert!(
        report.rotations >= 8,
        "the writer rotated only {} times",
        report.rotations
    );

    let (check, entries) = wait_for_seqs(
        &rig.loki(),
        &log.selector(),
        start_ns,
        0..report.lines,
        Duration::from_secs(90),
    );
    eprintln!("{}", rig.agent_progress());
    assert!(
        check.exactly_once(),
        "{:?} rotation: {}\n{}",
        rotation,
        check.summary(),
        rig.logs_for_failure()
    );
    let problems = line_problems(&entries, &log, "stdout", BODY_LEN);
    assert!(problems.is_empty(), "lines arrived changed: {problems:#?}");
    let e = rig.agent().scrape();
    let seen = e
        .value("sonde_logs_rotations_total", &[("kind", kind)])
        .unwrap_or(0.0);
    assert!(
        seen >= 1.0,
        "sonde_logs_rotations_total{{kind=\"{kind}\"}} is {seen} after {} rotations",
        report.rotations
    );
    eprintln!(
        "{rotation:?}: all {} lines arrived exactly once; the agent counted {seen} {kind} rotations of {}",
        report.lines, report.rotations
    );
}

#[test]
fn rename_rotation_loses_and_repeats_nothing() {
    every_line_once_through(Rotation::Rename, "renamed", "rename");
}

#[test]
fn copytruncate_rotation_loses_and_repeats_nothing() {
    every_line_once_through(Rotation::CopyTruncate, "truncated", "truncate");
}
