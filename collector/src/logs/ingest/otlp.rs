//! OTLP logs -> streams, as the project's logs contract says:
//! - resource attributes become labels: `k8s.namespace.name` -> `namespace`,
//!   `k8s.pod.name` -> `pod`, `k8s.container.name` -> `container`,
//!   `k8s.node.name` -> `node`, `service.name` -> `service_name`; other names
//!   have every character outside `[a-zA-Z0-9_]` replaced by `_`;
//! - the record attribute `log.iostream` becomes the label `stream`; other
//!   record attributes, `trace_id`/`span_id` (hex) and `severity_text` become
//!   structured metadata;
//! - the timestamp is `time_unix_nano`, else `observed_time_unix_nano`, else now;
//! - a string body is the line as-is, any other body its JSON text.

use std::collections::HashMap;

use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
    logs::v1::LogRecord,
};
use serde_json::Value as Json;

use crate::{
    logs::model::{LogEntry, StreamEntries},
    model::Labels,
};

const RENAMES: [(&str, &str); 5] = [
    ("k8s.namespace.name", "namespace"),
    ("k8s.pod.name", "pod"),
    ("k8s.container.name", "container"),
    ("k8s.node.name", "node"),
    ("service.name", "service_name"),
];

/// Maps a request into streams (records with the same label set share one).
/// `now_ns` stamps records without any timestamp. The only refusal is a
/// timestamp beyond what an i64 of nanoseconds holds (year 2262).
pub fn map_request(
    req: ExportLogsServiceRequest,
    now_ns: i64,
) -> Result<Vec<StreamEntries>, String> {
    let mut out: Vec<StreamEntries> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (i, rl) in req.resource_logs.into_iter().enumerate() {
        let resource: Vec<(String, String)> = rl
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default()
            .iter()
            .filter_map(|kv| {
                let name = RENAMES
                    .iter()
                    .find(|(from, _)| *from == kv.key)
                    .map(|(_, to)| to.to_string())
                    .or_else(|| sanitize_name(&kv.key))?;
                Some((name, any_to_text(kv.value.as_ref())))
            })
            .collect();
        // The streams this resource's records went to, by `log.iostream` value
        // (usually two): labels are built and hashed once per stream, not per record.
        let mut seen: Vec<(Option<String>, usize)> = Vec::new();
        for (j, sl) in rl.scope_logs.into_iter().enumerate() {
            for (k, record) in sl.log_records.into_iter().enumerate() {
                let (stream, entry) = map_record(record, now_ns).map_err(|e| {
                    format!("resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]: {e}")
                })?;
                let at = match seen.iter().find(|(s, _)| *s == stream) {
                    Some((_, at)) => *at,
                    None => {
                        let mut pairs = resource.clone();
                        if let Some(s) = stream.clone() {
                            pairs.push(("stream".into(), s));
                        }
                        let labels = Labels::new(pairs);
                        let at = *index.entry(labels.clone()).or_insert_with(|| {
                            out.push(StreamEntries {
                                labels,
                                entries: Vec::new(),
                            });
                            out.len() - 1
                        });
                        seen.push((stream, at));
                        at
                    }
                };
                out[at].entries.push(entry);
            }
        }
    }
    Ok(out)
}

/// The record's `log.iostream` value (the `stream` label) and its entry.
fn map_record(r: LogRecord, now_ns: i64) -> Result<(Option<String>, LogEntry), String> {
    let ts = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    let ts_ns = match ts {
        0 => now_ns,
        t => i64::try_from(t)
            .map_err(|_| format!("timestamp {t} ns is out of range (after year 2262)"))?,
    };
    let mut stream = None;
    // Grown only when needed: most records carry no metadata at all.
    let mut metadata: Vec<(String, String)> = Vec::new();
    for KeyValue { key, value } in r.attributes {
        if key == "log.iostream" {
            // Moved out, not copied: this runs for every line.
            stream = Some(match value {
                Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s)),
                }) => s,
                other => any_to_text(other.as_ref()),
            });
        } else if let Some(name) = sanitize_name(&key) {
            metadata.push((name, any_to_text(value.as_ref())));
        }
    }
    if !r.trace_id.is_empty() {
        metadata.push(("trace_id".into(), hex(&r.trace_id)));
    }
    if !r.span_id.is_empty() {
        metadata.push(("span_id".into(), hex(&r.span_id)));
    }
    if !r.severity_text.is_empty() {
        metadata.push(("severity_text".into(), r.severity_text));
    }
    metadata.retain(|(_, v)| !v.is_empty());
    metadata.sort();
    // A later duplicate name (two attributes sanitized alike) would be ambiguous; keep the first.
    metadata.dedup_by(|later, earlier| later.0 == earlier.0);
    // The record is ours: a string body moves into the entry, uncopied.
    let line = match r.body {
        None | Some(AnyValue { value: None }) => String::new(),
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        }) => s,
        Some(other) => any_to_json(&other).to_string(),
    };
    Ok((
        stream,
        LogEntry {
            ts_ns,
            line,
            metadata,
        },
    ))
}

