//! The labels of one entry as it moves through a pipeline (Loki's
//! `LabelsBuilder`): stream labels, then structured metadata, then labels the
//! parsers extract, plus `__error__`/`__error_details__` set by failing stages.
//! An extracted name that clashes with a stream label gets `_extracted`.

use std::borrow::Cow;

use crate::model::Labels;

use super::template::TemplateCtx;

pub(crate) const ERROR_LABEL: &str = "__error__";
pub(crate) const ERROR_DETAILS_LABEL: &str = "__error_details__";

pub(crate) struct LabelState<'a> {
    base: &'a Labels,
    /// All current labels; small, so a vector with linear lookups beats a map.
    /// Stream labels are borrowed until changed: most entries change few.
    cur: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// For templates: the line and timestamp being processed.
    pub line: String,
    pub ts_ns: i64,
}

impl<'a> LabelState<'a> {
    pub(crate) fn new(
        base: &'a Labels,
        metadata: &[(String, String)],
        ts_ns: i64,
    ) -> LabelState<'a> {
        let mut s = LabelState {
            base,
            cur: base
                .pairs()
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
                .collect(),
            line: String::new(),
            ts_ns,
        };
        for (k, v) in metadata {
            s.set_extracted(k, v.clone());
        }
        s
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.cur
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    pub(crate) fn set(&mut self, name: &str, value: String) {
        match self.cur.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = Cow::Owned(value),
            None => self
                .cur
                .push((Cow::Owned(name.to_string()), Cow::Owned(value))),
        }
    }

    pub(crate) fn del(&mut self, name: &str) {
        self.cur.retain(|(k, _)| k != name);
    }

    /// Sets a label from a parser or from metadata: `_extracted` is appended
    /// when the name is a stream label, so the stream label is kept.
    pub(crate) fn set_extracted(&mut self, name: &str, value: String) {
        if self.base.get(name).is_some() {
            self.set(&format!("{name}_extracted"), value);
        } else {
            self.set(name, value);
        }
    }

    pub(crate) fn has_err(&self) -> bool {
        self.get(ERROR_LABEL).is_some_and(|v| !v.is_empty())
    }

    pub(crate) fn set_err(&mut self, kind: &str, details: String) {
        self.set(ERROR_LABEL, kind.to_string());
        self.set(ERROR_DETAILS_LABEL, details);
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.cur.retain(|(k, v)| keep(k, v));
    }

    /// The final label set (empty values dropped, sorted).
    pub(crate) fn labels(&self) -> Labels {
        Labels::new(
            self.cur
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl TemplateCtx for LabelState<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
    fn line(&self) -> &str {
        &self.line
    }
    fn ts_ns(&self) -> i64 {
        self.ts_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_extracted_clash() {
        let base = Labels::from_pairs([("app", "api"), ("level", "x")]);
        let md = vec![
            ("trace_id".to_string(), "abc".to_string()),
            ("app".to_string(), "m".to_string()),
        ];
        let mut s = LabelState::new(&base, &md, 0);
        s.set_extracted("level", "error".into());
        s.set_extracted("status", "500".into());
        assert_eq!(
            s.labels(),
            Labels::from_pairs([
                ("app", "api"),
                ("app_extracted", "m"),
                ("level", "x"),
                ("level_extracted", "error"),
                ("status", "500"),
                ("trace_id", "abc"),
            ])
        );
        assert!(!s.has_err());
        s.set_err("JSONParserErr", "bad".into());
        assert!(s.has_err());
        assert_eq!(s.get(ERROR_LABEL), Some("JSONParserErr"));
    }
}
