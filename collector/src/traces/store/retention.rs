//! Retention: whole segments are deleted once their newest span ended
//! before `now - retention_time`. Runs in the store's background thread.

use std::io;

use super::db::Inner;
use crate::store::clock::{dur_ns, now_ns};

impl Inner {
    /// Deletes expired segments; returns how many.
    pub fn apply_retention(&self) -> io::Result<usize> {
        let horizon = now_ns().saturating_sub(dur_ns(self.opts.retention_time));
        let victims: Vec<u64> = self
            .read()
            .segments
            .values()
            .filter(|s| s.max_ns < horizon)
            .map(|s| s.seq)
            .collect();
        for seq in &victims {
            if let Some(seg) = self.remove_segment(*seq) {
                tracing::info!(file = %seg.path.display(), max_ns = seg.max_ns,
                    spans = seg.span_count, "trace retention deleted a segment");
                // Queries holding the segment keep reading it: it is unlinked, not closed.
                self.remove_file_now(&seg.path)?;
            }
        }
        Ok(victims.len())
    }
}
