//! A small fake Kubernetes API server that speaks the real JSON to the real kube client.
//!
//! No real API server runs on our test machines, so this is the one accepted stand-in.
//! It implements just enough of the API semantics that a list+watch client depends on:
//!
//! - every change bumps a global `resourceVersion`; lists report the current one;
//! - a watch from resourceVersion `N` replays every retained change after `N`, then streams
//!   new ones as newline-delimited `WatchEvent` JSON over a chunked response;
//! - [`FakeApiServer::expire_watches`] compacts that history: open watches get the
//!   `410 Expired` ERROR event, and a watch resumed from an older version gets it at once,
//!   exactly as etcd compaction does to a real server. Only then must a client relist;
//! - field selectors on `spec.nodeName`, `metadata.name`, `metadata.namespace` and
//!   `status.phase` are honoured, other fields get the real server's 400;
//! - `limit`/`continue` are ignored: a list is always one complete page.
//!
//! Besides pods (list, get, watch) it serves what a node agent writes:
//!
//! - Nodes: `GET /api/v1/nodes/<name>` and `PATCH /api/v1/nodes/<name>/status` with a
//!   strategic merge patch (`status.conditions` merged by `type`, as the real server does,
//!   so the kubelet's conditions survive) or a JSON merge patch; JSON patch and apply
//!   patch get 415. See [`nodes`].
//! - core/v1 Events: create, get, list and patch in a namespace, with the real server's
//!   cheap validation (409 for a taken name, 422 for a missing name or involvedObject or
//!   a namespace that does not match the involved object's). See [`events`].
//!
//! Node and event writes bump the global `resourceVersion` but are not watchable: only
//! pods have watches here.
//!
//! Plain blocking std code with a thread per connection, like the rest of this crate;
//! every response closes its connection, so no keep-alive bookkeeping is needed.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod events;
#[cfg(test)]
mod http_tests;
mod nodes;
mod patch;

pub use nodes::kubelet_conditions;

/// The bearer token the generated kubeconfig carries.
pub const TOKEN: &str = "sonde-fake-token";

/// One request as the server saw it, for tests to assert on.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// Query parameters, percent-decoded.
    pub query: BTreeMap<String, String>,
    pub authorization: Option<String>,
    /// The request's `Content-Type` (which kind of patch a PATCH is).
    pub content_type: Option<String>,
    /// The request body as text (empty for GET).
    pub body: String,
    /// The status code answered (200 for a watch that started streaming), or
    /// [`RequestRecord::REFUSED`] for a connection closed unanswered during an outage.
    pub status: u16,
}

impl RequestRecord {
    pub const REFUSED: u16 = 0;

    /// Closed without an answer because the server was down.
    pub fn refused(&self) -> bool {
        self.status == Self::REFUSED
    }

    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }

    /// A list (not a watch) of pods, cluster-wide or in one namespace.
    pub fn is_pod_list(&self) -> bool {
        self.method == "GET" && self.path.ends_with("/pods") && !self.is_watch()
    }

    pub fn is_pod_watch(&self) -> bool {
        self.method == "GET" && self.path.ends_with("/pods") && self.is_watch()
    }

    pub fn field_selector(&self) -> Option<&str> {
        self.query.get("fieldSelector").map(String::as_str)
    }

    /// A PATCH of a node's status (`node` is its name).
    pub fn is_node_status_patch(&self, node: &str) -> bool {
        self.method == "PATCH" && self.path == format!("/api/v1/nodes/{node}/status")
    }

    /// A create (POST) of a core/v1 Event, in any namespace.
    pub fn is_event_create(&self) -> bool {
        self.method == "POST"
            && self.path.starts_with("/api/v1/namespaces/")
            && self.path.ends_with("/events")
    }

    /// A PATCH of a core/v1 Event, in any namespace.
    pub fn is_event_patch(&self) -> bool {
        self.method == "PATCH"
            && self.path.starts_with("/api/v1/namespaces/")
            && self.path.contains("/events/")
    }
}

