//! `PATCH /api/v1/nodes/<name>/status`: what the kubelet and node problem reporters send.

use serde_json::{Value, json};

use super::{Request, Response, State, method_not_allowed, object_not_found, patch};

/// The status subresource: GET, or PATCH with a merge or strategic merge patch. As on the
/// real server, a status patch changes only `status` (spec and metadata are kept).
pub(super) fn status(req: &Request, st: &mut State, name: &str) -> Response {
    if !st.nodes.contains_key(name) {
        return object_not_found("nodes", name);
    }
    match req.method.as_str() {
        "GET" => Response::Json(200, st.nodes[name].clone()),
        "PATCH" => {
            let (kind, body) = match patch::read(req) {
                Ok(p) => p,
                Err(refused) => return refused,
            };
            if let Some(msg) = invalid_conditions(&body) {
                return super::invalid("Node", name, &[("status.conditions", msg)]);
            }
            st.rv += 1;
            let rv = st.rv.to_string();
            let Some(node) = st.nodes.get_mut(name) else {
                return object_not_found("nodes", name);
            };
            let mut patched = node.clone();
            patch::apply(kind, &mut patched, &body);
            patched["spec"] = node["spec"].clone();
            patched["metadata"] = node["metadata"].clone();
            patched["metadata"]["resourceVersion"] = json!(rv);
            *node = patched;
            Response::Json(200, node.clone())
        }
        _ => method_not_allowed(req),
    }
}

/// Conditions the real server's decoding or validation would refuse: every entry needs a
/// `type` and `status`, and times must be RFC 3339.
fn invalid_conditions(body: &Value) -> Option<String> {
    let conditions = body.get("status")?.get("conditions")?;
    let Some(list) = conditions.as_array() else {
        return Some("must be a list".into());
    };
    for (i, c) in list.iter().enumerate() {
        if c.get("$patch").is_some() {
            continue;
        }
        for field in ["type", "status"] {
            if !c.get(field).is_some_and(Value::is_string) {
                return Some(format!("[{i}].{field}: Required value"));
            }
        }
        for field in ["lastHeartbeatTime", "lastTransitionTime"] {
            if let Some(t) = c.get(field).filter(|t| !t.is_null()) {
                let ok = t
                    .as_str()
                    .is_some_and(|t| humantime::parse_rfc3339(t).is_ok());
                if !ok {
                    return Some(format!("[{i}].{field}: not an RFC 3339 time: {t}"));
                }
            }
        }
    }
    None
}

/// The conditions a healthy kubelet keeps on its Node, for tests that check a reporter
/// leaves them alone.
pub fn kubelet_conditions() -> Vec<Value> {
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        })
    };
    vec![
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}
