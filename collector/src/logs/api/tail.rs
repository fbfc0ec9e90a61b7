//! `GET /loki/api/v1/tail` (websocket): first the last `limit` lines since
//! `start` (default an hour ago), oldest first, then every new matching line
//! as the store broadcasts it. Messages are Loki's
//! `{"streams":[...],"dropped_entries":[...]}`.
//!
//! Two tasks per client: a reader filters the store's broadcast into a
//! bounded queue of messages; the socket task sends them. When the client
//! reads too slowly the queue fills, the reader keeps at most
//! `MAX_PENDING` entries and names the rest in `dropped_entries` (and counts
//! them), so a slow client never slows pushes or other clients.

use std::{collections::HashSet, sync::Arc};

use axum::{
    body::Body,
    extract::{
        RawQuery, State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    http::Request,
    response::Response,
};
use tokio::sync::{broadcast, mpsc};

use super::{
    LogApiState,
    error::LokiError,
    format,
    params::{self, now_ns},
    query::form,
};
use crate::{
    logs::{
        logql::{self, QueryData, TailQuery},
        model::{Direction, LogEntry, StreamEntries},
    },
    model::Labels,
};

/// Entries a reader holds for a client whose queue is full; more are dropped.
const MAX_PENDING: usize = 10_000;
/// Dropped entries named in one message (all are counted).
const MAX_DROPPED_NAMED: usize = 1_000;
/// Messages queued for one client's socket.
const QUEUE: usize = 16;

pub async fn tail(
    State(st): State<LogApiState>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, LokiError> {
    let req = Request::get(format!("/?{}", q.unwrap_or_default()))
        .body(Body::empty())
        .map_err(|e| LokiError::bad_request(format!("bad query string: {e}")))?;
    let p = form(req).await?;
    let query = match p.get("query") {
        Some(q) if !q.trim().is_empty() => q.to_string(),
        _ => return Err(LokiError::bad_request("query parameter is required")),
    };
    let compiled = logql::compile_tail(&query).map_err(|e| LokiError {
        status: e.http_status(),
        message: e.to_string(),
    })?;
    let limit = params::limit(&p, st.limits.max_lines)?;
    let now = now_ns();
    let start = params::time(&p, "start", now - params::DEFAULT_SINCE_NS)?;
    // Subscribed before the backfill query runs, so nothing falls in between
    // (entries seen by both are sent once).
    let rx = st.store.subscribe();
    Ok(ws.on_upgrade(move |socket| async move {
        session(socket, st, query, Arc::new(compiled), start, limit, rx).await;
    }))
}

async fn session(
    mut socket: WebSocket,
    st: LogApiState,
    query: String,
    compiled: Arc<TailQuery>,
    start: i64,
    limit: usize,
    rx: broadcast::Receiver<Arc<Vec<StreamEntries>>>,
) {
    let end = now_ns().saturating_add(1);
    let backfill = super::query::run(&st, move |src, limits| {
        let step = params::default_step_ns(start, end);
        logql::query_range(
            src,
            &query,
            start,
            end,
            step,
            limit,
            Direction::Backward,
            limits,
        )
    })
    .await;
    let mut seen = HashSet::new();
    match backfill {
        Ok((QueryData::Streams(mut streams), _)) => {
            for s in &mut streams {
                s.entries.sort_by_key(|e| e.ts_ns);
                for e in &s.entries {
                    seen.insert((s.labels.clone(), e.ts_ns, e.line.clone()));
                }
            }
            let msg = format::tail_message(&streams, &[]).to_string();
            if socket.send(Message::Text(msg.into())).await.is_err() {
                return;
            }
        }
        Ok(_) => {}
        Err(e) => {
            let _ = socket
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1011,
                    reason: e.message.chars().take(120).collect::<String>().into(),
                })))
                .await;
            return;
        }
    }
    let (tx, mut out) = mpsc::channel::<String>(QUEUE);
    let reader = tokio::spawn(read_broadcast(rx, compiled, seen, tx, st.metrics.clone()));
    loop {
        tokio::select! {
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            msg = out.recv() => match msg {
                Some(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    drop(out);
    reader.abort();
}

/// Filters new batches for one client into messages on `tx`.
async fn read_broadcast(
    mut rx: broadcast::Receiver<Arc<Vec<StreamEntries>>>,
    q: Arc<TailQuery>,
    seen: HashSet<(Labels, i64, String)>,
    tx: mpsc::Sender<String>,
    metrics: super::LogApiMetrics,
) {
    // Only entries no newer than the backfill's newest can repeat it.
    let seen_max_ts = seen.iter().map(|(_, ts, _)| *ts).max().unwrap_or(i64::MIN);
    let mut pending: Vec<(Labels, LogEntry)> = Vec::new();
    let mut dropped: Vec<(Labels, i64)> = Vec::new();
    loop {
        let has_pending = !pending.is_empty() || !dropped.is_empty();
        tokio::select! {
            r = rx.recv() => match r {
                Ok(batch) => {
                    for s in batch.iter() {
                        for e in &s.entries {
                            let Some((labels, entry)) = q.process(&s.labels, e) else {
                                continue;
                            };
                            if entry.ts_ns <= seen_max_ts
                                && seen.contains(&(labels.clone(), entry.ts_ns, entry.line.clone()))
                            {
                                continue;
                            }
                            if pending.len() < MAX_PENDING {
                                pending.push((labels, entry));
                            } else {
                                metrics.dropped_entries.inc();
                                if dropped.len() < MAX_DROPPED_NAMED {
                                    dropped.push((labels, entry.ts_ns));
                                }
                            }
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    metrics.lagged_batches.inc_by(n);
                    tracing::warn!(batches = n, "log tail fell behind the store; batches lost for this client");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            permit = tx.reserve(), if has_pending => match permit {
                Ok(permit) => {
                    let streams = group(std::mem::take(&mut pending));
                    permit.send(format::tail_message(&streams, &dropped).to_string());
                    dropped.clear();
                }
                Err(_) => return,
            },
            _ = tx.closed(), if !has_pending => return,
        }
    }
}

/// Entries grouped into streams by label set, in arrival order.
fn group(entries: Vec<(Labels, LogEntry)>) -> Vec<StreamEntries> {
    let mut out: Vec<StreamEntries> = Vec::new();
    for (labels, e) in entries {
        match out.iter_mut().find(|s| s.labels == labels) {
            Some(s) => s.entries.push(e),
            None => out.push(StreamEntries {
                labels,
                entries: vec![e],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(app: &str, from: i64, n: usize) -> Arc<Vec<StreamEntries>> {
        Arc::new(vec![StreamEntries {
            labels: Labels::from_pairs([("app", app)]),
            entries: (0..n as i64)
                .map(|i| LogEntry {
                    ts_ns: from + i,
                    line: format!("line {}", from + i),
                    metadata: vec![],
                })
                .collect(),
        }])
    }

    #[tokio::test]
    async fn a_slow_client_gets_bounded_pending_and_named_drops() {
        let (btx, brx) = broadcast::channel(64);
        let (tx, mut rx) = mpsc::channel(1);
        let q = Arc::new(logql::compile_tail(r#"{app="a"}"#).unwrap());
        let metrics = super::super::LogApiMetrics::default();
        // Already sent in the backfill: skipped.
        let seen = HashSet::from([(Labels::from_pairs([("app", "a")]), 0, "line 0".to_string())]);
        let reader = tokio::spawn(read_broadcast(brx, q, seen, tx, metrics.clone()));
        btx.send(batch("a", 0, 2)).unwrap();
        btx.send(batch("other", 0, 5)).unwrap();
        // The queue (1 message) fills with the first; the client reads nothing yet.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        btx.send(batch("a", 100, MAX_PENDING + 7)).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;

        let first: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"streams":[{"stream":{"app":"a"},"values":[["1","line 1"]]}],"dropped_entries":[]})
        );
        let second: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        let values = second["streams"][0]["values"].as_array().unwrap();
        assert_eq!(values.len(), MAX_PENDING);
        assert_eq!(values[0][0], "100");
        let dropped = second["dropped_entries"].as_array().unwrap();
        assert_eq!(dropped.len(), 7);
        assert_eq!(dropped[0]["timestamp"], (100 + MAX_PENDING).to_string());
        assert_eq!(metrics.dropped_entries.get(), 7);
        drop(rx);
        btx.send(batch("a", 0, 1)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the reader stops once the client is gone")
            .unwrap();
    }
}
