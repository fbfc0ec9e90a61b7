//! A child process whose stdout and stderr lines are kept for error messages, and which
//! is killed when dropped; plus waiting for an HTTP readiness endpoint.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub struct Logged {
    pub name: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    /// Spawns `cmd` (stdin closed, output captured); panics naming `name` if it cannot start.
    pub fn spawn(name: &str, mut cmd: Command) -> Logged {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            keep_lines(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            keep_lines(err, log.clone());
        }
        Logged {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// The last `n` log lines, for an error message.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// SIGKILL: no chance to flush or clean up, as a crash or an OOM kill.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }

    /// Polls `GET http://addr{path}` until it answers 200; panics with the log if the
    /// process exits or `timeout` passes.
    pub fn wait_ready(&mut self, addr: SocketAddr, path: &str, timeout: Duration) {
        self.wait_until(&format!("http://{addr}{path}"), timeout, || {
            crate::http_get(addr, path, None).is_ok_and(|(code, _)| code == 200)
        });
    }

    /// Polls `ready` until it holds; panics naming `what`, with the log, if the process
    /// exits or `timeout` passes.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited with {status} before it was ready; its log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            if ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready at {what} after {timeout:?}; its log:\n{}",
                self.name,
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn keep_lines(out: impl Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
}
