//! Kubernetes resource attributes on received spans, with the OpenTelemetry
//! semantic-convention names: `k8s.node.name` always, and for a known sender
//! `k8s.namespace.name`, `k8s.pod.name`, `k8s.container.name`, `container.id`.
//! An attribute the application set itself is kept: it knows best (and the
//! OpenTelemetry Collector's k8sattributes processor does the same).

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
};

use crate::enrich::workloads::Workload;

pub fn stamp(req: &mut ExportTraceServiceRequest, sender: Option<&Workload>, node: &str) {
    let mut attrs: Vec<(&str, &str)> = vec![("k8s.node.name", node)];
    if let Some(w) = sender {
        attrs.extend([
            ("k8s.namespace.name", w.namespace.as_str()),
            ("k8s.pod.name", w.pod.as_str()),
            ("k8s.container.name", w.container.as_str()),
            ("container.id", w.container_id.as_str()),
        ]);
    }
    attrs.retain(|(_, v)| !v.is_empty());
    for rs in &mut req.resource_spans {
        let resource = rs.resource.get_or_insert_with(Default::default);
        for (key, value) in &attrs {
            if !resource.attributes.iter().any(|kv| kv.key == *key) {
                resource.attributes.push(KeyValue {
                    key: key.to_string(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(value.to_string())),
                    }),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::{resource::v1::Resource, trace::v1::ResourceSpans};

    fn get<'a>(rs: &'a ResourceSpans, key: &str) -> Option<&'a str> {
        rs.resource
            .as_ref()?
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
    }

    #[test]
    fn adds_what_is_known_and_keeps_what_the_app_set() {
        let app_set = KeyValue {
            key: "k8s.pod.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("from-app".into())),
            }),
        };
        let mut req = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![app_set],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ResourceSpans::default(),
            ],
        };
        let w = Workload {
            namespace: "shop".into(),
            pod: "cart-1".into(),
            container: "app".into(),
            ..Workload::default()
        };
        stamp(&mut req, Some(&w), "node-a");
        let [a, b] = &req.resource_spans[..] else {
            panic!()
        };
        assert_eq!(get(a, "k8s.pod.name"), Some("from-app"));
        assert_eq!(get(b, "k8s.pod.name"), Some("cart-1"));
        for rs in [a, b] {
            assert_eq!(get(rs, "k8s.namespace.name"), Some("shop"));
            assert_eq!(get(rs, "k8s.container.name"), Some("app"));
            assert_eq!(get(rs, "k8s.node.name"), Some("node-a"));
            assert_eq!(get(rs, "container.id"), None, "empty values are not added");
        }
        let mut unknown = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans::default()],
        };
        stamp(&mut unknown, None, "node-a");
        assert_eq!(
            get(&unknown.resource_spans[0], "k8s.node.name"),
            Some("node-a")
        );
        assert_eq!(get(&unknown.resource_spans[0], "k8s.pod.name"), None);
    }
}
