//! Inhibition, as Alertmanager's `inhibit/inhibit.go`: an alert matching a
//! rule's target matchers is muted while some firing alert matches the source
//! matchers and has the same values for every `equal` label (absent = ""). An
//! alert that matches both sides is not muted by sources that also match both,
//! so a rule never lets an alert (or its peers) inhibit itself.

use super::alert::RoutedAlert;
use super::config::InhibitRule;
use crate::model::matches_all;

pub fn inhibited<'a>(
    rules: &[InhibitRule],
    target: &RoutedAlert,
    all: impl Iterator<Item = &'a RoutedAlert> + Clone,
    now: i64,
) -> bool {
    rules.iter().any(|r| {
        if !matches_all(&r.target_matchers, &target.labels) {
            return false;
        }
        let two_sided = matches_all(&r.source_matchers, &target.labels);
        all.clone().any(|s| {
            s.fingerprint != target.fingerprint
                && !s.resolved(now)
                && matches_all(&r.source_matchers, &s.labels)
                && !(two_sided && matches_all(&r.target_matchers, &s.labels))
                && r.equal
                    .iter()
                    .all(|l| s.labels.get(l) == target.labels.get(l))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::route::alert::fingerprint;
    use crate::alert::route::matcher::parse_matcher;
    use crate::model::Labels;

    fn alert(pairs: &[(&str, &str)], ends_at: i64) -> RoutedAlert {
        let labels = Labels::from_pairs(pairs.iter().copied());
        RoutedAlert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations: Default::default(),
            starts_at: 1,
            ends_at,
            generator_url: String::new(),
        }
    }

    fn rule(src: &str, tgt: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            source_matchers: vec![parse_matcher(src).unwrap()],
            target_matchers: vec![parse_matcher(tgt).unwrap()],
            equal: equal.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn source_inhibits_target_with_equal_labels() {
        let rules = [rule(
            r#"severity="critical""#,
            r#"severity="warning""#,
            &["cluster"],
        )];
        let crit = alert(&[("severity", "critical"), ("cluster", "a")], 0);
        let warn_a = alert(&[("severity", "warning"), ("cluster", "a")], 0);
        let warn_b = alert(&[("severity", "warning"), ("cluster", "b")], 0);
        let all = [crit.clone(), warn_a.clone(), warn_b.clone()];
        assert!(inhibited(&rules, &warn_a, all.iter(), 10));
        assert!(
            !inhibited(&rules, &warn_b, all.iter(), 10),
            "cluster differs"
        );
        assert!(!inhibited(&rules, &crit, all.iter(), 10), "not a target");
        // A resolved source inhibits nothing.
        let resolved = alert(&[("severity", "critical"), ("cluster", "a")], 5);
        assert!(!inhibited(
            &rules,
            &warn_a,
            [resolved, warn_a.clone()].iter(),
            10
        ));
    }

    #[test]
    fn missing_equal_label_counts_as_empty_and_no_self_inhibition() {
        let rules = [rule(
            r#"severity="critical""#,
            r#"severity="warning""#,
            &["cluster"],
        )];
        let crit = alert(&[("severity", "critical")], 0);
        let warn = alert(&[("severity", "warning")], 0);
        assert!(inhibited(&rules, &warn, [crit, warn.clone()].iter(), 10));
        // Matches both sides: alone it does not inhibit itself, nor do its peers.
        let both = [rule(r#"team="db""#, r#"team="db""#, &[])];
        let a = alert(&[("team", "db"), ("x", "1")], 0);
        let b = alert(&[("team", "db"), ("x", "2")], 0);
        assert!(!inhibited(&both, &a, [a.clone(), b].iter(), 10));
    }
}
