//! A reader of the Prometheus text exposition (format 0.0.4) that `/metrics`
//! serves: samples with their labels, and the `# TYPE` of each metric.

use std::collections::{BTreeMap, HashMap};

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Reads the `/metrics` page at `url`; an empty exposition when the
/// request fails (a process that is down or frozen has no figures); panics
/// on a page that is not an exposition.
pub async fn scrape(client: &reqwest::Client, url: &str) -> Exposition {
    let text = match client.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Metric name → `counter`, `gauge`, `histogram`, ...
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Parses `text`; a line that is neither a comment nor a sample is an error.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut out = Exposition::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    out.types.insert(name.to_string(), kind.to_string());
                }
            } else if !line.starts_with('#') {
                let sample = parse_sample(line)
                    .ok_or_else(|| anyhow::anyhow!("not a sample line: {line:?}"))?;
                out.samples.push(sample);
            }
        }
        Ok(out)
    }

    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Every sample named `name` summed over its label sets (0 when none).
    pub fn total(&self, name: &str) -> f64 {
        self.named(name).map(|s| s.value).sum()
    }

    /// The value of the sample `name` whose labels include every pair of
    /// `labels`, summed when several match; `None` when none does.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .named(name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    // the value, then an optional timestamp
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `k="v",...}` (values may hold `{`, `}`, `,` and `\"`); returns the
/// labels and what follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find("=\"")?;
        let key = s[..eq].trim().to_string();
        let mut value = String::new();
        let mut chars = s[eq + 2..].char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break eq + 2 + i + 1,
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        s = &s[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_types_labels_with_braces_and_values() {
        let text = "# HELP x_total help\n# TYPE x_total counter\n\
            x_total{route=\"/v1/queues/{queue}/jobs\",status=\"202\"} 11\n\
            y_bucket{le=\"+Inf\"} 3\nz 1.5 1700000000\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.types["x_total"], "counter");
        assert_eq!(
            e.value("x_total", &[("route", "/v1/queues/{queue}/jobs")]),
            Some(11.0)
        );
        assert_eq!(e.value("y_bucket", &[("le", "+Inf")]), Some(3.0));
        assert_eq!(e.value("z", &[]), Some(1.5));
        assert_eq!(e.value("x_total", &[("status", "500")]), None);
        assert!(Exposition::parse("garbage{").is_err());
    }
}
