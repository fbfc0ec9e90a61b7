//! NPD's custom plugin protocol: run an executable every `invoke_interval`
//! (first at start), at most `concurrency` at once per monitor, killed (with its
//! process group) after `timeout`. Exit 0 = OK, 1 = NonOK (the problem), any
//! other (or a signal) = Unknown; stdout, trimmed and cut to
//! `max_output_length` bytes, is the message. Stdout and stderr are read up to
//! 4 KiB each (the rest drained), as NPD does.

use std::{
    path::Path,
    process::Stdio,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::Command,
    sync::Semaphore,
};

use super::{
    config::{Action, ConditionSpec, CustomRule, CustomSpec, RuleKind},
    log_counter,
    stats::NpdStats,
};
use crate::detect::{
    kmsg,
    problem::{Finding, FindingTx, Status},
};

const MAX_PLUGIN_OUTPUT: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    NonOk,
    Unknown,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NonOk => "nonok",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Reads up to [`MAX_PLUGIN_OUTPUT`] bytes and drains the rest, so the plugin
/// never blocks on a full pipe.
async fn drain<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = (&mut p).take(MAX_PLUGIN_OUTPUT).read_to_end(&mut buf).await;
        let _ = tokio::io::copy(&mut p, &mut tokio::io::sink()).await;
    }
    buf
}

/// Runs one plugin once.
pub async fn run_once(
    path: &Path,
    args: &[String],
    timeout: Duration,
    max_output: usize,
) -> (Outcome, String) {
    let mut cmd = Command::new(path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(plugin = %path.display(), error = %e, "cannot start custom plugin");
            return (
                Outcome::Unknown,
                "Error in starting plugin. Please check the error log".into(),
            );
        }
    };
    let pid = child.id();
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (out, err) = tokio::join!(drain(stdout.take()), drain(stderr.take()));
        let status = child.wait().await;
        (out, err, status)
    };
    let (outcome, mut message) = match tokio::time::timeout(timeout, work).await {
        Ok((out, err, status)) => {
            let output = String::from_utf8_lossy(&out).trim().to_string();
            let code = status.ok().and_then(|s| s.code());
            let outcome = match code {
                Some(0) => Outcome::Ok,
                Some(1) => Outcome::NonOk,
                _ => Outcome::Unknown,
            };
            if outcome != Outcome::Ok && !err.is_empty() {
                tracing::info!(plugin = %path.display(), stderr = %String::from_utf8_lossy(&err).trim(), "custom plugin stderr");
            }
            (outcome, output)
        }
        Err(_) => {
            // The process group, so a shell script's children go too.
            if let Some(pid) = pid {
                // SAFETY: kill(2) with a negative pid signals the group we created.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            (
                Outcome::Unknown,
                format!(
                    "Timeout when running plugin {:?}: killed after {timeout:?}",
                    path.display().to_string()
                ),
            )
        }
    };
    if message.len() > max_output {
        let mut cut = max_output;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    (outcome, message)
}

/// What a result means for the hub (NPD's custom plugin monitor).
pub fn finding(
    source: &str,
    rule: &CustomRule,
    defaults: &[ConditionSpec],
    outcome: Outcome,
    message: String,
) -> Option<Finding> {
    let time = SystemTime::now();
    match rule.kind {
        RuleKind::Temporary => (outcome != Outcome::Ok).then(|| Finding::Event {
            source: source.to_string(),
            reason: rule.reason.clone(),
            message,
            time,
            pods: Vec::new(),
        }),
        RuleKind::Permanent => {
            let default_reason = defaults
                .iter()
                .find(|d| d.kind == rule.condition)
                .map(|d| d.reason.clone())
                .unwrap_or_default();
            let (status, reason, message) = match outcome {
                Outcome::NonOk => (Status::True, rule.reason.clone(), message),
                // Back to the default reason and message.
                Outcome::Ok => (Status::False, String::new(), String::new()),
                // NPD keeps the output: it says why the check could not tell.
                Outcome::Unknown => (Status::Unknown, default_reason, message),
            };
            Some(Finding::Condition {
                source: source.to_string(),
                kind: rule.condition.clone(),
                status,
                reason,
                message,
                time,
                pods: Vec::new(),
            })
        }
    }
}

