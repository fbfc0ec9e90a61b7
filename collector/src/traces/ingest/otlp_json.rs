//! OTLP/HTTP JSON traces (`application/json`) -> `ExportTraceServiceRequest`,
//! with the field rules and helpers of the metric path
//! ([`crate::ingest::otlp_json`]): lowerCamelCase or proto names, 64-bit
//! integers as numbers or strings, enums as integers or names. Trace and span
//! ids are hex strings, as the OTLP JSON encoding says (not base64).

use super::otlp::{SPAN_KINDS, STATUS_CODES};
use crate::ingest::otlp_json::{
    Obj, as_obj, attributes, dropped_attributes_count, enum_field, get, hex_field, list, request,
    resource, string, u32_field, u64_field,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::InstrumentationScope,
    trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status,
        span::{Event, Link},
    },
};

/// Parses an OTLP JSON traces export request; errors name the field's path,
/// e.g. `resourceSpans[0].scopeSpans[0].spans[3].spanId`.
pub fn decode(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    Ok(ExportTraceServiceRequest {
        resource_spans: request(body, "resourceSpans", "resource_spans", resource_spans)?,
    })
}

fn resource_spans(o: &Obj, path: &str) -> Result<ResourceSpans, String> {
    Ok(ResourceSpans {
        resource: resource(o, path)?,
        scope_spans: list(
            o,
            "scopeSpans",
            "scope_spans",
            &format!("{path}.scopeSpans"),
            scope_spans,
        )?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
    })
}

fn scope_spans(o: &Obj, path: &str) -> Result<ScopeSpans, String> {
    let scope = match get(o, "scope", "scope") {
        None => None,
        Some(v) => {
            let p = format!("{path}.scope");
            let s = as_obj(v, &p)?;
            Some(InstrumentationScope {
                name: string(s, "name", "name", &p)?,
                version: string(s, "version", "version", &p)?,
                ..Default::default()
            })
        }
    };
    Ok(ScopeSpans {
        scope,
        spans: list(o, "spans", "spans", &format!("{path}.spans"), span)?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
    })
}

fn span(o: &Obj, path: &str) -> Result<Span, String> {
    let status = match get(o, "status", "status") {
        None => None,
        Some(v) => {
            let p = format!("{path}.status");
            let s = as_obj(v, &p)?;
            Some(Status {
                message: string(s, "message", "message", &p)?,
                code: enum_field(s, "code", "code", &p, &STATUS_CODES)?,
            })
        }
    };
    Ok(Span {
        trace_id: hex_field(o, "traceId", "trace_id", path, 16)?,
        span_id: hex_field(o, "spanId", "span_id", path, 8)?,
        trace_state: string(o, "traceState", "trace_state", path)?,
        parent_span_id: hex_field(o, "parentSpanId", "parent_span_id", path, 8)?,
        flags: u32_field(o, "flags", "flags", path)?,
        name: string(o, "name", "name", path)?,
        kind: enum_field(o, "kind", "kind", path, &SPAN_KINDS)?,
        start_time_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano", path)?,
        end_time_unix_nano: u64_field(o, "endTimeUnixNano", "end_time_unix_nano", path)?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
        events: list(o, "events", "events", &format!("{path}.events"), event)?,
        dropped_events_count: u32_field(o, "droppedEventsCount", "dropped_events_count", path)?,
        links: list(o, "links", "links", &format!("{path}.links"), link)?,
        dropped_links_count: u32_field(o, "droppedLinksCount", "dropped_links_count", path)?,
        status,
    })
}

fn event(o: &Obj, path: &str) -> Result<Event, String> {
    Ok(Event {
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano", path)?,
        name: string(o, "name", "name", path)?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
    })
}

fn link(o: &Obj, path: &str) -> Result<Link, String> {
    Ok(Link {
        trace_id: hex_field(o, "traceId", "trace_id", path, 16)?,
        span_id: hex_field(o, "spanId", "span_id", path, 8)?,
        trace_state: string(o, "traceState", "trace_state", path)?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
        flags: u32_field(o, "flags", "flags", path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_spans_with_hex_ids_string_ints_and_enum_names() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},
          "scopeSpans":[{"scope":{"name":"lib","version":"1"},"spans":[
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"",
             "name":"GET /","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1700000000000000000",
             "endTimeUnixNano":1700000000000001000,"status":{"code":"STATUS_CODE_ERROR","message":"x"},
             "attributes":[{"key":"n","value":{"intValue":"5"}}],
             "events":[{"timeUnixNano":"1700000000000000500","name":"e"}],
             "links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175"}]}]}]}]}"#;
        let req = decode(body).unwrap();
        let ss = &req.resource_spans[0].scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "lib");
        let s = &ss.spans[0];
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(
            s.span_id,
            vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert!(s.parent_span_id.is_empty());
        assert_eq!((s.kind, s.status.as_ref().unwrap().code), (2, 2));
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 1000);
        assert_eq!(s.events[0].name, "e");
        assert_eq!(s.links[0].span_id.len(), 8);
    }

    #[test]
    fn errors_name_the_field_path() {
        for (body, want) in [
            (&b"[1"[..], "invalid JSON"),
            (br#"{"resourceSpans":{}}"#, "resourceSpans: want an array"),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"zz"}]}]}]}"#,
                "resourceSpans[0].scopeSpans[0].spans[0].spanId: want 16 hex digits",
            ),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_WEIRD"}]}]}]}"#,
                "spans[0].kind: unknown value",
            ),
        ] {
            let e = decode(body).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
    }
}