/// A label name from an attribute key: characters outside `[a-zA-Z0-9_]`
/// become `_`, a leading digit gets a `_` prefix; `None` for an empty key.
fn sanitize_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    Some(s)
}

/// A label or metadata value: strings as-is, scalars as text, arrays and
/// maps as JSON, bytes as hex.
fn any_to_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(_) => v.map(any_to_json).unwrap_or(Json::Null).to_string(),
    }
}

/// An AnyValue as JSON: the natural JSON type for each kind, bytes as hex,
/// non-finite doubles as strings (JSON has no NaN).
/// An attribute value as JSON (arrays and maps nested). Shared with the trace path.
pub(crate) fn any_to_json(v: &AnyValue) -> Json {
    match &v.value {
        None => Json::Null,
        Some(any_value::Value::StringValue(s)) => Json::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Json::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Json::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(crate::model::format_float(*d))),
        Some(any_value::Value::BytesValue(b)) => Json::String(hex(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            Json::Array(a.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Json::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map(any_to_json).unwrap_or(Json::Null),
                    )
                })
                .collect(),
        ),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        common::v1::{ArrayValue, KeyValueList},
        logs::v1::{ResourceLogs, ScopeLogs},
        resource::v1::Resource,
    };

    use super::*;

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        })
    }

    fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v,
        }
    }

    fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn maps_the_agents_records_as_the_contract_says() {
        let resource = vec![
            kv("k8s.namespace.name", s("ns")),
            kv("k8s.pod.name", s("p")),
            kv("k8s.container.name", s("c")),
            kv("k8s.node.name", s("n1")),
            kv("service.name", s("svc")),
            kv("cloud.region", s("eu-1")),
            kv("9lives", s("x")),
        ];
        let rec = |t: u64, obs: u64, stream: &str, body: &str| LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: obs,
            body: s(body),
            attributes: vec![kv("log.iostream", s(stream))],
            ..Default::default()
        };
        let mut traced = rec(0, 7, "stdout", "b");
        traced.trace_id = vec![0xab, 0x01];
        traced.span_id = vec![0x0f];
        traced.severity_text = "WARN".into();
        traced.attributes.push(kv("http.method", s("GET")));
        let req = request(
            resource,
            vec![
                rec(5, 6, "stdout", "a"),
                rec(9, 0, "stderr", "e"),
                traced,
                rec(0, 0, "stdout", "now"),
            ],
        );
        let streams = map_request(req, 1234).unwrap();
        assert_eq!(streams.len(), 2);
        let base = [
            ("namespace", "ns"),
            ("pod", "p"),
            ("container", "c"),
            ("node", "n1"),
            ("service_name", "svc"),
            ("cloud_region", "eu-1"),
            ("_9lives", "x"),
        ];
        let with = |stream: &str| {
            let mut l: Vec<(&str, &str)> = base.to_vec();
            l.push(("stream", stream));
            Labels::from_pairs(l)
        };
        assert_eq!(streams[0].labels, with("stdout"));
        assert_eq!(streams[1].labels, with("stderr"));
        let out = &streams[0].entries;
        assert_eq!(
            out.iter()
                .map(|e| (e.ts_ns, e.line.as_str()))
                .collect::<Vec<_>>(),
            vec![(5, "a"), (7, "b"), (1234, "now")]
        );
        assert_eq!(
            out[1].metadata,
            vec![
                ("http_method".to_string(), "GET".to_string()),
                ("severity_text".into(), "WARN".into()),
                ("span_id".into(), "0f".into()),
                ("trace_id".into(), "ab01".into()),
            ]
        );
        assert_eq!(streams[1].entries[0].ts_ns, 9);
    }

    #[test]
    fn non_string_bodies_are_json_text() {
        let body = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("msg", s("hi")),
                    kv(
                        "n",
                        Some(AnyValue {
                            value: Some(any_value::Value::IntValue(3)),
                        }),
                    ),
                    kv(
                        "l",
                        Some(AnyValue {
                            value: Some(any_value::Value::ArrayValue(ArrayValue {
                                values: vec![AnyValue {
                                    value: Some(any_value::Value::DoubleValue(1.5)),
                                }],
                            })),
                        }),
                    ),
                ],
            })),
        };
        let req = request(
            vec![kv("a", s("b"))],
            vec![LogRecord {
                time_unix_nano: 1,
                body: Some(body),
                ..Default::default()
            }],
        );
        let streams = map_request(req, 0).unwrap();
        assert_eq!(
            streams[0].entries[0].line,
            r#"{"msg":"hi","n":3,"l":[1.5]}"#
        );
    }

    #[test]
    fn refuses_timestamps_past_2262() {
        let req = request(
            vec![kv("a", s("b"))],
            vec![LogRecord {
                time_unix_nano: u64::MAX,
                ..Default::default()
            }],
        );
        let e = map_request(req, 0).unwrap_err();
        assert!(
            e.starts_with("resourceLogs[0].scopeLogs[0].logRecords[0]: timestamp"),
            "{e}"
        );
    }
}
