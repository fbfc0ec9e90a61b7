//! One kernel-seen HTTP exchange -> one OTLP span, with OpenTelemetry's HTTP
//! semantic-convention attributes; spans of one process share a resource that
//! names its pod and container.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode},
};
use sonde_probe_abi::{HTTP_CLIENT, HttpEvent, Peer};

use super::head::{self, Request};
use crate::enrich::workloads::Workload;

/// The instrumentation scope of every span the probe builds.
pub const SCOPE: &str = "sonde-agent/ebpf-http";

/// Why an event became no span.
#[derive(Debug, PartialEq, Eq)]
pub enum Unusable {
    /// The kept request head is not an HTTP/1.x request.
    Request,
    /// The response does not start with an HTTP/1.x status line.
    Status,
}

/// An exchange, its times already in Unix nanoseconds.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub client: bool,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub peer: Option<(IpAddr, u16)>,
    pub head: &'a [u8],
    pub response: &'a [u8],
}

impl<'a> Exchange<'a> {
    /// `offset_ns` turns the kernel's monotonic clock into Unix time.
    pub fn from_event(ev: &'a HttpEvent, offset_ns: i64) -> Exchange<'a> {
        let unix = |ns: u64| (ns as i64).saturating_add(offset_ns).max(0) as u64;
        let len = (ev.head_len as usize).min(ev.head.len());
        Exchange {
            client: ev.side == HTTP_CLIENT,
            start_unix_ns: unix(ev.start_ns),
            end_unix_ns: unix(ev.end_ns).max(unix(ev.start_ns)),
            peer: peer(&ev.peer),
            head: &ev.head[..len],
            response: &ev.response,
        }
    }
}

fn peer(p: &Peer) -> Option<(IpAddr, u16)> {
    let ip = match p.family {
        2 => IpAddr::V4(Ipv4Addr::new(p.addr[0], p.addr[1], p.addr[2], p.addr[3])),
        10 => {
            let v6 = Ipv6Addr::from(p.addr);
            // A v4 client on a dual-stack socket: say it as v4.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, p.port))
}

/// The span of one exchange; ids are random, joined to the request's
/// `traceparent` when it carries a valid one.
pub fn build(x: &Exchange<'_>) -> Result<Span, Unusable> {
    let req = head::parse_request(x.head).ok_or(Unusable::Request)?;
    let status = head::parse_status(x.response).ok_or(Unusable::Status)?;
    let (trace_id, parent, flags) = match req.traceparent {
        Some(tp) => (tp.trace_id, tp.parent_id.to_vec(), u32::from(tp.flags)),
        None => (random_id::<16>(), Vec::new(), 1),
    };
    let error = status >= 500 || (x.client && status >= 400);
    Ok(Span {
        trace_id: trace_id.to_vec(),
        span_id: random_id::<8>().to_vec(),
        parent_span_id: parent,
        flags,
        name: format!("{} {}", req.method, req.path),
        kind: if x.client {
            SpanKind::Client
        } else {
            SpanKind::Server
        } as i32,
        start_time_unix_nano: x.start_unix_ns,
        end_time_unix_nano: x.end_unix_ns,
        attributes: attributes(x, &req, status),
        status: error.then(|| Status {
            code: StatusCode::Error as i32,
            message: String::new(),
        }),
        ..Default::default()
    })
}

fn attributes(x: &Exchange<'_>, req: &Request<'_>, status: u16) -> Vec<KeyValue> {
    let mut out = vec![
        string("http.request.method", req.method),
        string("url.path", req.path),
        int("http.response.status_code", i64::from(status)),
    ];
    if let Some(v) = req.version {
        out.push(string("network.protocol.version", v));
    }
    if let Some((ip, port)) = x.peer {
        let ip = ip.to_string();
        out.push(string("network.peer.address", &ip));
        out.push(int("network.peer.port", i64::from(port)));
        if x.client {
            out.push(string("server.address", &ip));
            out.push(int("server.port", i64::from(port)));
        } else {
            out.push(string("client.address", &ip));
            out.push(int("client.port", i64::from(port)));
        }
    }
    if !x.client {
        // The server's name as the client addressed it.
        if let Some(host) = req.host.map(host_without_port).filter(|h| !h.is_empty()) {
            out.push(string("server.address", host));
        }
    }
    out
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `::1`.
fn host_without_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The resource of one process's spans: the service (container name, else the
/// process's command) and where it runs.
pub fn resource(w: &Workload, comm: &str, tgid: u32) -> Resource {
    let service = if w.container.is_empty() {
        comm
    } else {
        &w.container
    };
    let mut attributes = vec![string("service.name", service)];
    for (key, value) in [
        ("k8s.namespace.name", &w.namespace),
        ("k8s.pod.name", &w.pod),
        ("k8s.container.name", &w.container),
        ("container.id", &w.container_id),
    ] {
        if !value.is_empty() {
            attributes.push(string(key, value));
        }
    }
    attributes.push(int("process.pid", i64::from(tgid)));
    Resource {
        attributes,
        ..Default::default()
    }
}

/// One resource's spans under the probe's scope.
pub fn resource_spans(resource: Resource, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(resource),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: SCOPE.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        id.iter_mut().for_each(|b| *b = fastrand::u8(..));
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

fn string(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
    }
}

fn int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(v)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn exchange<'a>(client: bool, head: &'a [u8], response: &'a [u8]) -> Exchange<'a> {
        Exchange {
            client,
            start_unix_ns: 1_000,
            end_unix_ns: 5_000,
            peer: Some(("10.1.2.3".parse().unwrap(), 40_000)),
            head,
            response,
        }
    }

    #[test]
    fn server_span_joins_the_callers_trace() {
        let head = b"GET /items/7?full=1 HTTP/1.1\r\nHost: shop:8080\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
        let s = build(&exchange(false, head, b"HTTP/1.1 503 Service Unavailable")).unwrap();
        assert_eq!(s.name, "GET /items/7");
        assert_eq!(s.kind, SpanKind::Server as i32);
        assert_eq!(s.trace_id[..2], [0x4b, 0xf9]);
        assert_eq!(
            s.parent_span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(s.span_id.len(), 8);
        assert_ne!(s.span_id, s.parent_span_id);
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (1_000, 5_000)
        );
        assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(
            attr(&s, "http.response.status_code"),
            Some(&Value::IntValue(503))
        );
        assert_eq!(
            attr(&s, "url.path"),
            Some(&Value::StringValue("/items/7".into()))
        );
        assert_eq!(
            attr(&s, "client.address"),
            Some(&Value::StringValue("10.1.2.3".into()))
        );
        assert_eq!(attr(&s, "client.port"), Some(&Value::IntValue(40_000)));
        assert_eq!(
            attr(&s, "server.address"),
            Some(&Value::StringValue("shop".into()))
        );
    }

    #[test]
    fn client_span_starts_a_trace_and_4xx_is_its_error() {
        let s = build(&exchange(
            true,
            b"DELETE /x HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 404 Not",
        ))
        .unwrap();
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert_eq!(s.trace_id.len(), 16);
        assert!(s.parent_span_id.is_empty());
        assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(
            attr(&s, "server.address"),
            Some(&Value::StringValue("10.1.2.3".into()))
        );
        let ok = build(&exchange(
            false,
            b"GET / HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 404 Not",
        ))
        .unwrap();
        assert_eq!(
            ok.status, None,
            "a 404 is the client's error, not the server's"
        );
    }

    #[test]
    fn unusable_events_say_why() {
        assert_eq!(
            build(&exchange(false, b"garbage", b"HTTP/1.1 200 OK")).unwrap_err(),
            Unusable::Request
        );
        assert_eq!(
            build(&exchange(false, b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 2xx")).unwrap_err(),
            Unusable::Status
        );
    }

    #[test]
    fn peers_and_hosts() {
        let mut p = Peer {
            family: 10,
            port: 80,
            ..Peer::default()
        };
        p.addr[10] = 0xff;
        p.addr[11] = 0xff;
        p.addr[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(peer(&p), Some(("127.0.0.1".parse().unwrap(), 80)));
        assert_eq!(peer(&Peer::default()), None);
        assert_eq!(host_without_port("a.b:80"), "a.b");
        assert_eq!(host_without_port("[::1]:80"), "::1");
        assert_eq!(host_without_port("a.b"), "a.b");
    }

    #[test]
    fn resource_names_the_container_or_the_command() {
        let w = Workload {
            namespace: "shop".into(),
            pod: "web-1".into(),
            container: "app".into(),
            container_id: "abc".into(),
            ..Workload::default()
        };
        let r = resource(&w, "python3", 7);
        let get = |k: &str| {
            r.attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.clone()?.value)
        };
        assert_eq!(get("service.name"), Some(Value::StringValue("app".into())));
        assert_eq!(
            get("k8s.pod.name"),
            Some(Value::StringValue("web-1".into()))
        );
        let bare = resource(&Workload::default(), "python3", 7);
        assert_eq!(
            bare.attributes[0].value.as_ref().unwrap().value,
            Some(Value::StringValue("python3".into()))
        );
        assert!(!bare.attributes.iter().any(|kv| kv.key == "k8s.pod.name"));
    }
}
