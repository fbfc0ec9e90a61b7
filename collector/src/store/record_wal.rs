//! Reading back the WALs of the log and trace stores. They write with the
//! metric TSDB's [`Wal`](crate::store::tsdb::wal::Wal) (framing, group
//! commit, rotation), but the TSDB's `read_segment` decodes metric records,
//! so their segments are read frame by frame here with the same framing
//! (u32 length, u32 CRC32, payload) and each store's own record decoder.

use std::{fs, io, path::Path};

use crate::store::tsdb::encoding::{DResult, Reader};

const FRAME: usize = 8;
const MAX_RECORD: usize = 1 << 30;

/// What reading one segment found.
pub struct SegmentRead {
    /// Byte length of the valid prefix.
    pub valid_len: u64,
    /// Why reading stopped early (torn or corrupt tail), if it did.
    pub torn: Option<String>,
}

/// Passes every complete, checksum-valid record that `decode` accepts to
/// `apply`, one at a time (a segment's decoded records would not fit in
/// memory at once); stops at the first bad one.
pub fn read_records<R>(
    path: &Path,
    decode: impl Fn(&[u8]) -> DResult<R>,
    mut apply: impl FnMut(R),
) -> io::Result<SegmentRead> {
    read_frames(path, |payload| {
        decode(payload).map(&mut apply).map_err(|e| e.to_string())
    })
}

/// Replays one segment at open: like [`read_records`], then cuts a torn or
/// corrupt tail off so new records follow valid ones. `signal` ("log",
/// "trace") names the WAL in the warning. Returns whether the tail was torn.
pub fn replay_segment<R>(
    path: &Path,
    signal: &str,
    decode: impl Fn(&[u8]) -> DResult<R>,
    apply: impl FnMut(R),
) -> io::Result<bool> {
    let read = read_records(path, decode, apply)?;
    let Some(why) = &read.torn else {
        return Ok(false);
    };
    tracing::warn!(segment = %path.display(), reason = %why, valid_bytes = read.valid_len,
        "{signal} WAL segment has a torn or corrupt tail; truncating it there");
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(read.valid_len)?;
    Ok(true)
}

/// The body of a segment's header record: its format version, which must be
/// `version`.
pub fn check_version(r: &mut Reader, version: u8, signal: &str) -> DResult<()> {
    let v = r.u8()?;
    if v != version {
        return r.err(format!("unsupported {signal} WAL version {v}"));
    }
    Ok(())
}

/// The framing reader, for any record kind: passes each complete,
/// checksum-valid payload to `apply` and stops at the first short or failing
/// frame, or where `apply` says the payload does not decode.
pub fn read_frames(
    path: &Path,
    mut apply: impl FnMut(&[u8]) -> Result<(), String>,
) -> io::Result<SegmentRead> {
    let data = fs::read(path)?;
    let mut pos = 0usize;
    let mut torn = None;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < FRAME {
            torn = Some(format!(
                "{} trailing bytes shorter than a record header",
                rest.len()
            ));
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len == 0 || len > MAX_RECORD || rest.len() - FRAME < len {
            torn = Some(format!(
                "record at byte {pos} has length {len}, {} bytes remain",
                rest.len() - FRAME
            ));
            break;
        }
        let payload = &rest[FRAME..FRAME + len];
        if crc32fast::hash(payload) != crc {
            torn = Some(format!("record at byte {pos} fails its checksum"));
            break;
        }
        if let Err(e) = apply(payload) {
            torn = Some(format!("record at byte {pos} does not decode: {e}"));
            break;
        }
        pos += FRAME + len;
    }
    Ok(SegmentRead {
        valid_len: pos as u64,
        torn,
    })
}
