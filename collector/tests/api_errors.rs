//! The Prometheus HTTP API's error answers against the real binary:
//! Prometheus's status codes, errorType values and wording.

mod api_support;

use api_support::{Collector, enc, request};

fn error(c: &Collector, path: &str) -> (u16, String, String) {
    let (status, j) = c.api(path);
    assert_eq!(j["status"], "error", "{path}: {j}");
    (
        status,
        j["errorType"].as_str().unwrap_or("").to_string(),
        j["error"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn bad_requests_get_prometheus_errors() {
    let c = Collector::start(&[]);

    let (s, t, e) = error(&c, &format!("/api/v1/query?query={}", enc("sum(")));
    assert_eq!((s, t.as_str()), (400, "bad_data"), "{e}");

    let (s, t, e) = error(&c, "/api/v1/query?query=up&time=yesterday");
    assert_eq!((s, t.as_str()), (400, "bad_data"));
    assert_eq!(
        e,
        r#"invalid parameter "time": cannot parse "yesterday" to a valid timestamp"#
    );

    let (s, _, e) = error(&c, "/api/v1/query_range?query=up&start=0&end=100000&step=1");
    assert_eq!(s, 400);
    assert_eq!(
        e,
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    );
    let (_, _, e) = error(&c, "/api/v1/query_range?query=up&start=100&end=0&step=1");
    assert_eq!(
        e,
        r#"invalid parameter "end": end timestamp must not be before start time"#
    );
    let (_, _, e) = error(&c, "/api/v1/query_range?query=up&start=0&end=100&step=0");
    assert!(
        e.contains("zero or negative query resolution step widths are not accepted"),
        "{e}"
    );
    let (_, _, e) = error(
        &c,
        "/api/v1/query_range?query=up&start=0&end=100&step=often",
    );
    assert_eq!(
        e,
        r#"invalid parameter "step": cannot parse "often" to a valid duration"#
    );
    // A step of 10s over 100000s is exactly 10,000 points: allowed.
    assert_eq!(
        c.api("/api/v1/query_range?query=up&start=0&end=100000&step=10")
            .0,
        200
    );

    let (s, t, e) = error(&c, "/api/v1/series");
    assert_eq!(
        (s, t.as_str(), e.as_str()),
        (400, "bad_data", "no match[] parameter provided")
    );
    let (s, _, e) = error(
        &c,
        &format!("/api/v1/series?match[]={}", enc("rate(up[5m])")),
    );
    assert_eq!(s, 400);
    assert!(e.starts_with(r#"invalid parameter "match[]""#), "{e}");
    let (s, _, _) = error(&c, "/api/v1/label/bad-name/values");
    assert_eq!(s, 400);
    let (s, _, e) = error(&c, "/api/v1/metadata?limit=many");
    assert_eq!(s, 400, "{e}");

    // POST with a body that is not a form.
    let r = request(
        c.http,
        "POST",
        "/api/v1/query",
        &[("Content-Type", "application/json")],
        b"{\"query\":\"up\"}",
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn buildinfo_health_and_own_metrics() {
    let c = Collector::start(&[]);
    assert_eq!(
        c.data("/api/v1/status/buildinfo")["version"],
        env!("CARGO_PKG_VERSION")
    );
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(
            request(c.http, "GET", path, &[], b"").unwrap().status,
            200,
            "{path}"
        );
    }
    let m = c.own_metrics();
    assert!(m.contains("sonde_collector_active_series 0"), "{m}");
    assert_eq!(
        request(c.http, "GET", "/nowhere", &[], b"").unwrap().status,
        404
    );
}
