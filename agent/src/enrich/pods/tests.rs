//! The watcher against the fake API server (`sonde_tests::fake_apiserver`), through the
//! real kube client: what operators see as pods come, change, go, and as the API goes away.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use sonde_tests::fake_apiserver::{FakeApiServer, RequestRecord, format_log, pod_json};

use super::{PodConfig, PodIndex, spawn_watcher};

const NODE: &str = "node-a";
const WEB: &str = "11111111-2222-4333-8444-555555555555";
const DB: &str = "66666666-7777-4888-9999-aaaaaaaaaaaa";
const ELSEWHERE: &str = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff";
const WEB_ID: &str = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899";
const DB_ID: &str = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
const DEBUG_ID: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn web() -> serde_json::Value {
    let containers = [("web", &*format!("containerd://{WEB_ID}"), "nginx:1.27")];
    let labels = [
        ("app", "web"),
        ("team", "shop"),
        ("pod-template-hash", "5d4f"),
    ];
    pod_json(
        "shop",
        "web-5d4f-x1",
        WEB,
        NODE,
        &containers,
        &labels,
        Some(("ReplicaSet", "web-5d4f")),
    )
}

fn db() -> serde_json::Value {
    let containers = [("postgres", &*format!("cri-o://{DB_ID}"), "postgres:17")];
    pod_json(
        "shop",
        "db-0",
        DB,
        NODE,
        &containers,
        &[("app", "db")],
        Some(("StatefulSet", "db")),
    )
}

fn elsewhere() -> serde_json::Value {
    pod_json(
        "shop",
        "web-5d4f-y2",
        ELSEWHERE,
        "node-b",
        &[],
        &[("app", "web")],
        Some(("ReplicaSet", "web-5d4f")),
    )
}

fn watch(kubeconfig: PathBuf) -> PodIndex {
    let cfg = PodConfig {
        node_name: NODE.into(),
        kubeconfig: Some(kubeconfig),
        label_keys: vec!["app".into(), "team".into()],
    };
    spawn_watcher(cfg).expect("spawn_watcher")
}

/// Polls `cond` until it holds; panics after a deadline with `what` and the request log.
async fn eventually(server: &FakeApiServer, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; requests:\n{}",
                format_log(&server.requests())
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pod_lists(server: &FakeApiServer) -> Vec<RequestRecord> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.is_pod_list() && r.status == 200)
        .collect()
}

fn label(index: &PodIndex, uid: &str, key: &str) -> Option<String> {
    index.pod(uid)?.labels.get(key).cloned()
}

#[tokio::test]
async fn labels_appear_change_and_disappear_with_pods() {
    let server = FakeApiServer::start();
    server.add_pod(web());
    server.add_pod(elsewhere());
    let index = watch(server.kubeconfig_path());

    eventually(&server, "the web pod", || index.pod(WEB).is_some()).await;
    let pod = index.pod(WEB).unwrap();
    assert_eq!(
        (pod.namespace.as_str(), pod.name.as_str()),
        ("shop", "web-5d4f-x1")
    );
    assert_eq!(
        (pod.owner_kind.as_str(), pod.owner_name.as_str()),
        ("ReplicaSet", "web-5d4f")
    );
    assert_eq!(
        pod.labels.keys().collect::<Vec<_>>(),
        ["app", "team"],
        "only the configured label keys"
    );
    let (owner, container) = index.container(WEB_ID).expect("web's container");
    assert_eq!(owner.uid, WEB);
    assert_eq!(
        (
            container.name.as_str(),
            container.runtime.as_str(),
            container.image.as_str()
        ),
        ("web", "containerd", "nginx:1.27")
    );
    assert_eq!(index.len(), 1, "another node's pod must not be indexed");

    // A new pod arrives on the watch.
    server.add_pod(db());
    eventually(&server, "the db pod", || index.container(DB_ID).is_some()).await;
    assert_eq!(index.container(DB_ID).unwrap().1.runtime, "cri-o");

    // A label changes, and `kubectl debug` adds an ephemeral container.
    server.update_pod(WEB, |p| {
        p["metadata"]["labels"]["app"] = "web-v2".into();
        p["status"]["ephemeralContainerStatuses"] = serde_json::json!([{
            "name": "debugger", "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 0,
            "containerID": format!("containerd://{DEBUG_ID}"),
        }]);
    });
    eventually(&server, "the new label", || {
        label(&index, WEB, "app").as_deref() == Some("web-v2")
    })
    .await;
    let (owner, debugger) = index.container(DEBUG_ID).expect("the ephemeral container");
    assert_eq!(
        (owner.uid.as_str(), debugger.name.as_str()),
        (WEB, "debugger")
    );

    // The pod is deleted: its pod and every container go.
    server.delete_pod(WEB);
    eventually(&server, "the web pod to go", || index.pod(WEB).is_none()).await;
    assert!(index.container(WEB_ID).is_none() && index.container(DEBUG_ID).is_none());
    assert!(index.pod(DB).is_some());

    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.is_pod_watch()),
        "{}",
        format_log(&requests)
    );
    for r in requests
        .iter()
        .filter(|r| r.is_pod_list() || r.is_pod_watch())
    {
        assert_eq!(
            r.field_selector(),
            Some("spec.nodeName=node-a"),
            "every list and watch is for this node only"
        );
        assert_eq!(r.authorization.as_deref(), Some("Bearer sonde-fake-token"));
    }
}

