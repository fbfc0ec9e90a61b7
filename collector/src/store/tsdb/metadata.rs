//! Metric metadata (type, help, unit) by metric name. Changes are WAL
//! records; whenever WAL segments are deleted the whole map is first saved
//! as `metadata.json` (temp file, fsync, rename), so nothing is lost.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, Write},
    path::Path,
};

use super::wal::fsync_dir;
use crate::model::MetricMetadata;

pub const FILE: &str = "metadata.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    version: u32,
    metadata: BTreeMap<String, MetricMetadata>,
}

pub fn load(dir: &Path) -> io::Result<BTreeMap<String, MetricMetadata>> {
    let path = dir.join(FILE);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let snap: Snapshot = serde_json::from_slice(&data).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("metadata snapshot {}: {e}", path.display()),
        )
    })?;
    if snap.version != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "metadata snapshot {}: unsupported version {}",
                path.display(),
                snap.version
            ),
        ));
    }
    Ok(snap.metadata)
}

pub fn save(dir: &Path, metadata: &BTreeMap<String, MetricMetadata>) -> io::Result<()> {
    let data = serde_json::to_vec(&Snapshot {
        version: 1,
        metadata: metadata.clone(),
    })
    .map_err(io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(&data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(FILE))?;
    fsync_dir(dir)
}
