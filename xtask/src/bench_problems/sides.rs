//! The two sides: Sonde's agent (problem detection only) and rsyslog 8 reading
//! `/dev/kmsg` with imkmsg and writing the lines NPD's OOMKilling rule matches to a file.
//! rsyslog applies that one regex where Sonde applies all of NPD's kernel-monitor and
//! readonly-monitor rules: the peer is the cheapest real reader of the kernel log.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Result, bail};

use crate::{
    bench_agent::{
        guard::{self, Running, TempDir},
        scrape::{cpu_seconds, status_bytes},
    },
    bench_logs::metric_sum,
    step,
};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sonde,
    Rsyslog,
}

/// NPD kernel-monitor.json's OOMKilling pattern, in POSIX ERE for rsyslog's `re_match`.
const OOM_ERE: &str =
    r"Killed process [0-9]+ \\(.+\\) total-vm:[0-9]+kB, anon-rss:[0-9]+kB, file-rss:[0-9]+kB";

pub struct Started {
    side: Side,
    process: Running,
    /// Sonde: its /metrics port. rsyslog: the file it writes matches to.
    port: u16,
    matches: PathBuf,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Sonde => "sonde",
            Side::Rsyslog => "rsyslog",
        }
    }

    pub fn start(self, dir: &TempDir, round: usize) -> Result<Started> {
        let log = format!("{}-{round}.log", self.name());
        let f = dir.log(&log)?;
        let (mut cmd, port, matches) = match self {
            Side::Sonde => {
                let port = guard::free_port()?;
                let mut cmd = Command::new(step::target_dir().join("release/sonde-agent"));
                cmd.args(["--listen", &format!("127.0.0.1:{port}")]).args([
                    "--probes",
                    "none",
                    "--problems",
                    "on",
                    "--log-level",
                    "warn",
                ]);
                (cmd, port, PathBuf::new())
            }
            Side::Rsyslog => {
                let run = dir.path(&format!("rsyslog-{round}"));
                let _ = fs::remove_dir_all(&run);
                fs::create_dir_all(&run)?;
                let matches = run.join("oom.log");
                let conf = run.join("rsyslog.conf");
                fs::write(
                    &conf,
                    format!(
                        "global(workDirectory=\"{run}\")\n\
                         module(load=\"imkmsg\")\n\
                         template(name=\"raw\" type=\"string\" string=\"%msg%\\n\")\n\
                         if re_match($msg, \"{OOM_ERE}\") then {{\n  \
                           action(type=\"omfile\" file=\"{matches}\" template=\"raw\")\n}}\n",
                        run = run.display(),
                        matches = matches.display(),
                    ),
                )?;
                let mut cmd = Command::new("rsyslogd");
                cmd.arg("-n")
                    .arg("-f")
                    .arg(&conf)
                    .arg("-i")
                    .arg(run.join("rsyslogd.pid"));
                (cmd, 0, matches)
            }
        };
        cmd.stdout(f.try_clone()?).stderr(f);
        let mut s = Started {
            side: self,
            process: Running::spawn(self.name(), cmd)?,
            port,
            matches,
        };
        guard::wait_until(
            &format!(
                "{} to start (log: {})",
                self.name(),
                dir.path(&log).display()
            ),
            std::time::Duration::from_secs(30),
            || {
                if s.process.exited()? {
                    bail!("{} exited; its log ends:\n{}", self.name(), dir.tail(&log));
                }
                Ok(s.matched().is_ok())
            },
        )?;
        Ok(s)
    }
}

impl Started {
    /// Storm lines matched so far: Sonde's `problem_counter{reason="OOMKilling"}`, or
    /// the lines in rsyslog's output file.
    pub fn matched(&self) -> Result<f64> {
        match self.side {
            Side::Sonde => metric_sum(self.port, r#"problem_counter{reason="OOMKilling"}"#),
            Side::Rsyslog => Ok(match fs::read(&self.matches) {
                Ok(b) => b.iter().filter(|&&c| c == b'\n').count() as f64,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0.0,
                Err(e) => return Err(e.into()),
            }),
        }
    }

    /// Kernel log records overwritten before they were read, where the side counts them.
    pub fn lost(&self) -> Result<Option<f64>> {
        match self.side {
            Side::Sonde => metric_sum(self.port, "sonde_kmsg_records_lost_total").map(Some),
            Side::Rsyslog => Ok(None),
        }
    }

    pub fn cpu_s(&self) -> Result<f64> {
        cpu_seconds(self.process.pid())
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        status_bytes(self.process.pid(), "VmRSS:")
    }
}
