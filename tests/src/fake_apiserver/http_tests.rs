//! The node and event routes over plain HTTP: what a client sees, errors included.

use std::{
    io::{Read, Write},
    net::TcpStream,
};

use serde_json::{Value, json};

use super::{FakeApiServer, kubelet_conditions};

/// One request; returns (status code, JSON body).
fn call(
    server: &FakeApiServer,
    method: &str,
    path: &str,
    ctype: &str,
    body: &Value,
) -> (u16, Value) {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let body = body.to_string();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap())
}

const SMP: &str = "application/strategic-merge-patch+json";
const EVENTS: &str = "/api/v1/namespaces/default/events";

fn event(name: Option<&str>) -> Value {
    let mut e = json!({
        "metadata": { "generateName": "node-a." },
        "involvedObject": { "kind": "Node", "name": "node-a", "uid": "node-a" },
        "reason": "OOMKilling", "message": "Killed process 1 (x)", "type": "Warning", "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
    });
    if let Some(n) = name {
        e["metadata"] = json!({ "name": n });
    }
    e
}

#[test]
fn node_status_patches() {
    let server = FakeApiServer::start();
    let cond = json!({ "status": { "conditions": [{ "type": "KernelDeadlock", "status": "True",
        "lastTransitionTime": "2026-01-01T00:00:00Z" }] } });
    let (code, body) = call(&server, "PATCH", "/api/v1/nodes/nope/status", SMP, &cond);
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));

    server.add_node("n1");
    server.set_node_conditions("n1", kubelet_conditions()[..3].to_vec());
    assert_eq!(server.node_conditions("n1").len(), 3);
    let (code, node) = call(&server, "PATCH", "/api/v1/nodes/n1/status", SMP, &cond);
    assert_eq!(code, 200, "{node}");
    assert_eq!(node["status"]["conditions"].as_array().unwrap().len(), 4);
    assert_eq!(server.node_conditions("n1").len(), 4);
    assert_eq!(
        server.node_condition("n1", "KernelDeadlock").unwrap()["status"],
        "True"
    );

    let bad_time = json!({ "status": { "conditions": [{ "type": "X", "status": "True", "lastHeartbeatTime": "yesterday" }] } });
    let (code, _) = call(&server, "PATCH", "/api/v1/nodes/n1/status", SMP, &bad_time);
    assert_eq!(code, 422);
    let (code, _) = call(
        &server,
        "PATCH",
        "/api/v1/nodes/n1/status",
        "application/json-patch+json",
        &json!([]),
    );
    assert_eq!(code, 415);
    // A merge patch replaces the list, and a status patch never changes the spec.
    let merge = json!({ "spec": { "unschedulable": true }, "status": { "conditions": [{ "type": "Ready", "status": "False" }] } });
    let (code, node) = call(
        &server,
        "PATCH",
        "/api/v1/nodes/n1/status",
        "application/merge-patch+json",
        &merge,
    );
    assert_eq!(code, 200);
    assert_eq!(node["spec"], json!({}));
    assert_eq!(server.node_conditions("n1").len(), 1);
}

#[test]
fn events_are_created_validated_patched_and_listed() {
    let server = FakeApiServer::start();
    let (code, created) = call(&server, "POST", EVENTS, "application/json", &event(None));
    assert_eq!(code, 201, "{created}");
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("node-a.") && name.len() == "node-a.".len() + 5,
        "{name}"
    );
    for field in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(created["metadata"][field].is_string(), "{field}: {created}");
    }
    assert_eq!(created["metadata"]["namespace"], "default");

    let (code, _) = call(
        &server,
        "POST",
        EVENTS,
        "application/json",
        &event(Some("fixed")),
    );
    assert_eq!(code, 201);
    let (code, dup) = call(
        &server,
        "POST",
        EVENTS,
        "application/json",
        &event(Some("fixed")),
    );
    assert_eq!((code, dup["reason"].as_str()), (409, Some("AlreadyExists")));

    let mut no_object = event(None);
    no_object.as_object_mut().unwrap().remove("involvedObject");
    let (code, invalid) = call(&server, "POST", EVENTS, "application/json", &no_object);
    assert_eq!(
        (code, invalid["reason"].as_str()),
        (422, Some("Invalid")),
        "{invalid}"
    );
    // A Node's events live in `default` only.
    let (code, _) = call(
        &server,
        "POST",
        "/api/v1/namespaces/kube-system/events",
        "application/json",
        &event(None),
    );
    assert_eq!(code, 422);
    let mut unnamed = event(None);
    unnamed["metadata"] = json!({});
    let (code, _) = call(&server, "POST", EVENTS, "application/json", &unnamed);
    assert_eq!(code, 422);
    let (code, _) = call(
        &server,
        "POST",
        EVENTS,
        "application/json",
        &json!(["not an object"]),
    );
    assert_eq!(code, 400);

    let patch = json!({ "count": 2, "lastTimestamp": "2026-01-01T00:01:00Z" });
    let (code, patched) = call(&server, "PATCH", &format!("{EVENTS}/{name}"), SMP, &patch);
    assert_eq!(code, 200);
    assert_eq!(patched["count"], 2);
    assert_eq!(patched["metadata"]["name"], name.as_str());
    assert_ne!(
        patched["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let (code, _) = call(&server, "PATCH", &format!("{EVENTS}/gone"), SMP, &patch);
    assert_eq!(code, 404);

    let (code, list) = call(&server, "GET", EVENTS, "application/json", &json!({}));
    assert_eq!((code, list["items"].as_array().unwrap().len()), (200, 2));
    assert_eq!(server.events().len(), 2);
    assert_eq!(server.event("default", &name).unwrap()["count"], 2);
}
