//! Loki's JSON encoding of query results: streams carry `[["<unix ns>", "line"], ...]`
//! (timestamps as strings of nanoseconds), matrix and vector points carry
//! `[<float seconds>, "<value>"]` as Prometheus writes them.

use serde_json::{Map, Value as Json, json};

use crate::{
    logs::model::StreamEntries,
    model::{Labels, format_float},
};

/// Nanoseconds as Prometheus-style float seconds with millisecond precision,
/// as Loki writes metric points (`1700000000.123`, or an integer when whole).
pub fn seconds(ns: i64) -> Json {
    let ms = ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

pub fn labels(l: &Labels) -> Json {
    Json::Object(
        l.iter()
            .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
            .collect(),
    )
}

/// `[{"stream":{...},"values":[["<ns>","line"],...]}, ...]`.
pub fn streams(s: &[StreamEntries]) -> Json {
    Json::Array(
        s.iter()
            .map(|s| {
                let values: Vec<Json> = s
                    .entries
                    .iter()
                    .map(|e| json!([e.ts_ns.to_string(), e.line]))
                    .collect();
                json!({"stream": labels(&s.labels), "values": values})
            })
            .collect(),
    )
}

/// `[{"metric":{...},"value":[<secs>,"<v>"]}, ...]`, every point at `at_ns`.
pub fn vector(v: &[(Labels, f64)], at_ns: i64) -> Json {
    Json::Array(
        v.iter()
            .map(|(l, x)| json!({"metric": labels(l), "value": [seconds(at_ns), format_float(*x)]}))
            .collect(),
    )
}

/// `[{"metric":{...},"values":[[<secs>,"<v>"],...]}, ...]`.
pub fn matrix(m: &[(Labels, Vec<(i64, f64)>)]) -> Json {
    Json::Array(
        m.iter()
            .map(|(l, points)| {
                let values: Vec<Json> = points
                    .iter()
                    .map(|(t, x)| json!([seconds(*t), format_float(*x)]))
                    .collect();
                json!({"metric": labels(l), "values": values})
            })
            .collect(),
    )
}

/// What a query did, in the shape of Loki's `stats.summary` (the fields this
/// collector can measure; Grafana shows whatever is there).
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub exec_time_secs: f64,
    pub entries_returned: usize,
}

pub fn stats(s: Summary) -> Json {
    let mut summary = Map::new();
    summary.insert("execTime".into(), json!(s.exec_time_secs));
    summary.insert("queueTime".into(), json!(0));
    summary.insert("totalEntriesReturned".into(), json!(s.entries_returned));
    json!({"summary": summary})
}

/// The whole answer: `{"status":"success","data":{"resultType":..,"result":..,"stats":..}}`.
pub fn query_answer(result_type: &str, result: Json, s: Summary) -> Json {
    json!({
        "status": "success",
        "data": {"resultType": result_type, "result": result, "stats": stats(s)},
    })
}

/// One websocket message of `tail`: new lines and, when the client was too
/// slow, the streams and timestamps of entries dropped for it.
pub fn tail_message(s: &[StreamEntries], dropped: &[(Labels, i64)]) -> Json {
    let dropped: Vec<Json> = dropped
        .iter()
        .map(|(l, ts)| json!({"labels": labels(l), "timestamp": ts.to_string()}))
        .collect();
    json!({"streams": streams(s), "dropped_entries": dropped})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::model::LogEntry;

    #[test]
    fn shapes_match_loki() {
        let s = vec![StreamEntries {
            labels: Labels::from_pairs([("app", "a")]),
            entries: vec![LogEntry {
                ts_ns: 1_700_000_000_000_000_001,
                line: "hi \"x\"".into(),
                metadata: vec![],
            }],
        }];
        assert_eq!(
            query_answer("streams", streams(&s), Summary::default())["data"]["result"].to_string(),
            r#"[{"stream":{"app":"a"},"values":[["1700000000000000001","hi \"x\""]]}]"#
        );
        let l = Labels::from_pairs([("level", "info")]);
        assert_eq!(
            vector(&[(l.clone(), 2.5)], 1_700_000_000_123_000_000).to_string(),
            r#"[{"metric":{"level":"info"},"value":[1700000000.123,"2.5"]}]"#
        );
        assert_eq!(
            matrix(&[(l, vec![(1_000_000_000, 1.0), (2_000_000_000, f64::NAN)])]).to_string(),
            r#"[{"metric":{"level":"info"},"values":[[1,"1"],[2,"NaN"]]}]"#
        );
        let answer = query_answer("vector", json!([]), Summary::default()).to_string();
        assert!(
            answer.starts_with(r#"{"status":"success","data":{"resultType":"vector","result":[],"stats":{"summary":"#),
            "{answer}"
        );
        assert_eq!(
            tail_message(&[], &[(Labels::from_pairs([("a", "b")]), 5)]).to_string(),
            r#"{"streams":[],"dropped_entries":[{"labels":{"a":"b"},"timestamp":"5"}]}"#
        );
    }
}