/// One watch event written to a client, in the order written.
#[derive(Clone, Debug, PartialEq)]
pub struct SentEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub kind: String,
    /// The object's `metadata.resourceVersion` (empty for an ERROR).
    pub resource_version: String,
}

/// A running fake API server on 127.0.0.1; stops accepting and ends its watches on drop.
pub struct FakeApiServer {
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    dir: PathBuf,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled on every change, so open watches wake up and look.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The last resourceVersion handed out.
    rv: u64,
    /// Pods by (namespace, name), as the API server keys them.
    pods: BTreeMap<(String, String), Value>,
    nodes: BTreeMap<String, Value>,
    /// core/v1 Events by (namespace, name).
    events: BTreeMap<(String, String), Value>,
    /// Makes generated names and uids unique.
    serial: u64,
    /// Changes after `compacted_rv`, oldest first.
    history: Vec<Change>,
    /// Watches from a version older than this have missed events: they get 410.
    compacted_rv: u64,
    /// Bumped to make open watches send a 410 ERROR and end.
    expire_gen: u64,
    /// Bumped to make open watches end cleanly (as at the server's watch timeout).
    end_gen: u64,
    /// Bumped to make open watches that allow bookmarks send one.
    bookmark_gen: u64,
    down: bool,
    stopped: bool,
    requests: Vec<RequestRecord>,
    sent: Vec<SentEvent>,
}

#[derive(Clone)]
struct Change {
    rv: u64,
    kind: &'static str,
    object: Value,
}

