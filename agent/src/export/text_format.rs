//! OpenMetrics text -> Prometheus text format 0.0.4.
//!
//! prometheus-client only writes OpenMetrics. Prometheus itself scrapes that fine,
//! but node_exporter's users also run tools that read only the classic format
//! (`promtool check metrics`, older scrapers, `curl | grep`). The two differ in a
//! few well-defined places, so we convert the encoder's output line by line rather
//! than keep a second encoder:
//! - counter families are named with `_total` in the classic format;
//! - `unknown` is `untyped`, `info` and `stateset` are gauges;
//! - `# UNIT`, `# EOF`, `_created` samples and exemplars do not exist there.
//!
//! Both formats also get [`drop_empty_label_sets`]: prometheus-client writes
//! `name{} 1` for a sample without labels, where node_exporter writes `name 1`.

/// Converts OpenMetrics text as prometheus-client writes it.
pub fn openmetrics_to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    // HELP precedes TYPE in OpenMetrics; hold it until we know the family's type.
    let mut pending_help: Option<&str> = None;
    let mut counter_family: Option<&str> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name_suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "unknown" => ("", "untyped"),
                "info" => ("_info", "gauge"),
                "stateset" => ("", "gauge"),
                "gaugehistogram" => ("", "histogram"),
                other => ("", other),
            };
            counter_family = (kind == "counter").then_some(name);
            if let Some(help) = pending_help.take() {
                let (_, text) = help.split_once(' ').unwrap_or((help, ""));
                push_line(&mut out, &["# HELP ", name, name_suffix, " ", text]);
            }
            push_line(&mut out, &["# TYPE ", name, name_suffix, " ", kind]);
            continue;
        }
        if line.starts_with('#') {
            continue; // # UNIT, # EOF
        }
        if let Some(family) = counter_family {
            if line
                .strip_prefix(family)
                .is_some_and(|r| r.starts_with("_created"))
            {
                continue;
            }
        }
        // Drop an exemplar (" # {...} v"), which follows the sample's value.
        let value_start = label_set_end(line).unwrap_or(0);
        let sample = match line[value_start..].find(" # ") {
            Some(i) => &line[..value_start + i],
            None => line,
        };
        push_sample(&mut out, sample);
    }
    out
}

/// `name{} 1` -> `name 1` on every sample line of an exposition.
pub fn drop_empty_label_sets(text: String) -> String {
    if !text.contains("{} ") {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        push_sample(&mut out, line);
    }
    out
}

/// Appends a sample line, without its label set if that is empty. Only the first
/// `{` of a sample line can open its label set.
fn push_sample(out: &mut String, line: &str) {
    match line.find('{') {
        Some(i) if !line.starts_with('#') && line[i..].starts_with("{} ") => {
            push_line(out, &[&line[..i], &line[i + 2..]])
        }
        _ => push_line(out, &[line]),
    }
}

/// Byte index just past a sample's label set (`}`), honouring quoted values that
/// may contain braces; `None` when the sample has no label set.
fn label_set_end(line: &str) -> Option<usize> {
    let open = line.find('{')?;
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(open + i + 1),
            _ => {}
        }
    }
    None
}

fn push_line(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_counters_unknown_info_and_drops_om_only_lines() {
        let om = "# HELP node_cpu_seconds Seconds the CPUs spent in each mode.\n\
                  # TYPE node_cpu_seconds counter\n\
                  node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n\
                  node_cpu_seconds_created{cpu=\"0\",mode=\"idle\"} 1.0\n\
                  # HELP node_netstat_Tcp_InSegs Statistic TcpInSegs.\n\
                  # TYPE node_netstat_Tcp_InSegs unknown\n\
                  node_netstat_Tcp_InSegs 7\n\
                  # HELP build Build.\n\
                  # TYPE build info\n\
                  # UNIT foo_seconds seconds\n\
                  build_info{version=\"1\"} 1\n\
                  # EOF\n";
        let text = openmetrics_to_prometheus(om);
        assert_eq!(
            text,
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
             # TYPE node_cpu_seconds_total counter\n\
             node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n\
             # HELP node_netstat_Tcp_InSegs Statistic TcpInSegs.\n\
             # TYPE node_netstat_Tcp_InSegs untyped\n\
             node_netstat_Tcp_InSegs 7\n\
             # HELP build_info Build.\n\
             # TYPE build_info gauge\n\
             build_info{version=\"1\"} 1\n"
        );
    }

    #[test]
    fn strips_exemplars_but_not_label_text() {
        let om = "# TYPE h histogram\nh_bucket{le=\"1\",x=\"a # b\"} 3 # {trace_id=\"x\"} 0.5\n";
        assert_eq!(
            openmetrics_to_prometheus(om),
            "# TYPE h histogram\nh_bucket{le=\"1\",x=\"a # b\"} 3\n"
        );
    }

    #[test]
    fn drops_empty_label_sets_only() {
        let om = "# TYPE up gauge\nup{} 1\nx{a=\"{} \"} 2\n# EOF\n".to_string();
        assert_eq!(
            drop_empty_label_sets(om.clone()),
            "# TYPE up gauge\nup 1\nx{a=\"{} \"} 2\n# EOF\n"
        );
        assert_eq!(
            openmetrics_to_prometheus(&om),
            "# TYPE up gauge\nup 1\nx{a=\"{} \"} 2\n"
        );
    }

    #[test]
    fn survives_garbage() {
        for junk in [
            "",
            "#",
            "# TYPE",
            "# HELP x",
            "}{ # ",
            "\u{0}\u{1}",
            "# TYPE x counter\nx",
        ] {
            let _ = openmetrics_to_prometheus(junk);
        }
    }
}
