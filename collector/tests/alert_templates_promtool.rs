//! Alert templates rendered by Sonde must equal Prometheus's rendering.
//!
//! Each case becomes one alerting rule whose annotation (and sometimes a label)
//! is the template; the promtool unit-test file expects exactly what
//! `template::expand` produced. `promtool test rules` (Prometheus 2.42) then
//! fails if Prometheus renders anything different, and prints what it got.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use sonde_collector::alert::template::{Data, Sample, check, expand};

const PROMTOOL: &str = "/usr/bin/promtool";

struct Case {
    text: &'static str,
    value: f64,
    /// A templated rule label `sev`, rendered into the alert's labels.
    label: Option<&'static str>,
}

const fn c(text: &'static str, value: f64) -> Case {
    Case {
        text,
        value,
        label: None,
    }
}

fn cases() -> Vec<Case> {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let mut v = vec![
        // $value / .Value printing as fmt's %v.
        c("{{ $value }} {{ .Value }}", 0.0),
        c("{{ $value }}", 1234567.0),
        c("{{ $value }}", 0.000123),
        c("{{ $value }}", nan),
        c("{{ $value }}", -5.5),
        c("{{ $value }}", 1e6),
        c("{{ $value }}", 0.1),
        c("{{ $value }}", 3.0),
        c("{{ $value }}", inf),
        c("{{ $value }}", -inf),
        c("{{ $value }}", 1e-5),
        c("{{ $value }}", 123456789012.0),
        // humanize family edge cases.
        c("{{ humanize $value }}", 0.0),
        c("{{ humanize $value }}", 1234567.0),
        c("{{ humanize $value }}", 0.000123),
        c("{{ humanize $value }}", nan),
        c("{{ humanize $value }}", -1500.0),
        c("{{ humanize $value }}", inf),
        c("{{ humanize $value }}", 1e-30),
        c(
            "{{ $value | humanize }} {{ humanize 1000 }} {{ humanize \"2048\" }} {{ humanize 999.95 }}",
            1e27,
        ),
        c(
            "{{ humanize1024 $value }} {{ humanize1024 0.5 }} {{ humanize1024 -2048 }} {{ humanize1024 1e30 }}",
            1048576.0,
        ),
        c("{{ humanizeDuration $value }}", 0.5),
        c("{{ humanizeDuration $value }}", 90.0),
        c("{{ humanizeDuration $value }}", 3600.0 * 25.0),
        c(
            "{{ humanizeDuration 0 }} {{ humanizeDuration -3.25 }} {{ humanizeDuration 0.000001 }} {{ humanizeDuration 59.999 }} {{ humanizeDuration $value }}",
            nan,
        ),
        c(
            "{{ humanizePercentage $value }} {{ humanizePercentage 1 }} {{ humanizePercentage 0.000012345 }}",
            0.1234,
        ),
        c(
            "{{ humanizeTimestamp $value }} {{ humanizeTimestamp 1.5 }} {{ humanizeTimestamp -1 }} {{ humanizeTimestamp \"NaN\" }}",
            1700000000.123,
        ),
        c("{{ toTime $value }}", 86400.25),
        // printf verbs and fmt's error forms.
        c(
            "{{ printf \"%s %d %f %.2f %v %q %g %x %5.1f|%-6s|%03d %t %e %% %X %o %+d %8.3e\" \"s\" 7 1.5 3.14159 $value \"q\" 0.000012 255 2.25 \"ab\" 7 true 12345.678 3054 8 5 -0.00123 }}",
            42.0,
        ),
        c(
            "{{ printf \"%d %s\" \"x\" }} {{ printf \"a\" 1 \"b\" }} {{ printf \"%s %f\" 1 \"z\" }} {{ printf \"%v %v %v\" $labels (args 1).arg9 true }}",
            1.0,
        ),
        c(
            "{{ print 1 2 \"a\" 3 $value }}|{{ println \"x\" 1 2 }}|{{ print }}|{{ printf \"%.3g|%10.4f|%-8v|\" 1234.5678 $value \"l\" }}",
            2.5,
        ),
        // Control flow.
        c(
            "{{ if gt $value 10.0 }}big{{ else if gt $value 1.0 }}mid{{ else }}small{{ end }}",
            20.0,
        ),
        c(
            "{{ if gt $value 10.0 }}big{{ else if gt $value 1.0 }}mid{{ else }}small{{ end }}",
            5.0,
        ),
        c(
            "{{ if gt $value 10.0 }}big{{ else if gt $value 1.0 }}mid{{ else }}small{{ end }}",
            0.0,
        ),
        c(
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}{{ range $labels }}<{{ . }}>{{ end }}",
            1.0,
        ),
        c(
            "{{ range $i, $s := sortByLabel \"instance\" (query \"up\") }}{{ $i }}:{{ $s.Labels.instance }}={{ .Value }}{{ if eq $i 0 }}{{ continue }}{{ end }}!{{ break }}{{ end }}{{ range query \"nonexistent_metric\" }}x{{ else }}none{{ end }}",
            1.0,
        ),
        c(
            "{{ with $labels.job }}[{{ . }}]{{ end }}{{ with $labels.nope }}no{{ else }}none{{ end }}{{ with $x := 5 }}{{ $x }}{{ end }}",
            1.0,
        ),
        c(
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ $y }}{{ end }}{{ $x }}{{ $v := $value }}{{ $v }}",
            7.0,
        ),
        // Builtins.
        c(
            "{{ and 1 0 2 }} {{ or 0 \"\" 3 }} {{ and 1 2 }} {{ or 0 \"\" }}| {{ not 0 }} {{ not $labels }} {{ len \"abc\" }} {{ len $labels }} {{ len (query \"up\") }}",
            1.0,
        ),
        c(
            "{{ eq 1 2 1 }} {{ eq \"a\" \"b\" }} {{ ne 1 2 }} {{ lt 1.5 2.0 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge $value 3.0 }} {{ eq $value 3.0 }} {{ lt $value 1.0 }}",
            nan,
        ),
        c(
            "{{ index $labels \"job\" }}|{{ index $labels \"x\" }}|{{ index (args \"a\" \"b\") \"arg1\" }}|{{ index \"abc\" 1 }}|{{ (index (sortByLabel \"instance\" (query \"up\")) 1).Labels.instance }}",
            1.0,
        ),
        c(
            "{{ html \"<a href='x'>&\\\"\" }}|{{ js \"a'b\\\"c<d>=&\\\\\" }}|{{ urlquery \"a b/c?d=é&~*\" }}|{{ html 1 2 \"x\" }}|{{ html (args).x }}",
            1.0,
        ),
        // Prometheus string and sample functions.
        c(
            "{{ title \"hello wORLD foo_bar x-y\" }} {{ toUpper \"aBc\" }} {{ toLower \"AbC\" }} {{ safeHtml \"<b>\" }}",
            1.0,
        ),
        c(
            "{{ match \"^node\" $labels.instance }} {{ match \"x$\" \"abc\" }} {{ reReplaceAll \"(.*)\\\\.example\\\\.com:(.*)\" \"$1 port $2\" $labels.instance }} {{ reReplaceAll \"o\" \"0\" \"foo\" }}",
            1.0,
        ),
        c(
            "{{ stripPort $labels.instance }} {{ stripPort \"[::1]:80\" }} {{ stripPort \"host\" }} {{ stripDomain $labels.instance }} {{ stripDomain \"10.0.0.1:80\" }} {{ stripDomain \"a.b.c\" }}",
            1.0,
        ),
        c(
            "{{ with (sortByLabel \"instance\" (query \"up\")) }}{{ . | first | value }} {{ . | first | label \"instance\" }} {{ (first .).Labels.__name__ }}{{ end }} {{ range sortByLabel \"instance\" (query \"up\") }}{{ .Labels.instance }}{{ end }}",
            1.0,
        ),
        c(
            "{{ (args 1 \"x\").arg1 }} {{ (args 1).arg0 }} {{ (args).arg5 }} {{ parseDuration \"1m30s\" }} {{ parseDuration \"1d\" }} {{ graphLink \"up == 0\" }} {{ tableLink \"rate(x[5m])\" }} {{ strvalue (first (query \"up\")) }}|",
            1.0,
        ),
        // Syntax: trim markers, comments, literals, multi-line.
        c(
            "a {{- \" b \" -}}  c {{/* gone */}} d {{- /* t */ -}} e\n  {{- 3 }}\n{{ -3 }}",
            1.0,
        ),
        c(
            "{{ \"a\\tb\\u00e9\\x41\" }} {{ `raw\\n` }} {{ 0x1F }} {{ 1e3 }} {{ 'a' }} {{ -2.50 }} {{ 1_000 }} {{ 010 }} {{ true }} {{ .5 }}",
            1.0,
        ),
        c(
            "{{ $labels }} {{ $labels.nope }}| {{ (args 1).arg5 }} {{ $value | printf \"%.1f\" }} {{ \"up\" | query | len }} {{ . }}",
            1.5,
        ),
        // More fmt and humanize corners.
        c(
            "{{ printf \"%5s|%-5d|%x|%X|%v|%v|%v\" \"ab\" 3 \"hi\" -255 1e21 100000.0 1e20 }} {{ 1e21 }} {{ 1.0 }} {{ 0.1e1 }}",
            1.0,
        ),
        c(
            "{{ humanize 999999 }} {{ humanize 0.0009999 }} {{ humanize -0.5 }} {{ humanize1024 1 }} {{ humanize1024 -1 }} {{ humanize 1e300 }}",
            1.0,
        ),
        c(
            "{{ humanizeDuration 86399.9 }} {{ humanizeDuration -90000 }} {{ humanizeDuration 1e-12 }} {{ humanizeDuration 1.23456 }}",
            1.0,
        ),
        c(
            "{{ printf \"%.0f %.1e %g %G %e %6.2f%%\" 2.5 0.000123 1e-7 1e-7 0.0 12.3456 }}",
            1.0,
        ),
        c(
            "{{ printf \"%s|%q|%c|%t|%d|%v|%s\" (safeHtml \"x\") 65 65 1 true (toTime 1) (toTime 2) }} {{ print nil }}",
            1.0,
        ),
        c(
            "{{ eq $labels.job \"node\" \"x\" }} {{ len \"h\\u00e9llo\" }} {{ toUpper \"\\u00df stra\\u00dfe \\u00e9\" }} {{ title \"\\u00e9lan \\u00fcber_x 3d\" }}",
            1.0,
        ),
        c(
            "{{ js \"\\u2028\\u00e9\\u00a0x\" }} {{ reReplaceAll \"(a)(?P<x>b)\" \"${x}$1$$\" \"ab\" }}",
            1.0,
        ),
        c(
            "{{ range $k, $v := args 1 \"a\" }}{{ $k }}={{ $v }} {{ end }}{{ range query \"up\" }}{{ $.Value }}{{ $labels.job }}{{ end }}",
            4.0,
        ),
        c(
            "{{ with (sortByLabel \"instance\" (query \"up\")) }}{{ range . }}{{ .Labels.instance }}{{ end }}{{ end }} {{ if and (eq $labels.job \"node\") (gt $value 0.0) }}ok{{ end }} {{ if not (index $labels \"absent\") }}absent{{ end }}",
            1.0,
        ),
        c(
            "{{ $value | printf \"%.2f\" | printf \"%s!\" }} {{ \"\\\\\" }} {{ range $i, $e := query \"up\" }}{{ $i }}{{ else }}{{ $i }}{{ end }}",
            1.23456,
        ),
        c(
            "{{ slice \"abcdef\" 1 3 }} {{ slice \"abc\" 1 }} {{ slice \"abc\" }} {{ range slice (sortByLabel \"instance\" (query \"up\")) 1 }}{{ .Labels.instance }}{{ end }}",
            1.0,
        ),
        // Render errors: Prometheus shows them as the annotation.
        c("{{ slice \"abc\" 2 1 }}", 1.0),
        c("{{ slice \"abc\" 1 2 3 }}", 1.0),
        c("{{ slice 3 1 }}", 1.0),
        c("{{ index \"abc\" 3 }}", 1.0),
        c("{{ index \"abc\" 5 }}", 1.0),
        c("{{ printf \"%s\" }}{{ (first (query \"up\")).Nope }}", 1.0),
        c("{{ humanize \"abc\" }}", 1.0),
        c("{{ query \"nonexistent_metric\" | first }}", 1.0),
        c("{{ eq 1 1.5 }}", 1.0),
        c("x\n{{ index $labels 1 }}", 1.0),
        c("{{ len 3 }}", 1.0),
        c("{{ $labels.job.x }}", 1.0),
        c("{{ range 5 }}{{ end }}", 1.0),
        c("{{ humanizeTimestamp 1e20 }}", 1.0),
        c("{{ humanize true }}", 1.0),
        c(
            "{{ humanize \"1e3\" }} {{ humanize \"-Inf\" }} {{ humanize \"nan\" }} {{ humanize \".5\" }} {{ humanize \"1_000\" }}",
            1.0,
        ),
        c("{{ humanize \"1e400\" }}", 1.0),
        c("{{ humanize \" 1\" }}", 1.0),
        c("{{ match \"[\" \"x\" }}", 1.0),
        c("{{ reReplaceAll \"(\" \"\" \"x\" }}", 1.0),
        c("{{ match \"a)\" \"x\" }}", 1.0),
        c("{{ match \"x[a-\" \"x\" }}", 1.0),
        c("{{ title 3 }}", 1.0),
        c("{{ label \"x\" \"y\" }}", 1.0),
        c("{{ lt true false }}", 1.0),
        c("{{ toUpper $value }}", 1.0),
        c("{{ .Nope }}", 1.0),
        c("{{ printf }}", 1.0),
        c("{{ $x = humanize 1 }}", 1.0),
    ];
    v.push(Case {
        text: "{{ $labels.job }} is {{ $value }}",
        value: 42.0,
        label: Some(
            "{{ if gt $value 10.0 }}high{{ else }}low{{ end }}-{{ $labels.job | toUpper }}",
        ),
    });
    v
}

