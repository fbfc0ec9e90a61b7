//! The routing config file: the `route`, `receivers` and `inhibit_rules`
//! sections of Alertmanager's alertmanager.yml, with the same names and
//! defaults, so an operator's existing file works (other sections, other
//! receiver kinds and the legacy `match`/`match_re` are refused by name):
//!
//! ```yaml
//! route:
//!   receiver: ops
//!   group_by: [alertname]       # ['...'] alone = group by all labels
//!   group_wait: 30s             # defaults: 30s, 5m, 4h
//!   routes:
//!     - matchers: ['severity="critical"', 'team=~"db|web"']
//!       receiver: pager
//!       continue: true
//! receivers:
//!   - name: ops
//!     webhook_configs:
//!       - url: http://hook:8080/  # send_resolved: true, max_alerts: 0 (all)
//! inhibit_rules:
//!   - source_matchers: ['severity="critical"']
//!     target_matchers: ['severity="warning"']
//!     equal: [cluster]
//! ```
//!
//! Child routes inherit receiver, group_by and the three intervals from their
//! parent, as in Alertmanager.

use std::{collections::HashSet, time::Duration};

use hyper::Uri;
use serde::Deserialize;

use super::matcher::{parse_matcher, show};
use crate::model::Matcher;

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub route: Route,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// `group_by = ["..."]`: every label, so each alert is its own group.
    All,
    Labels(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Unique per route, used in group keys: `{}` for the root, then
    /// `<parent>/{matchers}/<index>` (Alertmanager's route key plus its index).
    pub key: String,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: Uri,
    pub send_resolved: bool,
    /// 0 = all alerts; otherwise the rest are counted in `truncatedAlerts`.
    pub max_alerts: usize,
}

#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    route: RawRoute,
    #[serde(default)]
    receivers: Vec<RawReceiver>,
    #[serde(default)]
    inhibit_rules: Vec<RawInhibit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default, rename = "continue")]
    continue_: bool,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: String,
    #[serde(default)]
    webhook_configs: Vec<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    #[serde(default = "yes")]
    send_resolved: bool,
    #[serde(default)]
    max_alerts: usize,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibit {
    #[serde(default)]
    source_matchers: Vec<String>,
    #[serde(default)]
    target_matchers: Vec<String>,
    #[serde(default)]
    equal: Vec<String>,
}

