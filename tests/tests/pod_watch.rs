//! The fake API server speaks the protocol the real kube client expects: lists with a
//! field selector, watches with ADDED/MODIFIED/DELETED, BOOKMARKs, 410 Expired, outages.
//! The agent's own pod watcher is tested against it in `agent/src/enrich/pods/tests.rs`.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{ListParams, WatchEvent, WatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{watcher, watcher::Event},
};
use sonde_tests::fake_apiserver::{FakeApiServer, SentEvent, TOKEN, format_log, pod_json};

const SELECTOR: &str = "spec.nodeName=node-a";
const ID: &str = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899";

/// A kube client built the way the agent builds one: from the server's kubeconfig file.
async fn client(server: &FakeApiServer) -> Client {
    let file =
        Kubeconfig::read_from(server.kubeconfig_path()).expect("reading the fake's kubeconfig");
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("kube client")
}

fn pod(name: &str, uid: &str, node: &str) -> serde_json::Value {
    let containers = [("main", &*format!("containerd://{ID}"), "nginx:1.27")];
    pod_json(
        "default",
        name,
        uid,
        node,
        &containers,
        &[("app", name)],
        Some(("ReplicaSet", "rs")),
    )
}

/// The next item of a stream, or a panic naming what was expected.
async fn next<S: Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 10s"))
        .unwrap_or_else(|| panic!("stream ended before {what}"))
}

type WatcherEvent = Result<Event<Pod>, watcher::Error>;

/// Runs a kube `watcher` in a task (it must be polled to issue its requests) and hands
/// its events over a channel.
fn spawn_watcher(pods: Api<Pod>) -> tokio::sync::mpsc::UnboundedReceiver<WatcherEvent> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut events = watcher(pods, watcher::Config::default().fields(SELECTOR)).boxed();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if tx.send(event).is_err() {
                return; // the test is over
            }
        }
    });
    rx
}

/// The next watcher event, or a panic naming what was expected.
async fn recv(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<WatcherEvent>,
    what: &str,
) -> WatcherEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 10s"))
        .unwrap_or_else(|| panic!("watcher ended before {what}"))
}

/// The name in a watcher event, as "Kind(name)", for compact assertions.
fn describe(event: &WatcherEvent) -> String {
    match event {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(p)) => format!("InitApply({})", p.name_any()),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(p)) => format!("Apply({})", p.name_any()),
        Ok(Event::Delete(p)) => format!("Delete({})", p.name_any()),
        Err(e) => format!("Err({e})"),
    }
}

