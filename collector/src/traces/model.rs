//! A span as stored: what OTLP sends, less what Jaeger cannot show, with the
//! resource and instrumentation scope shared between the spans of one batch.

use std::sync::Arc;

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// An attribute value. OTLP arrays and maps are kept as their JSON text, as
/// the OTLP-to-Jaeger translation shows them (Jaeger tags are scalars).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
}

impl Value {
    /// The text a tag filter compares against (`tags={"http.status_code":"500"}`).
    pub fn as_text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Bytes(b) => hex(b),
        }
    }
}

pub type Attributes = Vec<(String, Value)>;

/// The process that sent the spans: `service.name` and the other resource attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub service: String,
    /// Resource attributes other than `service.name`.
    pub attributes: Attributes,
}

/// The instrumentation scope (library) that made the span; empty when not sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum SpanKind {
    #[default]
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_u8(v: u8) -> SpanKind {
        match v {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// Jaeger's `span.kind` tag value (none for unspecified).
    pub fn jaeger_name(self) -> Option<&'static str> {
        match self {
            SpanKind::Unspecified => None,
            SpanKind::Internal => Some("internal"),
            SpanKind::Server => Some("server"),
            SpanKind::Client => Some("client"),
            SpanKind::Producer => Some("producer"),
            SpanKind::Consumer => Some("consumer"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum StatusCode {
    #[default]
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    pub fn from_u8(v: u8) -> StatusCode {
        match v {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub ts_ns: i64,
    pub name: String,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// None for a root span.
    pub parent_span_id: Option<SpanId>,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
    /// The operation name.
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: i64,
    pub duration_ns: u64,
    pub status: StatusCode,
    pub status_message: String,
    /// W3C trace flags (the low byte of OTLP's `flags`).
    pub flags: u32,
    pub trace_state: String,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
}

impl Span {
    pub fn end_ns(&self) -> i64 {
        self.start_ns
            .saturating_add(i64::try_from(self.duration_ns).unwrap_or(i64::MAX))
    }

    /// The tags Jaeger shows for OTLP fields that are not attributes, as
    /// the OTLP-to-Jaeger translation names them: `span.kind`,
    /// `otel.status_code`, `error` (true for an error status),
    /// `otel.status_description`, `otel.scope.name`/`version`, `w3c.tracestate`.
    pub fn derived_tags(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if let Some(k) = self.kind.jaeger_name() {
            out.push(("span.kind", Value::Str(k.into())));
        }
        match self.status {
            StatusCode::Unset => {}
            StatusCode::Ok => out.push(("otel.status_code", Value::Str("OK".into()))),
            StatusCode::Error => {
                out.push(("otel.status_code", Value::Str("ERROR".into())));
                out.push(("error", Value::Bool(true)));
            }
        }
        if !self.status_message.is_empty() {
            out.push((
                "otel.status_description",
                Value::Str(self.status_message.clone()),
            ));
        }
        if !self.scope.name.is_empty() {
            out.push(("otel.scope.name", Value::Str(self.scope.name.clone())));
        }
        if !self.scope.version.is_empty() {
            out.push(("otel.scope.version", Value::Str(self.scope.version.clone())));
        }
        if !self.trace_state.is_empty() {
            out.push(("w3c.tracestate", Value::Str(self.trace_state.clone())));
        }
        out
    }

    /// About how many bytes the span takes in memory (head size accounting).
    pub fn approx_bytes(&self) -> u64 {
        let attrs =
            |a: &Attributes| -> usize { a.iter().map(|(k, v)| k.len() + value_len(v) + 8).sum() };
        let n = 96
            + self.name.len()
            + self.status_message.len()
            + self.trace_state.len()
            + attrs(&self.attributes)
            + self
                .events
                .iter()
                .map(|e| 16 + e.name.len() + attrs(&e.attributes))
                .sum::<usize>()
            + self
                .links
                .iter()
                .map(|l| 32 + l.trace_state.len() + attrs(&l.attributes))
                .sum::<usize>();
        n as u64
    }
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}

/// Lowercase hex, as Jaeger and OTLP/JSON write ids.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// Parses a trace id as Jaeger accepts it: up to 32 hex digits (shorter ids
/// are left-padded with zeros, as 64-bit Jaeger ids are).
pub fn parse_trace_id(s: &str) -> Option<TraceId> {
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{s:0>32}");
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_round_trip_and_short_ids_pad() {
        let id = parse_trace_id("5b8efff798038103d269b633813fc60c").unwrap();
        assert_eq!(hex(&id), "5b8efff798038103d269b633813fc60c");
        let short = parse_trace_id("abc").unwrap();
        assert_eq!(hex(&short), "00000000000000000000000000000abc");
        for bad in ["", "xyz", &"a".repeat(33)] {
            assert_eq!(parse_trace_id(bad), None, "{bad}");
        }
    }
}