impl FakeApiServer {
    pub fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake API server");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_shared.lock().stopped {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept_shared.clone();
                std::thread::spawn(move || serve(conn, &shared));
            }
        });
        let dir = std::env::temp_dir().join(format!(
            "sonde-fake-apiserver-{}-{}",
            std::process::id(),
            addr.port()
        ));
        FakeApiServer {
            url: format!("http://{addr}"),
            addr,
            shared,
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes (once) and returns a kubeconfig that points at this server with a dummy token.
    pub fn kubeconfig_path(&self) -> PathBuf {
        std::fs::create_dir_all(&self.dir).expect("creating the kubeconfig directory");
        let path = self.dir.join("kubeconfig");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\nusers:\n- name: fake\n  user:\n    token: {TOKEN}\n",
            url = self.url
        );
        std::fs::write(&path, yaml).expect("writing the kubeconfig");
        path
    }

    /// Creates a pod (a `Pod` object, e.g. from [`pod_json`]); the server sets its resourceVersion.
    pub fn add_pod(&self, mut pod: Value) {
        let key = pod_key(&pod);
        let mut st = self.shared.lock();
        assert!(
            !st.pods.contains_key(&key),
            "pod {key:?} already exists; use modify_pod"
        );
        st.record("ADDED", &mut pod);
        st.pods.insert(key, pod);
        self.shared.changed.notify_all();
    }

    /// Adds pod `namespace/name` on `node` with one container `app` running under
    /// containerd with the ids [`crate::cgroup::kubelet_ids`]`(n, fill)` gives, and
    /// returns them (container id, pod uid) for the test's cgroup.
    pub fn add_app_pod(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
        (n, fill): (u32, &str),
    ) -> (String, String) {
        let (id, uid) = crate::cgroup::kubelet_ids(n, fill);
        let container = format!("containerd://{id}");
        self.add_pod(pod_json(
            namespace,
            name,
            &uid,
            node,
            &[("app", &container, "registry.example/app:1")],
            &[],
            None,
        ));
        (id, uid)
    }

    /// Replaces an existing pod (same namespace and name) and sends MODIFIED.
    pub fn modify_pod(&self, mut pod: Value) {
        let key = pod_key(&pod);
        let mut st = self.shared.lock();
        assert!(st.pods.contains_key(&key), "no pod {key:?} to modify");
        st.record("MODIFIED", &mut pod);
        st.pods.insert(key, pod);
        self.shared.changed.notify_all();
    }

    /// Changes a pod in place: `which` is its uid, name, or `namespace/name`.
    pub fn update_pod(&self, which: &str, change: impl FnOnce(&mut Value)) {
        let mut pod = self
            .pod(which)
            .unwrap_or_else(|| panic!("no pod {which:?}"));
        change(&mut pod);
        self.modify_pod(pod);
    }

    /// Deletes a pod (`which` is its uid, name, or `namespace/name`) and sends DELETED.
    pub fn delete_pod(&self, which: &str) {
        let mut st = self.shared.lock();
        let key = st
            .find_pod(which)
            .unwrap_or_else(|| panic!("no pod {which:?} to delete"));
        let mut pod = st.pods.remove(&key).unwrap();
        st.record("DELETED", &mut pod);
        self.shared.changed.notify_all();
    }

    /// The stored pod, with the resourceVersion the server gave it.
    pub fn pod(&self, which: &str) -> Option<Value> {
        let st = self.shared.lock();
        st.find_pod(which).map(|k| st.pods[&k].clone())
    }

    /// Adds a minimal Node, served at `/api/v1/nodes/<name>`, with the conditions a healthy
    /// kubelet keeps on it ([`kubelet_conditions`]), so tests can check a reporter's
    /// patches leave them alone.
    pub fn add_node(&self, name: &str) {
        let mut st = self.shared.lock();
        st.rv += 1;
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": format!("00000000-0000-4000-8000-{:012x}", st.rv),
                "resourceVersion": st.rv.to_string(),
                "labels": { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" },
            },
            "spec": {},
            "status": { "conditions": kubelet_conditions(), "nodeInfo": { "kubeletVersion": "v1.34.0" } },
        });
        st.nodes.insert(name.to_string(), node);
    }

    pub fn node(&self, name: &str) -> Option<Value> {
        self.shared.lock().nodes.get(name).cloned()
    }

    /// The node's `status.conditions` as stored (empty for an unknown node).
    pub fn node_conditions(&self, node: &str) -> Vec<Value> {
        self.shared
            .lock()
            .nodes
            .get(node)
            .and_then(|n| n["status"]["conditions"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The condition of `kind` (its `type`) on the node, if it has one.
    pub fn node_condition(&self, node: &str, kind: &str) -> Option<Value> {
        self.node_conditions(node)
            .into_iter()
            .find(|c| c["type"] == kind)
    }

    /// Replaces the node's `status.conditions`, as the kubelet's own status updates would
    /// (e.g. with [`kubelet_conditions`]). Panics for an unknown node.
    pub fn set_node_conditions(&self, node: &str, conditions: Vec<Value>) {
        let mut st = self.shared.lock();
        st.rv += 1;
        let rv = st.rv.to_string();
        let n = st
            .nodes
            .get_mut(node)
            .unwrap_or_else(|| panic!("no node {node:?}; add_node first"));
        n["status"]["conditions"] = Value::Array(conditions);
        n["metadata"]["resourceVersion"] = json!(rv);
    }

    /// Every core/v1 Event stored, in all namespaces, ordered by (namespace, name).
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().events.values().cloned().collect()
    }

    /// The stored Event `namespace/name`.
    pub fn event(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .events
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Deletes every stored Event, as their TTL (1h by default) does on a real server.
    pub fn delete_events(&self) {
        self.shared.lock().events.clear();
    }

    /// Polls `probe` until it returns `Some`, or panics after `timeout` naming `what` and
    /// showing the request log. For waiting on conditions and events, e.g.
    /// `server.wait_until(t, "the event", |s| s.events().into_iter().find(...))`.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        probe: impl Fn(&FakeApiServer) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe(self) {
                return found;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for {what}; requests:\n{}",
                    format_log(&self.requests())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Compacts history and sends `410 Expired` on every open watch, then ends them. Any watch
    /// resumed from an older resourceVersion also gets 410, so clients must relist.
    pub fn expire_watches(&self) {
        let mut st = self.shared.lock();
        st.compacted_rv = st.rv;
        st.history.clear();
        st.expire_gen += 1;
        self.shared.changed.notify_all();
    }

    /// Ends every open watch cleanly, as the server does when `timeoutSeconds` runs out.
    pub fn end_watches(&self) {
        self.shared.lock().end_gen += 1;
        self.shared.changed.notify_all();
    }

    /// Sends a BOOKMARK with the current resourceVersion on every open watch that allows them.
    pub fn bookmark(&self) {
        self.shared.lock().bookmark_gen += 1;
        self.shared.changed.notify_all();
    }

    /// An outage: while down, every connection is closed without an answer and open watches
    /// are cut mid-stream, as when the API server or the network to it is gone.
    ///
    /// Not a `503`: kube's client retries 429/503/504 itself (up to 15 times, backing off to
    /// minutes), so a 503 would reach the watcher only long after the test's deadline.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
        self.shared.changed.notify_all();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Every watch event written so far, over all watches.
    pub fn sent_events(&self) -> Vec<SentEvent> {
        self.shared.lock().sent.clone()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `pred` holds for the request log, or panics after `timeout` showing it.
    pub fn wait_for_requests(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[RequestRecord]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.requests();
            if pred(&log) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for {what}; requests:\n{}",
                    format_log(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The request log, one line per request, for failure messages.
pub fn format_log(log: &[RequestRecord]) -> String {
    log.iter()
        .map(|r| format!("{} {} {:?} -> {}", r.method, r.path, r.query, r.status))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
        let _ = TcpStream::connect(self.addr); // wakes the accept loop so it sees `stopped`
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Shared {
    /// Locks the state; a panicking test thread must not hide the real failure behind poison.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Gives `object` the next resourceVersion and appends the change to the history.
    fn record(&mut self, kind: &'static str, object: &mut Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.history.push(Change {
            rv: self.rv,
            kind,
            object: object.clone(),
        });
    }

    fn find_pod(&self, which: &str) -> Option<(String, String)> {
        self.pods.iter().find_map(|((ns, name), pod)| {
            let hit =
                pod["metadata"]["uid"] == which || name == which || format!("{ns}/{name}") == which;
            hit.then(|| (ns.clone(), name.clone()))
        })
    }
}

fn pod_key(pod: &Value) -> (String, String) {
    let field = |f: &str| {
        pod["metadata"][f]
            .as_str()
            .unwrap_or_else(|| panic!("pod without metadata.{f}"))
            .to_string()
    };
    (field("namespace"), field("name"))
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Request {
    /// The body as a JSON object, or the real server's 400 for anything else.
    fn json_body(&self) -> Result<Value, Response> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(bad_request("the request body is not a JSON object")),
            Err(e) => Err(bad_request(&format!("the request body is not JSON: {e}"))),
        }
    }

    /// The media type without parameters (`; charset=utf-8`), lower-cased.
    fn media_type(&self) -> String {
        let ct = self.content_type.as_deref().unwrap_or("");
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

enum Response {
    Json(u16, Value),
    Watch(WatchRequest),
    /// Close the connection without an answer (the server is down).
    Refuse,
}

fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&conn) else {
        return;
    };
    let response = {
        let mut st = shared.lock();
        let response = if st.down {
            Response::Refuse
        } else {
            route(&req, &mut st)
        };
        let status = match &response {
            Response::Json(code, _) => *code,
            Response::Watch(_) => 200,
            Response::Refuse => RequestRecord::REFUSED,
        };
        st.requests.push(RequestRecord {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            authorization: req.authorization.clone(),
            content_type: req.content_type.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            status,
        });
        response
    };
    let _ = match response {
        Response::Json(code, body) => write_json(&conn, code, &body),
        Response::Watch(w) => stream_watch(conn, shared, w),
        Response::Refuse => Ok(()), // dropping `conn` closes it unanswered
    };
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let (mut authorization, mut content_type, mut length) = (None, None, 0);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => authorization = Some(value.trim().to_string()),
            "content-type" => content_type = Some(value.trim().to_string()),
            "content-length" => length = value.trim().parse().ok()?,
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path: path.to_string(),
        query,
        authorization,
        content_type,
        body,
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn write_json(mut conn: &TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        conn,
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(code),
        body.len()
    )?;
    conn.flush()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Unknown",
    }
}

/// A `Status` object, as the API server sends for errors.
fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn bad_request(message: &str) -> Response {
    Response::Json(400, status_json(400, "BadRequest", message))
}

/// The real server's 404 for a named object, e.g. `nodes "n1" not found`.
fn object_not_found(resource: &str, name: &str) -> Response {
    let mut status = status_json(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    status["details"] = json!({ "name": name, "kind": resource });
    Response::Json(404, status)
}

/// The real server's 422 for a field that fails validation.
fn invalid(kind: &str, name: &str, causes: &[(&str, String)]) -> Response {
    let detail: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let mut status = status_json(
        422,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {}", detail.join(", ")),
    );
    status["details"] = json!({
        "name": name,
        "kind": kind,
        "causes": causes.iter().map(|(f, m)| json!({ "field": f, "message": m, "reason": "FieldValueInvalid" })).collect::<Vec<_>>(),
    });
    Response::Json(422, status)
}

fn method_not_allowed(req: &Request) -> Response {
    let msg = format!("the fake does not serve {} {}", req.method, req.path);
    Response::Json(405, status_json(405, "MethodNotAllowed", &msg))
}

// ---------------------------------------------------------------------------------------------
// Routes

fn route(req: &Request, st: &mut State) -> Response {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let not_found = || {
        Response::Json(
            404,
            status_json(404, "NotFound", &format!("{} not found", req.path)),
        )
    };
    match segments.as_slice() {
        ["api", "v1", "nodes", name, "status"] => return nodes::status(req, st, name),
        ["api", "v1", "events"] => return events::collection(req, st, None),
        ["api", "v1", "namespaces", ns, "events"] => return events::collection(req, st, Some(ns)),
        ["api", "v1", "namespaces", ns, "events", name] => return events::one(req, st, ns, name),
        _ => {}
    }
    if req.method != "GET" {
        return method_not_allowed(req);
    }
    match segments.as_slice() {
        ["api", "v1", "pods"] => pods_collection(req, st, None),
        ["api", "v1", "namespaces", ns, "pods"] => pods_collection(req, st, Some(ns)),
        ["api", "v1", "namespaces", ns, "pods", name] => {
            match st.pods.get(&(ns.to_string(), name.to_string())) {
                Some(pod) => Response::Json(200, pod.clone()),
                None => not_found(),
            }
        }
        ["api", "v1", "nodes", name] => match st.nodes.get(*name) {
            Some(node) => Response::Json(200, node.clone()),
            None => object_not_found("nodes", name),
        },
        _ => not_found(),
    }
}

fn pods_collection(req: &Request, st: &State, namespace: Option<&str>) -> Response {
    let mut filter =
        match FieldFilter::parse(req.query.get("fieldSelector").map_or("", String::as_str)) {
            Ok(f) => f,
            Err(msg) => return Response::Json(400, status_json(400, "BadRequest", &msg)),
        };
    if req
        .query
        .get("labelSelector")
        .is_some_and(|s| !s.is_empty())
    {
        let msg = "labelSelector is not implemented by the fake API server";
        return Response::Json(400, status_json(400, "BadRequest", msg));
    }
    if let Some(ns) = namespace {
        filter
            .terms
            .push(("metadata.namespace".into(), true, ns.to_string()));
    }
    if req
        .query
        .get("watch")
        .is_some_and(|w| w == "true" || w == "1")
    {
        let from = req
            .query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok());
        let timeout = req
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_secs);
        let bookmarks = req
            .query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true");
        return Response::Watch(WatchRequest {
            filter,
            from,
            timeout,
            bookmarks,
        });
    }
    let items: Vec<Value> = st
        .pods
        .values()
        .filter(|p| filter.matches(p))
        .cloned()
        .collect();
    Response::Json(
        200,
        json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": { "resourceVersion": st.rv.to_string() },
            "items": items,
        }),
    )
}

