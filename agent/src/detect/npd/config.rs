//! NPD monitor JSON: parsed exactly as NPD's Go structs read it, then checked.
//!
//! Like Go's `encoding/json`, unknown fields are ignored and keys match their
//! field case-insensitively when no exact key exists. Every error is one line:
//! `<file>: <json path>: <what>`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use serde_json::Value;

use super::{duration, matcher};

#[derive(Deserialize, Default)]
struct RawMonitor {
    plugin: Option<String>,
    #[serde(rename = "pluginConfig")]
    plugin_config: Option<Value>,
    #[serde(rename = "logPath")]
    log_path: Option<String>,
    lookback: Option<String>,
    delay: Option<String>,
    #[serde(rename = "bufferSize")]
    buffer_size: Option<i64>,
    #[serde(rename = "skipList")]
    skip_list: Option<Vec<String>>,
    source: Option<String>,
    #[serde(rename = "metricsReporting")]
    #[allow(dead_code)] // NPD's problem_* metrics are the hub's; accepted for compatibility.
    metrics_reporting: Option<bool>,
    conditions: Option<Vec<RawCondition>>,
    rules: Option<Vec<RawRule>>,
}

const MONITOR_KEYS: &[&str] = &[
    "plugin",
    "pluginConfig",
    "logPath",
    "lookback",
    "delay",
    "bufferSize",
    "skipList",
    "source",
    "metricsReporting",
    "conditions",
    "rules",
];

#[derive(Deserialize)]
struct RawCondition {
    #[serde(rename = "type")]
    kind: Option<String>,
    reason: Option<String>,
    message: Option<String>,
}

const CONDITION_KEYS: &[&str] = &["type", "reason", "message"];

#[derive(Deserialize)]
struct RawRule {
    #[serde(rename = "type")]
    kind: Option<String>,
    condition: Option<String>,
    reason: Option<String>,
    pattern: Option<String>,
    path: Option<String>,
    args: Option<Vec<String>>,
    timeout: Option<String>,
    invoke_interval: Option<String>,
}

const RULE_KEYS: &[&str] = &[
    "type",
    "condition",
    "reason",
    "pattern",
    "path",
    "args",
    "timeout",
    "invoke_interval",
];

#[derive(Deserialize, Default)]
struct RawPluginConfig {
    invoke_interval: Option<String>,
    timeout: Option<String>,
    max_output_length: Option<i64>,
    concurrency: Option<i64>,
    enable_message_change_based_condition_update: Option<bool>,
    skip_initial_status: Option<bool>,
}

const PLUGIN_CONFIG_KEYS: &[&str] = &[
    "invoke_interval",
    "timeout",
    "max_output_length",
    "concurrency",
    "enable_message_change_based_condition_update",
    "skip_initial_status",
];

/// A condition a monitor owns, with its default (problem absent) reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSpec {
    pub kind: String,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// An Event per occurrence.
    Temporary,
    /// Sets `condition` True.
    Permanent,
}

/// A kmsg monitor's rule.
#[derive(Clone, Debug)]
pub struct LogRule {
    pub kind: RuleKind,
    /// The condition type (permanent rules only; empty otherwise).
    pub condition: String,
    pub reason: String,
    pub pattern: String,
}

#[derive(Clone, Debug)]
pub struct LogSpec {
    pub path: PathBuf,
    pub lookback: Duration,
    pub delay: Duration,
    pub buffer_size: usize,
    pub skip_list: Vec<String>,
    pub rules: Vec<LogRule>,
}

