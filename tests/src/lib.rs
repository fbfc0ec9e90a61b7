//! Helpers for Sonde's end-to-end tests: start the real agent binary, scrape it,
//! parse what it serves, and find the real peer programs.
//!
//! Plain blocking std code on purpose: tests stay easy to read, and a hung peer
//! shows up as a timeout with a message rather than a stuck runtime.

pub mod cgroup;
pub mod fake_apiserver;
pub mod loopdev;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds `sonde-agent` once per test process (cheap when up to date) and returns its path.
pub fn agent_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "sonde-agent",
                    "--bin",
                    "sonde-agent",
                ])
                .current_dir(workspace_root())
                .status()
                .expect("running cargo build for sonde-agent");
            assert!(status.success(), "cargo build -p sonde-agent failed");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| workspace_root().join("target"));
            target.join("debug/sonde-agent")
        })
        .clone()
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `sonde-agent`, killed on drop. Its stderr (the structured log) is kept.
pub struct Agent {
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts the agent on a free port with `--log-format json` and waits for `/healthz`.
    pub fn start(extra_args: &[&str]) -> Agent {
        Agent::start_wrapped(&[], extra_args)
    }

    /// The agent as node `node`'s DaemonSet pod would run, against the fake API
    /// server `api`, with the kubelet and container runtime checks off (there is
    /// no kubelet here), plus `extra_args`.
    pub fn start_on_node(
        api: &fake_apiserver::FakeApiServer,
        node: &str,
        extra_args: &[&str],
    ) -> Agent {
        let kubeconfig = api.kubeconfig_path();
        let kubeconfig = kubeconfig.to_str().expect("UTF-8 temp path");
        let base = [
            "--node-name",
            node,
            "--kubeconfig",
            kubeconfig,
            "--kubelet-healthz",
            "off",
            "--runtime-socket",
            "off",
        ];
        Agent::start(&[&base[..], extra_args].concat())
    }

