//! The span batch encoding shared by WAL records and segment blocks
//! (FORMAT.md, "Span batch"): a resource table and a scope table, then the
//! spans, each naming its resource and scope by index, so spans of one
//! process do not repeat its attributes.

use std::sync::Arc;

use crate::{
    store::tsdb::encoding::{DResult, Reader, put_str, put_uvarint, put_varint},
    traces::model::{Attributes, Event, Link, Resource, Scope, Span, SpanKind, StatusCode, Value},
};

const T_STR: u8 = 0;
const T_BOOL: u8 = 1;
const T_INT: u8 = 2;
const T_DOUBLE: u8 = 3;
const T_BYTES: u8 = 4;

/// Appends the encoded batch to `out`.
pub fn encode_spans<'a>(spans: impl IntoIterator<Item = &'a Span> + Clone, out: &mut Vec<u8>) {
    // Tables by pointer: spans of one OTLP resource share its Arc.
    let mut resources: Vec<&Arc<Resource>> = Vec::new();
    let mut scopes: Vec<&Arc<Scope>> = Vec::new();
    let mut refs: Vec<(usize, usize)> = Vec::new();
    let mut n = 0usize;
    for s in spans.clone() {
        let r = match resources.iter().rposition(|r| Arc::ptr_eq(r, &s.resource)) {
            Some(i) => i,
            None => {
                resources.push(&s.resource);
                resources.len() - 1
            }
        };
        let c = match scopes.iter().rposition(|c| Arc::ptr_eq(c, &s.scope)) {
            Some(i) => i,
            None => {
                scopes.push(&s.scope);
                scopes.len() - 1
            }
        };
        refs.push((r, c));
        n += 1;
    }
    put_uvarint(out, resources.len() as u64);
    for r in &resources {
        put_str(out, &r.service);
        put_attrs(out, &r.attributes);
    }
    put_uvarint(out, scopes.len() as u64);
    for c in &scopes {
        put_str(out, &c.name);
        put_str(out, &c.version);
    }
    put_uvarint(out, n as u64);
    for (s, (r, c)) in spans.into_iter().zip(refs) {
        put_uvarint(out, r as u64);
        put_uvarint(out, c as u64);
        out.extend_from_slice(&s.trace_id);
        out.extend_from_slice(&s.span_id);
        out.extend_from_slice(&s.parent_span_id.unwrap_or([0; 8]));
        put_str(out, &s.name);
        out.push(s.kind as u8);
        put_varint(out, s.start_ns);
        put_uvarint(out, s.duration_ns);
        out.push(s.status as u8);
        put_str(out, &s.status_message);
        put_uvarint(out, u64::from(s.flags));
        put_str(out, &s.trace_state);
        put_attrs(out, &s.attributes);
        put_uvarint(out, s.events.len() as u64);
        for e in &s.events {
            put_varint(out, e.ts_ns.wrapping_sub(s.start_ns));
            put_str(out, &e.name);
            put_attrs(out, &e.attributes);
        }
        put_uvarint(out, s.links.len() as u64);
        for l in &s.links {
            out.extend_from_slice(&l.trace_id);
            out.extend_from_slice(&l.span_id);
            put_str(out, &l.trace_state);
            put_attrs(out, &l.attributes);
        }
    }
}

fn put_attrs(out: &mut Vec<u8>, attrs: &Attributes) {
    put_uvarint(out, attrs.len() as u64);
    for (k, v) in attrs {
        put_str(out, k);
        match v {
            Value::Str(s) => {
                out.push(T_STR);
                put_str(out, s);
            }
            Value::Bool(b) => {
                out.push(T_BOOL);
                out.push(u8::from(*b));
            }
            Value::Int(i) => {
                out.push(T_INT);
                put_varint(out, *i);
            }
            Value::Double(d) => {
                out.push(T_DOUBLE);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Value::Bytes(b) => {
                out.push(T_BYTES);
                put_uvarint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
        }
    }
}

/// Decodes one batch from the reader (which may hold more after it).
pub fn decode_spans(r: &mut Reader<'_>) -> DResult<Vec<Span>> {
    // Every count is bounded by the bytes left, so garbage cannot make us
    // reserve huge vectors.
    let nr = r.len(r.remaining())?;
    let mut resources = Vec::with_capacity(nr);
    for _ in 0..nr {
        let service = r.str()?.to_string();
        let attributes = get_attrs(r)?;
        resources.push(Arc::new(Resource {
            service,
            attributes,
        }));
    }
    let ns = r.len(r.remaining())?;
    let mut scopes = Vec::with_capacity(ns);
    for _ in 0..ns {
        let name = r.str()?.to_string();
        let version = r.str()?.to_string();
        scopes.push(Arc::new(Scope { name, version }));
    }
    let n = r.len(r.remaining())?;
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        let ri = r.uvarint()? as usize;
        let ci = r.uvarint()? as usize;
        let (Some(resource), Some(scope)) = (resources.get(ri), scopes.get(ci)) else {
            return r.err(format!(
                "span names resource {ri} or scope {ci}, not in the tables"
            ));
        };
        let trace_id = id::<16>(r)?;
        let span_id = id::<8>(r)?;
        let parent = id::<8>(r)?;
        let name = r.str()?.to_string();
        let kind = SpanKind::from_u8(r.u8()?);
        let start_ns = r.varint()?;
        let duration_ns = r.uvarint()?;
        let status = StatusCode::from_u8(r.u8()?);
        let status_message = r.str()?.to_string();
        let flags = u32::try_from(r.uvarint()?).unwrap_or(0);
        let trace_state = r.str()?.to_string();
        let attributes = get_attrs(r)?;
        let ne = r.len(r.remaining())?;
        let mut events = Vec::with_capacity(ne);
        for _ in 0..ne {
            let ts_ns = start_ns.wrapping_add(r.varint()?);
            let name = r.str()?.to_string();
            let attributes = get_attrs(r)?;
            events.push(Event {
                ts_ns,
                name,
                attributes,
            });
        }
        let nl = r.len(r.remaining())?;
        let mut links = Vec::with_capacity(nl);
        for _ in 0..nl {
            let trace_id = id::<16>(r)?;
            let span_id = id::<8>(r)?;
            let trace_state = r.str()?.to_string();
            let attributes = get_attrs(r)?;
            links.push(Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
            });
        }
        spans.push(Span {
            trace_id,
            span_id,
            parent_span_id: (parent != [0; 8]).then_some(parent),
            resource: resource.clone(),
            scope: scope.clone(),
            name,
            kind,
            start_ns,
            duration_ns,
            status,
            status_message,
            flags,
            trace_state,
            attributes,
            events,
            links,
        });
    }
    Ok(spans)
}

