//! LogQL against a small known corpus: several streams of JSON, logfmt and
//! plain lines (some malformed) and structured metadata. Every expected line
//! and number below was worked out by hand from the corpus.

use sonde_collector::logs::logql::memory::MemLogSource;
use sonde_collector::logs::logql::{
    LogQlLimits, QueryData, compile_tail, query_instant, query_range,
};
use sonde_collector::logs::model::{Direction, LogEntry};
use sonde_collector::model::Labels;

const T0: i64 = 1_700_000_000_000_000_000;
const S: i64 = 1_000_000_000;

fn t(secs: i64) -> i64 {
    T0 + secs * S
}

fn e(secs: i64, line: &str) -> LogEntry {
    LogEntry {
        ts_ns: t(secs),
        line: line.to_string(),
        metadata: vec![],
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn corpus() -> MemLogSource {
    let mut src = MemLogSource::new();
    src.push(
        l(&[("app", "api"), ("env", "prod")]),
        vec![
            e(10, r#"{"level":"info","msg":"GET /users","status":200,"latency":"120ms","req":{"method":"GET","path":"/users"}}"#),
            e(20, r#"{"level":"error","msg":"db timeout","status":500,"latency":"2.5s","req":{"method":"POST","path":"/orders"}}"#),
            e(30, r#"{"level":"info","msg":"GET /health","status":200,"latency":"5ms","req":{"method":"GET","path":"/health"}}"#),
            e(40, "not json at all"),
            e(50, r#"{"level":"warn","msg":"slow","status":404,"latency":"900ms","req":{"method":"GET","path":"/x"}}"#),
            e(70, r#"{"level":"error","msg":"panic","status":503,"latency":"1s","req":{"method":"GET","path":"/y"}}"#),
        ],
    );
    src.push(
        l(&[("app", "web"), ("env", "prod")]),
        vec![
            e(15, r#"level=info msg="page served" status=200 bytes=1200"#),
            e(
                25,
                r#"level=error msg="template failed" status=500 bytes=0"#,
            ),
            e(35, r#"level=info msg="page served" status=200 bytes=800"#),
            e(45, "level=debug msg=cache_hit status=304 bytes=10"),
            e(65, r#"level=error msg="upstream down" status=502 bytes=20"#),
        ],
    );
    src.push(
        l(&[("app", "api"), ("env", "dev")]),
        vec![
            e(12, "starting api v1.2"),
            e(22, "ERROR connection refused"),
            e(32, "listening on :8080"),
        ],
    );
    src.push(
        l(&[("app", "worker"), ("env", "prod")]),
        vec![
            LogEntry {
                ts_ns: t(18),
                line: "job done".into(),
                metadata: vec![
                    ("trace_id".into(), "abc".into()),
                    ("user".into(), "u1".into()),
                ],
            },
            LogEntry {
                ts_ns: t(28),
                line: "job failed".into(),
                metadata: vec![("trace_id".into(), "def".into())],
            },
        ],
    );
    src.push(
        l(&[("app", "clash"), ("level", "stream")]),
        vec![e(5, r#"{"level":"error","app":"x","n":{"a-b":{"c":1}}}"#)],
    );
    src
}

fn limits() -> LogQlLimits {
    LogQlLimits::default()
}

/// Log query over [T0, T0+100s): (labels, [(secs, line)]) per stream.
fn logs(
    src: &MemLogSource,
    q: &str,
    limit: usize,
    dir: Direction,
) -> Vec<(Labels, Vec<(i64, String)>)> {
    match query_range(src, q, t(0), t(100), S, limit, dir, &limits())
        .unwrap_or_else(|e| panic!("{q}: {e}"))
    {
        QueryData::Streams(s) => s
            .into_iter()
            .map(|s| {
                (
                    s.labels,
                    s.entries
                        .into_iter()
                        .map(|e| ((e.ts_ns - T0) / S, e.line))
                        .collect(),
                )
            })
            .collect(),
        other => panic!("{q}: expected streams, got {other:?}"),
    }
}

/// Timestamps (secs) per stream labels.
fn times(src: &MemLogSource, q: &str, limit: usize, dir: Direction) -> Vec<(Labels, Vec<i64>)> {
    logs(src, q, limit, dir)
        .into_iter()
        .map(|(l, es)| (l, es.into_iter().map(|e| e.0).collect()))
        .collect()
}

fn instant(src: &MemLogSource, q: &str, at_secs: i64) -> Vec<(Labels, f64)> {
    match query_instant(src, q, t(at_secs), 100, Direction::Backward, &limits())
        .unwrap_or_else(|e| panic!("{q}: {e}"))
    {
        QueryData::Vector(v) => v,
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

fn single(src: &MemLogSource, q: &str, at_secs: i64) -> f64 {
    let v = instant(src, q, at_secs);
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    v[0].1
}

#[test]
fn line_filter_across_streams() {
    let src = corpus();
    let got = times(&src, r#"{env="prod"} |= "error""#, 100, Direction::Backward);
    assert_eq!(
        got,
        vec![
            (l(&[("app", "api"), ("env", "prod")]), vec![70, 20]),
            (l(&[("app", "web"), ("env", "prod")]), vec![65, 25]),
        ]
    );
    let got = times(
        &src,
        r#"{app="api"} |~ "(?i)error" != "timeout""#,
        100,
        Direction::Forward,
    );
    assert_eq!(
        got,
        vec![
            (l(&[("app", "api"), ("env", "dev")]), vec![22]),
            (l(&[("app", "api"), ("env", "prod")]), vec![70]),
        ]
    );
}

#[test]
fn limit_and_direction_span_streams() {
    let src = corpus();
    // Newest three prod lines overall: api@70, web@65, api@50.
    assert_eq!(
        times(&src, r#"{env="prod"}"#, 3, Direction::Backward),
        vec![
            (l(&[("app", "api"), ("env", "prod")]), vec![70, 50]),
            (l(&[("app", "web"), ("env", "prod")]), vec![65]),
        ]
    );
    // Oldest three: api@10, web@15, worker@18 (with its metadata as labels).
    assert_eq!(
        times(&src, r#"{env="prod"}"#, 3, Direction::Forward),
        vec![
            (l(&[("app", "api"), ("env", "prod")]), vec![10]),
            (l(&[("app", "web"), ("env", "prod")]), vec![15]),
            (
                l(&[
                    ("app", "worker"),
                    ("env", "prod"),
                    ("trace_id", "abc"),
                    ("user", "u1")
                ]),
                vec![18]
            ),
        ]
    );
}

#[test]
fn range_is_start_inclusive_end_exclusive() {
    let src = corpus();
    let got = match query_range(
        &src,
        r#"{app="api", env="prod"}"#,
        t(20),
        t(50),
        S,
        100,
        Direction::Forward,
        &limits(),
    )
    .unwrap()
    {
        QueryData::Streams(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(got.len(), 1);
    let secs: Vec<i64> = got[0].entries.iter().map(|e| (e.ts_ns - T0) / S).collect();
    assert_eq!(secs, vec![20, 30, 40]);
}

#[test]
fn instant_log_query_reads_up_to_the_instant() {
    let src = corpus();
    let got = match query_instant(
        &src,
        r#"{app="api", env="dev"}"#,
        t(22),
        10,
        Direction::Backward,
        &limits(),
    )
    .unwrap()
    {
        QueryData::Streams(s) => s,
        other => panic!("{other:?}"),
    };
    let lines: Vec<&str> = got[0].entries.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, vec!["ERROR connection refused", "starting api v1.2"]);
}

#[test]
fn json_parser_labels_and_errors() {
    let src = corpus();
    let got = times(
        &src,
        r#"{app="api", env="prod"} | json | level="error""#,
        100,
        Direction::Backward,
    );
    assert_eq!(
        got,
        vec![
            (
                l(&[
                    ("app", "api"),
                    ("env", "prod"),
                    ("latency", "1s"),
                    ("level", "error"),
                    ("msg", "panic"),
                    ("req_method", "GET"),
                    ("req_path", "/y"),
                    ("status", "503"),
                ]),
                vec![70]
            ),
            (
                l(&[
                    ("app", "api"),
                    ("env", "prod"),
                    ("latency", "2.5s"),
                    ("level", "error"),
                    ("msg", "db timeout"),
                    ("req_method", "POST"),
                    ("req_path", "/orders"),
                    ("status", "500"),
                ]),
                vec![20]
            ),
        ]
    );
    let bad = logs(
        &src,
        r#"{app="api", env="prod"} | json | __error__="JSONParserErr""#,
        100,
        Direction::Backward,
    );
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].1, vec![(40, "not json at all".to_string())]);
    assert_eq!(bad[0].0.get("__error__"), Some("JSONParserErr"));
    let ok: usize = times(
        &src,
        r#"{app="api", env="prod"} | json | __error__="""#,
        100,
        Direction::Backward,
    )
    .iter()
    .map(|s| s.1.len())
    .sum();
    assert_eq!(ok, 5);
    // Clashes with stream labels get _extracted; nested keys are flattened and sanitized.
    let got = times(&src, r#"{app="clash"} | json"#, 100, Direction::Backward);
    assert_eq!(
        got,
        vec![(
            l(&[
                ("app", "clash"),
                ("app_extracted", "x"),
                ("level", "stream"),
                ("level_extracted", "error"),
                ("n_a_b_c", "1")
            ]),
            vec![5]
        )]
    );
}

#[test]
fn numeric_duration_and_bytes_filters() {
    let src = corpus();
    let flat = |q: &str| -> Vec<i64> {
        let mut v: Vec<i64> = times(&src, q, 100, Direction::Forward)
            .into_iter()
            .flat_map(|s| s.1)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        flat(r#"{app="web"} | logfmt | status >= 500"#),
        vec![25, 65]
    );
    // The malformed line has __error__ set, and numeric filters let errors through (as Loki).
    assert_eq!(
        flat(r#"{app="api", env="prod"} | json | latency > 500ms"#),
        vec![20, 40, 50, 70]
    );
    assert_eq!(
        flat(r#"{app="api", env="prod"} | json | __error__="" | latency > 500ms"#),
        vec![20, 50, 70]
    );
    assert_eq!(flat(r#"{app="web"} | logfmt | bytes > 1KB"#), vec![15]);
    assert_eq!(
        flat(r#"{app="web"} | logfmt | level="info" or status == 304"#),
        vec![15, 35, 45]
    );
    assert_eq!(
        flat(r#"{app="web"} | logfmt | (level="error" and status < 501), bytes == 0"#),
        vec![25]
    );
}

#[test]
fn formatters_and_grouping_by_final_labels() {
    let src = corpus();
    let got = logs(
        &src,
        r#"{app="web"} | logfmt | level="error" | line_format "{{.status}}: {{.msg | ToUpper}}" | keep app"#,
        100,
        Direction::Backward,
    );
    assert_eq!(
        got,
        vec![(
            l(&[("app", "web")]),
            vec![
                (65, "502: UPSTREAM DOWN".to_string()),
                (25, "500: TEMPLATE FAILED".to_string())
            ]
        )]
    );
    let got = times(
        &src,
        r#"{app="web"} | logfmt | keep app, level"#,
        100,
        Direction::Backward,
    );
    assert_eq!(
        got,
        vec![
            (l(&[("app", "web"), ("level", "debug")]), vec![45]),
            (l(&[("app", "web"), ("level", "error")]), vec![65, 25]),
            (l(&[("app", "web"), ("level", "info")]), vec![35, 15]),
        ]
    );
    let got = times(
        &src,
        r#"{app="web"} | logfmt | label_format sev=level, code="{{.status}}x" | keep sev, code | sev="debug""#,
        100,
        Direction::Backward,
    );
    assert_eq!(
        got,
        vec![(l(&[("code", "304x"), ("sev", "debug")]), vec![45])]
    );
}

#[test]
fn structured_metadata_acts_as_labels() {
    let src = corpus();
    let got = match query_range(
        &src,
        r#"{app="worker"} | trace_id="abc""#,
        t(0),
        t(100),
        S,
        100,
        Direction::Backward,
        &limits(),
    )
    .unwrap()
    {
        QueryData::Streams(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].labels,
        l(&[
            ("app", "worker"),
            ("env", "prod"),
            ("trace_id", "abc"),
            ("user", "u1")
        ])
    );
    assert_eq!(got[0].entries.len(), 1);
    assert_eq!(got[0].entries[0].line, "job done");
}

#[test]
fn count_rate_and_bytes_at_an_instant() {
    let src = corpus();
    // Window (T0, T0+60s]: api/prod 10..50 = 5, web 15..45 = 4, worker 18 and 28 (two series).
    assert_eq!(
        single(&src, r#"sum(count_over_time({env="prod"}[1m]))"#, 60),
        11.0
    );
    assert_eq!(
        instant(
            &src,
            r#"sum by (app) (count_over_time({env="prod"}[1m]))"#,
            60
        ),
        vec![
            (l(&[("app", "api")]), 5.0),
            (l(&[("app", "web")]), 4.0),
            (l(&[("app", "worker")]), 2.0)
        ]
    );
    assert_eq!(
        instant(
            &src,
            r#"sum(count_over_time({env="prod"}[1m])) without (app, trace_id, user)"#,
            60
        ),
        vec![(l(&[("env", "prod")]), 11.0)]
    );
    assert_eq!(
        instant(&src, r#"count_over_time({env="prod"}[1m])"#, 60).len(),
        4
    );
    // Left-open windows: (10s, 20s] holds only the entry at 20s.
    assert_eq!(
        single(&src, r#"count_over_time({app="api", env="prod"}[10s])"#, 20),
        1.0
    );
    assert_eq!(
        single(&src, r#"count_over_time({app="api", env="prod"}[10s])"#, 30),
        1.0
    );
    assert_eq!(single(&src, r#"rate({app="web"}[20s])"#, 40), 0.1);
    // 17 + 24 + 18 bytes.
    assert_eq!(
        single(&src, r#"bytes_over_time({app="api", env="dev"}[1m])"#, 60),
        59.0
    );
    assert_eq!(
        single(&src, r#"bytes_rate({app="api", env="dev"}[1m])"#, 60),
        59.0 / 60.0
    );
    assert_eq!(
        instant(
            &src,
            r#"topk(1, sum by (app) (count_over_time({env="prod"}[1m])))"#,
            60
        ),
        vec![(l(&[("app", "api")]), 5.0)]
    );
    assert_eq!(
        single(&src, r#"sum(count_over_time({app="web"}[1m])) * 2"#, 60),
        8.0
    );
    assert_eq!(
        single(
            &src,
            r#"sum(count_over_time({app="web"}[1m])) / sum(count_over_time({env="prod"}[1m]))"#,
            60
        ),
        4.0 / 11.0
    );
    assert_eq!(
        single(
            &src,
            r#"sum(count_over_time({app="web"} |= "error" [1m]))"#,
            70
        ),
        2.0
    );
    assert!(instant(&src, r#"count_over_time({app="nope"}[1m])"#, 60).is_empty());
    // web lines in (0, 60]: info at 15 and 35, error at 25, debug at 45.
    assert_eq!(
        instant(
            &src,
            r#"sum by (level) (count_over_time({app="web"} | logfmt [1m]))"#,
            60
        ),
        vec![
            (l(&[("level", "debug")]), 1.0),
            (l(&[("level", "error")]), 1.0),
            (l(&[("level", "info")]), 2.0)
        ]
    );
    assert_eq!(
        instant(
            &src,
            r#"max by (level) (count_over_time({app="web"} | logfmt | keep level [1m]))"#,
            60
        ),
        vec![
            (l(&[("level", "debug")]), 1.0),
            (l(&[("level", "error")]), 1.0),
            (l(&[("level", "info")]), 2.0)
        ]
    );
    // The malformed api line (40s) is a pipeline error even under sum (400).
    let e = query_instant(
        &src,
        r#"sum(count_over_time({app="api", env="prod"} | json [1m]))"#,
        t(60),
        100,
        Direction::Backward,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(e.http_status(), 400);
    assert!(e.to_string().contains("JSONParserErr"), "{e}");
}

#[test]
fn unwrap_aggregations() {
    let src = corpus();
    // bytes of web lines in (T0, T0+60s]: 1200 + 0 + 800 + 10.
    assert_eq!(
        single(
            &src,
            r#"sum(sum_over_time({app="web"} | logfmt | unwrap bytes [1m]))"#,
            60
        ),
        2010.0
    );
    assert_eq!(
        instant(
            &src,
            r#"avg_over_time({app="web"} | logfmt | unwrap bytes [1m]) by (level)"#,
            60
        ),
        vec![
            (l(&[("level", "debug")]), 10.0),
            (l(&[("level", "error")]), 0.0),
            (l(&[("level", "info")]), 1000.0)
        ]
    );
    assert_eq!(
        single(
            &src,
            r#"max_over_time({app="api", env="prod"} | json | __error__="" | unwrap duration(latency) [1m]) by (app)"#,
            60
        ),
        2.5
    );
    // The malformed line makes the unfiltered query a pipeline error (400).
    let err = query_instant(
        &src,
        r#"max_over_time({app="api", env="prod"} | json | unwrap duration(latency) [1m]) by (app)"#,
        t(60),
        100,
        Direction::Backward,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(
        err.to_string().contains("pipeline error: 'JSONParserErr'"),
        "{err}"
    );
}

#[test]
fn pattern_and_regexp_parsers() {
    let src = corpus();
    // "ERROR connection refused": <lvl> takes up to the first space, <what> the rest.
    let got = times(
        &src,
        r#"{app="api", env="dev"} | pattern "<lvl> <what>" | lvl="ERROR""#,
        100,
        Direction::Forward,
    );
    assert_eq!(
        got,
        vec![(
            l(&[
                ("app", "api"),
                ("env", "dev"),
                ("lvl", "ERROR"),
                ("what", "connection refused")
            ]),
            vec![22]
        )]
    );
    let got = times(
        &src,
        r#"{app="api", env="dev"} | regexp "on :(?P<port>[0-9]+)$""#,
        100,
        Direction::Forward,
    );
    assert_eq!(
        got,
        vec![
            (l(&[("app", "api"), ("env", "dev")]), vec![12, 22]),
            (
                l(&[("app", "api"), ("env", "dev"), ("port", "8080")]),
                vec![32]
            ),
        ]
    );
}

#[test]
fn vector_matching_and_absent() {
    let src = corpus();
    // Per app share of error lines in (T0, T0+60s]: api 1 of 5 ("error" at 20), web 1 of 4 (25).
    assert_eq!(
        instant(
            &src,
            r#"sum by (app) (count_over_time({env="prod"} |= "error" [1m])) / on(app) sum by (app) (count_over_time({env="prod"}[1m]))"#,
            60
        ),
        vec![(l(&[("app", "api")]), 0.2), (l(&[("app", "web")]), 0.25)]
    );
    assert_eq!(
        instant(&src, r#"absent_over_time({app="nope", env="x"}[1m])"#, 60),
        vec![(l(&[("app", "nope"), ("env", "x")]), 1.0)]
    );
    assert!(instant(&src, r#"absent_over_time({app="web"}[1m])"#, 60).is_empty());
    // Only "api" matches (a.*) anchored; the others keep their labels.
    assert_eq!(
        instant(
            &src,
            r#"label_replace(sum by (app) (count_over_time({env="prod"}[1m])), "svc", "svc-$1", "app", "(a.*)")"#,
            60
        ),
        vec![
            (l(&[("app", "api"), ("svc", "svc-api")]), 5.0),
            (l(&[("app", "web")]), 4.0),
            (l(&[("app", "worker")]), 2.0)
        ]
    );
    // Nothing matches "nope", so `or vector(0)` supplies the zero.
    assert_eq!(
        instant(
            &src,
            r#"sum(count_over_time({app="web"} |= "nope" [1m])) or vector(0)"#,
            60
        ),
        vec![(Labels::default(), 0.0)]
    );
}

#[test]
fn range_query_steps_and_offset() {
    let src = corpus();
    let m = |q: &str| match query_range(
        &src,
        q,
        t(20),
        t(60),
        20 * S,
        100,
        Direction::Backward,
        &limits(),
    )
    .unwrap()
    {
        QueryData::Matrix(m) => m,
        other => panic!("{other:?}"),
    };
    // Steps 20, 40, 60: (0,20] = {15}, (20,40] = {25,35}, (40,60] = {45}.
    assert_eq!(
        m(r#"sum(count_over_time({app="web"}[20s]))"#),
        vec![(
            Labels::default(),
            vec![(t(20), 1.0), (t(40), 2.0), (t(60), 1.0)]
        )]
    );
    // Offset 20s shifts every window back: step 20 has (-20,0] = nothing.
    assert_eq!(
        m(r#"sum(count_over_time({app="web"}[20s] offset 20s))"#),
        vec![(Labels::default(), vec![(t(40), 1.0), (t(60), 2.0)])]
    );
    // dev lines at 12, 22, 32: (10,20] = {12}, (30,40] = {32}, (50,60] = {};
    // a series is absent at steps where its window is empty.
    assert_eq!(
        m(r#"count_over_time({app="api", env="dev"}[10s])"#),
        vec![(
            l(&[("app", "api"), ("env", "dev")]),
            vec![(t(20), 1.0), (t(40), 1.0)]
        )]
    );
}

#[test]
fn limits_are_422_with_guidance() {
    let src = corpus();
    let tight = LogQlLimits {
        max_series: 2,
        ..LogQlLimits::default()
    };
    let e = query_instant(
        &src,
        r#"count_over_time({env="prod"}[1m])"#,
        t(60),
        100,
        Direction::Backward,
        &tight,
    )
    .unwrap_err();
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("maximum of series (2)"), "{e}");
    let tiny = LogQlLimits {
        max_bytes: 50,
        ..LogQlLimits::default()
    };
    let e = query_range(
        &src,
        r#"{env="prod"}"#,
        t(0),
        t(100),
        S,
        100,
        Direction::Backward,
        &tiny,
    )
    .unwrap_err();
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("max_bytes"), "{e}");
    let e = query_range(
        &src,
        r#"{env="prod"}"#,
        t(0),
        t(100),
        S,
        5001,
        Direction::Backward,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("5001 > 5000"), "{e}");
}

#[test]
fn limit_stops_scans_early() {
    let mut src = MemLogSource::new();
    for s in 0..2 {
        let entries = (0..5000)
            .map(|i| e(i, &format!("stream {s} line {i}")))
            .collect();
        src.push(
            l(&[("app", "big"), ("shard", if s == 0 { "a" } else { "b" })]),
            entries,
        );
    }
    let got = match query_range(
        &src,
        r#"{app="big"} |= "line""#,
        t(0),
        t(10_000),
        S,
        10,
        Direction::Backward,
        &limits(),
    )
    .unwrap()
    {
        QueryData::Streams(s) => s,
        other => panic!("{other:?}"),
    };
    let mut secs: Vec<i64> = got
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.ts_ns - T0) / S))
        .collect();
    secs.sort();
    assert_eq!(
        secs,
        vec![4995, 4995, 4996, 4996, 4997, 4997, 4998, 4998, 4999, 4999]
    );
    // Each stream stops one entry past the cut: far fewer than the 10,000 lines.
    assert!(src.scanned() <= 22, "scanned {}", src.scanned());
}

#[test]
fn tail_matches_live_entries() {
    let q = compile_tail(r#"{app="web"} | logfmt | level="error""#).unwrap();
    let labels = l(&[("app", "web"), ("env", "prod")]);
    let hit = e(1, "level=error msg=x");
    let (out_labels, out) = q.process(&labels, &hit).unwrap();
    assert_eq!(out_labels.get("msg"), Some("x"));
    assert_eq!(out.line, "level=error msg=x");
    assert!(q.process(&labels, &e(2, "level=info")).is_none());
}

#[test]
fn parse_errors_are_400_with_positions() {
    let src = corpus();
    let err = |q: &str| {
        query_range(&src, q, t(0), t(10), S, 10, Direction::Backward, &limits()).unwrap_err()
    };
    let e = err(r#"{app="web"} | logfmt | status >"#);
    assert_eq!(e.http_status(), 400);
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 32: syntax error: unexpected $end, expecting STRING, NUMBER, DURATION or BYTES"
    );
    let e = err(r#"sum by (app) count_over_time({app="web"}[1m])"#);
    assert!(
        e.to_string()
            .starts_with("parse error at line 1, col 14: syntax error: unexpected IDENTIFIER"),
        "{e}"
    );
    assert_eq!(err(r#"{app=~".*"}"#).http_status(), 400);
}

/// A tiny deterministic generator (no extra dependency) for garbage queries.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn garbage_never_panics() {
    let src = corpus();
    let valid = [
        r#"sum by (app) (rate({env="prod"} |= "error" | json | status >= 500 | line_format "{{.msg}}" [5m] offset 1m)) / 60"#,
        r#"{app="web"} | logfmt --strict | label_format a=b, c="{{ .d | ToUpper }}" | drop x, y="z" | keep app"#,
        r#"topk(2, avg_over_time({app="web"} | logfmt | unwrap bytes(bytes) | __error__="" [1m]) by (level)) > bool 3"#,
        r#"quantile_over_time(0.9, {app="api"} | json first="req.path", m="tags[0]" | unwrap duration(latency) [1m]) by (app)"#,
        r#"label_replace(sum by (app) (count_over_time({app="web"} |> "<_> msg=<_>" | pattern "<k>=<v> <_>" [1m])), "x", "$1", "app", "(.*)") / on(app) group_left vector(1)"#,
    ];
    let pieces = [
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        "=",
        "!=",
        "=~",
        "!~",
        "|=",
        "|~",
        "|>",
        "!>",
        "\"<_> x\"",
        "|",
        ">",
        ">=",
        "<",
        "==",
        "+",
        "-",
        "*",
        "/",
        "^",
        "\"",
        "\"x\"",
        "`",
        "app",
        "json",
        "logfmt",
        "unwrap",
        "by",
        "without",
        "sum",
        "rate",
        "topk",
        "5m",
        "10KB",
        "1",
        "-1",
        "1e309",
        "or",
        "and",
        "offset",
        "line_format",
        "\"{{\"",
        "\"{{.a\"",
        "bool",
        "#",
        "\n",
        "µs",
        "é",
        "\\",
        "0.5",
        "count_over_time",
        "label_format",
        "drop",
        "keep",
        "regexp",
        "\"(?P<a>.)\"",
        "--strict",
        "decolorize",
    ];
    for q in valid {
        if let Err(e) = query_instant(&src, q, t(60), 50, Direction::Backward, &limits()) {
            assert!(!e.to_string().contains("parse error"), "{q}: {e}");
        }
    }
    let mut rng = Lcg(42);
    let mut queries: Vec<String> = Vec::new();
    for q in valid {
        for cut in 0..=q.len() {
            if q.is_char_boundary(cut) {
                queries.push(q[..cut].to_string());
            }
        }
    }
    for _ in 0..3000 {
        let n = 1 + rng.next() as usize % 14;
        let q: Vec<&str> = (0..n)
            .map(|_| pieces[rng.next() as usize % pieces.len()])
            .collect();
        queries.push(q.join(if rng.next().is_multiple_of(2) {
            " "
        } else {
            ""
        }));
    }
    for _ in 0..500 {
        let n = rng.next() as usize % 40;
        let bytes: Vec<u8> = (0..n).map(|_| (rng.next() % 128) as u8).collect();
        queries.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    // Deep nesting must be refused, not overflow the stack.
    queries.push(format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000)));
    queries.push(format!(
        "{}count_over_time({{a=\"b\"}}[1m]){}",
        "sum(".repeat(50_000),
        ")".repeat(50_000)
    ));
    queries.push(format!(
        "{{a=\"b\"}} | {}x=\"1\"{}",
        "(".repeat(50_000),
        ")".repeat(50_000)
    ));
    queries.push(format!(
        "{{a=\"b\"}} | line_format \"{}\"",
        "{{if .a}}".repeat(50_000)
    ));
    for q in &queries {
        for r in [
            query_range(
                &src,
                q,
                t(0),
                t(100),
                10 * S,
                50,
                Direction::Backward,
                &limits(),
            ),
            query_instant(&src, q, t(60), 50, Direction::Forward, &limits()),
        ] {
            if let Err(e) = r {
                assert!(matches!(e.http_status(), 400 | 422), "{q:?}: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
        let _ = compile_tail(q);
    }
}