#[tokio::test]
async fn outage_keeps_known_pods_and_the_relist_after_it_drops_deleted_ones() {
    let server = FakeApiServer::start();
    server.add_pod(web());
    server.add_pod(db());
    let index = watch(server.kubeconfig_path());
    eventually(&server, "both pods", || index.len() == 2).await;
    let lists_before = pod_lists(&server).len();

    server.set_down(true);
    eventually(&server, "the watcher to hit the outage", || {
        server.requests().iter().any(|r| r.refused())
    })
    .await;
    assert_eq!(index.len(), 2, "an outage must not forget pods");
    assert_eq!(label(&index, WEB, "app").as_deref(), Some("web"));
    assert!(index.container(DB_ID).is_some());

    // While we cannot see it, db is deleted and the server forgets the history, so the
    // watch cannot resume: only a relist can tell us db is gone.
    server.delete_pod(DB);
    server.expire_watches();
    server.set_down(false);

    eventually(&server, "db to go after the relist", || {
        index.pod(DB).is_none()
    })
    .await;
    assert!(index.pod(WEB).is_some(), "web is still there");
    assert!(index.container(WEB_ID).is_some());
    let lists = pod_lists(&server);
    assert!(
        lists.len() > lists_before,
        "a relist after the outage:\n{}",
        format_log(&server.requests())
    );
}

#[tokio::test]
async fn pods_deleted_while_the_watch_was_cut_go_when_it_resumes() {
    // The other recovery path: the server still has the history, so the resumed watch
    // replays the DELETED event instead of a relist.
    let server = FakeApiServer::start();
    server.add_pod(web());
    server.add_pod(db());
    let index = watch(server.kubeconfig_path());
    eventually(&server, "both pods", || index.len() == 2).await;
    server.set_down(true);
    eventually(&server, "the watcher to hit the outage", || {
        server.requests().iter().any(|r| r.refused())
    })
    .await;
    server.delete_pod(DB);
    server.set_down(false);
    eventually(&server, "db to go", || index.pod(DB).is_none()).await;
    assert!(index.pod(WEB).is_some());
}

#[tokio::test]
async fn unusable_kubeconfig_is_an_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("sonde-pods-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.yaml");
    std::fs::write(&garbage, "clusters: [this is: not a kubeconfig").unwrap();
    let no_context = dir.join("no-context.yaml");
    std::fs::write(
        &no_context,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    for path in [dir.join("missing.yaml"), garbage, no_context] {
        let cfg = PodConfig {
            node_name: NODE.into(),
            kubeconfig: Some(path.clone()),
            label_keys: vec![],
        };
        let err = format!(
            "{:#}",
            spawn_watcher(cfg).expect_err("an unusable kubeconfig")
        );
        assert!(err.contains(&*path.to_string_lossy()), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
