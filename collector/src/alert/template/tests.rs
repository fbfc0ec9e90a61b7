//! Unit tests per feature. Expected strings follow Go's documented behaviour;
//! the promtool integration test checks the same areas against Prometheus.

use std::collections::BTreeMap;

use super::*;

fn data(value: f64) -> Data {
    let labels: BTreeMap<String, String> =
        [("instance", "node1.example.com:9100"), ("job", "node")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    Data {
        labels,
        value,
        ..Data::default()
    }
}

fn up(q: &str) -> Result<Vec<Sample>, String> {
    if q != "up" {
        return Err(format!("unknown query {q}"));
    }
    let s = |i: &str, v| Sample {
        labels: [("instance".to_string(), i.to_string())].into(),
        value: v,
    };
    Ok(vec![s("b", 0.0), s("a", 1.0)])
}

fn r(text: &str) -> String {
    r_v(text, 1.0)
}

fn r_v(text: &str, v: f64) -> String {
    expand("__alert_T", text, &data(v), &up).unwrap_or_else(|e| format!("ERR {e}"))
}

#[test]
fn text_and_trim_and_comments() {
    assert_eq!(r("a {{- \" b \" -}}  c"), "a b c");
    assert_eq!(r("x {{/* hi */}} y {{- /* t */ -}} z"), "x  yz");
    assert_eq!(r("{{-3}}"), "-3");
}

#[test]
fn labels_value_and_missing_keys() {
    assert_eq!(
        r("{{ $labels.job }}/{{ .Labels.instance }}/{{ $labels.nope }}|"),
        "node/node1.example.com:9100/|"
    );
    assert_eq!(
        r("{{ index $labels \"job\" }}{{ index $labels \"x\" }}"),
        "node"
    );
    assert_eq!(r_v("{{ $value }}", 1e6), "1e+06");
    assert_eq!(r_v("{{ .Value }}", f64::NAN), "NaN");
    assert_eq!(
        r("{{ (args 1).arg5 }}|{{ printf \"%v\" (args 1).arg5 }}"),
        "<no value>|<nil>"
    );
    assert_eq!(
        r("{{ $labels }}"),
        "map[instance:node1.example.com:9100 job:node]"
    );
}

#[test]
fn variables_and_scopes() {
    assert_eq!(
        r("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}"),
        "2"
    );
    assert!(r("{{ if true }}{{ $y := 3 }}{{ end }}{{ $y }}").contains("undefined variable \"$y\""));
}

#[test]
fn control_flow() {
    let t = "{{ if gt $value 10.0 }}big{{ else if gt $value 1.0 }}mid{{ else }}small{{ end }}";
    assert_eq!(r_v(t, 20.0), "big");
    assert_eq!(r_v(t, 5.0), "mid");
    assert_eq!(r_v(t, 0.0), "small");
    assert_eq!(
        r("{{ with $labels.job }}[{{ . }}]{{ end }}{{ with $labels.x }}no{{ else }}none{{ end }}"),
        "[node]none"
    );
    assert_eq!(
        r("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
        "instance=node1.example.com:9100;job=node;"
    );
    assert_eq!(
        r(
            "{{ range $i, $s := query \"up\" }}{{ $i }}:{{ $s.Labels.instance }}{{ if eq $i 0 }}{{ continue }}{{ end }}!{{ break }}{{ end }}"
        ),
        "0:b1:a!"
    );
    assert_eq!(r("{{ range (args) }}x{{ else }}empty{{ end }}"), "empty");
}

#[test]
fn builtins() {
    assert_eq!(
        r("{{ and 1 0 2 }} {{ or 0 \"\" 3 }} {{ not 0 }} {{ len \"abc\" }} {{ len $labels }}"),
        "0 3 true 3 2"
    );
    assert_eq!(
        r("{{ eq 1 2 1 }} {{ ne \"a\" \"b\" }} {{ lt 1.5 2.0 }} {{ ge \"b\" \"a\" }}"),
        "true true true true"
    );
    assert!(r("{{ eq 1 1.0 }}").contains("error calling eq: incompatible types for comparison"));
    assert_eq!(
        r(
            "{{ print 1 2 \"a\" 3 }}|{{ println 1 \"a\" }}|{{ printf \"%d-%s-%.2f-%q-%x\" 7 \"s\" 3.14159 \"q\" 255 }}"
        ),
        "1 2a3|1 a\n|7-s-3.14-\"q\"-ff"
    );
    assert_eq!(
        r("{{ html \"<a href='x'>&\" }}|{{ js \"a'b\" }}|{{ urlquery \"a b/c\" }}"),
        "&lt;a href=&#39;x&#39;&gt;&amp;|a\\'b|a+b%2Fc"
    );
}

#[test]
fn prometheus_functions() {
    assert_eq!(
        r(
            "{{ humanize 1234567 }} {{ humanize1024 1048576 }} {{ humanizeDuration 90 }} {{ humanizePercentage 0.5 }}"
        ),
        "1.235M 1Mi 1m 30s 50%"
    );
    assert_eq!(
        r("{{ humanizeTimestamp 1.5 }}|{{ toTime 86400 }}"),
        "1970-01-01 00:00:01.5 +0000 UTC|1970-01-02 00:00:00 +0000 UTC"
    );
    assert_eq!(
        r("{{ title \"hello world\" }} {{ toUpper \"a\" }} {{ toLower \"B\" }}"),
        "Hello World A b"
    );
    assert_eq!(
        r(
            "{{ match \"^node\" $labels.instance }} {{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}"
        ),
        "true node1.example.com"
    );
    assert_eq!(
        r("{{ stripPort $labels.instance }} {{ stripDomain $labels.instance }}"),
        "node1.example.com node1:9100"
    );
    assert_eq!(
        r(
            "{{ with query \"up\" }}{{ . | first | value }} {{ . | first | label \"instance\" }}{{ end }}"
        ),
        "0 b"
    );
    assert_eq!(
        r("{{ range sortByLabel \"instance\" (query \"up\") }}{{ .Labels.instance }}{{ end }}"),
        "ab"
    );
    assert_eq!(
        r("{{ (args 1 \"x\").arg1 }} {{ safeHtml \"<b>\" }} {{ parseDuration \"1m30s\" }}"),
        "x <b> 90"
    );
    assert_eq!(
        r("{{ graphLink \"up == 0\" }}"),
        "/graph?g0.expr=up+%3D%3D+0&g0.tab=0"
    );
    let d = Data {
        external_url: "http://prom:9090/p".into(),
        ..Data::default()
    };
    assert_eq!(
        expand(
            "t",
            "{{ externalURL }} {{ pathPrefix }} {{ $externalURL }}",
            &d,
            &NoQuery
        )
        .unwrap(),
        "http://prom:9090/p /p http://prom:9090/p"
    );
}

#[test]
fn errors_are_one_line_with_positions() {
    assert_eq!(
        r("{{ humanize \"abc\" }}"),
        "ERR error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize \"abc\">: error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax"
    );
    assert!(r("{{ query \"bad\" | first }}").contains("error calling query: unknown query bad"));
    assert!(r("{{ nope 1 }}").starts_with(
        "ERR error parsing template __alert_T: template: __alert_T:1: function \"nope\" not defined"
    ));
    assert_eq!(
        check("a\n{{ if }}"),
        Err("line 2: missing value for if".into())
    );
    assert!(
        check("{{ .Labels.x")
            .unwrap_err()
            .contains("unclosed action")
    );
    assert!(check("{{ end }}").is_err());
    assert!(check("{{ if 1 }}").is_err());
    assert!(check("{{ $labels.job }} {{ $value | humanize }}").is_ok());
    assert!(
        r("{{ label \"x\" 1.5 }}").contains("can't handle 1.5 for arg of type *template.sample")
    );
}

#[test]
fn hostile_input_is_an_error_not_a_crash() {
    assert!(
        check(&format!(
            "{{{{ {}1{} }}}}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ))
        .unwrap_err()
        .contains("too deep")
    );
    assert!(
        check(&"{{ if 1 }}".repeat(100_000))
            .unwrap_err()
            .contains("too deep")
    );
    assert_eq!(r("{{ printf \"%9999999d|%.9999999f\" 1 1.5 }}"), "1|2");
    for t in [
        "{{",
        "{{ \"",
        "{{ '",
        "{{ `",
        "{{ 0x }}",
        "{{ 1e }}",
        "{{/*",
        "}}{{ ) }}",
        "\u{e9}{{ \u{e9} }}",
    ] {
        assert!(check(t).is_err(), "{t}");
    }
}