impl RouteConfig {
    /// Reads and validates a config file; errors start with the path.
    pub fn load(path: &std::path::Path) -> Result<RouteConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        RouteConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates; the one-line error names the field
    /// (`route.routes[0].matchers[1]: ...`) or the YAML line and column.
    pub fn parse(text: &str) -> Result<RouteConfig, String> {
        // serde_yaml's message is one line and ends with the line and column.
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = HashSet::new();
        let mut receivers = Vec::new();
        for (i, r) in raw.receivers.into_iter().enumerate() {
            let at = format!("receivers[{i}]");
            if r.name.is_empty() {
                return Err(format!("{at}.name: must not be empty"));
            }
            if !names.insert(r.name.clone()) {
                return Err(format!("{at}.name: receiver {:?} is defined twice", r.name));
            }
            let mut webhooks = Vec::new();
            for (j, w) in r.webhook_configs.into_iter().enumerate() {
                let url: Uri = w
                    .url
                    .parse()
                    .map_err(|e| format!("{at}.webhook_configs[{j}].url: {e}"))?;
                if url.scheme_str() != Some("http") || url.authority().is_none() {
                    return Err(format!(
                        "{at}.webhook_configs[{j}].url: {:?}: only http://host[:port]/path is supported",
                        w.url
                    ));
                }
                webhooks.push(Webhook {
                    url,
                    send_resolved: w.send_resolved,
                    max_alerts: w.max_alerts,
                });
            }
            receivers.push(Receiver {
                name: r.name,
                webhooks,
            });
        }
        if !raw.route.matchers.is_empty() {
            return Err("route.matchers: the root route must not have matchers".into());
        }
        let defaults = Inherited {
            receiver: None,
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(5 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
        };
        let route = build_route(raw.route, "route", "{}".into(), &defaults, &names)?;
        let mut inhibit_rules = Vec::new();
        for (i, r) in raw.inhibit_rules.into_iter().enumerate() {
            let at = format!("inhibit_rules[{i}]");
            inhibit_rules.push(InhibitRule {
                source_matchers: matchers(&r.source_matchers, &format!("{at}.source_matchers"))?,
                target_matchers: matchers(&r.target_matchers, &format!("{at}.target_matchers"))?,
                equal: r.equal,
            });
        }
        Ok(RouteConfig {
            route,
            receivers,
            inhibit_rules,
        })
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

struct Inherited {
    receiver: Option<String>,
    group_by: GroupBy,
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
}

fn build_route(
    raw: RawRoute,
    at: &str,
    key: String,
    parent: &Inherited,
    receivers: &HashSet<String>,
) -> Result<Route, String> {
    let receiver = raw
        .receiver
        .or_else(|| parent.receiver.clone())
        .ok_or_else(|| format!("{at}.receiver: missing (the root route needs one)"))?;
    if !receivers.contains(&receiver) {
        return Err(format!(
            "{at}.receiver: no receiver named {receiver:?} in [[receivers]]"
        ));
    }
    let group_by = match raw.group_by {
        None => parent.group_by.clone(),
        Some(g) if g.iter().any(|l| l == "...") => {
            if g.len() != 1 {
                return Err(format!("{at}.group_by: \"...\" must be the only entry"));
            }
            GroupBy::All
        }
        Some(g) => {
            if let Some(bad) = g.iter().find(|l| !valid_label_name(l)) {
                return Err(format!("{at}.group_by: invalid label name {bad:?}"));
            }
            GroupBy::Labels(g)
        }
    };
    let dur = |v: Option<String>, field: &str, inherited: Duration| -> Result<Duration, String> {
        match v {
            None => Ok(inherited),
            Some(s) => match humantime::parse_duration(&s) {
                Ok(d) if d.is_zero() && field != "group_wait" => {
                    Err(format!("{at}.{field}: must be greater than 0"))
                }
                Ok(d) => Ok(d),
                Err(e) => Err(format!("{at}.{field}: {s:?}: {e} (write e.g. 30s, 5m, 4h)")),
            },
        }
    };
    let here = Inherited {
        receiver: Some(receiver.clone()),
        group_by: group_by.clone(),
        group_wait: dur(raw.group_wait, "group_wait", parent.group_wait)?,
        group_interval: dur(raw.group_interval, "group_interval", parent.group_interval)?,
        repeat_interval: dur(
            raw.repeat_interval,
            "repeat_interval",
            parent.repeat_interval,
        )?,
    };
    let ms = matchers(&raw.matchers, &format!("{at}.matchers"))?;
    let mut routes = Vec::new();
    for (i, child) in raw.routes.into_iter().enumerate() {
        let shown: Vec<String> = child
            .matchers
            .iter()
            .filter_map(|m| parse_matcher(m).ok().map(|m| show(&m)))
            .collect();
        let child_key = format!("{key}/{{{}}}/{i}", shown.join(","));
        routes.push(build_route(
            child,
            &format!("{at}.routes[{i}]"),
            child_key,
            &here,
            receivers,
        )?);
    }
    Ok(Route {
        key,
        receiver,
        group_by,
        group_wait: here.group_wait,
        group_interval: here.group_interval,
        repeat_interval: here.repeat_interval,
        matchers: ms,
        continue_: raw.continue_,
        routes,
    })
}

fn matchers(raw: &[String], at: &str) -> Result<Vec<Matcher>, String> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| parse_matcher(s).map_err(|e| format!("{at}[{i}]: {e}")))
        .collect()
}

fn valid_label_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Route {
    /// Alertmanager's `Route.Match`: the deepest matching routes; a matching
    /// child stops the search unless it has `continue`; no matching child
    /// means this route itself.
    pub fn matching<'a>(&'a self, labels: &crate::model::Labels, out: &mut Vec<&'a Route>) {
        if !crate::model::matches_all(&self.matchers, labels) {
            return;
        }
        let before = out.len();
        for child in &self.routes {
            let n = out.len();
            child.matching(labels, out);
            if out.len() > n && !child.continue_ {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    const CFG: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
      repeat_interval: 1h
    - matchers: ['team=~"db|web"']
      receiver: teams
      group_by: ['...']
receivers:
  - name: ops
    webhook_configs:
      - url: http://ops:8080/hook
  - name: pager
    webhook_configs:
      - url: http://pager/
        send_resolved: false
        max_alerts: 2
  - name: teams
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
"#;

    #[test]
    fn defaults_and_inheritance() {
        let c = RouteConfig::parse(CFG).unwrap();
        let r = &c.route;
        assert_eq!(r.group_wait, Duration::from_secs(10));
        assert_eq!(r.group_interval, Duration::from_secs(300));
        assert_eq!(r.repeat_interval, Duration::from_secs(4 * 3600));
        let crit = &r.routes[0];
        assert_eq!(crit.group_wait, Duration::from_secs(10), "inherited");
        assert_eq!(crit.repeat_interval, Duration::from_secs(3600));
        assert_eq!(crit.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(r.routes[1].group_by, GroupBy::All);
        assert_eq!(crit.key, r#"{}/{severity="critical"}/0"#);
        let ops = &c.receiver("ops").unwrap().webhooks[0];
        assert!(ops.send_resolved);
        assert_eq!(ops.max_alerts, 0);
        let pager = &c.receiver("pager").unwrap().webhooks[0];
        assert!(!pager.send_resolved);
        assert_eq!(pager.max_alerts, 2);
        assert_eq!(c.inhibit_rules[0].equal, vec!["cluster".to_string()]);
    }

    #[test]
    fn child_routes_match_with_continue() {
        let c = RouteConfig::parse(CFG).unwrap();
        let recv = |pairs: &[(&str, &str)]| {
            let mut out = Vec::new();
            c.route
                .matching(&Labels::from_pairs(pairs.iter().copied()), &mut out);
            out.iter().map(|r| r.receiver.as_str()).collect::<Vec<_>>()
        };
        // continue on the first child lets the second match too.
        assert_eq!(
            recv(&[("severity", "critical"), ("team", "db")]),
            ["pager", "teams"]
        );
        assert_eq!(recv(&[("severity", "critical")]), ["pager"]);
        assert_eq!(recv(&[("team", "web")]), ["teams"]);
        // Anchored regex: "dbx" is not "db", so the root catches it.
        assert_eq!(recv(&[("team", "dbx")]), ["ops"]);
    }

    #[test]
    fn first_match_without_continue_stops() {
        let c = RouteConfig::parse(&CFG.replace("continue: true", "continue: false")).unwrap();
        let mut out = Vec::new();
        let l = Labels::from_pairs([("severity", "critical"), ("team", "db")]);
        c.route.matching(&l, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].receiver, "pager");
    }

    #[test]
    fn errors_name_the_field() {
        let e = RouteConfig::parse(&CFG.replace(r#"team=~"db|web""#, r#"team=~"(""#)).unwrap_err();
        assert!(e.starts_with("route.routes[1].matchers[0]: "), "{e}");
        let e = RouteConfig::parse(&CFG.replace("receiver: teams", "receiver: nope")).unwrap_err();
        assert!(
            e.starts_with("route.routes[1].receiver: no receiver named \"nope\""),
            "{e}"
        );
        let e = RouteConfig::parse(&CFG.replace("10s", "10 parsecs")).unwrap_err();
        assert!(e.starts_with("route.group_wait: "), "{e}");
        let e = RouteConfig::parse(&CFG.replace("http://pager/", "ftp://pager/")).unwrap_err();
        assert!(
            e.starts_with("receivers[1].webhook_configs[0].url: "),
            "{e}"
        );
        let e = RouteConfig::parse(&CFG.replace("max_alerts: 2", "max_alerts: two")).unwrap_err();
        assert!(
            e.starts_with("receivers[1].webhook_configs[0].max_alerts: ") && e.contains("line 22"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = RouteConfig::parse("route:\n  receiver: x\n").unwrap_err();
        assert!(e.starts_with("route.receiver: no receiver named"), "{e}");
    }
}
