//! A Prometheus remote_write 1.0 client: the `prometheus.WriteRequest` protobuf, snappy
//! block compressed, POSTed with the headers the spec asks for.
//!
//! The messages are written out by hand with prost's derive (four small messages from
//! Prometheus's `prompb/types.proto` and `remote.proto`): no crate publishes just these
//! without a build-time protoc step.

use std::time::Duration;

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    /// A series from `(name, value)` label pairs (the metric name as `__name__`), sorted
    /// by name as receivers expect, and `(timestamp ms, value)` samples.
    pub fn new(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        let mut labels: Vec<Label> = labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        TimeSeries {
            labels,
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
        }
    }
}

/// The request body: the protobuf, snappy block compressed.
pub fn encode(series: &[TimeSeries]) -> Vec<u8> {
    let raw = WriteRequest {
        timeseries: series.to_vec(),
    }
    .encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses any input")
}

/// The outcome of one POST: the status code, or why no status came back.
#[derive(Debug)]
pub enum Outcome {
    Status(u16, String),
    /// Connection refused or reset, timeout: the write is unacknowledged.
    Transport(String),
}

impl Outcome {
    /// A 2xx answer: the receiver acknowledged the write.
    pub fn acknowledged(&self) -> bool {
        matches!(self, Outcome::Status(code, _) if (200..300).contains(code))
    }
}

/// A remote_write sender to one URL (e.g. `http://127.0.0.1:9090/api/v1/write`).
pub struct Client {
    url: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Client {
            url: url.to_string(),
            agent: config.into(),
        }
    }

    /// Sends an already encoded body.
    pub fn send_encoded(&self, body: &[u8]) -> Outcome {
        let sent = self
            .agent
            .post(&self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .send(body);
        match sent {
            Ok(mut resp) => {
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                Outcome::Status(resp.status().as_u16(), text)
            }
            Err(e) => Outcome::Transport(e.to_string()),
        }
    }

    pub fn send(&self, series: &[TimeSeries]) -> Outcome {
        self.send_encoded(&encode(series))
    }

    /// Sends and panics unless the receiver answers 2xx.
    pub fn write(&self, series: &[TimeSeries]) {
        let out = self.send(series);
        assert!(
            out.acknowledged(),
            "remote_write to {} not acknowledged: {out:?}",
            self.url
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_sorted_labels_and_decodes_back() {
        let ts = TimeSeries::new(&[("__name__", "m"), ("b", "2"), ("a", "1")], &[(1000, 1.5)]);
        let names: Vec<_> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "a", "b"]);
        let body = encode(std::slice::from_ref(&ts));
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let back = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(back.timeseries, vec![ts]);
    }
}