/// NPD's log-counter, done natively over the kernel log.
#[derive(Clone, Debug)]
pub struct CounterSpec {
    pub kmsg: PathBuf,
    pub lookback: Duration,
    pub delay: Duration,
    pub count: i64,
    pub pattern: String,
    pub revert_pattern: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Action {
    /// Run an executable (NPD's custom plugin protocol).
    Exec {
        path: PathBuf,
        args: Vec<String>,
    },
    LogCounter(CounterSpec),
}

#[derive(Clone, Debug)]
pub struct CustomRule {
    pub kind: RuleKind,
    pub condition: String,
    pub reason: String,
    pub action: Action,
    pub timeout: Duration,
    pub invoke_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct CustomSpec {
    pub max_output_length: usize,
    pub concurrency: usize,
    pub rules: Vec<CustomRule>,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Kmsg(LogSpec),
    Custom(CustomSpec),
}

/// A checked monitor config.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The file it came from, as given (for logs).
    pub file: String,
    pub source: String,
    pub conditions: Vec<ConditionSpec>,
    pub kind: Kind,
}

/// The kmsg path used when a config does not name one.
pub const DEV_KMSG: &str = "/dev/kmsg";

/// Go's `encoding/json` matches keys case-insensitively when no key matches
/// exactly; do the same by renaming such keys to their canonical spelling.
fn canonical_keys(v: &mut Value, names: &[&str]) {
    let Value::Object(map) = v else { return };
    for name in names {
        if map.contains_key(*name) {
            continue;
        }
        if let Some(key) = map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
            && let Some(val) = map.remove(&key)
        {
            map.insert((*name).to_string(), val);
        }
    }
}

fn canonicalize(v: &mut Value) {
    canonical_keys(v, MONITOR_KEYS);
    if let Some(pc) = v.get_mut("pluginConfig") {
        canonical_keys(pc, PLUGIN_CONFIG_KEYS);
    }
    if let Some(Value::Array(cs)) = v.get_mut("conditions") {
        cs.iter_mut()
            .for_each(|c| canonical_keys(c, CONDITION_KEYS));
    }
    if let Some(Value::Array(rs)) = v.get_mut("rules") {
        rs.iter_mut().for_each(|r| canonical_keys(r, RULE_KEYS));
    }
}

/// Parses and checks one monitor config. `file` names it in errors; relative
/// plugin paths resolve against `dir`. Errors are `<field>: <what>` (the caller
/// prefixes the file).
pub fn parse(text: &[u8], file: &str, dir: &Path) -> Result<Spec, String> {
    let mut value: Value = serde_json::from_slice(text).map_err(|e| {
        format!(
            "line {} column {}: invalid JSON: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        )
    })?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    canonicalize(&mut value);
    let raw: RawMonitor = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", strip_position(&e.into_inner().to_string()))
    })?;

    let source = required(raw.source.clone(), "source")?;
    let mut conditions = Vec::new();
    for (i, c) in raw.conditions.iter().flatten().enumerate() {
        conditions.push(ConditionSpec {
            kind: required(c.kind.clone(), &format!("conditions[{i}].type"))?,
            reason: required(c.reason.clone(), &format!("conditions[{i}].reason"))?,
            message: c.message.clone().unwrap_or_default(),
        });
    }
    let plugin = required(raw.plugin.clone(), "plugin")?;
    let kind = match plugin.as_str() {
        "kmsg" => Kind::Kmsg(log_spec(&raw, &conditions)?),
        "custom" => Kind::Custom(custom_spec(&raw, &conditions, dir)?),
        // No systemd journal on these machines (and none in the agent's image):
        // the kernel's messages are read from /dev/kmsg instead.
        "journald" => {
            return Err(
                "plugin: \"journald\" is not supported: there is no systemd journal on \
                        these machines; for kernel messages use plugin \"kmsg\""
                    .into(),
            );
        }
        "filelog" => {
            return Err(
                "plugin: \"filelog\" is not supported: Sonde reads the kernel log with \
                        plugin \"kmsg\" and container logs with its log tailer"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "plugin: unknown plugin {other:?} (supported: \"kmsg\", \"custom\")"
            ));
        }
    };
    Ok(Spec {
        file: file.to_string(),
        source,
        conditions,
        kind,
    })
}

/// serde_json appends " at line L column C"; we already say where.
fn strip_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn required(v: Option<String>, field: &str) -> Result<String, String> {
    match v {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!("{field}: missing")),
    }
}

fn dur(v: &Option<String>, field: &str, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) if s.is_empty() => Ok(default),
        Some(s) => duration::parse(s).map_err(|e| format!("{field}: {e}")),
    }
}

/// Rule type and condition, shared by both plugins.
fn rule_head(
    r: &RawRule,
    i: usize,
    conditions: &[ConditionSpec],
) -> Result<(RuleKind, String, String), String> {
    let kind = match required(r.kind.clone(), &format!("rules[{i}].type"))?.as_str() {
        "temporary" => RuleKind::Temporary,
        "permanent" => RuleKind::Permanent,
        other => {
            return Err(format!(
                "rules[{i}].type: unknown rule type {other:?} (\"temporary\" or \"permanent\")"
            ));
        }
    };
    let reason = required(r.reason.clone(), &format!("rules[{i}].reason"))?;
    let condition = if kind == RuleKind::Permanent {
        let c = required(r.condition.clone(), &format!("rules[{i}].condition"))?;
        if !conditions.iter().any(|d| d.kind == c) {
            return Err(format!(
                "rules[{i}].condition: {c:?} is not declared in \"conditions\""
            ));
        }
        c
    } else {
        String::new()
    };
    Ok((kind, condition, reason))
}

