//! OTLP/HTTP JSON logs (`application/json`) -> `ExportLogsServiceRequest`,
//! with the field rules and helpers of the metric path
//! ([`crate::ingest::otlp_json`]): lowerCamelCase or proto names, 64-bit
//! integers as numbers or strings, enums as integers or names. `traceId` and
//! `spanId` are hex strings, as the OTLP JSON encoding says (not base64).

use crate::ingest::otlp_json::{
    Obj, any_value, attributes, dropped_attributes_count, enum_field, get, hex_field, list,
    request, resource, string, u32_field, u64_field,
};
use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
};

/// `SeverityNumber` names, index = value.
const SEVERITY: [&str; 25] = [
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

/// Parses an OTLP JSON logs export request; errors name the field's path,
/// e.g. `resourceLogs[0].scopeLogs[0].logRecords[3].timeUnixNano`.
pub fn decode(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    Ok(ExportLogsServiceRequest {
        resource_logs: request(body, "resourceLogs", "resource_logs", resource_logs)?,
    })
}

fn resource_logs(o: &Obj, path: &str) -> Result<ResourceLogs, String> {
    Ok(ResourceLogs {
        resource: resource(o, path)?,
        scope_logs: list(
            o,
            "scopeLogs",
            "scope_logs",
            &format!("{path}.scopeLogs"),
            scope_logs,
        )?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
    })
}

fn scope_logs(o: &Obj, path: &str) -> Result<ScopeLogs, String> {
    Ok(ScopeLogs {
        log_records: list(
            o,
            "logRecords",
            "log_records",
            &format!("{path}.logRecords"),
            log_record,
        )?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
        ..Default::default()
    })
}

fn log_record(o: &Obj, path: &str) -> Result<LogRecord, String> {
    let body = match get(o, "body", "body") {
        None => None,
        Some(v) => Some(any_value(v, &format!("{path}.body"))?),
    };
    Ok(LogRecord {
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano", path)?,
        observed_time_unix_nano: u64_field(
            o,
            "observedTimeUnixNano",
            "observed_time_unix_nano",
            path,
        )?,
        severity_number: enum_field(o, "severityNumber", "severity_number", path, &SEVERITY)?,
        severity_text: string(o, "severityText", "severity_text", path)?,
        body,
        attributes: attributes(o, path)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
        flags: u32_field(o, "flags", "flags", path)?,
        trace_id: hex_field(o, "traceId", "trace_id", path, 16)?,
        span_id: hex_field(o, "spanId", "span_id", path, 8)?,
        event_name: string(o, "eventName", "event_name", path)?,
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value;

    use super::*;

    #[test]
    fn decodes_records_with_string_ints_hex_ids_and_enum_names() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.pod.name","value":{"stringValue":"p"}}]},
          "scopeLogs":[{"logRecords":[
            {"timeUnixNano":"1700000000000000001","observedTimeUnixNano":1700000000000000002,
             "severityNumber":"SEVERITY_NUMBER_WARN","severityText":"WARN",
             "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
             "body":{"stringValue":"hello"},
             "attributes":[{"key":"log.iostream","value":{"stringValue":"stderr"}}]}]}]}]}"#;
        let req = decode(body).unwrap();
        let rl = &req.resource_logs[0];
        assert_eq!(
            rl.resource.as_ref().unwrap().attributes[0].key,
            "k8s.pod.name"
        );
        let r = &rl.scope_logs[0].log_records[0];
        assert_eq!(r.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(r.observed_time_unix_nano, 1_700_000_000_000_000_002);
        assert_eq!(r.severity_number, 13);
        assert_eq!(r.trace_id.len(), 16);
        assert_eq!(
            r.span_id,
            vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert_eq!(
            r.body.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("hello".into()))
        );
    }

    #[test]
    fn errors_name_the_field_path() {
        for (body, want) in [
            (&b"{oops"[..], "invalid JSON"),
            (br#"{"resourceLogs":{}}"#, "resourceLogs: want an array"),
            (
                br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#,
                "resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano",
            ),
            (
                br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#,
                "logRecords[0].traceId: want 32 hex digits",
            ),
            (
                br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"x"}}]}]}]}"#,
                "logRecords[0].body.intValue",
            ),
        ] {
            let e = decode(body).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
    }
}
