//! A peer run beside Sonde's: rsyslog 8 (Debian's package) tailing the same corpus with
//! imfile and forwarding every line over TCP (omfwd) to a sink in this process that counts
//! newlines. File -> network only: no parsing of the CRI prefix, no storage at the far end,
//! which is the shape of the published Vector and Fluent Bit anchors. rsyslogd has no
//! readiness endpoint, so the corpus is in place before it starts and the clock runs from
//! its start (imfile reads files it has no state for from the beginning).

use std::{
    fs,
    io::Read,
    net::TcpListener,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{
    corpus::Corpus,
    procs::{cpu_seconds, peak_rss},
    run::Moved,
};
use crate::{
    bench_agent::guard::{self, Running, TempDir},
    step::say,
};

pub struct PeerRun {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss: u64,
    pub lines: u64,
}

/// The version line, or an error saying how to install it.
pub fn version() -> Result<String> {
    let out = Command::new("rsyslogd").arg("-v").output().context(
        "rsyslogd is not installed (apt-get install rsyslog), or leave it out with --peers sonde",
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("rsyslogd")
        // "rsyslogd  8.2302.0 (aka 2023.02) compiled with:" -> "rsyslogd 8.2302.0"
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

/// Counts newlines arriving on every connection to `listener` until `stop`.
fn sink(listener: TcpListener, lines: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).ok();
    let mut readers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut conn, _)) => {
                let (lines, stop) = (lines.clone(), stop.clone());
                conn.set_nonblocking(false).ok();
                conn.set_read_timeout(Some(Duration::from_millis(200))).ok();
                readers.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    while !stop.load(Ordering::SeqCst) {
                        match conn.read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => {
                                let nl = buf[..n].iter().filter(|&&b| b == b'\n').count();
                                lines.fetch_add(nl as u64, Ordering::SeqCst);
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => return,
                        }
                    }
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for r in readers {
        let _ = r.join();
    }
}

pub fn once(dir: &TempDir, corpus: &Corpus, r: usize) -> Result<PeerRun> {
    let run = dir.path(&format!("rsyslog-{r}"));
    let _ = fs::remove_dir_all(&run);
    let (pods, work) = (run.join("pods"), run.join("work"));
    fs::create_dir_all(&pods)?;
    fs::create_dir_all(&work)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (lines, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let sink_thread = {
        let (lines, stop) = (lines.clone(), stop.clone());
        std::thread::spawn(move || sink(listener, lines, stop))
    };
    let conf = run.join("rsyslog.conf");
    fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\")\n\
             module(load=\"imfile\" mode=\"inotify\")\n\
             template(name=\"raw\" type=\"string\" string=\"%msg%\\n\")\n\
             input(type=\"imfile\" file=\"{pods}/*/*/0.log\" tag=\"pods\" ruleset=\"fwd\")\n\
             ruleset(name=\"fwd\") {{\n  action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" template=\"raw\")\n}}\n",
            work = work.display(),
            pods = pods.display(),
        ),
    )?;
    let moved = Moved::all(corpus, &pods)?;
    let log = format!("rsyslog-{r}.log");
    let mut cmd = Command::new("rsyslogd");
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(run.join("rsyslogd.pid"));
    let f = dir.log(&log)?;
    cmd.stdout(f.try_clone()?).stderr(f);
    let start = Instant::now();
    let mut p = Running::spawn("rsyslogd", cmd)?;
    let total = corpus.lines();
    let timeout = Duration::from_secs(120 + corpus.bytes() / (2 << 20));
    let mut last_report = Instant::now();
    let mut cpu = 0.0;
    let mut rss = 0;
    let result = loop {
        guard::check_interrupt()?;
        if p.exited()? {
            break Err(anyhow::anyhow!(
                "rsyslogd exited; its log ends:\n{}",
                dir.tail(&log)
            ));
        }
        // Read while it runs: the numbers are gone once it exits.
        cpu = cpu_seconds(p.pid()).unwrap_or(cpu);
        rss = peak_rss(p.pid()).unwrap_or(rss);
        let got = lines.load(Ordering::SeqCst);
        if got >= total {
            break Ok(());
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            say(&format!(
                "  rsyslog {:.0} s: {got} of {total} lines at the sink",
                start.elapsed().as_secs_f64()
            ));
        }
        if start.elapsed() > timeout {
            break Err(anyhow::anyhow!(
                "after {timeout:?} the sink has {got} of {total} lines; rsyslog's log ends:\n{}",
                dir.tail(&log)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall_s = start.elapsed().as_secs_f64();
    drop(p);
    stop.store(true, Ordering::SeqCst);
    let _ = sink_thread.join();
    drop(moved);
    let _ = fs::remove_dir_all(&run);
    result?;
    if cpu == 0.0 {
        bail!("could not read rsyslogd's CPU time");
    }
    Ok(PeerRun {
        wall_s,
        cpu_s: cpu,
        peak_rss: rss,
        lines: lines.load(Ordering::SeqCst),
    })
}
