//! core/v1 Events: `POST`, `GET` (one or a list) and `PATCH` under
//! `/api/v1/namespaces/<ns>/events`, and the cluster-wide list `/api/v1/events`.
//!
//! Validation follows the real server's for "legacy" Events (those without `eventTime`,
//! as client-go's recorder and node-problem-detector write them), where it is cheap:
//! a name or generateName, a namespace that agrees with the URL, and an involved object
//! in the same namespace (or, for a cluster-scoped one such as a Node, an Event in
//! `default`). Also refused with 422: a `type` other than Normal/Warning, a negative
//! `count`, a timestamp that is not RFC 3339, and (stricter than the real server) an
//! `involvedObject` without `kind` and `name`, since an Event about nothing is a client bug.

use serde_json::{Value, json};

use super::{
    Request, Response, State, bad_request, invalid, method_not_allowed, object_not_found, patch,
    status_json,
};

/// `/api/v1/events` (namespace `None`, list only) or `/api/v1/namespaces/<ns>/events`.
pub(super) fn collection(req: &Request, st: &mut State, namespace: Option<&str>) -> Response {
    match (req.method.as_str(), namespace) {
        ("GET", _) => list(req, st, namespace),
        ("POST", Some(ns)) => create(req, st, ns),
        _ => method_not_allowed(req),
    }
}

/// `/api/v1/namespaces/<ns>/events/<name>`.
pub(super) fn one(req: &Request, st: &mut State, namespace: &str, name: &str) -> Response {
    let key = (namespace.to_string(), name.to_string());
    if !st.events.contains_key(&key) {
        return object_not_found("events", name);
    }
    match req.method.as_str() {
        "GET" => Response::Json(200, st.events[&key].clone()),
        "PATCH" => {
            let (kind, body) = match patch::read(req) {
                Ok(p) => p,
                Err(refused) => return refused,
            };
            let mut patched = st.events[&key].clone();
            patch::apply(kind, &mut patched, &body);
            // Identity is not the patch's to change.
            for field in ["name", "namespace", "uid", "creationTimestamp"] {
                patched["metadata"][field] = st.events[&key]["metadata"][field].clone();
            }
            if let Some(refused) = validate(&patched, namespace, name) {
                return refused;
            }
            st.rv += 1;
            patched["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            st.events.insert(key, patched.clone());
            Response::Json(200, patched)
        }
        _ => method_not_allowed(req),
    }
}

fn list(req: &Request, st: &State, namespace: Option<&str>) -> Response {
    for selector in ["fieldSelector", "labelSelector"] {
        if req.query.get(selector).is_some_and(|s| !s.is_empty()) {
            return bad_request(&format!(
                "{selector} on events is not implemented by the fake API server"
            ));
        }
    }
    let items: Vec<Value> = st
        .events
        .iter()
        .filter(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
        .map(|(_, e)| e.clone())
        .collect();
    Response::Json(
        200,
        json!({
            "apiVersion": "v1",
            "kind": "EventList",
            "metadata": { "resourceVersion": st.rv.to_string() },
            "items": items,
        }),
    )
}

fn create(req: &Request, st: &mut State, namespace: &str) -> Response {
    let mut event = match req.json_body() {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if let Some(kind) = event.get("kind").and_then(Value::as_str)
        && kind != "Event"
    {
        return bad_request(&format!("expected kind Event, got {kind:?}"));
    }
    match event["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() && ns != namespace => {
            return bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            );
        }
        _ => event["metadata"]["namespace"] = json!(namespace),
    }
    st.serial += 1;
    let serial = st.serial;
    let name = match (
        event["metadata"]["name"].as_str().filter(|n| !n.is_empty()),
        event["metadata"]["generateName"]
            .as_str()
            .filter(|n| !n.is_empty()),
    ) {
        (Some(name), _) => name.to_string(),
        (None, Some(prefix)) => format!("{prefix}{}", suffix(serial)),
        (None, None) => {
            return invalid(
                "Event",
                "",
                &[(
                    "metadata.name",
                    "Required value: name or generateName is required".into(),
                )],
            );
        }
    };
    if let Some(refused) = validate(&event, namespace, &name) {
        return refused;
    }
    let key = (namespace.to_string(), name.clone());
    if st.events.contains_key(&key) {
        let mut status = status_json(
            409,
            "AlreadyExists",
            &format!("events \"{name}\" already exists"),
        );
        status["details"] = json!({ "name": name, "kind": "events" });
        return Response::Json(409, status);
    }
    st.rv += 1;
    let meta = &mut event["metadata"];
    meta["name"] = json!(name);
    meta["uid"] = json!(format!("e0000000-0000-4000-8000-{serial:012x}"));
    meta["resourceVersion"] = json!(st.rv.to_string());
    meta["creationTimestamp"] =
        json!(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    event["apiVersion"] = json!("v1");
    event["kind"] = json!("Event");
    st.events.insert(key, event.clone());
    Response::Json(201, event)
}

/// The real server's generated-name suffix: five characters from a consonant-heavy alphabet.
fn suffix(mut n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n = n.wrapping_mul(0x9E37_79B9_7F4A_7C15); // spread consecutive serials
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The legacy-Event validation (see the module doc); `Some` is the 422 to answer.
fn validate(event: &Value, namespace: &str, name: &str) -> Option<Response> {
    let mut causes = Vec::new();
    let involved = &event["involvedObject"];
    if !involved.is_object() {
        causes.push(("involvedObject", "Required value".to_string()));
    } else {
        for field in ["kind", "name"] {
            if involved[field].as_str().is_none_or(str::is_empty) {
                causes.push(match field {
                    "kind" => ("involvedObject.kind", "Required value".to_string()),
                    _ => ("involvedObject.name", "Required value".to_string()),
                });
            }
        }
        let involved_ns = involved["namespace"].as_str().unwrap_or("");
        let agrees = if involved_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            involved_ns == namespace
        };
        if !agrees {
            causes.push((
                "involvedObject.namespace",
                format!("Invalid value: {involved_ns:?}: does not match event.namespace"),
            ));
        }
    }
    if let Some(t) = event["type"].as_str()
        && !t.is_empty()
        && t != "Normal"
        && t != "Warning"
    {
        causes.push((
            "type",
            format!("Unsupported value: {t:?}: supported values: \"Normal\", \"Warning\""),
        ));
    }
    if event["count"].as_i64().is_some_and(|c| c < 0) {
        causes.push(("count", "Invalid value: must be non-negative".to_string()));
    }
    for field in ["firstTimestamp", "lastTimestamp"] {
        if let Some(t) = event.get(field).filter(|t| !t.is_null())
            && t.as_str()
                .is_none_or(|t| humantime::parse_rfc3339(t).is_err())
        {
            causes.push((field, format!("Invalid value: {t}: not an RFC 3339 time")));
        }
    }
    (!causes.is_empty()).then(|| invalid("Event", name, &causes))
}
