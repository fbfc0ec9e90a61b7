//! The trace WAL's record payloads. Framing, group commit, rotation and
//! truncation are the metric TSDB's [`Wal`](crate::store::tsdb::wal::Wal);
//! segments are read back with [`record_wal`](crate::store::record_wal).

use super::codec::{decode_spans, encode_spans};
use crate::{
    store::{
        record_wal,
        tsdb::encoding::{DResult, Reader},
    },
    traces::model::Span,
};

/// First record of every segment: format version only.
pub const REC_HEADER: u8 = 0x20;
/// One acknowledged write: its LSN and its spans.
pub const REC_BATCH: u8 = 0x21;
pub const VERSION: u8 = 1;

pub fn encode_header() -> Vec<u8> {
    vec![REC_HEADER, VERSION]
}

pub fn encode_batch(lsn: u64, spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spans.len() * 256 + 16);
    out.push(REC_BATCH);
    out.extend_from_slice(&lsn.to_le_bytes());
    encode_spans(spans, &mut out);
    out
}

#[derive(Debug, PartialEq)]
pub enum Record {
    Header,
    Batch { lsn: u64, spans: Vec<Span> },
}

pub fn decode_record(payload: &[u8]) -> DResult<Record> {
    let mut r = Reader::new(payload);
    match r.u8()? {
        REC_HEADER => {
            record_wal::check_version(&mut r, VERSION, "trace")?;
            Ok(Record::Header)
        }
        REC_BATCH => {
            let lsn = r.u64_le()?;
            let spans = decode_spans(&mut r)?;
            if !r.is_empty() {
                return r.err("trailing bytes in trace WAL record");
            }
            Ok(Record::Batch { lsn, spans })
        }
        t => r.err(format!("unknown trace WAL record type {t:#x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::store::codec::tests::sample_span;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let spans = vec![sample_span(1, 1, None, "web")];
        let rec = encode_batch(42, &spans);
        assert_eq!(
            decode_record(&rec).unwrap(),
            Record::Batch { lsn: 42, spans }
        );
        assert_eq!(decode_record(&encode_header()).unwrap(), Record::Header);
        assert!(decode_record(&[0x99]).is_err());
        assert!(decode_record(&[REC_HEADER, 7]).is_err());
        let mut trailing = rec.clone();
        trailing.push(0);
        assert!(decode_record(&trailing).is_err());
    }
}
