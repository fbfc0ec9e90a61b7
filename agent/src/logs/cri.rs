//! The CRI log format kubelet's runtimes write (containerd, CRI-O):
//! `<RFC3339Nano timestamp> <stdout|stderr> <tags> <message>`, where the first
//! tag is `P` (partial: the line continues in the next `P`/`F` record of the same
//! stream) or `F` (full, or the last part), further tags separated by `:`.

use super::Stream;

/// One CRI record, borrowing the message from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// Nanoseconds since the epoch; `None` when the timestamp did not parse.
    pub ts: Option<u64>,
    pub stream: Stream,
    pub partial: bool,
    pub message: &'a [u8],
}

/// Parses one line (without its newline). `None` when it is not CRI at all
/// (fewer than three space-separated fields, or an unknown stream or tag).
pub fn parse(line: &[u8]) -> Option<CriLine<'_>> {
    let (ts, rest) = split_space(line)?;
    let (stream, rest) = split_space(rest)?;
    // The message may be empty, and then the tag ends the line with no space.
    let (tags, message) = split_space(rest).unwrap_or((rest, &[]));
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let first_tag = tags.split(|&b| b == b':').next()?;
    let partial = match first_tag {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(CriLine {
        ts: parse_timestamp(ts),
        stream,
        partial,
        message,
    })
}

fn split_space(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b' ', s)?;
    Some((&s[..i], &s[i + 1..]))
}

/// RFC 3339 with optional fraction and any offset, as nanoseconds since the epoch.
/// Times before 1970 are refused (no log line is that old).
pub fn parse_timestamp(ts: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(ts).ok()?;
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    u64::try_from(t.timestamp_nanos_opt()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines() {
        let l = parse(b"2016-10-06T00:17:09.669794202Z stdout F hello world").unwrap();
        assert_eq!(l.ts, Some(1_475_713_029_669_794_202));
        assert_eq!(
            (l.stream, l.partial, l.message),
            (Stream::Stdout, false, &b"hello world"[..])
        );
        let l = parse(b"2016-10-06T02:17:09.5+02:00 stderr P part").unwrap();
        assert_eq!(l.ts, Some(1_475_713_029_500_000_000));
        assert_eq!(
            (l.stream, l.partial, l.message),
            (Stream::Stderr, true, &b"part"[..])
        );
        // Empty message, with and without the trailing space; extra tags.
        assert_eq!(
            parse(b"2016-10-06T00:17:09Z stdout F").unwrap().message,
            b""
        );
        assert_eq!(
            parse(b"2016-10-06T00:17:09Z stdout F ").unwrap().message,
            b""
        );
        assert!(!parse(b"2016-10-06T00:17:09Z stdout F:x m").unwrap().partial);
        // Spaces inside the message are kept.
        assert_eq!(
            parse(b"2016-10-06T00:17:09Z stdout F  a  b ")
                .unwrap()
                .message,
            b" a  b "
        );
    }

    #[test]
    fn garbage() {
        for bad in [
            &b""[..],
            b"hello",
            b"2016-10-06T00:17:09Z stdout",
            b"2016-10-06T00:17:09Z stdin F x",
            b"2016-10-06T00:17:09Z stdout X x",
            b"\xff\xfe stdout F x\xff",
        ] {
            if let Some(l) = parse(bad) {
                assert_eq!(l.ts, None, "{bad:?}");
            }
        }
        assert!(parse(b"hello world").is_none());
        let l = parse(b"yesterday stdout F msg").unwrap();
        assert_eq!((l.ts, l.message), (None, &b"msg"[..]));
        assert_eq!(parse_timestamp(b"1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_timestamp(b"2016-13-06T00:17:09Z"), None);
    }
}
