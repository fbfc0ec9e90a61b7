//! Shared by the collector's end-to-end tests: start the real binary on free
//! ports with a temporary data directory, and a minimal HTTP/1.1 client.

#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sonde-collector")
}

pub struct Collector {
    child: Child,
    pub http: SocketAddr,
    pub otlp_http: SocketAddr,
    pub grpc: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Collector {
    pub fn start(extra: &[&str]) -> Collector {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (http, otlp_http, grpc) = (addr(free_port()), addr(free_port()), addr(free_port()));
        let log = std::fs::File::create(dir.path().join("collector.log")).expect("log file");
        let child = Command::new(binary())
            .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
            .args([
                "--http-listen",
                &http.to_string(),
                "--otlp-http-listen",
                &otlp_http.to_string(),
            ])
            .args(["--grpc-listen", &grpc.to_string(), "--log-level", "debug"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting sonde-collector");
        let c = Collector {
            child,
            http,
            otlp_http,
            grpc,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = request(c.http, "GET", "/-/ready", &[], b"")
                && r.status == 200
            {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "collector not ready in 30s; log:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("collector.log")).unwrap_or_default()
    }

    /// GET on the main port, expecting a Prometheus API answer; returns (status, JSON).
    pub fn api(&self, path_and_query: &str) -> (u16, serde_json::Value) {
        let r = request(self.http, "GET", path_and_query, &[], b"").expect("GET");
        let json = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{path_and_query}: {e}: {}", r.text()));
        (r.status, json)
    }

    /// `data` of a successful API answer.
    pub fn data(&self, path_and_query: &str) -> serde_json::Value {
        let (status, json) = self.api(path_and_query);
        assert_eq!(
            (status, json["status"].as_str()),
            (200, Some("success")),
            "{path_and_query}: {json}"
        );
        json["data"].clone()
    }

    /// The collector's own /metrics text.
    pub fn own_metrics(&self) -> String {
        request(self.http, "GET", "/metrics", &[], b"")
            .expect("GET /metrics")
            .text()
    }

    /// The value of one line of /metrics that starts with `prefix`, or 0.
    pub fn metric(&self, prefix: &str) -> f64 {
        self.own_metrics()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Collector {
    /// Sends SIGTERM and waits up to 10s; the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A collector on a given data directory (for restarts), logging to `log`
/// (appended, so a failure shows every run).
pub struct Running {
    child: Child,
    pub http: SocketAddr,
    pub otlp_http: SocketAddr,
}

impl Running {
    pub fn start(data: &Path, log: &Path) -> Running {
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (http, otlp_http) = (addr(free_port()), addr(free_port()));
        let child = Command::new(binary())
            .args(["--data-dir", data.to_str().unwrap()])
            .args(["--http-listen", &http.to_string()])
            .args(["--otlp-http-listen", &otlp_http.to_string()])
            .args(["--grpc-listen", &addr(free_port()).to_string()])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !request(http, "GET", "/-/ready", &[], b"").is_ok_and(|r| r.status == 200) {
            assert!(
                Instant::now() < deadline,
                "{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Running {
            child,
            http,
            otlp_http,
        }
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // The server may answer (413) and close before reading a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw.get(split + 4..).unwrap_or(&[]).to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        let rest = &b[i + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        b = rest.get(n + 2..).unwrap_or(&[]);
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Now, in ms, rounded to a whole second (so float-second times are exact).
pub fn now_ms() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ms - ms % 1000
}