fn id<const N: usize>(r: &mut Reader<'_>) -> DResult<[u8; N]> {
    let b = r.bytes(N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    Ok(out)
}

fn get_attrs(r: &mut Reader<'_>) -> DResult<Attributes> {
    let n = r.len(r.remaining())?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.str()?.to_string();
        let v = match r.u8()? {
            T_STR => Value::Str(r.str()?.to_string()),
            T_BOOL => Value::Bool(r.u8()? != 0),
            T_INT => Value::Int(r.varint()?),
            T_DOUBLE => Value::Double(f64::from_le_bytes(r.bytes(8)?.try_into().unwrap_or([0; 8]))),
            T_BYTES => Value::Bytes(r.len_bytes()?.to_vec()),
            t => return r.err(format!("unknown attribute type {t}")),
        };
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A span with every field set, for round-trip tests here and in the store's.
    pub fn sample_span(trace: u8, span: u8, parent: Option<u8>, service: &str) -> Span {
        let resource = Arc::new(Resource {
            service: service.into(),
            attributes: vec![
                ("k8s.pod.name".into(), Value::Str("web-1".into())),
                ("k8s.namespace.name".into(), Value::Str("prod".into())),
            ],
        });
        Span {
            trace_id: [trace; 16],
            span_id: [span; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            resource,
            scope: Arc::new(Scope {
                name: "lib".into(),
                version: "1.0".into(),
            }),
            name: format!("op-{span}"),
            kind: SpanKind::Server,
            start_ns: 1_700_000_000_000_000_000 + i64::from(span) * 1000,
            duration_ns: 5_000_000,
            status: StatusCode::Error,
            status_message: "boom".into(),
            flags: 1,
            trace_state: "k=v".into(),
            attributes: vec![
                ("http.method".into(), Value::Str("GET".into())),
                ("http.status_code".into(), Value::Int(500)),
                ("retry".into(), Value::Bool(true)),
                ("ratio".into(), Value::Double(0.5)),
                ("raw".into(), Value::Bytes(vec![1, 2, 3])),
            ],
            events: vec![Event {
                ts_ns: 1_700_000_000_000_000_500,
                name: "exception".into(),
                attributes: vec![("exception.message".into(), Value::Str("x".into()))],
            }],
            links: vec![Link {
                trace_id: [9; 16],
                span_id: [8; 8],
                trace_state: String::new(),
                attributes: vec![],
            }],
        }
    }

    #[test]
    fn batches_round_trip_and_share_resources() {
        let a = sample_span(1, 1, None, "web");
        let mut b = sample_span(1, 2, Some(1), "web");
        b.resource = a.resource.clone();
        let c = sample_span(2, 3, None, "db");
        let spans = vec![a, b, c];
        let mut buf = Vec::new();
        encode_spans(&spans, &mut buf);
        let mut r = Reader::new(&buf);
        let back = decode_spans(&mut r).unwrap();
        assert!(r.is_empty());
        assert_eq!(back, spans);
        assert!(Arc::ptr_eq(&back[0].resource, &back[1].resource));
        assert!(!Arc::ptr_eq(&back[0].resource, &back[2].resource));
    }

    #[test]
    fn truncated_batches_fail_to_decode() {
        let spans = vec![sample_span(1, 1, None, "web")];
        let mut buf = Vec::new();
        encode_spans(&spans, &mut buf);
        for cut in [1, buf.len() / 2, buf.len() - 1] {
            assert!(
                decode_spans(&mut Reader::new(&buf[..cut])).is_err(),
                "cut {cut}"
            );
        }
    }
}
