//! Spans as Jaeger's JSON (`model/json` of jaegertracing/jaeger), with the
//! OTLP-to-Jaeger translation: span kind, status and scope become tags
//! (`Span::derived_tags`), the parent becomes a `CHILD_OF` reference and
//! links `FOLLOWS_FROM`, events become logs (their name as the `event`
//! field), the resource becomes the process (`serviceName` plus its other
//! attributes as tags). Times are microseconds.

use serde_json::{Value as Json, json};

use crate::traces::model::{Attributes, Span, TraceId, Value, hex};

/// Jaeger prints a trace id without its high half when that is zero.
pub fn trace_id(id: &TraceId) -> String {
    if id[..8].iter().all(|b| *b == 0) {
        hex(&id[8..])
    } else {
        hex(id)
    }
}

fn tag(key: &str, v: &Value) -> Json {
    let (ty, value) = match v {
        Value::Str(s) => ("string", json!(s)),
        Value::Bool(b) => ("bool", json!(b)),
        Value::Int(i) => ("int64", json!(i)),
        Value::Double(d) => ("float64", json!(d)),
        Value::Bytes(b) => ("binary", json!(base64(b))),
    };
    json!({"key": key, "type": ty, "value": value})
}

fn tags(attrs: &Attributes) -> Vec<Json> {
    attrs.iter().map(|(k, v)| tag(k, v)).collect()
}

/// One trace: spans in the order given, processes numbered `p1`, `p2`, ...
/// in order of first appearance.
pub fn trace(spans: &[Span]) -> Json {
    let id = spans
        .first()
        .map(|s| trace_id(&s.trace_id))
        .unwrap_or_default();
    let mut processes: Vec<(&str, &Attributes)> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let key = (s.resource.service.as_str(), &s.resource.attributes);
        let pid = match processes.iter().position(|p| *p == key) {
            Some(i) => i + 1,
            None => {
                processes.push(key);
                processes.len()
            }
        };
        out.push(span(s, &format!("p{pid}")));
    }
    let procs: serde_json::Map<String, Json> = processes
        .iter()
        .enumerate()
        .map(|(i, (service, attrs))| {
            (
                format!("p{}", i + 1),
                json!({"serviceName": service, "tags": tags(attrs)}),
            )
        })
        .collect();
    json!({"traceID": id, "spans": out, "processes": procs, "warnings": null})
}

fn span(s: &Span, pid: &str) -> Json {
    let tid = trace_id(&s.trace_id);
    let mut refs = Vec::new();
    if let Some(p) = &s.parent_span_id {
        refs.push(json!({"refType": "CHILD_OF", "traceID": tid, "spanID": hex(p)}));
    }
    for l in &s.links {
        refs.push(json!({"refType": "FOLLOWS_FROM", "traceID": trace_id(&l.trace_id), "spanID": hex(&l.span_id)}));
    }
    let mut t = tags(&s.attributes);
    t.extend(s.derived_tags().iter().map(|(k, v)| tag(k, v)));
    let logs: Vec<Json> = s
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![tag("event", &Value::Str(e.name.clone()))];
            fields.extend(tags(&e.attributes));
            json!({"timestamp": e.ts_ns.div_euclid(1000), "fields": fields})
        })
        .collect();
    json!({
        "traceID": tid,
        "spanID": hex(&s.span_id),
        "operationName": s.name,
        "references": refs,
        "startTime": s.start_ns.div_euclid(1000),
        "duration": s.duration_ns / 1000,
        "tags": t,
        "logs": logs,
        "processID": pid,
        "warnings": null,
        "flags": s.flags,
    })
}

/// Standard base64 with padding, as Go encodes `[]byte` in JSON.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[1, 2, 3, 4]), "AQIDBA==");
    }

    #[test]
    fn short_ids_drop_the_zero_high_half() {
        let mut id = [0u8; 16];
        id[15] = 0xab;
        assert_eq!(trace_id(&id), "00000000000000ab");
        assert_eq!(trace_id(&[1; 16]), "01010101010101010101010101010101");
    }
}
