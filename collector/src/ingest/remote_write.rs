//! Prometheus remote_write 1.0: a snappy block-compressed protobuf
//! `WriteRequest`, decoded and validated into a [`WriteBatch`].

use prost::Message;

use super::{
    IngestError,
    batch::WriteBatch,
    remote_write_proto::{WriteRequest, metric_type_name},
};
use crate::model::{MetricMetadata, Sample};

/// A decoded remote write and what it carried that is not stored.
#[derive(Debug)]
pub struct Decoded {
    pub batch: WriteBatch,
    pub exemplars_dropped: usize,
    /// Native histogram samples: the store keeps floats only.
    pub histograms_rejected: usize,
}

/// Decodes a request body. `max_bytes` bounds the decompressed size (checked
/// from snappy's length header before anything is allocated).
pub fn decode(body: &[u8], max_bytes: usize) -> Result<Decoded, IngestError> {
    let len = snap::raw::decompress_len(body).map_err(|e| {
        IngestError::bad_request(
            "malformed",
            format!("snappy: {e} (remote_write bodies are snappy block-compressed)"),
        )
    })?;
    if len > max_bytes {
        return Err(IngestError::too_large(format!(
            "decompressed body is {len} bytes, more than --max-request-bytes ({max_bytes})"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| IngestError::bad_request("malformed", format!("snappy: {e}")))?;
    let req = WriteRequest::decode(raw.as_slice()).map_err(|e| {
        IngestError::bad_request("malformed", format!("protobuf WriteRequest: {e}"))
    })?;

    let mut batch = WriteBatch::default();
    let (mut exemplars_dropped, mut histograms_rejected) = (0, 0);
    for ts in req.timeseries {
        exemplars_dropped += ts.exemplars.len();
        histograms_rejected += ts.histograms.len();
        let pairs = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
        let samples = ts
            .samples
            .iter()
            .map(|s| Sample {
                t: s.timestamp,
                v: s.value,
            })
            .collect::<Vec<_>>();
        let n = samples.len();
        batch
            .add(pairs, samples)
            .map_err(|e| IngestError::bad_request("invalid_series", e).with_samples(n))?;
    }
    for md in req.metadata {
        if md.metric_family_name.is_empty() {
            continue;
        }
        batch.metadata.push((
            md.metric_family_name,
            MetricMetadata {
                kind: metric_type_name(md.r#type).to_string(),
                help: md.help,
                unit: md.unit,
            },
        ));
    }
    Ok(Decoded {
        batch,
        exemplars_dropped,
        histograms_rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::remote_write_proto::{Label, Sample as PbSample, TimeSeries};

    fn encode(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(k, v)| Label {
                    name: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(t, v)| PbSample {
                    timestamp: t,
                    value: v,
                })
                .collect(),
            exemplars: vec![],
            histograms: vec![],
        }
    }

    #[test]
    fn decodes_series_and_metadata() {
        let req = WriteRequest {
            timeseries: vec![series(
                &[("__name__", "up"), ("job", "a")],
                &[(1000, 1.0), (2000, 0.0)],
            )],
            metadata: vec![crate::ingest::remote_write_proto::MetricMetadata {
                r#type: 2,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let d = decode(&encode(&req), 1 << 20).unwrap();
        assert_eq!(d.batch.sample_count(), 2);
        assert_eq!(d.batch.metadata[0].1.kind, "gauge");
    }

    #[test]
    fn refuses_garbage_big_and_invalid() {
        assert_eq!(
            decode(b"\xff\xff\xff\xff\xff\xff", 1 << 20)
                .unwrap_err()
                .status,
            400
        );
        let req = WriteRequest {
            timeseries: vec![series(&[("__name__", "up")], &[(1, 1.0)])],
            metadata: vec![],
        };
        assert_eq!(decode(&encode(&req), 4).unwrap_err().status, 413);
        let req = WriteRequest {
            timeseries: vec![series(
                &[("__name__", "up"), ("a", "1"), ("a", "2")],
                &[(1, 1.0)],
            )],
            metadata: vec![],
        };
        let e = decode(&encode(&req), 1 << 20).unwrap_err();
        assert!(e.status == 400 && e.message.contains("duplicate"), "{e:?}");
    }
}
