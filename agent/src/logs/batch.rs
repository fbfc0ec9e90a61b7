//! Log records into one OTLP `ExportLogsServiceRequest`, encoded as they arrive.
//!
//! Hand-encoded with prost's wire helpers rather than by building prost structs:
//! at 100 MiB/s of lines a `LogRecord` with its `String` body and attribute
//! vector per line would cost several allocations and a copy each; here a line
//! is one `memcpy` into its source's buffer, and the nested lengths are written
//! once when the batch is cut. The tests decode the result with prost.
//!
//! Shape (see the logs contract): one `ResourceLogs` per log source with
//! resource attributes `k8s.namespace.name`, `k8s.pod.name`,
//! `k8s.container.name`, `k8s.node.name`; one `ScopeLogs` (no scope) holding the
//! records; each `LogRecord` has `time_unix_nano` (the line's own timestamp, or
//! the read time when it had none), `observed_time_unix_nano` (read time), a
//! string `body` and, when known, the attribute `log.iostream`.

use std::{collections::HashMap, sync::Arc, time::Instant};

use prost::encoding::{encode_varint, encoded_len_varint};

use super::{Stream, path::PodContainer};

// Field keys: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
const KEY_RESOURCE_LOGS: u8 = 1 << 3 | 2; // ExportLogsServiceRequest.resource_logs
const KEY_RESOURCE: u8 = 1 << 3 | 2; // ResourceLogs.resource
const KEY_SCOPE_LOGS: u8 = 2 << 3 | 2; // ResourceLogs.scope_logs
const KEY_ATTRIBUTES: u8 = 1 << 3 | 2; // Resource.attributes
const KEY_LOG_RECORDS: u8 = 2 << 3 | 2; // ScopeLogs.log_records
const KEY_TIME: u8 = 1 << 3 | 1; // LogRecord.time_unix_nano
const KEY_BODY: u8 = 5 << 3 | 2; // LogRecord.body
const KEY_RECORD_ATTRIBUTES: u8 = 6 << 3 | 2; // LogRecord.attributes
const KEY_OBSERVED: u8 = 11 << 3 | 1; // LogRecord.observed_time_unix_nano
const KEY_KV_KEY: u8 = 1 << 3 | 2; // KeyValue.key
const KEY_KV_VALUE: u8 = 2 << 3 | 2; // KeyValue.value
const KEY_STRING_VALUE: u8 = 1 << 3 | 2; // AnyValue.string_value

/// A log source (one file's container): its id and its encoded `Resource` field.
#[derive(Debug)]
pub struct Source {
    pub id: u64,
    /// Who wrote the lines; the encoded form is in `resource_field` (tests read this).
    #[cfg_attr(not(test), allow(dead_code))]
    pub labels: PodContainer,
    resource_field: Vec<u8>,
}

impl Source {
    pub fn new(id: u64, labels: PodContainer, node: &str) -> Source {
        Source::with_extra(id, labels, node, None)
    }

    /// A source with one more resource attribute (the tap adds `container.id`);
    /// empty values are left out (the collector reads them as absent anyway).
    pub fn with_extra(
        id: u64,
        labels: PodContainer,
        node: &str,
        extra: Option<(&str, &str)>,
    ) -> Source {
        let mut attrs = Vec::new();
        let base = [
            ("k8s.namespace.name", labels.namespace.as_str()),
            ("k8s.pod.name", labels.pod.as_str()),
            ("k8s.container.name", labels.container.as_str()),
            ("k8s.node.name", node),
        ];
        for (k, v) in base.into_iter().chain(extra).filter(|(_, v)| !v.is_empty()) {
            attrs.push(KEY_ATTRIBUTES);
            let kv = key_value(k, v);
            encode_varint(kv.len() as u64, &mut attrs);
            attrs.extend_from_slice(&kv);
        }
        let mut resource_field = vec![KEY_RESOURCE];
        encode_varint(attrs.len() as u64, &mut resource_field);
        resource_field.extend_from_slice(&attrs);
        Source {
            id,
            labels,
            resource_field,
        }
    }
}

/// An encoded `KeyValue` with a string value.
fn key_value(key: &str, value: &str) -> Vec<u8> {
    let mut any = vec![KEY_STRING_VALUE];
    encode_varint(value.len() as u64, &mut any);
    any.extend_from_slice(value.as_bytes());
    let mut kv = vec![KEY_KV_KEY];
    encode_varint(key.len() as u64, &mut kv);
    kv.extend_from_slice(key.as_bytes());
    kv.push(KEY_KV_VALUE);
    encode_varint(any.len() as u64, &mut kv);
    kv.extend_from_slice(&any);
    kv
}

/// The `attributes` field of a record from `stream` (empty when unknown).
fn stream_attribute(stream: Stream) -> &'static [u8] {
    use std::sync::OnceLock;
    static FIELDS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    let fields = FIELDS.get_or_init(|| {
        ["stdout", "stderr"].map(|s| {
            let kv = key_value("log.iostream", s);
            let mut f = vec![KEY_RECORD_ATTRIBUTES];
            encode_varint(kv.len() as u64, &mut f);
            f.extend_from_slice(&kv);
            f
        })
    });
    match stream {
        Stream::Stdout => &fields[0],
        Stream::Stderr => &fields[1],
        Stream::Unknown => &[],
    }
}

/// Records accumulated for the next request.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    /// Per source, in first-seen order: the encoded `log_records` fields.
    groups: Vec<(Arc<Source>, Vec<u8>)>,
    index: HashMap<u64, usize>,
    bytes: usize,
    records: u64,
    started: Option<Instant>,
}