fn log_spec(raw: &RawMonitor, conditions: &[ConditionSpec]) -> Result<LogSpec, String> {
    let buffer_size = match raw.buffer_size {
        None | Some(0) => 10, // NPD's default
        Some(n) if n > 0 && n <= 10_000 => n as usize,
        Some(n) => return Err(format!("bufferSize: {n} is out of range (1..10000)")),
    };
    let mut rules = Vec::new();
    for (i, r) in raw.rules.iter().flatten().enumerate() {
        let (kind, condition, reason) = rule_head(r, i, conditions)?;
        let pattern = r
            .pattern
            .clone()
            .ok_or_else(|| format!("rules[{i}].pattern: missing"))?;
        matcher::compile_anchored(&pattern)
            .map_err(|e| format!("rules[{i}].pattern: invalid regex {pattern:?}: {e}"))?;
        rules.push(LogRule {
            kind,
            condition,
            reason,
            pattern,
        });
    }
    Ok(LogSpec {
        path: PathBuf::from(
            raw.log_path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEV_KMSG.into()),
        ),
        lookback: dur(&raw.lookback, "lookback", Duration::ZERO)?,
        delay: dur(&raw.delay, "delay", Duration::ZERO)?,
        buffer_size,
        skip_list: raw.skip_list.clone().unwrap_or_default(),
        rules,
    })
}

fn custom_spec(
    raw: &RawMonitor,
    conditions: &[ConditionSpec],
    dir: &Path,
) -> Result<CustomSpec, String> {
    let pc: RawPluginConfig = match &raw.plugin_config {
        None | Some(Value::Null) => RawPluginConfig::default(),
        Some(v) => serde_path_to_error::deserialize(v.clone()).map_err(|e| {
            let path = e.path().to_string();
            format!("pluginConfig.{path}: {}", e.into_inner())
        })?,
    };
    // NPD's defaults (pkg/custompluginmonitor/types/config.go).
    let global_timeout = dur(&pc.timeout, "pluginConfig.timeout", Duration::from_secs(5))?;
    let interval = dur(
        &pc.invoke_interval,
        "pluginConfig.invoke_interval",
        Duration::from_secs(30),
    )?;
    if interval.is_zero() {
        return Err("pluginConfig.invoke_interval: must be more than 0".into());
    }
    let max_output_length = match pc.max_output_length {
        None => 80,
        Some(n) if n >= 0 => n as usize,
        Some(n) => return Err(format!("pluginConfig.max_output_length: {n} is negative")),
    };
    let concurrency = match pc.concurrency {
        None => 3,
        Some(n) if n >= 1 => n as usize,
        Some(n) => return Err(format!("pluginConfig.concurrency: {n} must be at least 1")),
    };
    // Condition state is the hub's: these two are accepted and ignored.
    let _ = (
        pc.enable_message_change_based_condition_update,
        pc.skip_initial_status,
    );
    let mut rules = Vec::new();
    for (i, r) in raw.rules.iter().flatten().enumerate() {
        let (kind, condition, reason) = rule_head(r, i, conditions)?;
        let timeout = match &r.timeout {
            None => global_timeout,
            Some(_) => {
                let t = dur(&r.timeout, &format!("rules[{i}].timeout"), global_timeout)?;
                if t > global_timeout {
                    return Err(format!(
                        "rules[{i}].timeout: {t:?} is more than pluginConfig.timeout {global_timeout:?}"
                    ));
                }
                t
            }
        };
        let invoke_interval = dur(
            &r.invoke_interval,
            &format!("rules[{i}].invoke_interval"),
            interval,
        )?;
        if invoke_interval.is_zero() {
            return Err(format!("rules[{i}].invoke_interval: must be more than 0"));
        }
        let path = required(r.path.clone(), &format!("rules[{i}].path"))?;
        let args = r.args.clone().unwrap_or_default();
        let action = match Path::new(&path).file_name().and_then(|n| n.to_str()) {
            Some("log-counter") => Action::LogCounter(
                counter_spec(&args).map_err(|e| format!("rules[{i}].args: {e}"))?,
            ),
            Some("health-checker") => {
                return Err(format!(
                    "rules[{i}].path: NPD's health-checker (--component={}) is not run: Sonde's \
                     own health checks replace it (--kubelet-healthz, --runtime-socket)",
                    flag_value(&args, "component").unwrap_or_default()
                ));
            }
            _ => Action::Exec {
                path: executable(&path, dir).map_err(|e| format!("rules[{i}].path: {e}"))?,
                args,
            },
        };
        rules.push(CustomRule {
            kind,
            condition,
            reason,
            action,
            timeout,
            invoke_interval,
        });
    }
    Ok(CustomSpec {
        max_output_length,
        concurrency,
        rules,
    })
}