/// A field selector: `a=b,c!=d` over the fields the API server supports for pods (a subset).
struct FieldFilter {
    /// (field, equal?, value)
    terms: Vec<(String, bool, String)>,
}

impl FieldFilter {
    fn parse(selector: &str) -> Result<FieldFilter, String> {
        let mut terms = Vec::new();
        for term in selector.split(',').filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            };
            if ![
                "spec.nodeName",
                "metadata.name",
                "metadata.namespace",
                "status.phase",
            ]
            .contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_string(), equal, value.to_string()));
        }
        Ok(FieldFilter { terms })
    }

    fn matches(&self, pod: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = field
                .split('.')
                .fold(pod, |v, k| &v[k])
                .as_str()
                .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Watches

struct WatchRequest {
    filter: FieldFilter,
    /// `None` (absent or "0"): start with the current state as synthetic ADDED events.
    from: Option<u64>,
    timeout: Option<Duration>,
    bookmarks: bool,
}

/// How a watch stream ends.
enum End {
    /// The terminating chunk: a clean end of the response.
    Clean,
    /// Drop the connection mid-body, as a network failure or a dying server does.
    Cut,
}

/// Streams a watch until it is told to end, it times out, or the client goes away.
fn stream_watch(conn: TcpStream, shared: &Shared, w: WatchRequest) -> std::io::Result<()> {
    // Read the generations before the headers go out: a client may call `bookmark()` (or
    // end or expire watches) as soon as its watch call returns, and must not be missed.
    let (expire_gen, end_gen, mut bookmark_gen) = {
        let st = shared.lock();
        (st.expire_gen, st.end_gen, st.bookmark_gen)
    };
    let mut out = ChunkedWriter::start(conn)?;
    let deadline = w.timeout.map(|t| Instant::now() + t);
    let mut st = shared.lock();
    let mut cursor = match w.from {
        Some(rv) if rv > 0 => rv,
        _ => {
            // No version: the current state first, as the real server does for "0".
            let rv = st.rv;
            let initial: Vec<Value> = st
                .pods
                .values()
                .filter(|p| w.filter.matches(p))
                .cloned()
                .collect();
            drop(st);
            for pod in initial {
                out.event(shared, "ADDED", &pod)?;
            }
            st = shared.lock();
            rv
        }
    };
    let end = loop {
        if st.down || st.stopped {
            break End::Cut;
        }
        if cursor < st.compacted_rv || st.expire_gen != expire_gen {
            drop(st);
            let gone = status_json(410, "Expired", "too old resource version");
            out.event(shared, "ERROR", &gone)?;
            break End::Clean;
        }
        if st.end_gen != end_gen || deadline.is_some_and(|d| Instant::now() >= d) {
            break End::Clean;
        }
        let mut send: Vec<(&'static str, Value)> = Vec::new();
        for change in &st.history {
            if change.rv <= cursor {
                continue;
            }
            if w.filter.matches(&change.object) {
                send.push((change.kind, change.object.clone()));
            }
            cursor = change.rv;
        }
        if st.bookmark_gen != bookmark_gen {
            bookmark_gen = st.bookmark_gen;
            if w.bookmarks {
                let meta = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "resourceVersion": st.rv.to_string() } });
                send.push(("BOOKMARK", meta));
            }
        }
        if send.is_empty() {
            if out.client_gone() {
                return Ok(());
            }
            // Wake up now and then to notice timeouts and clients that went away.
            st = shared
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        drop(st);
        for (kind, object) in send {
            out.event(shared, kind, &object)?;
        }
        st = shared.lock();
    };
    match end {
        End::Clean => out.finish(),
        End::Cut => Ok(()), // dropping the socket without the last chunk
    }
}