    /// Like [`Agent::start`], run through `wrapper` (e.g. `setpriv ... --`).
    pub fn start_wrapped(wrapper: &[&str], extra_args: &[&str]) -> Agent {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let binary = agent_binary();
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        // Agents with a collector receive spans; on ports of their own, so tests run side by side.
        let has = |flag: &str| extra_args.contains(&flag);
        if has("--collector") && !has("--otlp-grpc-listen") {
            cmd.args(["--otlp-grpc-listen", "127.0.0.1:0"]);
        }
        if has("--collector") && !has("--otlp-http-listen") {
            cmd.args(["--otlp-http-listen", "127.0.0.1:0"]);
        }
        // Test collectors speak plaintext unless a test sets up TLS (tls.rs); the agent
        // wants plaintext asked for by name.
        let plaintext = extra_args
            .windows(2)
            .any(|w| w[0] == "--collector" && w[1].starts_with("http://"));
        if plaintext && !has("--collector-insecure") {
            cmd.arg("--collector-insecure");
        }
        let mut child = cmd
            .args(["--listen", &addr.to_string(), "--log-format", "json"])
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sonde-agent");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut agent = Agent { addr, child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!(
                    "sonde-agent exited with {status} before serving:\n{}",
                    agent.log_text()
                );
            }
            if http_get(addr, "/healthz", None).is_ok_and(|(code, _)| code == 200) {
                return agent;
            }
            assert!(
                Instant::now() < deadline,
                "sonde-agent did not answer /healthz:\n{}",
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every log line so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The JSON log lines so far, parsed (lines that are not JSON are skipped).
    pub fn log_json(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `pred` holds for some log line, or panics after `timeout`.
    pub fn wait_for_log(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.log_json().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no matching log line within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn scrape(&self) -> Exposition {
        parse_exposition(&scrape(self.addr, None))
    }

    /// Scrapes until `pred` holds, or panics after 15 s naming `what`, with the log.
    pub fn scrape_until(&self, what: &str, pred: impl Fn(&Exposition) -> bool) -> Exposition {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let e = self.scrape();
            if pred(&e) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "{what} not seen within 15s; agent log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: (status code, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

/// An HTTP/1.1 answer read to its end: (status code, body, de-chunked).
pub(crate) fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET /metrics; panics unless the answer is 200.
pub fn scrape(addr: SocketAddr, accept: Option<&str>) -> String {
    let (code, body) =
        http_get(addr, "/metrics", accept).unwrap_or_else(|e| panic!("scraping {addr}: {e}"));
    assert_eq!(code, 200, "scraping {addr}: {body}");
    body
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name -> type, as `# TYPE` lines give them.
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Samples named `name` whose labels include all of `want`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        want: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// The one value of `name` with labels `want`, if exactly one sample matches.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<_> = self.find(name, want).collect();
        (found.len() == 1).then(|| found[0].value)
    }
}

/// Parses the Prometheus text format (0.0.4); also reads OpenMetrics text, ignoring
/// its `# UNIT`/`# EOF` lines. Panics on a malformed sample line: the agent's own
/// output must always parse.
pub fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            out.types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        out.samples
            .push(parse_sample(line).unwrap_or_else(|| panic!("malformed sample line: {line:?}")));
    }
    out
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches(',');
            if let Some(after) = body.strip_prefix('}') {
                break after;
            }
            let (key, after) = body.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            labels.insert(key.to_string(), value);
            body = &after[end + 1..];
        }
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A shell command for `sh -c` that makes `n` pipe round trips between two python3
/// processes: each side blocks on every read, so there are at least 2n wakeups,
/// each followed by a run-queue wait.
pub fn pingpong_command(n: u32) -> String {
    format!(
        "exec python3 -c 'import os\nr1,w1=os.pipe();r2,w2=os.pipe()\nif os.fork()==0:\n for _ in range({n}): os.read(r1,1);os.write(w2,b\"x\")\n os._exit(0)\nfor _ in range({n}): os.write(w1,b\"x\");os.read(r2,1)\nos.wait()'"
    )
}

/// The path of a peer program the tests need. Panics with how to install it:
/// on the machines we run on, a missing peer is a setup bug, never a skip.
pub fn require_binary(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
    ]) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed; `cargo xtask setup` installs every peer the tests use");
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listening on {addr} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed on drop (for peers such as node_exporter).
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether this process may load BPF programs (root with BTF). Tests that need it
/// print why they skip when it is missing, and fail instead when `SONDE_REQUIRE_BPF`
/// is set, as `cargo xtask test` does on machines that can load BPF.
pub fn bpf_available() -> Result<(), String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err("no kernel BTF at /sys/kernel/btf/vmlinux".into());
    }
    Ok(())
}

/// Skips (with the reason on stderr) unless BPF can be loaded here; see [`bpf_available`].
#[macro_export]
macro_rules! require_bpf {
    () => {
        if let Err(why) = $crate::bpf_available() {
            if std::env::var_os("SONDE_REQUIRE_BPF").is_some() {
                panic!("SONDE_REQUIRE_BPF is set but BPF is unavailable: {why}");
            }
            eprintln!("SKIPPED: this test loads eBPF programs and {why}");
            return;
        }
    };
}

/// Skips (with `why` on stderr) unless running as root (cgroups, other processes' /proc).
#[macro_export]
macro_rules! require_root {
    ($why:expr) => {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: this test {} and is not running as root", $why);
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_specials() {
        let e = parse_exposition(
            "# TYPE a counter\na_total{x=\"1\",y=\"q\\\"uo\\\\te\"} 3\nb 4.5\nc{le=\"+Inf\"} +Inf\n",
        );
        assert_eq!(e.types["a"], "counter");
        assert_eq!(e.samples.len(), 3);
        assert_eq!(e.samples[0].labels["y"], "q\"uo\\te");
        assert_eq!(e.value("b", &[]), Some(4.5));
        assert_eq!(e.samples[2].value, f64::INFINITY);
    }
}

pub mod collector;
pub mod logs_rig;
pub mod logs_writer;
pub mod loki;
pub mod process;
pub mod promapi;
pub mod prometheus;
pub mod remote_write;
pub mod tls;