async fn eventually(server: &FakeApiServer, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; requests:\n{}",
            format_log(&server.requests())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn list_honours_the_field_selector_and_sends_the_token() {
    let server = FakeApiServer::start();
    server.add_pod(pod("a", "00000000-0000-4000-8000-00000000000a", "node-a"));
    server.add_pod(pod("b", "00000000-0000-4000-8000-00000000000b", "node-b"));
    let pods: Api<Pod> = Api::all(client(&server).await);

    let list = pods
        .list(&ListParams::default().fields(SELECTOR))
        .await
        .expect("list");
    assert_eq!(
        list.items.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(
        list.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
    let status = &list.items[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        status.container_id.as_deref(),
        Some(&*format!("containerd://{ID}"))
    );
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    let bad = pods
        .list(&ListParams::default().fields("spec.bogus=x"))
        .await
        .expect_err("unsupported field");
    assert!(
        matches!(&bad, kube::Error::Api(s) if s.code == 400),
        "{bad:?}"
    );

    let requests = server.requests();
    assert_eq!(requests[0].field_selector(), Some(SELECTOR));
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
}

#[tokio::test]
async fn watcher_sees_added_modified_and_deleted() {
    let server = FakeApiServer::start();
    server.add_pod(pod("a", "00000000-0000-4000-8000-00000000000a", "node-a"));
    let pods: Api<Pod> = Api::all(client(&server).await);
    let mut events = spawn_watcher(pods);

    let mut seen = Vec::new();
    for what in ["Init", "InitApply", "InitDone"] {
        seen.push(describe(&recv(&mut events, what).await));
    }
    assert_eq!(seen, ["Init", "InitApply(a)", "InitDone"]);

    server.add_pod(pod(
        "elsewhere",
        "00000000-0000-4000-8000-00000000000e",
        "node-b",
    ));
    server.add_pod(pod("c", "00000000-0000-4000-8000-00000000000c", "node-a"));
    assert_eq!(
        describe(&recv(&mut events, "ADDED c").await),
        "Apply(c)",
        "node-b's pod is filtered out"
    );
    server.update_pod("c", |p| p["metadata"]["labels"]["app"] = "changed".into());
    match recv(&mut events, "MODIFIED c").await {
        Ok(Event::Apply(p)) => assert_eq!(p.labels()["app"], "changed"),
        other => panic!("expected Apply(c), got {}", describe(&other)),
    }
    server.delete_pod("c");
    assert_eq!(describe(&recv(&mut events, "DELETED c").await), "Delete(c)");
}

#[tokio::test]
async fn expired_watch_forces_a_relist() {
    let server = FakeApiServer::start();
    server.add_pod(pod("a", "00000000-0000-4000-8000-00000000000a", "node-a"));
    let pods: Api<Pod> = Api::all(client(&server).await);
    let mut events = spawn_watcher(pods);
    for what in ["Init", "InitApply", "InitDone"] {
        recv(&mut events, what).await.expect(what);
    }
    eventually(&server, "the watch to open", || {
        server.requests().iter().any(|r| r.is_pod_watch())
    })
    .await;

    server.expire_watches();
    match recv(&mut events, "the 410").await {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 WatchError, got {}", describe(&other)),
    }
    let mut seen = Vec::new();
    for what in ["Init", "InitApply", "InitDone"] {
        seen.push(describe(&recv(&mut events, what).await));
    }
    assert_eq!(seen, ["Init", "InitApply(a)", "InitDone"]);
    let lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_pod_list())
        .collect();
    assert_eq!(lists.len(), 2, "{}", format_log(&server.requests()));
    assert!(lists.iter().all(|r| r.field_selector() == Some(SELECTOR)));
}

#[tokio::test]
async fn bookmarks_are_delivered_and_resume_the_watch() {
    let server = FakeApiServer::start();
    server.add_pod(pod("a", "00000000-0000-4000-8000-00000000000a", "node-a"));
    let pods: Api<Pod> = Api::all(client(&server).await);

    // The raw watch stream carries the BOOKMARK with the server's current version, which
    // moved on because of a pod this watch does not select.
    let params = WatchParams::default().fields(SELECTOR); // bookmarks are on by default
    let mut raw = pods
        .watch(&params, &server.resource_version().to_string())
        .await
        .expect("watch")
        .boxed();
    server.add_pod(pod("b", "00000000-0000-4000-8000-00000000000b", "node-b"));
    server.bookmark();
    match next(&mut raw, "BOOKMARK").await.expect("watch event") {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata.resource_version,
            server.resource_version().to_string()
        ),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    drop(raw);

    // The watcher resumes a cleanly ended watch from the bookmark's version, without a relist.
    let mut events = spawn_watcher(pods);
    for what in ["Init", "InitApply", "InitDone"] {
        recv(&mut events, what).await.expect(what);
    }
    eventually(&server, "the watch", || {
        server
            .requests()
            .iter()
            .filter(|r| r.is_pod_watch())
            .count()
            == 2
    })
    .await;
    server.add_pod(pod("c", "00000000-0000-4000-8000-00000000000c", "node-b"));
    server.bookmark();
    let bookmark_rv = server.resource_version().to_string();
    // Only once the bookmark is on the wire may the watch end: the watcher reads in order.
    let sent = SentEvent {
        kind: "BOOKMARK".into(),
        resource_version: bookmark_rv.clone(),
    };
    eventually(&server, "the bookmark to be sent", || {
        server.sent_events().contains(&sent)
    })
    .await;
    server.end_watches();
    eventually(&server, "a resumed watch", || {
        server
            .requests()
            .iter()
            .filter(|r| r.is_pod_watch())
            .count()
            == 3
    })
    .await;
    let requests = server.requests();
    let resumed = requests.iter().rfind(|r| r.is_pod_watch()).unwrap();
    assert_eq!(
        resumed.query.get("resourceVersion"),
        Some(&bookmark_rv),
        "{}",
        format_log(&requests)
    );
    assert_eq!(
        resumed.query.get("allowWatchBookmarks").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        requests.iter().filter(|r| r.is_pod_list()).count(),
        1,
        "no relist"
    );
}

#[tokio::test]
async fn outage_cuts_open_watches_and_refuses_requests() {
    let server = FakeApiServer::start();
    server.add_pod(pod("a", "00000000-0000-4000-8000-00000000000a", "node-a"));
    let pods: Api<Pod> = Api::all(client(&server).await);
    let mut raw = pods
        .watch(&WatchParams::default().fields(SELECTOR), "1")
        .await
        .expect("watch")
        .boxed();

    server.set_down(true);
    // The cut connection ends the stream (possibly after an error for the broken body).
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while raw.next().await.is_some() {}
    });
    ended
        .await
        .expect("the open watch to end when the server goes down");
    let err = pods
        .list(&ListParams::default())
        .await
        .expect_err("a list during the outage");
    assert!(
        matches!(&err, kube::Error::HyperError(_) | kube::Error::Service(_)),
        "a connection error, not an API answer: {err:?}"
    );
    assert!(server.requests().last().unwrap().refused());

    server.set_down(false);
    assert_eq!(
        pods.list(&ListParams::default())
            .await
            .expect("a list after the outage")
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn serves_nodes() {
    let server = FakeApiServer::start();
    server.add_node("node-a");
    let nodes: Api<Node> = Api::all(client(&server).await);
    let node = nodes.get("node-a").await.expect("node-a");
    assert_eq!(node.labels()["kubernetes.io/hostname"], "node-a");
    let missing = nodes.get("node-z").await.expect_err("an unknown node");
    assert!(
        matches!(&missing, kube::Error::Api(s) if s.code == 404),
        "{missing:?}"
    );
}
