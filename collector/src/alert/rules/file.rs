//! The YAML shapes of a Prometheus rule file, as written, before validation.
//!
//! Mirrors Prometheus 2.42's `model/rulefmt`: unknown fields and repeated
//! keys are errors (it decodes with yaml.v3 `KnownFields`), only the first
//! YAML document is read (later ones, even broken, are ignored by promtool),
//! and an empty file is an empty list of groups. `keep_firing_for` is in
//! 2.42 already (the installed promtool 2.42.0 accepts and checks it).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A whole file. Every field is `Option` because YAML `null` (or nothing)
/// means "unset" in Prometheus, not an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileYaml {
    pub groups: Option<Vec<GroupYaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupYaml {
    /// `String` takes any scalar's text (`name: 1` is the group "1", as in Go).
    pub name: Option<String>,
    pub interval: Option<String>,
    pub limit: Option<Limit>,
    pub rules: Option<Vec<RuleYaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleYaml {
    #[serde(default)]
    pub record: NodeText,
    #[serde(default)]
    pub alert: NodeText,
    #[serde(default)]
    pub expr: NodeText,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub keep_firing_for: Option<String>,
    pub labels: Option<StrictMap>,
    pub annotations: Option<StrictMap>,
}

/// Reads the first YAML document of `text`. Errors are serde_yaml's own
/// message, which carries the path (`groups[0].rules[2]`) and line/column.
pub fn read(text: &str) -> Result<FileYaml, serde_yaml::Error> {
    match serde_yaml::Deserializer::from_str(text).next() {
        // `Option` so that a document that is only `~` or a comment is empty.
        Some(doc) => Ok(Option::<FileYaml>::deserialize(doc)?.unwrap_or_default()),
        None => Ok(FileYaml::default()),
    }
}

/// [`read`] for files with YAML merge keys (`<<: *base`), which yaml.v3
/// expands and serde_yaml's typed reader does not: expand them in a
/// `Value`, write that out and read it strictly. `None` when there is no
/// `<<` in the text. Positions in the rewritten text mean nothing to the
/// user, so its errors are plain messages.
pub fn read_merged(text: &str) -> Option<Result<FileYaml, String>> {
    if !text.contains("<<") {
        return None;
    }
    let merged = || -> Result<String, serde_yaml::Error> {
        let doc = serde_yaml::Deserializer::from_str(text).next();
        let mut v = match doc {
            Some(doc) => serde_yaml::Value::deserialize(doc)?,
            None => serde_yaml::Value::Null,
        };
        v.apply_merge()?;
        serde_yaml::to_string(&v)
    };
    let strip = |e: serde_yaml::Error| {
        let msg = e.to_string();
        let end = msg.rfind(" at line ").unwrap_or(msg.len());
        format!("with `<<` merge keys expanded: {}", &msg[..end])
    };
    Some(merged().and_then(|t| read(&t)).map_err(strip))
}

/// `limit`: Go's yaml.v3 takes any number into an int, truncating floats
/// (`5.5` is 5), but no strings or booleans.
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub i64);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Limit, E> {
                Ok(Limit(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Limit, E> {
                i64::try_from(v)
                    .map(Limit)
                    .map_err(|_| E::custom(format!("{v} does not fit a 64-bit integer")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Limit, E> {
                // `as` saturates, so bound-check first: Go refuses out of range.
                if v.is_finite() && v.abs() < 9.2e18 {
                    Ok(Limit(v as i64))
                } else {
                    Err(E::custom(format!("{v} is not an integer")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `record`, `alert` and `expr`: Prometheus keeps these as raw yaml nodes and
/// reads their scalar text, so a list or map there reads as "" (and then
/// fails as "must be set"), not as a type error.
#[derive(Debug, Default)]
pub struct NodeText(pub String);

impl<'de> Deserialize<'de> for NodeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_str<E>(self, v: &str) -> Result<NodeText, E> {
                Ok(NodeText(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<NodeText, E> {
                Ok(NodeText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<NodeText, E> {
                Ok(NodeText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NodeText, E> {
                Ok(NodeText(v.to_string()))
            }
            // Numbers come back as values, not text: `expr: 1.50` reads as
            // "1.5", which PromQL evaluates the same.
            fn visit_f64<E>(self, v: f64) -> Result<NodeText, E> {
                Ok(NodeText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<NodeText, E> {
                Ok(NodeText::default())
            }
            fn visit_none<E>(self) -> Result<NodeText, E> {
                Ok(NodeText::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<NodeText, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(NodeText::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<NodeText, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(NodeText::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// `labels` / `annotations`: a string map where a repeated key is an error
/// (yaml.v3 rejects it; a plain `BTreeMap` would keep the last one) and a
/// `null` value is "". Held in an `Option` so that `labels: ~` is no map.
#[derive(Debug, Default)]
pub struct StrictMap(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for StrictMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<StrictMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = a.next_entry::<String, Option<String>>()? {
                    if out.contains_key(&k) {
                        return Err(de::Error::custom(format!(
                            "mapping key {k:?} already defined"
                        )));
                    }
                    out.insert(k, v.unwrap_or_default());
                }
                Ok(StrictMap(out))
            }
        }
        d.deserialize_map(V)
    }
}
