//! A tiny HTTP/1.1 GET over std's TcpStream, enough to scrape `/metrics` on 127.0.0.1:
//! one request per connection (`Connection: close`); the body is framed by Content-Length,
//! chunked encoding, or the end of the stream. No compression is asked for, from either peer.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` from 127.0.0.1:`port`, asking for the Prometheus text format.
pub fn get(port: u16, path: &str) -> Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain;version=0.0.4\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::with_capacity(128 * 1024);
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading http://{addr}{path}"))?;
    parse(&raw).with_context(|| format!("response from http://{addr}{path}"))
}

fn parse(raw: &[u8]) -> Result<Response> {
    let end = find(raw, b"\r\n\r\n").context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end])?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("bad status line")?;
    let (mut chunked, mut length) = (false, None);
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-length" => length = value.trim().parse::<usize>().ok(),
            _ => {}
        }
    }
    let rest = &raw[end + 4..];
    let body = match (chunked, length) {
        (true, _) => dechunk(rest)?,
        (false, Some(n)) => rest
            .get(..n)
            .context("body shorter than its Content-Length")?
            .to_vec(),
        (false, None) => rest.to_vec(),
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(rest.len());
    loop {
        let eol = find(rest, b"\r\n").context("truncated chunk size")?;
        let size = std::str::from_utf8(&rest[..eol])?
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let size =
            usize::from_str_radix(size, 16).with_context(|| format!("chunk size {size:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).context("truncated chunk")?);
        rest = rest.get(size + 2..).context("truncated chunk")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_content_length_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "abc"));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, "abcde");
        let r = parse(b"HTTP/1.1 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "nope"));
    }
}
