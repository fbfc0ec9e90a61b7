//! Reading what the kernel kept of an exchange: the request head's first bytes
//! (method, target, `Host`, `traceparent`) and the response's status line.
//! Anything that is not HTTP/1.x is refused, never guessed at.

/// The methods HTTP/1.x defines (RFC 9110 and PATCH); the kernel program lets
/// only heads starting with one of these through.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A request head, as far as the kernel kept it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'static str,
    /// The path, without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// "1.0" or "1.1"; `None` when the request line was cut before it.
    pub version: Option<&'static str>,
    /// The `Host` header, as sent (may carry a port).
    pub host: Option<&'a str>,
    pub traceparent: Option<TraceParent>,
}

/// A W3C trace context parent (`traceparent: 00-<trace id>-<parent id>-<flags>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

/// Parses a request head; `None` when it is not an HTTP/1.x request.
pub fn parse_request(head: &[u8]) -> Option<Request<'_>> {
    let (line, rest) = match find(head, b"\r\n") {
        Some(i) => (&head[..i], Some(&head[i + 2..])),
        // Cut inside the request line: keep what came, if the target began.
        None => (head, None),
    };
    let line = std::str::from_utf8(line).ok()?;
    let (method, line) = line.split_once(' ')?;
    let method = *METHODS.iter().find(|m| **m == method)?;
    let (target, version) = match (rest, line.rsplit_once(' ')) {
        (Some(_), Some((target, v))) => (target, Some(version(v)?)),
        (Some(_), None) => return None,
        (None, _) => (line.split(' ').next().unwrap_or(""), None),
    };
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return None;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut req = Request {
        method,
        path,
        query,
        version,
        host: None,
        traceparent: None,
    };
    let Some(mut rest) = rest else {
        return Some(req);
    };
    // Header lines; one cut short by the end of what was kept is ignored.
    while let Some(i) = find(rest, b"\r\n") {
        let line = &rest[..i];
        rest = &rest[i + 2..];
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case(b"host") && req.host.is_none() {
            req.host = Some(value);
        } else if name.eq_ignore_ascii_case(b"traceparent") && req.traceparent.is_none() {
            req.traceparent = parse_traceparent(value);
        }
    }
    Some(req)
}

fn version(v: &str) -> Option<&'static str> {
    match v {
        "HTTP/1.1" => Some("1.1"),
        "HTTP/1.0" => Some("1.0"),
        _ => None,
    }
}

/// The status code of a response that starts `HTTP/1.x NNN`.
pub fn parse_status(response: &[u8]) -> Option<u16> {
    let rest = response.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !(minor == b'0' || minor == b'1') {
        return None;
    }
    let digits = rest.strip_prefix(b" ")?.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.get(4).is_some_and(|&b| b != b' ' && b != b'\r') {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=599).contains(&code).then_some(code)
}

/// A `traceparent` value per W3C Trace Context: version 00 exactly, a later
/// version by its first four fields (and a `-` after them); lowercase hex; ids
/// not all zero. Anything else is ignored (a new trace starts).
pub fn parse_traceparent(v: &str) -> Option<TraceParent> {
    let b = v.as_bytes();
    if b.len() < 55 {
        return None;
    }
    let version = hex::<1>(&b[0..2])?[0];
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let trace_id = hex::<16>(&b[3..35])?;
    let parent_id = hex::<8>(&b[36..52])?;
    let flags = hex::<1>(&b[53..55])?[0];
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags,
    })
}

/// `2 * N` lowercase hex digits.
fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
    }
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn request_line_and_headers() {
        let head = format!(
            "POST /api/orders?id=7&x=1 HTTP/1.1\r\nHost: shop:8080\r\nTraceParent: {TP}\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        let r = parse_request(head.as_bytes()).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/orders");
        assert_eq!(r.query, Some("id=7&x=1"));
        assert_eq!(r.version, Some("1.1"));
        assert_eq!(r.host, Some("shop:8080"));
        let tp = r.traceparent.unwrap();
        assert_eq!(tp.trace_id[..4], [0x4b, 0xf9, 0x2f, 0x35]);
        assert_eq!(
            tp.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(tp.flags, 1);
    }

    #[test]
    fn every_method_and_only_methods() {
        for m in METHODS {
            let head = format!("{m} / HTTP/1.0\r\n\r\n");
            let r = parse_request(head.as_bytes()).unwrap();
            assert_eq!(
                (r.method, r.path, r.query, r.version),
                (m, "/", None, Some("1.0"))
            );
        }
        for bad in [
            "get / HTTP/1.1\r\n\r\n",
            "GETS / HTTP/1.1\r\n\r\n",
            "BREW /pot HTTP/1.1\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / SPDY\r\n\r\n",
            "GET  HTTP/1.1\r\n\r\n",
            "GET\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse_request(b""), None);
        assert_eq!(parse_request(b"\x00\x01\x02\x03 binary"), None);
        assert_eq!(parse_request(b"GET /\xff\xfe HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_request(b"GET /a\x07b HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_status(b"garbage garbage"), None);
    }

    #[test]
    fn query_is_split_off_the_path() {
        let r = parse_request(b"GET /search?q=a%20b?c HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.path, r.query), ("/search", Some("q=a%20b?c")));
        let r = parse_request(b"GET /?x HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.path, r.query), ("/", Some("x")));
        let r = parse_request(b"GET /plain HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.path, r.query), ("/plain", None));
    }

    #[test]
    fn truncated_heads_keep_what_came() {
        // Cut inside a header: the complete ones count, the cut one is ignored.
        let head = format!("GET /x HTTP/1.1\r\nHost: a\r\ntraceparent: {}", &TP[..40]);
        let r = parse_request(head.as_bytes()).unwrap();
        assert_eq!((r.path, r.host, r.traceparent), ("/x", Some("a"), None));
        // Cut inside the request line: the path so far, no version.
        let r = parse_request(b"GET /very/long/pa").unwrap();
        assert_eq!(
            (r.method, r.path, r.version),
            ("GET", "/very/long/pa", None)
        );
        let r = parse_request(b"GET /long?q=1").unwrap();
        assert_eq!((r.path, r.query), ("/long", Some("q=1")));
        assert_eq!(parse_request(b"GET "), None);
        // Headers after the blank line are body, not headers.
        let body = format!("GET / HTTP/1.1\r\n\r\ntraceparent: {TP}\r\n");
        let r = parse_request(body.as_bytes()).unwrap();
        assert_eq!(r.traceparent, None);
    }

    #[test]
    fn traceparent_valid_and_invalid() {
        assert!(parse_traceparent(TP).is_some());
        // A later version may carry more fields after a '-'.
        let v1 = format!("01{}-extra", &TP[2..]);
        assert!(parse_traceparent(&v1).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        // An invalid header is ignored, the request still parses.
        let r = parse_request(b"GET / HTTP/1.1\r\ntraceparent: nope\r\n\r\n").unwrap();
        assert_eq!(r.traceparent, None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(parse_status(b"HTTP/1.1 503\r\n\r\n"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"HTTP/1.1 2000 x"), None);
        assert_eq!(parse_status(b"HTTP/1.1 abc OK"), None);
        assert_eq!(parse_status(b"HTTP/2.0 200 OK"), None);
        assert_eq!(parse_status(b"HTTP/1.1 099 x"), None);
        assert_eq!(parse_status(b"HTTP/1.1 600 x"), None);
    }
}
