//! Loki's JSON push body:
//! `{"streams":[{"stream":{"app":"x"},"values":[["<unix ns>","line"],["<ns>","line",{"trace_id":"..."}]]}]}`.
//! Timestamps are decimal strings of nanoseconds, the optional third element
//! is structured metadata (string values). Anything else is refused with the
//! path of the offending field.

use serde_json::Value;

use crate::{
    logs::model::{LogEntry, StreamEntries},
    model::Labels,
};

pub fn decode(body: &[u8]) -> Result<Vec<StreamEntries>, String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let streams = root
        .as_object()
        .ok_or("the body must be a JSON object with \"streams\"")?
        .get("streams")
        .ok_or("missing \"streams\"")?
        .as_array()
        .ok_or("\"streams\" must be an array")?;
    streams
        .iter()
        .enumerate()
        .map(|(i, s)| stream(s, &format!("streams[{i}]")))
        .collect()
}

fn stream(v: &Value, path: &str) -> Result<StreamEntries, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("{path}: want an object"))?;
    let labels = o
        .get("stream")
        .ok_or_else(|| format!("{path}: missing \"stream\" (the label set)"))?
        .as_object()
        .ok_or_else(|| format!("{path}.stream: want an object of label names to values"))?
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!("{path}.stream.{k}: label values must be strings")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let values = match o.get("values") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(format!("{path}.values: want an array")),
    };
    let entries = values
        .iter()
        .enumerate()
        .map(|(i, v)| entry(v, &format!("{path}.values[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(StreamEntries {
        labels: Labels::new(labels),
        entries,
    })
}

fn entry(v: &Value, path: &str) -> Result<LogEntry, String> {
    let a = match v.as_array() {
        Some(a) if (2..=3).contains(&a.len()) => a,
        _ => {
            return Err(format!(
                "{path}: want [\"<unix ns>\", \"<line>\"] or [\"<unix ns>\", \"<line>\", {{metadata}}]"
            ));
        }
    };
    let ts_ns = match &a[0] {
        Value::String(s) => parse_ns(s).ok_or_else(|| {
            format!("{path}[0]: timestamp {s:?} is not a whole number of Unix nanoseconds")
        })?,
        other => {
            return Err(format!(
                "{path}[0]: timestamp must be a string of Unix nanoseconds, got {other}"
            ));
        }
    };
    let line = a[1]
        .as_str()
        .ok_or_else(|| format!("{path}[1]: the log line must be a string"))?
        .to_string();
    let metadata = match a.get(2) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => {
            let mut md = m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(format!(
                        "{path}[2].{k}: structured metadata values must be strings"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            md.sort();
            md
        }
        Some(_) => return Err(format!("{path}[2]: structured metadata must be an object")),
    };
    Ok(LogEntry {
        ts_ns,
        line,
        metadata,
    })
}

/// Non-negative decimal nanoseconds that fit an i64.
fn parse_ns(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_streams_values_and_metadata() {
        let body = br#"{"streams":[{"stream":{"app":"a","env":"prod"},"values":[
            ["1700000000000000001","first"],
            ["1700000000000000002","second",{"trace_id":"abc","a":"1"}]]},
            {"stream":{"app":"b"},"values":[]}]}"#;
        let s = decode(body).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].labels,
            Labels::from_pairs([("app", "a"), ("env", "prod")])
        );
        assert_eq!(
            s[0].entries,
            vec![
                LogEntry {
                    ts_ns: 1_700_000_000_000_000_001,
                    line: "first".into(),
                    metadata: vec![]
                },
                LogEntry {
                    ts_ns: 1_700_000_000_000_000_002,
                    line: "second".into(),
                    metadata: vec![("a".into(), "1".into()), ("trace_id".into(), "abc".into())]
                }
            ]
        );
        assert!(s[1].entries.is_empty());
    }

    #[test]
    fn refuses_malformed_bodies_naming_the_field() {
        for (body, want) in [
            (&b"{nope"[..], "invalid JSON"),
            (b"[]", "JSON object"),
            (b"{}", "missing \"streams\""),
            (br#"{"streams":{}}"#, "must be an array"),
            (
                br#"{"streams":[{"values":[]}]}"#,
                "streams[0]: missing \"stream\"",
            ),
            (
                br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
                "streams[0].stream.a",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["x1","l"]]}]}"#,
                "streams[0].values[0][0]: timestamp \"x1\"",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"l"]]}]}"#,
                "streams[0].values[0][0]: timestamp must be a string",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["-5","l"]]}]}"#,
                "timestamp \"-5\"",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["99999999999999999999","l"]]}]}"#,
                "not a whole number",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["1",2]]}]}"#,
                "values[0][1]",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
                "values[0]: want",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["1","l",{"k":2}]]}]}"#,
                "values[0][2].k",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["1","l","m"]]}]}"#,
                "metadata must be an object",
            ),
        ] {
            let e = decode(body).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
    }
}