/// A plugin path, relative to the config's directory, that must be an
/// executable file.
fn executable(path: &str, dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    // Normalised (`./x` -> `x`) so the error shows a clean path.
    let resolved: PathBuf = dir.join(path).components().collect();
    let meta = std::fs::metadata(&resolved)
        .map_err(|e| format!("{path:?} ({}): {e}", resolved.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{path:?} ({}) is not an executable file",
            resolved.display()
        ));
    }
    Ok(resolved)
}

/// `--name=value` or `--name value` (pflag's forms; one or two dashes).
fn flag_value(args: &[String], name: &str) -> Option<String> {
    parse_flags(args).ok()?.remove(name)
}

fn parse_flags(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            return Err(format!("unexpected argument {a:?}"));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (
                body.to_string(),
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("flag --{body} needs a value"))?,
            ),
        };
        out.insert(name, value);
    }
    Ok(out)
}

/// log-counter's flags (NPD cmd/logcounter/options), done natively over
/// /dev/kmsg. Only the kernel's messages are available: no journal here.
fn counter_spec(args: &[String]) -> Result<CounterSpec, String> {
    let flags = parse_flags(args)?;
    for name in flags.keys() {
        match name.as_str() {
            "journald-source" | "log-path" | "lookback" | "delay" | "count" | "pattern"
            | "revert-pattern" => {}
            // glog's flags, which log-counter also accepts; meaningless here.
            "v" | "logtostderr" | "alsologtostderr" | "stderrthreshold" | "log_dir" | "vmodule" => {
            }
            other => return Err(format!("log-counter flag --{other} is not supported")),
        }
    }
    match flags.get("journald-source").map(String::as_str) {
        Some("kernel") => {}
        Some(other) => {
            return Err(format!(
                "log-counter --journald-source={other} is not supported: there is no systemd \
                 journal on these machines; only --journald-source=kernel (read from /dev/kmsg) is"
            ));
        }
        None => return Err("log-counter needs --journald-source=kernel".into()),
    }
    let d = |name: &str| -> Result<Duration, String> {
        match flags.get(name) {
            None => Ok(Duration::ZERO),
            Some(s) => duration::parse(s).map_err(|e| format!("--{name}: {e}")),
        }
    };
    let count = match flags.get("count") {
        None => 1,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| format!("--count: {s:?} is not an integer"))?,
    };
    let pattern = flags
        .get("pattern")
        .cloned()
        .ok_or("log-counter needs --pattern")?;
    matcher::compile_anchored(&pattern)
        .map_err(|e| format!("--pattern: invalid regex {pattern:?}: {e}"))?;
    let revert_pattern = flags
        .get("revert-pattern")
        .cloned()
        .filter(|p| !p.is_empty());
    if let Some(p) = &revert_pattern {
        matcher::compile_anchored(p)
            .map_err(|e| format!("--revert-pattern: invalid regex {p:?}: {e}"))?;
    }
    Ok(CounterSpec {
        // --log-path names the journal; the kernel's messages are read from /dev/kmsg.
        kmsg: PathBuf::from(DEV_KMSG),
        lookback: d("lookback")?,
        delay: d("delay")?,
        count,
        pattern,
        revert_pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        parse(json.as_bytes(), "t.json", Path::new("/")).unwrap_err()
    }

    const BASE: &str = r#"{"plugin":"kmsg","source":"s","conditions":[{"type":"C","reason":"Ok","message":"fine"}],"rules":[RULES]}"#;

    fn with_rules(rules: &str) -> String {
        BASE.replace("RULES", rules)
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(&with_rules(
                r#"{"type":"temporary","reason":"R","pattern":"a(b"}"#
            )),
            "rules[0].pattern: invalid regex \"a(b\": unclosed group at offset 1"
        );
        assert_eq!(
            err(&with_rules(r#"{"type":"temporary","pattern":"x"}"#)),
            "rules[0].reason: missing"
        );
        assert!(
            err(&with_rules(
                r#"{"type":"sometimes","reason":"R","pattern":"x"}"#
            ))
            .starts_with("rules[0].type: unknown rule type \"sometimes\"")
        );
        assert!(
            err(&with_rules(
                r#"{"type":"temporary","reason":"R","pattern":"x"},{"type":"permanent","condition":"Nope","reason":"R","pattern":"x"}"#
            ))
            .starts_with("rules[1].condition: \"Nope\" is not declared")
        );
        assert!(
            err(&with_rules(
                r#"{"type":"temporary","reason":"R","pattern":3}"#
            ))
            .starts_with("rules[0].pattern: invalid type: integer `3`")
        );
        assert!(err(r#"{"plugin":"kmsg","source":"s","rules":[{"#).starts_with("line 1 column"));
        assert!(
            err(r#"{"plugin":"bogus","source":"s"}"#)
                .starts_with("plugin: unknown plugin \"bogus\"")
        );
        assert!(err(r#"{"plugin":"journald","source":"s"}"#).contains("no systemd journal"));
        assert_eq!(err(r#"{"plugin":"kmsg"}"#), "source: missing");
        assert_eq!(err("[1]"), "not a JSON object");
        assert!(
            err(r#"{"plugin":"kmsg","source":"s","lookback":"5 minutes"}"#)
                .starts_with("lookback: invalid duration")
        );
        let e = err(&with_rules(
            r#"{"type":"temporary","reason":"R","pattern":"(?P<x"}"#,
        ));
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn unknown_fields_ignored_and_keys_case_insensitive() {
        let spec = parse(
            br#"{"Plugin":"kmsg","SOURCE":"s","bufferSize":3,"someday":1,"conditions":[],
                 "rules":[{"Type":"temporary","reason":"R","pattern":"x","taintEnabled":true}]}"#,
            "t.json",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(spec.source, "s");
        let Kind::Kmsg(log) = spec.kind else { panic!() };
        assert_eq!(log.buffer_size, 3);
        assert_eq!(log.path, PathBuf::from("/dev/kmsg"));
        assert_eq!(log.rules[0].kind, RuleKind::Temporary);
    }

    #[test]
    fn log_counter_flags() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = counter_spec(&args(&[
            "--journald-source=kernel",
            "--log-path=/var/log/journal",
            "--lookback=20m",
            "--delay",
            "5m",
            "--count=3",
            "--pattern=unregister_netdevice: .*",
            "--revert-pattern=back",
        ]))
        .unwrap();
        assert_eq!(c.lookback, Duration::from_secs(1200));
        assert_eq!(c.delay, Duration::from_secs(300));
        assert_eq!(c.count, 3);
        assert_eq!(c.revert_pattern.as_deref(), Some("back"));
        assert!(
            counter_spec(&args(&["--journald-source=systemd", "--pattern=x"]))
                .unwrap_err()
                .contains("--journald-source=systemd is not supported")
        );
        assert!(
            counter_spec(&args(&["--journald-source=kernel", "--pattern=("]))
                .unwrap_err()
                .starts_with("--pattern: invalid regex")
        );
        assert!(
            counter_spec(&args(&[
                "--journald-source=kernel",
                "--pattern=x",
                "--bogus=1"
            ]))
            .unwrap_err()
            .contains("--bogus")
        );
    }

    #[test]
    fn custom_plugin_paths_resolve_against_the_config_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugin")).unwrap();
        let script = dir.path().join("plugin/check.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        let json = r#"{"plugin":"custom","source":"s","pluginConfig":{"timeout":"5s"},
            "conditions":[{"type":"C","reason":"Ok","message":"m"}],
            "rules":[{"type":"permanent","condition":"C","reason":"Bad","path":"./plugin/check.sh","timeout":"TIMEOUT"}]}"#;
        let e = parse(
            json.replace("TIMEOUT", "3s").as_bytes(),
            "c.json",
            dir.path(),
        )
        .unwrap_err();
        assert!(
            e.starts_with("rules[0].path: \"./plugin/check.sh\"")
                && e.contains("not an executable"),
            "{e}"
        );
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let spec = parse(
            json.replace("TIMEOUT", "3s").as_bytes(),
            "c.json",
            dir.path(),
        )
        .unwrap();
        let Kind::Custom(c) = spec.kind else { panic!() };
        assert_eq!(c.rules[0].timeout, Duration::from_secs(3));
        assert_eq!((c.concurrency, c.max_output_length), (3, 80));
        let Action::Exec { path, .. } = &c.rules[0].action else {
            panic!()
        };
        assert_eq!(path, &dir.path().join("./plugin/check.sh"));
        let e = parse(
            json.replace("TIMEOUT", "6s").as_bytes(),
            "c.json",
            dir.path(),
        )
        .unwrap_err();
        assert!(e.starts_with("rules[0].timeout:"), "{e}");
    }
}
