//! All followed files: discovery, rotation and restart.
//!
//! - New `*.log` files are read from their start.
//! - Rename rotation (kubelet: `0.log` -> `0.log.<time>`, new `0.log`): the path
//!   now names another (dev, inode); the old follower keeps its fd, is drained to
//!   EOF first, and closed after [`DRAIN_GRACE`] without growth; the new file is
//!   read from 0.
//! - Copytruncate: the file is shorter than our offset, or its first 256 bytes
//!   changed. The copy is the sibling whose head matches our fingerprint: read
//!   from our old offset to its end, then the live file from 0. Compressed
//!   siblings (`*.gz`, ...) are never read.
//! - A vanished file is drained through its open fd, then forgotten.
//! - At startup each checkpointed position is matched to a file by (dev, inode)
//!   and fingerprint, else by fingerprint alone (a copy), among the files of its
//!   directory; a rotated match is drained from the offset, a live one resumed.
//!   If the checkpointed live file rotated (or is gone), the plain rotations of
//!   it that are in no position and were modified since the checkpoint (files
//!   created and rotated while the agent was down) are read whole, oldest
//!   first, before the live file.

use std::{
    collections::{BTreeMap, HashSet},
    fs::{self, File},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tracing::{debug, info, warn};

use super::{
    batch::Source,
    discover::{self, Identity, identity},
    follower::{Ctx, FINGERPRINT_LEN, Follower, MAX_LINE, Sink, State, head_fingerprint},
    path::{is_rotated_candidate, is_rotation_of, live_name_of, parse_log_path},
    positions::Position,
    stats::LogStats,
};

/// How often the directories are listed and files stat'ed.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_millis(250);
/// How long a renamed or deleted file is kept open after it stopped growing.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// Most bytes one live file may be read for in one poll, so others get a turn.
const PER_FILE_BUDGET: usize = 4 << 20;

pub struct Tailer {
    log_dir: PathBuf,
    node: String,
    live: BTreeMap<PathBuf, Follower>,
    draining: Vec<Follower>,
    /// Checkpointed positions not yet matched to a discovered live file.
    restore: BTreeMap<PathBuf, u64>,
    next_source: u64,
    buf: Vec<u8>,
    stats: LogStats,
    last_scan: Option<Instant>,
}

impl Tailer {
    /// Starts from the checkpointed `positions` (see `positions`).
    pub fn new(
        log_dir: PathBuf,
        node: String,
        positions: Vec<Position>,
        stats: LogStats,
    ) -> Tailer {
        let mut t = Tailer {
            log_dir,
            node,
            live: BTreeMap::new(),
            draining: Vec::new(),
            restore: BTreeMap::new(),
            next_source: 0,
            buf: vec![0; MAX_LINE],
            stats,
            last_scan: None,
        };
        t.restore_positions(positions);
        t
    }

    /// One round: discovery (at most every [`DISCOVERY_INTERVAL`]), then reading
    /// until EOF or about `budget` bytes. `may_read` is asked before each file;
    /// false stops reading (backpressure). Returns the bytes read.
    pub fn poll(
        &mut self,
        sink: &mut dyn Sink,
        budget: usize,
        may_read: &mut dyn FnMut() -> bool,
    ) -> usize {
        let mut ctx = Ctx {
            sink,
            stats: &self.stats,
        };
        if self
            .last_scan
            .is_none_or(|t| t.elapsed() >= DISCOVERY_INTERVAL)
        {
            self.last_scan = Some(Instant::now());
            scan(
                &self.log_dir,
                &self.node,
                &mut self.live,
                &mut self.draining,
                &mut self.restore,
                &mut self.next_source,
                &mut ctx,
            );
        }
        let mut total = 0;
        // Rotated files first, so a file's lines go out before its successor's.
        let mut busy_paths = HashSet::new();
        let mut i = 0;
        while i < self.draining.len() {
            if total >= budget || !may_read() {
                return total;
            }
            let f = &mut self.draining[i];
            match f.read(&mut self.buf, budget - total, &mut ctx) {
                Ok((n, eof)) => {
                    total += n;
                    let done = eof
                        && match f.state {
                            State::Copy => true,
                            State::Draining { since } => n == 0 && since.elapsed() >= DRAIN_GRACE,
                            State::Live => false,
                        };
                    if !eof {
                        busy_paths.insert(f.path.clone());
                    }
                    if done {
                        f.finish(&mut self.buf, &mut ctx);
                        debug!(file = %f.path.display(), "finished a rotated or deleted log file");
                        // `remove`, not `swap_remove`: older files stay first.
                        self.draining.remove(i);
                        continue;
                    }
                    if let State::Draining { since } = &mut f.state
                        && n > 0
                    {
                        *since = Instant::now();
                    }
                }
                Err(e) => {
                    warn!(file = %f.path.display(), "reading a rotated log file: {e}; closing it");
                    self.draining.remove(i);
                    continue;
                }
            }
            i += 1;
        }
        for (path, f) in self.live.iter_mut() {
            if busy_paths.contains(path) {
                continue;
            }
            if total >= budget || !may_read() {
                break;
            }
            match f.read(
                &mut self.buf,
                (budget - total).min(PER_FILE_BUDGET),
                &mut ctx,
            ) {
                Ok((n, _)) => total += n,
                Err(e) => warn!(file = %path.display(), "reading a log file: {e}"),
            }
            if f.truncated {
                truncated(f, &mut self.draining, &mut ctx);
            }
        }
        self.stats
            .files_watched
            .set((self.live.len() + self.draining.len()) as i64);
        total
    }

    /// The checkpoint for everything handed to the sink so far.
    pub fn positions(&self) -> Vec<Position> {
        self.draining
            .iter()
            .chain(self.live.values())
            .map(Follower::position)
            .collect()
    }

    fn source(&mut self, path: &Path) -> Option<Arc<Source>> {
        let labels = parse_log_path(path)?;
        self.next_source += 1;
        Some(Arc::new(Source::new(self.next_source, labels, &self.node)))
    }

    fn restore_positions(&mut self, positions: Vec<Position>) {
        let mut taken: HashSet<(u64, u64)> = HashSet::new();
        // Full-length head fingerprints of what is followed: a sibling with one of
        // these is a copy of a file already being read.
        let mut heads: HashSet<String> = HashSet::new();
        let mut groups: BTreeMap<PathBuf, Restored> = BTreeMap::new();
        for pos in positions {
            let Some(src) = self.source(&pos.path) else {
                continue;
            };
            let Some(live) = live_path_of(&pos.path) else {
                continue;
            };
            let g = groups.entry(live.clone()).or_default();
            g.checkpoint_ns = g.checkpoint_ns.max(pos.checkpoint_ns);
            match find_file(&pos, &taken) {
                Some((path, file, id)) => {
                    taken.insert((id.dev, id.inode));
                    if path == pos.path && path == live {
                        // Still the live file: discovery adopts it at this offset.
                        g.still_live = true;
                        self.restore.insert(path, pos.offset);
                        continue;
                    }
                    if let Ok(mtime) = file.metadata().and_then(|m| m.modified()) {
                        g.newest_rotated = g.newest_rotated.max(Some(mtime));
                    }
                    info!(file = %path.display(), was = %pos.path.display(), offset = pos.offset, "rotated while the agent was down; reading the rest of it");
                    match Follower::open(path.clone(), file, id, pos.offset, src, restored_state())
                    {
                        Ok(f) => {
                            if f.fp_len == FINGERPRINT_LEN {
                                heads.insert(f.fp.clone());
                            }
                            self.draining.push(f);
                        }
                        Err(e) => warn!(file = %path.display(), "opening a rotated log file: {e}"),
                    }
                }
                None if pos.offset > 0 => {
                    // How many lines followed the offset cannot be known: the file is gone.
                    warn!(file = %pos.path.display(), offset = pos.offset, "a checkpointed log file is gone (deleted, or rotated and compressed); lines after the offset that were not read are lost");
                }
                None => {}
            }
        }
        // Rotations that happened entirely while the agent was down: in no position,
        // modified since the checkpoint (or since the newest checkpointed file that
        // rotated). Read whole, oldest first, before the live file.
        for (live, g) in groups {
            if g.still_live {
                continue;
            }
            // A file created after the checkpointed one was written after it, so
            // its mtime is later even if it rotated before the checkpoint was
            // taken (between two discovery rounds). No margin before the
            // checkpoint time: rotations read and finished just before it would
            // be read again.
            let since =
                (g.checkpoint_ns > 0).then(|| UNIX_EPOCH + Duration::from_nanos(g.checkpoint_ns));
            let since = match (since, g.newest_rotated) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            for (p, file, id) in rotated_since(&live, since, &taken, &heads) {
                let Some(src) = self.source(&live) else {
                    break;
                };
                info!(file = %p.display(), "rotated entirely while the agent was down; reading all of it");
                taken.insert((id.dev, id.inode));
                match Follower::open(p.clone(), file, id, 0, src, restored_state()) {
                    Ok(f) => {
                        if f.fp_len == FINGERPRINT_LEN {
                            heads.insert(f.fp.clone());
                        }
                        self.draining.push(f);
                    }
                    Err(e) => warn!(file = %p.display(), "opening a rotated log file: {e}"),
                }
            }
        }
    }
}

/// Files found rotated at startup are drained like a rename seen live, not
/// closed at EOF: the runtime may not have reopened its log yet and still append.
fn restored_state() -> State {
    State::Draining {
        since: Instant::now(),
    }
}

/// What a restart learned about one live log path (`<dir>/0.log`) from the
/// positions naming it or its rotations.
#[derive(Default)]
struct Restored {
    /// The checkpointed live file still is the live file: nothing rotated unseen.
    still_live: bool,
    /// Newest mtime among the checkpointed files that were found rotated.
    newest_rotated: Option<SystemTime>,
    checkpoint_ns: u64,
}

/// `<dir>/0.log` for `<dir>/0.log` and its rotations (`<dir>/0.log.<suffix>`).
fn live_path_of(path: &Path) -> Option<PathBuf> {
    let name = live_name_of(path.file_name()?.to_str()?)?;
    Some(path.with_file_name(name))
}

/// Plain rotations of `live` modified at or after `since` (all if unknown) that
/// are not `taken` and whose head is not one of `heads`, oldest first.
fn rotated_since(
    live: &Path,
    since: Option<SystemTime>,
    taken: &HashSet<(u64, u64)>,
    heads: &HashSet<String>,
) -> Vec<(PathBuf, File, Identity)> {
    let (Some(dir), Some(live_name)) = (live.parent(), live.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(SystemTime, PathBuf, File, Identity)> = entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if !p
                .file_name()?
                .to_str()
                .is_some_and(|n| is_rotation_of(n, live_name))
            {
                return None;
            }
            let file = File::open(&p).ok()?;
            let m = file.metadata().ok()?;
            let id = identity(&m);
            let mtime = m.modified().ok()?;
            if !m.is_file()
                || taken.contains(&(id.dev, id.inode))
                || since.is_some_and(|s| mtime < s)
            {
                return None;
            }
            let (fp, len) = head_fingerprint(&file, FINGERPRINT_LEN).ok()?;
            if len == FINGERPRINT_LEN && heads.contains(&fp) {
                return None;
            }
            Some((mtime, p, file, id))
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out.into_iter().map(|(_, p, f, id)| (p, f, id)).collect()
}

/// Discovery and rotation checks; a free function so the caller can keep
/// borrowing the tailer's stats through `ctx`.
#[allow(clippy::too_many_arguments)]
fn scan(
    log_dir: &Path,
    node: &str,
    live: &mut BTreeMap<PathBuf, Follower>,
    draining: &mut Vec<Follower>,
    restore: &mut BTreeMap<PathBuf, u64>,
    next_source: &mut u64,
    ctx: &mut Ctx<'_>,
) {
    let found = discover::scan(log_dir);
    let by_path: BTreeMap<&Path, &discover::Found> =
        found.iter().map(|f| (f.path.as_path(), f)).collect();
    let paths: Vec<PathBuf> = live.keys().cloned().collect();
    for path in paths {
        let Some(f) = live.get_mut(&path) else {
            continue;
        };
        match by_path.get(path.as_path()) {
            None => {
                debug!(file = %path.display(), "log file vanished; draining it");
                if let Some(mut f) = live.remove(&path) {
                    f.state = State::Draining {
                        since: Instant::now(),
                    };
                    draining.push(f);
                }
            }
            Some(now) if now.id != f.id => {
                ctx.stats.rotated("rename");
                debug!(file = %path.display(), "log file rotated by rename; draining the old one");
                let mut known: HashSet<(u64, u64)> = live
                    .values()
                    .chain(draining.iter())
                    .map(|f| (f.id.dev, f.id.inode))
                    .collect();
                known.insert((now.id.dev, now.id.inode));
                if let Some(mut f) = live.remove(&path) {
                    f.state = State::Draining {
                        since: Instant::now(),
                    };
                    let (src, opened_at) = (f.src.clone(), f.opened_at);
                    draining.push(f);
                    // Rotated more than once since the last look: the files in between.
                    for (p, file, id) in unseen_rotations(&path, opened_at, &known) {
                        debug!(file = %p.display(), "a rotated log file we never saw live; reading it");
                        if let Ok(f) = Follower::open(p, file, id, 0, src.clone(), State::Copy) {
                            draining.push(f);
                        }
                    }
                }
            }
            Some(now) => match f.head_unchanged(now.size) {
                Ok(true) => {}
                Ok(false) => truncated(f, draining, ctx),
                Err(e) => debug!(file = %path.display(), "checking the head of a log file: {e}"),
            },
        }
    }
    for found in &found {
        if live.contains_key(&found.path) {
            continue;
        }
        let Some(labels) = parse_log_path(&found.path) else {
            continue;
        };
        let file = match File::open(&found.path) {
            Ok(f) => f,
            Err(e) => {
                debug!(file = %found.path.display(), "opening a log file: {e}");
                continue;
            }
        };
        // Identity from the open fd: the path may have been rotated since the stat.
        let id = match file.metadata() {
            Ok(m) => identity(&m),
            Err(_) => continue,
        };
        let offset = restore.remove(&found.path).unwrap_or(0);
        *next_source += 1;
        let src = Arc::new(Source::new(*next_source, labels, node));
        match Follower::open(found.path.clone(), file, id, offset, src, State::Live) {
            Ok(f) => {
                debug!(file = %found.path.display(), offset, "following a log file");
                live.insert(found.path.clone(), f);
            }
            Err(e) => debug!(file = %found.path.display(), "fingerprinting a log file: {e}"),
        }
    }
}

/// `f` was truncated in place (copytruncate): its unread rest is read from the
/// copy whose head matches, and `f` starts over at 0.
fn truncated(f: &mut Follower, draining: &mut Vec<Follower>, ctx: &mut Ctx<'_>) {
    ctx.stats.rotated("truncate");
    let mut known: HashSet<(u64, u64)> = draining.iter().map(|d| (d.id.dev, d.id.inode)).collect();
    known.insert((f.id.dev, f.id.inode));
    match find_copy(&f.position(), &known) {
        Some((copy_path, file, id)) => {
            debug!(file = %f.path.display(), copy = %copy_path.display(), "log file truncated; reading the rest from its copy");
            known.insert((id.dev, id.inode));
            let since = f.opened_at;
            let src = f.src.clone();
            draining.push(f.split_off_copy(copy_path, file, id));
            // Truncated more than once since the last look: the copies in between.
            for (p, file, id) in unseen_rotations(&f.path, since, &known) {
                debug!(file = %p.display(), "a copy of a log file we never saw live; reading it");
                if let Ok(c) = Follower::open(p, file, id, 0, src.clone(), State::Copy) {
                    draining.push(c);
                }
            }
        }
        None => {
            if f.offset > 0 {
                warn!(file = %f.path.display(), offset = f.offset, "log file truncated and no rotated copy matches it; unread lines before the truncation are lost");
            }
            // Whatever was joined so far still goes out.
            f.flush_partials(ctx);
            f.restart();
        }
    }
    // Fingerprint the new head now, so the next check compares against it.
    let size = f.file_len().unwrap_or(0);
    if let Err(e) = f.head_unchanged(size) {
        debug!(file = %f.path.display(), "fingerprinting: {e}");
    }
}

/// Rotated siblings of `path` written since `since` that no follower knows:
/// files that were live and rotated away between two looks.
fn unseen_rotations(
    path: &Path,
    since: SystemTime,
    known: &HashSet<(u64, u64)>,
) -> Vec<(PathBuf, File, Identity)> {
    // Only `0.log.*` for `0.log`: `1.log.*` (after a container restart) has its own follower.
    rotated_since(path, Some(since), known, &HashSet::new())
}

/// The file a position refers to: the same (dev, inode) with the same head, else
/// a copy with the same head, among the position's path and its siblings.
fn find_file(pos: &Position, taken: &HashSet<(u64, u64)>) -> Option<(PathBuf, File, Identity)> {
    let candidates = candidates(&pos.path);
    for path in &candidates {
        if let Some((file, id, size)) = open_matching(path, pos)
            && id.dev == pos.dev
            && id.inode == pos.inode
            && size >= pos.offset
            && !taken.contains(&(id.dev, id.inode))
        {
            return Some((path.clone(), file, id));
        }
    }
    find_copy(pos, taken)
}

/// A sibling of `pos.path` (not `taken`) whose head matches the fingerprint and
/// that is long enough to hold the offset.
fn find_copy(pos: &Position, taken: &HashSet<(u64, u64)>) -> Option<(PathBuf, File, Identity)> {
    if pos.fingerprint_len == 0 {
        return None;
    }
    candidates(&pos.path).into_iter().skip(1).find_map(|path| {
        let (file, id, size) = open_matching(&path, pos)?;
        (size >= pos.offset && !taken.contains(&(id.dev, id.inode))).then_some((path, file, id))
    })
}

/// `path` itself, then the other plain files of its directory (newest name first).
fn candidates(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let Some(dir) = path.parent() else { return out };
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    let mut siblings: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p != path
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_rotated_candidate)
        })
        .collect();
    siblings.sort();
    siblings.reverse();
    out.extend(siblings);
    out
}

/// Opens `path` if its head matches `pos`'s fingerprint.
fn open_matching(path: &Path, pos: &Position) -> Option<(File, Identity, u64)> {
    let file = File::open(path).ok()?;
    let m = file.metadata().ok()?;
    if !m.is_file() {
        return None;
    }
    let (fp, len) = head_fingerprint(&file, pos.fingerprint_len).ok()?;
    (len == pos.fingerprint_len && fp == pos.fingerprint).then_some((file, identity(&m), m.len()))
}
