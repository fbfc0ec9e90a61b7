//! From parsed rule files (`rules`) to what the manager runs (`group`).

use std::{path::PathBuf, time::Duration};

use super::{
    group::{AlertRule, GroupSpec, RecordRule, RuleSpec},
    rules::{self, Lang, Rule},
};

/// Loads `files` (each with the language of its `expr`s); groups without an
/// interval get `default_interval`.
pub fn groups(
    files: &[(PathBuf, Lang)],
    default_interval: Duration,
) -> Result<Vec<GroupSpec>, String> {
    let mut out = Vec::new();
    for (path, lang) in files {
        let lang = *lang;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed = rules::parse_lang(path, &text, lang, &super::expand::check)?;
        out.extend(parsed.into_iter().map(|g| {
            GroupSpec {
                name: g.name,
                file: g.file,
                interval: g.interval.unwrap_or(default_interval),
                limit: g.limit,
                rules: g
                    .rules
                    .into_iter()
                    .map(|r| match r {
                        Rule::Alerting(a) => RuleSpec::Alert(AlertRule {
                            name: a.name,
                            lang,
                            expr: a.expr,
                            hold: a.for_,
                            keep_firing_for: a.keep_firing_for,
                            labels: a.labels,
                            annotations: a.annotations,
                        }),
                        Rule::Recording(r) => RuleSpec::Record(RecordRule {
                            name: r.name,
                            lang,
                            expr: r.expr,
                            labels: r.labels,
                        }),
                    })
                    .collect(),
            }
        }));
    }
    Ok(out)
}
