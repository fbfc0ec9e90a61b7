//! Docker's json-file format, one object per line:
//! `{"log":"text\n","stream":"stdout","time":"2019-01-01T00:00:00.000000001Z"}`.
//! A `log` value without the trailing `\n` is a partial line (Docker splits lines
//! at 16 KiB) continued by the next record of the same stream.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Stream, cri::parse_timestamp};

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct DockerLine<'a> {
    /// `None` when `time` is missing or does not parse.
    pub ts: Option<u64>,
    pub stream: Stream,
    pub partial: bool,
    pub message: Cow<'a, str>,
}

/// Parses one line; `None` when it is not a JSON object with a string `log`.
pub fn parse(line: &[u8]) -> Option<DockerLine<'_>> {
    let raw: Raw<'_> = serde_json::from_slice(line).ok()?;
    let stream = match raw.stream.as_deref() {
        Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        _ => Stream::Unknown,
    };
    let ts = raw
        .time
        .as_deref()
        .and_then(|t| parse_timestamp(t.as_bytes()));
    let (message, partial) = match raw.log {
        Cow::Borrowed(s) => match s.strip_suffix('\n') {
            Some(s) => (Cow::Borrowed(s), false),
            None => (Cow::Borrowed(s), true),
        },
        Cow::Owned(mut s) => {
            let full = s.ends_with('\n');
            if full {
                s.pop();
            }
            (Cow::Owned(s), !full)
        }
    };
    Some(DockerLine {
        ts,
        stream,
        partial,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines() {
        let l = parse(
            br#"{"log":"hello \"x\"\n","stream":"stderr","time":"2019-01-01T00:00:00.000000001Z"}"#,
        )
        .unwrap();
        assert_eq!(l.message, "hello \"x\"");
        assert_eq!(
            (l.stream, l.partial, l.ts),
            (Stream::Stderr, false, Some(1_546_300_800_000_000_001))
        );
        let l =
            parse(br#"{"log":"part","stream":"stdout","time":"2019-01-01T00:00:00Z"}"#).unwrap();
        assert!(l.partial);
        let l = parse(br#"{"log":"x\n","time":"bad"}"#).unwrap();
        assert_eq!((l.ts, l.stream), (None, Stream::Unknown));
    }

    #[test]
    fn garbage() {
        for bad in [
            &br#"{"log":"trunc"#[..],
            b"{",
            b"{}",
            br#"{"log":5}"#,
            b"{\"log\":\"\xff\"}",
            b"[1,2]",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