/// Series labels of case `i`: the alert's labels, and with `__name__` the
/// template's `$labels` (Prometheus keeps the metric name there).
fn labels(i: usize) -> BTreeMap<String, String> {
    [
        ("case", i.to_string()),
        ("instance", "node1.example.com:9100".into()),
        ("job", "node".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What Prometheus's engine answers for the queries the cases use.
fn query(q: &str) -> Result<Vec<Sample>, String> {
    let up = |inst: &str, v: f64| Sample {
        labels: [("__name__", "up"), ("instance", inst), ("job", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value: v,
    };
    match q {
        // Prometheus leaves the order open (promtool's varies): cases sort.
        "up" => Ok(vec![up("a", 1.0), up("b", 0.0)]),
        "nonexistent_metric" => Ok(vec![]),
        other => panic!("test query {other:?} has no known answer"),
    }
}

fn series_value(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        v if v == f64::INFINITY => "+Inf".into(),
        v if v == f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v:?}"),
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

#[test]
fn templates_render_as_promtool_does() {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} not found: install Prometheus's promtool (Debian package `prometheus`)"
    );
    let cases = cases();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut rules, mut test) = (
        String::from("groups:\n- name: t\n  rules:\n"),
        String::new(),
    );
    writeln!(
        test,
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:"
    )
    .unwrap();
    for (i, k) in cases.iter().enumerate() {
        writeln!(
            test,
            "  - series: {}",
            json(&format!(
                "m{{case=\"{i}\",instance=\"node1.example.com:9100\",job=\"node\"}}"
            ))
        )
        .unwrap();
        writeln!(test, "    values: {}", json(&series_value(k.value))).unwrap();
    }
    test.push_str("  - series: 'up{instance=\"a\",job=\"x\"}'\n    values: '1'\n");
    test.push_str("  - series: 'up{instance=\"b\",job=\"x\"}'\n    values: '0'\n");
    test.push_str("  alert_rule_test:\n");
    for (i, k) in cases.iter().enumerate() {
        let name = format!("T{i}");
        let mut with_name = labels(i);
        with_name.insert("__name__".into(), "m".into());
        let data = Data {
            labels: with_name,
            value: k.value,
            ..Data::default()
        };
        let render = |text: &str| {
            expand(&format!("__alert_{name}"), text, &data, &query)
                .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
        };
        let text = format!("[{}]", k.text);
        writeln!(
            rules,
            "  - alert: {name}\n    expr: m{{case=\"{i}\"}}\n    annotations:\n      a: {}",
            json(&text)
        )
        .unwrap();
        let mut exp_labels = labels(i);
        if let Some(l) = k.label {
            writeln!(rules, "    labels:\n      sev: {}", json(l)).unwrap();
            exp_labels.insert("sev".into(), render(l));
        }
        let exp_labels: Vec<String> = exp_labels
            .iter()
            .map(|(k, v)| format!("{k}: {}", json(v)))
            .collect();
        writeln!(
            test,
            "  - eval_time: 0m\n    alertname: {name}\n    exp_alerts:\n    - exp_labels: {{{}}}\n      exp_annotations: {{a: {}}}",
            exp_labels.join(", "),
            json(&render(&text))
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
    std::fs::write(dir.path().join("test.yml"), &test).unwrap();
    let out = Command::new(PROMTOOL)
        .args(["test", "rules", "test.yml"])
        .current_dir(dir.path())
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool disagrees with our rendering:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Templates that must not load; Prometheus names the line and the problem.
const BAD: &[&str] = &[
    "{{ if }}",
    "{{ .Labels.x",
    "{{ end }}",
    "{{ if 1 }}\n\n",
    "a\n{{ $y }}",
    "{{ nope 1 }}",
    "{{ 3 | 4 }}",
    "{{ \"abc }}",
    "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
    "{{ (1 }}",
    "{{ 1) }}",
    "{{ range $i, 3 := . }}{{ end }}",
    "{{ .a. }}",
    "{{ break }}",
    "{{ 1.2.3 }}",
    "{{ 'ab' }}",
    "{{ /* x */ }}",
    "{{ \"a\" .b }}{{ ( ) }}",
];

#[test]
fn parse_errors_match_promtool_check_rules() {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} not found: install Prometheus's promtool"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (i, t) in BAD.iter().enumerate() {
        let f = format!("bad{i}.yml");
        let body = format!(
            "groups:\n- name: g\n  rules:\n  - alert: B\n    expr: m\n    annotations:\n      a: {}\n",
            json(t)
        );
        std::fs::write(dir.path().join(&f), body).unwrap();
        files.push(f);
    }
    let out = Command::new(PROMTOOL)
        .arg("check")
        .arg("rules")
        .args(&files)
        .current_dir(dir.path())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut wrong = Vec::new();
    for (i, t) in BAD.iter().enumerate() {
        let prefix = format!(
            "bad{i}.yml: group \"g\", rule 1, \"B\": annotation \"a\": template: __alert_B:"
        );
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("promtool accepted {t:?}:\n{text}"));
        let (n, msg) = line.split_once(": ").expect("LINE: message");
        let want = Err(format!("line {n}: {msg}"));
        if check(t) != want {
            wrong.push(format!("{t:?}: ours {:?}, Prometheus {want:?}", check(t)));
        }
    }
    assert!(
        wrong.is_empty(),
        "parse errors differ:\n{}",
        wrong.join("\n")
    );
}