/// Spawns one task per rule of a custom monitor. `tallies[i]` is the kmsg tally
/// of rule `i` when it is a log-counter.
pub fn spawn(
    source: String,
    spec: CustomSpec,
    defaults: Vec<ConditionSpec>,
    tallies: Vec<Option<Arc<std::sync::Mutex<log_counter::Tally>>>>,
    tx: FindingTx,
    stats: NpdStats,
) {
    let permits = Arc::new(Semaphore::new(spec.concurrency));
    let defaults = Arc::new(defaults);
    for (rule, tally) in spec.rules.into_iter().zip(tallies) {
        let (source, defaults, tx, stats, permits) = (
            source.clone(),
            defaults.clone(),
            tx.clone(),
            stats.clone(),
            permits.clone(),
        );
        let max_output = spec.max_output_length;
        stats.declare_rule(&source, &rule.reason);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(rule.invoke_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (outcome, message) = match (&rule.action, &tally) {
                    (Action::Exec { path, args }, _) => {
                        let Ok(_permit) = permits.acquire().await else {
                            return;
                        };
                        run_once(path, args, rule.timeout, max_output).await
                    }
                    (Action::LogCounter(c), Some(tally)) => {
                        match log_counter::evaluate(tally, c, SystemTime::now(), kmsg::boot_time())
                        {
                            Some(m) => (Outcome::NonOk, m),
                            None => (Outcome::Ok, String::new()),
                        }
                    }
                    (Action::LogCounter(_), None) => return,
                };
                stats.plugin_ran(&source, outcome.label());
                if let Some(f) = finding(&source, &rule, &defaults, outcome, message)
                    && tx.send(f).await.is_err()
                {
                    return; // the hub is gone: shutting down
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[tokio::test]
    async fn exit_codes_output_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(5);
        let ok = script(dir.path(), "ok", "echo '  all good  '; exit 0");
        assert_eq!(
            run_once(&ok, &[], t, 80).await,
            (Outcome::Ok, "all good".into())
        );
        let bad = script(
            dir.path(),
            "bad",
            "echo \"broken $1\"; echo noise >&2; exit 1",
        );
        assert_eq!(
            run_once(&bad, &["disk".into()], t, 80).await,
            (Outcome::NonOk, "broken disk".into())
        );
        let unk = script(dir.path(), "unk", "echo 0123456789abcdef; exit 3");
        assert_eq!(
            run_once(&unk, &[], t, 10).await,
            (Outcome::Unknown, "0123456789".into())
        );
        let big = script(
            dir.path(),
            "big",
            "head -c 100000 /dev/zero | tr '\\0' x; exit 1",
        );
        let (o, m) = run_once(&big, &[], t, 80).await;
        assert_eq!((o, m.len()), (Outcome::NonOk, 80));
        let slow = script(dir.path(), "slow", "sleep 30 & sleep 30; exit 0");
        let started = std::time::Instant::now();
        let (o, m) = run_once(&slow, &[], Duration::from_millis(300), 200).await;
        assert_eq!(o, Outcome::Unknown);
        assert!(m.starts_with("Timeout when running plugin"), "{m}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let (o, _) = run_once(&dir.path().join("missing"), &[], t, 80).await;
        assert_eq!(o, Outcome::Unknown);
    }

    #[test]
    fn results_become_npd_findings() {
        let defaults = vec![ConditionSpec {
            kind: "NTPProblem".into(),
            reason: "NTPIsUp".into(),
            message: "up".into(),
        }];
        let mut rule = CustomRule {
            kind: RuleKind::Permanent,
            condition: "NTPProblem".into(),
            reason: "NTPIsDown".into(),
            action: Action::Exec {
                path: "/bin/true".into(),
                args: vec![],
            },
            timeout: Duration::from_secs(1),
            invoke_interval: Duration::from_secs(1),
        };
        let f = finding("ntp", &rule, &defaults, Outcome::NonOk, "down".into());
        assert!(
            matches!(f, Some(Finding::Condition { status: Status::True, ref reason, ref message, .. }) if reason == "NTPIsDown" && message == "down")
        );
        let f = finding("ntp", &rule, &defaults, Outcome::Ok, "x".into());
        assert!(
            matches!(f, Some(Finding::Condition { status: Status::False, ref reason, .. }) if reason.is_empty())
        );
        let f = finding("ntp", &rule, &defaults, Outcome::Unknown, "why".into());
        assert!(
            matches!(f, Some(Finding::Condition { status: Status::Unknown, ref reason, ref message, .. }) if reason == "NTPIsUp" && message == "why")
        );
        rule.kind = RuleKind::Temporary;
        assert!(finding("ntp", &rule, &defaults, Outcome::Ok, String::new()).is_none());
        assert!(matches!(
            finding("ntp", &rule, &defaults, Outcome::NonOk, "m".into()),
            Some(Finding::Event { .. })
        ));
    }
}
