//! The log store's half of the durability tests: a child process appends log
//! lines and records each acknowledged push, then aborts mid-stream (no flush,
//! no shutdown); every acknowledged line must be there after reopening.

use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{SystemTime, UNIX_EPOCH},
};

use sonde_collector::{
    logs::{
        model::{Direction, LogEntry, LogSource, StreamEntries},
        store::{LogStore, LogStoreOptions},
    },
    model::{Labels, Matcher},
};

pub const CHILD_ENV: &str = "SONDE_LOGSTORE_CRASH_CHILD_DIR";
const PUSHES: i64 = 200;
const LINES_PER_PUSH: i64 = 10;
const STREAMS: i64 = 5;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

fn stream_labels(n: i64) -> Labels {
    Labels::from_pairs([("job", "crash".to_string()), ("n", n.to_string())])
}

/// The child: pushes, writes the count of acknowledged pushes after each, flushes
/// once midway (so recovery reads chunk files and the WAL), then aborts.
pub fn crash_child(dir: PathBuf) {
    let store =
        LogStore::open(&dir.join("logs"), LogStoreOptions::default()).expect("opening the store");
    let t = now_ns() - 100_000_000_000;
    for i in 0..PUSHES {
        let entries = (0..LINES_PER_PUSH)
            .map(|j| LogEntry {
                ts_ns: t + i * LINES_PER_PUSH + j,
                line: format!("{i}/{j}"),
                metadata: Vec::new(),
            })
            .collect();
        store
            .append(vec![StreamEntries {
                labels: stream_labels(i % STREAMS),
                entries,
            }])
            .expect("append");
        std::fs::write(dir.join("acked"), (i + 1).to_string()).expect("recording the ack");
        if i == PUSHES / 2 {
            store.flush().expect("flush");
        }
    }
    std::process::abort();
}

pub fn acknowledged_lines_survive_an_abort() {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("running the child");
    assert!(!status.success(), "the child must die by abort");
    let acked: i64 = read_acked(dir.path());
    assert_eq!(
        acked, PUSHES,
        "the child acknowledged every push before aborting"
    );
    let store =
        LogStore::open(&dir.path().join("logs"), LogStoreOptions::default()).expect("reopening");
    let mut total = 0;
    for n in 0..STREAMS {
        let matchers = [
            Matcher::equal("job", "crash"),
            Matcher::equal("n", n.to_string()),
        ];
        let streams = store.streams(&matchers, 0, i64::MAX).expect("streams");
        assert_eq!(streams.len(), 1, "stream {n} recovered");
        let mut got = Vec::new();
        store
            .scan(&streams[0], 0, i64::MAX, Direction::Forward, &mut |e| {
                got.push(e.ts_ns);
                ControlFlow::Continue(())
            })
            .expect("scan");
        assert_eq!(
            got.len() as i64,
            PUSHES / STREAMS * LINES_PER_PUSH,
            "every line of stream {n}"
        );
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
        total += got.len();
    }
    assert_eq!(store.stats().entries, total as u64);
}

fn read_acked(dir: &Path) -> i64 {
    let text = std::fs::read_to_string(dir.join("acked")).expect("the child recorded acks");
    text.trim().parse().expect("a number")
}
