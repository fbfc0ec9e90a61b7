//! Alert templates as Prometheus expands them: `template` with `$labels`,
//! `$value`, `$externalLabels`, `$externalURL`, and `query` answered by the
//! PromQL engine at the evaluation's time.

use std::{collections::BTreeMap, sync::Arc};

use super::{
    group::Expander,
    template::{self, Data, QueryFn, Sample},
};
use crate::{
    query::{Engine, EngineOptions, Value},
    store::Storage,
};

/// Checks a label value or annotation when a rule file loads: it must parse
/// with Prometheus's variable definitions in front.
pub fn check(text: &str) -> Result<(), String> {
    template::check(text)
}

pub struct Prometheus {
    engine: Engine,
    external_url: String,
    external_labels: BTreeMap<String, String>,
}

impl Prometheus {
    pub fn new(storage: Arc<dyn Storage>, opts: EngineOptions, external_url: String) -> Prometheus {
        Prometheus {
            engine: Engine::new(storage, opts),
            external_url,
            external_labels: BTreeMap::new(),
        }
    }

    /// Templates' `$externalLabels` (rule unit tests set them; the server has none).
    pub fn with_external_labels(mut self, labels: BTreeMap<String, String>) -> Prometheus {
        self.external_labels = labels;
        self
    }
}

/// `query` inside a template: an instant query at the rule's evaluation time.
struct AtTime<'a> {
    engine: &'a Engine,
    t: i64,
}

impl QueryFn for AtTime<'_> {
    fn query(&self, q: &str) -> Result<Vec<Sample>, String> {
        let to_map = |l: &crate::model::Labels| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        match self.engine.instant(q, self.t).map_err(|e| e.to_string())? {
            Value::Vector(v) => Ok(v
                .iter()
                .map(|s| Sample {
                    labels: to_map(&s.labels),
                    value: s.v,
                })
                .collect()),
            Value::Scalar { v, .. } => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: v,
            }]),
            other => Err(format!(
                "query {q:?}: expected a vector or scalar, got {}",
                other.type_name()
            )),
        }
    }
}

impl Expander for Prometheus {
    fn expand(
        &self,
        name: &str,
        text: &str,
        labels: &BTreeMap<String, String>,
        value: f64,
        t: i64,
    ) -> Result<String, String> {
        let data = Data {
            labels: labels.clone(),
            external_labels: self.external_labels.clone(),
            external_url: self.external_url.clone(),
            value,
        };
        template::expand(
            name,
            text,
            &data,
            &AtTime {
                engine: &self.engine,
                t,
            },
        )
    }
}
