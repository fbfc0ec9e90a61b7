//! Restarts mid-stream. The agent killed with SIGKILL while a container writes (and its
//! file rotates) and started again on the same positions file and buffer: no line may be
//! missing; duplicates of what was in flight are allowed (the collector drops identical
//! entries it still holds, so usually none arrive) and reported. The collector down for a
//! minute (SIGKILL, restarted on the same data directory and ports) while the writer goes
//! on: no line may be missing once it is back.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use sonde_tests::{
    logs_rig::{LogsRig, line_problems, sleep_with_progress},
    logs_writer::{ContainerLog, LogWriter, Rotation, WriterOptions},
    loki::{now_ns, wait_for_seqs},
};

const BODY_LEN: usize = 120;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn agent_kill_9_loses_no_line() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = LogsRig::start(&[]);
    let log = ContainerLog::new(&rig.log_root, "restart", "agent-killed", "app");
    let start_ns = now_ns() - 5_000_000_000;
    let opts = WriterOptions {
        lines_per_sec: 5_000,
        rotation: Rotation::Rename,
        rotate_every: Duration::from_secs(2),
        body_len: BODY_LEN,
        ..WriterOptions::default()
    };
    let writer = LogWriter::start(log.clone(), opts, 0);
    for round in 0..2 {
        sleep_with_progress(Duration::from_secs(4), Duration::from_secs(2), || {
            format!("written {}; {}", writer.written(), rig.agent_progress())
        });
        eprintln!(
            "round {round}: kill -9 of the agent at {} lines written",
            writer.written()
        );
        rig.kill_agent();
        // Down across a rotation, so the restarted agent has a renamed file to finish.
        std::thread::sleep(Duration::from_millis(2500));
        rig.start_agent();
    }
    sleep_with_progress(Duration::from_secs(3), Duration::from_secs(1), || {
        format!("written {}; {}", writer.written(), rig.agent_progress())
    });
    let report = writer.stop();
    eprintln!("writer done: {report:?}");

    let (check, entries) = wait_for_seqs(
        &rig.loki(),
        &log.selector(),
        start_ns,
        0..report.lines,
        Duration::from_secs(90),
    );
    assert!(
        check.missing.is_empty() && check.unexpected_count == 0,
        "after 2 agent kills: {}\n{}",
        check.summary(),
        rig.logs_for_failure()
    );
    let problems = line_problems(&entries, &log, "stdout", BODY_LEN);
    assert!(problems.is_empty(), "lines arrived changed: {problems:#?}");
    eprintln!(
        "after 2 kill -9 restarts of the agent: all {} lines arrived; {} duplicates reached the query",
        report.lines, check.duplicates
    );
}

#[test]
fn collector_down_a_minute_loses_no_line() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = LogsRig::start(&[]);
    let log = ContainerLog::new(&rig.log_root, "restart", "collector-down", "app");
    let start_ns = now_ns() - 5_000_000_000;
    let opts = WriterOptions {
        lines_per_sec: 2_000,
        rotation: Rotation::Rename,
        // kubelet's defaults (10 MiB, 5 files) at this rate rotate every ~40 s.
        rotate_every: Duration::from_secs(10),
        keep_rotated: 4,
        body_len: BODY_LEN,
        ..WriterOptions::default()
    };
    let writer = LogWriter::start(log.clone(), opts, 0);
    sleep_with_progress(Duration::from_secs(5), Duration::from_secs(5), || {
        format!("written {}; {}", writer.written(), rig.agent_progress())
    });
    eprintln!(
        "killing the collector at {} lines written; down for 60 s",
        writer.written()
    );
    rig.collector.kill9();
    let down = Instant::now();
    sleep_with_progress(Duration::from_secs(60), Duration::from_secs(10), || {
        format!(
            "collector down {:.0} s; written {}; {}",
            down.elapsed().as_secs_f64(),
            writer.written(),
            rig.agent_progress()
        )
    });
    eprintln!("restarting the collector on the same data directory");
    rig.collector.restart();
    sleep_with_progress(Duration::from_secs(5), Duration::from_secs(5), || {
        format!("written {}; {}", writer.written(), rig.agent_progress())
    });
    let report = writer.stop();
    eprintln!("writer done: {report:?}");

    let (check, entries) = wait_for_seqs(
        &rig.loki(),
        &log.selector(),
        start_ns,
        0..report.lines,
        Duration::from_secs(120),
    );
    assert!(
        check.missing.is_empty() && check.unexpected_count == 0,
        "after a minute without the collector: {}\n{}",
        check.summary(),
        rig.logs_for_failure()
    );
    let problems = line_problems(&entries, &log, "stdout", BODY_LEN);
    assert!(problems.is_empty(), "lines arrived changed: {problems:#?}");
    eprintln!(
        "after 60 s without the collector: all {} lines arrived; {} duplicates reached the query",
        report.lines, check.duplicates
    );
}
