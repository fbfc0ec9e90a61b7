//! Just enough of the Prometheus text format to count series and read a few samples.

/// One sample line: metric name, the label text between the braces, and the value.
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: &'a str,
    pub value: f64,
}

/// Sample lines: every line that is neither blank nor a `#` comment.
pub fn sample_lines(body: &str) -> impl Iterator<Item = &str> {
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The samples of one metric (the value is the first field after the name and labels).
pub fn samples<'a>(body: &'a str, metric: &'a str) -> impl Iterator<Item = Sample<'a>> {
    sample_lines(body)
        .filter_map(parse)
        .filter(move |s| s.name == metric)
}

/// The value of `label` in a sample's label text, such as `probe="runqueue",program="x"`.
pub fn label<'a>(labels: &'a str, label: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == label).then(|| v.trim().trim_matches('"'))
    })
}

fn parse(line: &str) -> Option<Sample<'_>> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (&line[..open], &line[open + 1..close], &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, "", rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_labels() {
        let body =
            "# HELP x y\nx_total{probe=\"runqueue\",program=\"sched_switch\"} 821.0\nup 1\n\n";
        assert_eq!(sample_lines(body).count(), 2);
        let s: Vec<_> = samples(body, "x_total").collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, 821.0);
        assert_eq!(label(s[0].labels, "program"), Some("sched_switch"));
        assert_eq!(samples(body, "up").next().map(|s| s.value), Some(1.0));
    }
}
