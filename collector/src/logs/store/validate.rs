//! Checks a whole push before anything is written, so a refused push changes nothing.

use super::error::LogAppendError;
use crate::logs::model::StreamEntries;

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Checks labels and timestamps of every stream; `min_ts`/`max_ts` are the
/// oldest and newest timestamps (ns) accepted.
pub fn validate(streams: &[StreamEntries], min_ts: i64, max_ts: i64) -> Result<(), LogAppendError> {
    for s in streams {
        if s.labels.is_empty() {
            return Err(LogAppendError::EmptyLabels);
        }
        let mut prev: Option<&str> = None;
        for (k, _) in s.labels.iter() {
            if !valid_label_name(k) {
                return Err(LogAppendError::InvalidLabelName(k.to_string()));
            }
            // Labels are sorted by name, so a duplicate is adjacent.
            if prev == Some(k) {
                return Err(LogAppendError::DuplicateLabel(k.to_string()));
            }
            prev = Some(k);
        }
        for e in &s.entries {
            if e.ts_ns < min_ts {
                return Err(LogAppendError::TooOld {
                    labels: s.labels.to_string(),
                    ts_ns: e.ts_ns,
                });
            }
            if e.ts_ns > max_ts {
                return Err(LogAppendError::TooNew {
                    labels: s.labels.to_string(),
                    ts_ns: e.ts_ns,
                });
            }
        }
    }
    Ok(())
}