struct ChunkedWriter {
    conn: TcpStream,
}

impl ChunkedWriter {
    fn start(mut conn: TcpStream) -> std::io::Result<ChunkedWriter> {
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )?;
        conn.flush()?;
        Ok(ChunkedWriter { conn })
    }

    /// One `WatchEvent` per line, one line per chunk; logged once written.
    fn event(&mut self, shared: &Shared, kind: &str, object: &Value) -> std::io::Result<()> {
        let line = format!("{}\n", json!({ "type": kind, "object": object }));
        write!(self.conn, "{:x}\r\n{line}\r\n", line.len())?;
        self.conn.flush()?;
        let resource_version = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        shared.lock().sent.push(SentEvent {
            kind: kind.to_string(),
            resource_version,
        });
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.conn.write_all(b"0\r\n\r\n")?;
        self.conn.flush()
    }

    /// Whether the client closed its end (a watch it no longer wants).
    fn client_gone(&self) -> bool {
        if self.conn.set_nonblocking(true).is_err() {
            return true;
        }
        let gone = match self.conn.peek(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let _ = self.conn.set_nonblocking(false);
        gone
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

/// A realistic running Pod, as the API server returns it.
///
/// `containers` are `(name, containerID, image)`, with the containerID as the kubelet reports
/// it (`containerd://<id>`, `cri-o://<id>`, `docker://<id>`); an empty containerID is a
/// container that has not started yet. `owner` is the controller's `(kind, name)`.
pub fn pod_json(
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    containers: &[(&str, &str, &str)],
    labels: &[(&str, &str)],
    owner: Option<(&str, &str)>,
) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let owner_refs: Vec<Value> = owner
        .map(|(kind, owner_name)| {
            json!({
                "apiVersion": if kind == "Node" { "v1" } else if kind == "Job" { "batch/v1" } else { "apps/v1" },
                "kind": kind,
                "name": owner_name,
                "uid": "5a0c4b1e-1111-4222-8333-444455556666",
                "controller": true,
                "blockOwnerDeletion": true,
            })
        })
        .into_iter()
        .collect();
    let spec_containers: Vec<Value> = containers
        .iter()
        .map(|(c, _, image)| json!({ "name": c, "image": image, "imagePullPolicy": "IfNotPresent", "resources": {} }))
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(c, id, image)| {
            let mut status = json!({
                "name": c,
                "image": image,
                "imageID": "",
                "ready": !id.is_empty(),
                "restartCount": 0,
                "started": !id.is_empty(),
                "state": if id.is_empty() {
                    json!({ "waiting": { "reason": "ContainerCreating" } })
                } else {
                    json!({ "running": { "startedAt": "2026-01-01T00:00:00Z" } })
                },
            });
            if !id.is_empty() {
                status["containerID"] = json!(id);
            }
            status
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": labels,
            "ownerReferences": owner_refs,
        },
        "spec": {
            "nodeName": node,
            "containers": spec_containers,
            "restartPolicy": "Always",
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler",
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.10",
            "qosClass": "BestEffort",
            "startTime": "2026-01-01T00:00:00Z",
            "containerStatuses": statuses,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries_and_selectors() {
        assert_eq!(
            percent_decode("spec.nodeName%3Dnode-a%2Cx+y"),
            "spec.nodeName=node-a,x y"
        );
        assert_eq!(percent_decode("100%"), "100%");
        let f = FieldFilter::parse("spec.nodeName=a,metadata.namespace!=kube-system").unwrap();
        let pod = pod_json("default", "p", "u", "a", &[], &[], None);
        assert!(f.matches(&pod));
        assert!(!f.matches(&pod_json("kube-system", "p", "u", "a", &[], &[], None)));
        assert!(!f.matches(&pod_json("default", "p", "u", "b", &[], &[], None)));
        assert!(FieldFilter::parse("spec.bogus=1").is_err());
    }
}
