//! The two patch formats the fake applies: JSON merge patch (RFC 7386) and the subset of
//! Kubernetes' strategic merge patch that node agents send.
//!
//! Strategic merge differs from merge patch in lists: a list whose field has a merge key
//! (`status.conditions` by `type`, as in the Node's Go types) is merged element by element,
//! so a patch naming one condition leaves the others alone. Lists without a merge key are
//! replaced, as in a merge patch. The `$patch: delete` / `$patch: replace` directives are
//! honoured; `$setElementOrder/...` and `$retainKeys` (ordering and pruning hints the
//! kubelet's generated patches carry) are dropped, which only affects element order.

use serde_json::{Map, Value};

use super::{Request, Response, status_json};

/// A PATCH request's kind and body, or the refusal to send: 415 for a content type
/// that is not a patch, 400 for a body that is not JSON.
pub(super) fn read(req: &Request) -> Result<(PatchKind, Value), Response> {
    let kind = PatchKind::from_media_type(&req.media_type())
        .map_err(|msg| Response::Json(415, status_json(415, "UnsupportedMediaType", &msg)))?;
    Ok((kind, req.json_body()?))
}

/// Which patch a `Content-Type` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PatchKind {
    Merge,
    Strategic,
}

impl PatchKind {
    /// `Err` is the real server's 415 message for the types the fake does not apply.
    pub(super) fn from_media_type(media: &str) -> Result<PatchKind, String> {
        match media {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            other => Err(format!(
                "the fake API server applies merge and strategic merge patches only, not {other:?}"
            )),
        }
    }
}

/// The merge key of a list field at `path` (dot-separated from the object's root), as the
/// Kubernetes types declare it with `patchMergeKey`.
fn merge_key(path: &str) -> Option<&'static str> {
    match path {
        "status.conditions" | "status.addresses" => Some("type"),
        "metadata.ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Applies `patch` to `target`.
pub(super) fn apply(kind: PatchKind, target: &mut Value, patch: &Value) {
    match kind {
        PatchKind::Merge => merge(target, patch),
        PatchKind::Strategic => strategic(target, patch, ""),
    }
}

/// RFC 7386: objects merge recursively, `null` removes a key, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn strategic(target: &mut Value, patch: &Value, path: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = p.clone();
        replaced.remove("$patch");
        *target = Value::Object(replaced);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue; // directives: $setElementOrder/..., $retainKeys, $patch handled above
        }
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) => match merge_key(&child) {
                Some(key) => {
                    let list = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                    if !list.is_array() {
                        *list = Value::Array(Vec::new());
                    }
                    if let Value::Array(list) = list {
                        merge_list(list, items, key, &child);
                    }
                }
                None => {
                    t.insert(k.clone(), v.clone());
                }
            },
            _ => strategic(t.entry(k.clone()).or_insert(Value::Null), v, &child),
        }
    }
}

/// Merges list elements by `key`: a patch element replaces the fields it names in the
/// element with the same key, or is appended; `$patch: delete` removes the element.
fn merge_list(list: &mut Vec<Value>, items: &[Value], key: &str, path: &str) {
    for item in items {
        let Some(id) = item.get(key).cloned() else {
            list.push(item.clone()); // no key: the real server refuses; keep it visible
            continue;
        };
        let pos = list.iter().position(|e| e.get(key) == Some(&id));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                list.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => strategic(&mut list[i], item, path),
            None => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, item, path);
                list.push(fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_conditions_by_type() {
        let mut node = json!({ "spec": { "x": 1 }, "status": { "conditions": [
            { "type": "Ready", "status": "True", "reason": "KubeletReady" },
            { "type": "KernelDeadlock", "status": "False", "reason": "KernelHasNoDeadlock" },
        ], "addresses": [{ "type": "Hostname", "address": "n" }] } });
        let patch = json!({ "status": { "conditions": [
            { "type": "KernelDeadlock", "status": "True", "reason": "DockerHung" },
            { "type": "ReadonlyFilesystem", "status": "False" },
        ], "$setElementOrder/conditions": [] } });
        apply(PatchKind::Strategic, &mut node, &patch);
        let conds = node["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 3);
        assert_eq!(conds[0]["reason"], "KubeletReady");
        assert_eq!(conds[1]["status"], "True");
        assert_eq!(conds[1]["reason"], "DockerHung");
        assert_eq!(conds[2]["type"], "ReadonlyFilesystem");
        assert!(node["status"].get("$setElementOrder/conditions").is_none());
        assert_eq!(node["status"]["addresses"][0]["type"], "Hostname");

        let delete =
            json!({ "status": { "conditions": [{ "type": "Ready", "$patch": "delete" }] } });
        apply(PatchKind::Strategic, &mut node, &delete);
        assert_eq!(node["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn merge_patch_replaces_lists_and_removes_nulls() {
        let mut node =
            json!({ "a": { "b": 1, "c": 2 }, "status": { "conditions": [{ "type": "Ready" }] } });
        let patch =
            json!({ "a": { "b": null, "d": 3 }, "status": { "conditions": [{ "type": "X" }] } });
        apply(PatchKind::Merge, &mut node, &patch);
        assert_eq!(
            node,
            json!({ "a": { "c": 2, "d": 3 }, "status": { "conditions": [{ "type": "X" }] } })
        );
        assert!(PatchKind::from_media_type("application/json-patch+json").is_err());
    }
}
