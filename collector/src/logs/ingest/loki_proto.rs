//! Loki's protobuf push body (`logproto.PushRequest`, snappy block-compressed
//! by the sender; the caller undoes the snappy framing).
//!
//! The messages are hand-written prost structs: Loki publishes its push.proto
//! only inside its Go module (with gogoproto options), there is no maintained
//! Rust crate for it, and the five messages below have been wire-stable since
//! Loki 1.0 (structured metadata, field 3 of EntryAdapter, arrived in 2.9).
//! `google.protobuf.Timestamp` is written out too rather than pulling in
//! prost-types for two fields.

use prost::Message;

use super::labels::parse_labels;
use crate::{
    logs::model::{LogEntry, StreamEntries},
    model::Labels,
};

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set in Loki's text form, `{a="b", c="d"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// The sender's hash of the labels; not used.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Decodes an uncompressed `PushRequest`.
pub fn decode(raw: &[u8]) -> Result<Vec<StreamEntries>, String> {
    let req = PushRequest::decode(raw).map_err(|e| format!("protobuf PushRequest: {e}"))?;
    req.streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let pairs = parse_labels(&s.labels)
                .map_err(|e| format!("streams[{i}].labels {:?}: {e}", s.labels))?;
            let entries = s
                .entries
                .into_iter()
                .enumerate()
                .map(|(j, e)| entry(e).map_err(|why| format!("streams[{i}].entries[{j}]: {why}")))
                .collect::<Result<_, _>>()?;
            Ok(StreamEntries {
                labels: Labels::new(pairs),
                entries,
            })
        })
        .collect()
}

fn entry(e: EntryAdapter) -> Result<LogEntry, String> {
    let ts = e.timestamp.ok_or("missing timestamp")?;
    if !(0..1_000_000_000).contains(&ts.nanos) || ts.seconds < 0 {
        return Err(format!(
            "invalid timestamp {{seconds: {}, nanos: {}}}",
            ts.seconds, ts.nanos
        ));
    }
    let ts_ns = ts
        .seconds
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(i64::from(ts.nanos)))
        .ok_or_else(|| format!("timestamp {}s is out of range", ts.seconds))?;
    let mut metadata: Vec<(String, String)> = e
        .structured_metadata
        .into_iter()
        .map(|p| (p.name, p.value))
        .collect();
    metadata.sort();
    Ok(LogEntry {
        ts_ns,
        line: e.line,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: i64, n: i32, line: &str) -> EntryAdapter {
        EntryAdapter {
            timestamp: Some(Timestamp {
                seconds: s,
                nanos: n,
            }),
            line: line.into(),
            structured_metadata: vec![],
        }
    }

    #[test]
    fn decodes_labels_timestamps_and_metadata() {
        let mut e = entry(1_700_000_000, 5, "hello");
        e.structured_metadata = vec![
            LabelPairAdapter {
                name: "z".into(),
                value: "1".into(),
            },
            LabelPairAdapter {
                name: "a".into(),
                value: "2".into(),
            },
        ];
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{job="j", app="x"}"#.into(),
                entries: vec![e],
                hash: 0,
            }],
        };
        let s = decode(&req.encode_to_vec()).unwrap();
        assert_eq!(
            s[0].labels,
            Labels::from_pairs([("app", "x"), ("job", "j")])
        );
        assert_eq!(s[0].entries[0].ts_ns, 1_700_000_000_000_000_005);
        assert_eq!(s[0].entries[0].line, "hello");
        assert_eq!(
            s[0].entries[0].metadata,
            vec![("a".into(), "2".into()), ("z".into(), "1".into())]
        );
    }

    #[test]
    fn refuses_garbage_bad_labels_and_bad_timestamps() {
        assert!(
            decode(b"\xff\xff\xff\xff")
                .unwrap_err()
                .starts_with("protobuf PushRequest")
        );
        let req = |labels: &str, e: EntryAdapter| {
            PushRequest {
                streams: vec![StreamAdapter {
                    labels: labels.into(),
                    entries: vec![e],
                    hash: 0,
                }],
            }
            .encode_to_vec()
        };
        let e = decode(&req("{job=x}", entry(1, 0, "l"))).unwrap_err();
        assert!(e.starts_with("streams[0].labels"), "{e}");
        let e = decode(&req(r#"{a="b"}"#, entry(1, -1, "l"))).unwrap_err();
        assert!(e.contains("entries[0]: invalid timestamp"), "{e}");
        let e = decode(&req(r#"{a="b"}"#, entry(i64::MAX / 10, 0, "l"))).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let mut no_ts = entry(1, 0, "l");
        no_ts.timestamp = None;
        assert!(
            decode(&req(r#"{a="b"}"#, no_ts))
                .unwrap_err()
                .contains("missing timestamp")
        );
    }
}
