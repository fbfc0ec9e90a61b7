//! Retention: whole chunk files are deleted when their newest entry is older
//! than the retention time, and oldest first while the store is over its
//! size limit. Runs in the store's background thread after each cut.

use std::io;

use super::db::Inner;
use crate::store::clock::{dur_ns, now_ns};

impl Inner {
    /// Deletes expired chunk files and, over the size limit, the oldest ones.
    /// Returns how many files were deleted.
    pub fn apply_retention(&self) -> io::Result<usize> {
        let horizon = now_ns().saturating_sub(dur_ns(self.opts.retention_time));
        let victims: Vec<u64> = {
            let ix = self.read();
            let mut files: Vec<(i64, u64, u64)> = ix
                .files
                .values()
                .map(|f| (f.file.max_ts, f.file.seq, f.file.size))
                .collect();
            files.sort_unstable();
            let mut victims: Vec<u64> = files
                .iter()
                .filter(|(max_ts, _, _)| *max_ts < horizon)
                .map(|(_, seq, _)| *seq)
                .collect();
            if let Some(limit) = self.opts.retention_bytes {
                let mut total = ix.file_bytes + self.wal.size_bytes();
                for (_, seq, size) in &files {
                    if total <= limit {
                        break;
                    }
                    total = total.saturating_sub(*size);
                    if !victims.contains(seq) {
                        victims.push(*seq);
                    }
                }
            }
            victims
        };
        for seq in &victims {
            let path = {
                let mut ix = self.write();
                let Some(fe) = ix.files.remove(seq) else {
                    continue;
                };
                ix.file_bytes = ix.file_bytes.saturating_sub(fe.file.size);
                let (mut n, mut b) = (0u64, 0u64);
                for id in &fe.streams {
                    let Some(st) = ix.streams.get_mut(id) else {
                        continue;
                    };
                    st.chunks.retain(|c| {
                        let gone = std::sync::Arc::ptr_eq(&c.file, &fe.file);
                        if gone {
                            n += c.meta.count;
                            b += c.meta.raw_bytes;
                        }
                        !gone
                    });
                    st.recompute_range();
                }
                ix.entries = ix.entries.saturating_sub(n);
                ix.raw_bytes = ix.raw_bytes.saturating_sub(b);
                ix.remove_empty(&fe.streams);
                tracing::info!(file = %fe.file.path.display(), max_ts_ns = fe.file.max_ts,
                    entries = n, "log retention deleted a chunk file");
                fe.file.path.clone()
            };
            // Readers holding the file keep reading it: it is unlinked, not closed.
            self.remove_file_now(&path)?;
        }
        Ok(victims.len())
    }
}