/// A cut batch: the encoded request and the number of records in it.
#[derive(Debug)]
pub struct Encoded {
    pub payload: Vec<u8>,
    pub records: u64,
}

impl BatchBuilder {
    pub fn add(&mut self, src: &Arc<Source>, ts: u64, observed: u64, stream: Stream, body: &str) {
        let i = match self.index.get(&src.id) {
            Some(&i) => i,
            None => {
                self.groups
                    .push((src.clone(), Vec::with_capacity(64 << 10)));
                self.index.insert(src.id, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let buf = &mut self.groups[i].1;
        let before = buf.len();
        let any_len = 1 + encoded_len_varint(body.len() as u64) + body.len();
        let attr = stream_attribute(stream);
        let record_len = 9 + 1 + encoded_len_varint(any_len as u64) + any_len + attr.len() + 9;
        buf.push(KEY_LOG_RECORDS);
        encode_varint(record_len as u64, buf);
        buf.push(KEY_TIME);
        buf.extend_from_slice(&ts.to_le_bytes());
        buf.push(KEY_BODY);
        encode_varint(any_len as u64, buf);
        buf.push(KEY_STRING_VALUE);
        encode_varint(body.len() as u64, buf);
        buf.extend_from_slice(body.as_bytes());
        buf.extend_from_slice(attr);
        buf.push(KEY_OBSERVED);
        buf.extend_from_slice(&observed.to_le_bytes());
        self.bytes += buf.len() - before;
        self.records += 1;
        self.started.get_or_insert_with(Instant::now);
    }

    /// Encoded size of the records so far (the request adds a few bytes per source).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub fn records(&self) -> u64 {
        self.records
    }

    /// When the first record of this batch arrived.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// The request for everything added since the last cut; `None` when empty.
    pub fn cut(&mut self) -> Option<Encoded> {
        if self.records == 0 {
            return None;
        }
        let mut payload = Vec::with_capacity(self.bytes + self.groups.len() * 256);
        for (src, records) in &self.groups {
            let scope_len = records.len();
            let rl_len =
                src.resource_field.len() + 1 + encoded_len_varint(scope_len as u64) + scope_len;
            payload.push(KEY_RESOURCE_LOGS);
            encode_varint(rl_len as u64, &mut payload);
            payload.extend_from_slice(&src.resource_field);
            payload.push(KEY_SCOPE_LOGS);
            encode_varint(scope_len as u64, &mut payload);
            payload.extend_from_slice(records);
        }
        let records = self.records;
        *self = BatchBuilder::default();
        Some(Encoded { payload, records })
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        collector::logs::v1::ExportLogsServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value::Value},
    };
    use prost::Message;

    use super::*;

    fn source(id: u64, pod: &str) -> Arc<Source> {
        let labels = PodContainer {
            namespace: "ns".into(),
            pod: pod.into(),
            uid: "u".into(),
            container: "c".into(),
        };
        Arc::new(Source::new(id, labels, "node-1"))
    }

    fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match &kv.value {
                Some(AnyValue {
                    value: Some(Value::StringValue(s)),
                }) => Some(s.clone()),
                _ => None,
            })
    }

    #[test]
    fn decodes_as_the_contract_says() {
        let (a, b) = (source(1, "a"), source(2, "b"));
        let mut batch = BatchBuilder::default();
        assert!(batch.cut().is_none());
        batch.add(&a, 10, 20, Stream::Stdout, "first");
        batch.add(&b, 11, 21, Stream::Stderr, "");
        let long = "x".repeat(300);
        batch.add(&a, 12, 22, Stream::Unknown, &long);
        assert_eq!(batch.records(), 3);
        let cut = batch.cut().unwrap();
        assert_eq!(cut.records, 3);
        assert_eq!(batch.records(), 0);
        let req = ExportLogsServiceRequest::decode(cut.payload.as_slice()).unwrap();
        assert_eq!(req.resource_logs.len(), 2);
        let rl = &req.resource_logs[0];
        let res = rl.resource.as_ref().unwrap();
        assert_eq!(
            attr(&res.attributes, "k8s.namespace.name").as_deref(),
            Some("ns")
        );
        assert_eq!(attr(&res.attributes, "k8s.pod.name").as_deref(), Some("a"));
        assert_eq!(
            attr(&res.attributes, "k8s.container.name").as_deref(),
            Some("c")
        );
        assert_eq!(
            attr(&res.attributes, "k8s.node.name").as_deref(),
            Some("node-1")
        );
        assert_eq!(res.attributes.len(), 4);
        let recs = &rl.scope_logs[0].log_records;
        assert_eq!(recs.len(), 2);
        assert_eq!(
            (recs[0].time_unix_nano, recs[0].observed_time_unix_nano),
            (10, 20)
        );
        assert_eq!(
            recs[0].body.as_ref().unwrap().value,
            Some(Value::StringValue("first".into()))
        );
        assert_eq!(
            attr(&recs[0].attributes, "log.iostream").as_deref(),
            Some("stdout")
        );
        assert_eq!(
            recs[1].body.as_ref().unwrap().value,
            Some(Value::StringValue(long))
        );
        assert!(recs[1].attributes.is_empty());
        let recs = &req.resource_logs[1].scope_logs[0].log_records;
        assert_eq!(
            recs[0].body.as_ref().unwrap().value,
            Some(Value::StringValue(String::new()))
        );
        assert_eq!(
            attr(&recs[0].attributes, "log.iostream").as_deref(),
            Some("stderr")
        );
        // Re-encoding with prost gives the same bytes: the hand encoding is canonical.
        assert_eq!(req.encode_to_vec(), cut.payload);
    }
}
