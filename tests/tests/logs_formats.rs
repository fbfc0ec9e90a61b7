//! The two on-disk formats a node has: CRI lines, some split by the runtime into `P`
//! chunks ending with an `F` (on stderr), and Docker json-file lines, some split into
//! `log` values without the final `\n`. Each must arrive once, joined back into the
//! line that was written, labelled with its container and stream.

use std::time::Duration;

use sonde_tests::{
    logs_rig::{LogsRig, line_problems, sleep_with_progress},
    logs_writer::{ContainerLog, Format, LogWriter, WriterOptions},
    loki::{now_ns, wait_for_seqs},
};

const BODY_LEN: usize = 150;

#[test]
fn partial_cri_and_docker_lines_arrive_joined() {
    let rig = LogsRig::start(&[]);
    let cri = ContainerLog::new(&rig.log_root, "formats", "cri-partial", "app");
    let docker = ContainerLog::new(&rig.log_root, "formats", "docker", "app");
    let start_ns = now_ns() - 5_000_000_000;
    let partial = |format, stream| WriterOptions {
        lines_per_sec: 500,
        format,
        stream,
        body_len: BODY_LEN,
        partial_every: Some(3),
        partial_chunk: 40,
        ..WriterOptions::default()
    };
    let w1 = LogWriter::start(cri.clone(), partial(Format::Cri, "stderr"), 0);
    let w2 = LogWriter::start(docker.clone(), partial(Format::Docker, "stdout"), 0);
    sleep_with_progress(Duration::from_secs(4), Duration::from_secs(2), || {
        rig.agent_progress()
    });
    let (r1, r2) = (w1.stop(), w2.stop());
    eprintln!("CRI writer: {r1:?}; Docker writer: {r2:?}");

    for (log, report, stream) in [(&cri, r1, "stderr"), (&docker, r2, "stdout")] {
        let (check, entries) = wait_for_seqs(
            &rig.loki(),
            &log.selector(),
            start_ns,
            0..report.lines,
            Duration::from_secs(60),
        );
        assert!(
            check.exactly_once(),
            "{}: {}\n{}",
            log.pod,
            check.summary(),
            rig.logs_for_failure()
        );
        let problems = line_problems(&entries, log, stream, BODY_LEN);
        assert!(
            problems.is_empty(),
            "{}: partial lines not joined back, or labels wrong: {problems:#?}",
            log.pod
        );
        eprintln!(
            "{}: {} lines, every third split in 4 chunks, all joined",
            log.pod, report.lines
        );
    }
}
