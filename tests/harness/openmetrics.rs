//! A strict parser of the OpenMetrics text format, for tests that read the
//! collector's `/metrics`: what it does not understand is an error, not a
//! line skipped, so a test cannot pass on output a scraper would refuse.
//!
//! Checked: `# HELP`, `# TYPE`, `# UNIT` before a family's samples, each
//! family described once and its samples together; sample names that
//! belong to their family (`<name>_total` for a counter, `<name>_info` for
//! an info, `<name>` for a gauge or unknown); label names, quoted and
//! escaped label values, no label twice, no series twice; values that are
//! numbers; `# EOF` as the last line and nothing after it.

use std::collections::BTreeMap;

/// One sample: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// `counter`, `gauge`, `info`, `unknown`, ...
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// A whole exposition, by family name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The family `name`; panics, listing the families, when absent.
    pub fn family(&self, name: &str) -> &Family {
        self.families.get(name).unwrap_or_else(|| {
            panic!(
                "no family {name}; families: {:?}",
                self.families.keys().collect::<Vec<_>>()
            )
        })
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Every sample named `name`.
    pub fn samples(&self, name: &str) -> Vec<&Sample> {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .collect()
    }
}

/// Parses `text`; the error names the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exposition = Exposition::default();
    let mut current: Option<String> = None;
    let mut closed: Vec<String> = Vec::new();
    let mut eof = false;
    if !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}: {line:?}", n + 1);
        if eof {
            return Err(at("text after # EOF".into()));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest
                .split_once(' ')
                .ok_or_else(|| at("a comment that is not HELP, TYPE or UNIT".into()))?;
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            check_metric_name(name).map_err(at)?;
            if current.as_deref() != Some(name) {
                if closed.iter().any(|c| c == name) || exposition.families.contains_key(name) {
                    return Err(at(format!("family {name} described twice")));
                }
                if let Some(previous) = current.take() {
                    closed.push(previous);
                }
                current = Some(name.to_owned());
                exposition.families.insert(
                    name.to_owned(),
                    Family {
                        kind: "unknown".into(),
                        help: String::new(),
                        samples: Vec::new(),
                    },
                );
            }
            let family = exposition.families.get_mut(name).expect("just inserted");
            if !family.samples.is_empty() {
                return Err(at("metadata after the family's samples".into()));
            }
            match keyword {
                "HELP" => family.help = value.to_owned(),
                "TYPE" => {
                    const KINDS: [&str; 8] = [
                        "counter",
                        "gauge",
                        "histogram",
                        "gaugehistogram",
                        "stateset",
                        "info",
                        "summary",
                        "unknown",
                    ];
                    if !KINDS.contains(&value) {
                        return Err(at(format!("unknown type {value}")));
                    }
                    family.kind = value.to_owned();
                }
                "UNIT" => {}
                other => return Err(at(format!("unknown keyword {other}"))),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("a comment that is not HELP, TYPE, UNIT or EOF".into()));
        }
        let sample = parse_sample(line).map_err(at)?;
        let family_name = current
            .clone()
            .ok_or_else(|| at("a sample before any # TYPE".into()))?;
        let family = exposition.families.get_mut(&family_name).expect("current");
        let allowed: &[String] = &match family.kind.as_str() {
            "counter" => vec![
                format!("{family_name}_total"),
                format!("{family_name}_created"),
            ],
            "info" => vec![format!("{family_name}_info")],
            "gauge" | "unknown" => vec![family_name.clone()],
            _ => vec![
                format!("{family_name}_bucket"),
                format!("{family_name}_count"),
                format!("{family_name}_sum"),
                format!("{family_name}_created"),
                family_name.clone(),
            ],
        };
        if !allowed.contains(&sample.name) {
            return Err(at(format!(
                "sample {} does not belong to the {} family {family_name}",
                sample.name, family.kind
            )));
        }
        if family
            .samples
            .iter()
            .any(|s| s.name == sample.name && s.labels == sample.labels)
        {
            return Err(at("the same series twice".into()));
        }
        family.samples.push(sample);
    }
    if !eof {
        return Err("no # EOF at the end".into());
    }
    Ok(exposition)
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("invalid label name {name:?}"))
    }
}

/// `name{a="x",b="y"} value [timestamp]`
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end = loop {
            let Some(&(start, c)) = chars.peek() else {
                return Err("unterminated label set".into());
            };
            if c == '}' {
                break start + 1;
            }
            // name
            let mut label_name = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == '=' {
                    break;
                }
                label_name.push(c);
                chars.next();
            }
            check_label_name(&label_name)?;
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err(format!("label {label_name} without =\"value\""));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated value of label {label_name}")),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => {
                            return Err(format!("invalid escape {other:?} in label {label_name}"));
                        }
                    },
                    Some((_, '\n')) => return Err("a newline in a label value".into()),
                    Some((_, c)) => value.push(c),
                }
            }
            if labels.insert(label_name.clone(), value).is_some() {
                return Err(format!("label {label_name} twice"));
            }
            match chars.peek() {
                Some((_, ',')) => {
                    chars.next();
                }
                Some((_, '}')) => {}
                _ => return Err("labels not separated by commas".into()),
            }
        };
        rest = &after[end..];
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or("no single space before the value")?;
    let mut parts = rest.split(' ');
    let value = parts.next().ok_or("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .map_err(|_| format!("value {v:?} is not a number"))?,
    };
    if let Some(timestamp) = parts.next() {
        timestamp
            .parse::<f64>()
            .map_err(|_| format!("timestamp {timestamp:?} is not a number"))?;
    }
    if parts.next().is_some() {
        return Err("more than a value and a timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP otelcol_exporter_sent_log_records Sent.\n\
        # TYPE otelcol_exporter_sent_log_records counter\n\
        otelcol_exporter_sent_log_records_total{exporter=\"file\"} 6\n\
        otelcol_exporter_sent_log_records_total{exporter=\"a \\\"b\\\"\\\\c\"} 1\n\
        # TYPE otelcol_exporter_queue_size gauge\n\
        otelcol_exporter_queue_size{data_type=\"logs\",exporter=\"file\"} 0\n\
        # TYPE target info\n\
        target_info{service_name=\"auditcol\"} 1\n\
        # EOF\n";

    #[test]
    fn a_good_exposition_is_read_whole() {
        let e = parse(GOOD).unwrap();
        assert_eq!(e.families.len(), 3);
        assert_eq!(
            e.family("otelcol_exporter_sent_log_records").kind,
            "counter"
        );
        assert_eq!(
            e.value(
                "otelcol_exporter_sent_log_records_total",
                &[("exporter", "file")]
            ),
            Some(6.0)
        );
        assert_eq!(
            e.value(
                "otelcol_exporter_sent_log_records_total",
                &[("exporter", "a \"b\"\\c")]
            ),
            Some(1.0)
        );
        assert_eq!(
            e.value("otelcol_exporter_queue_size", &[("exporter", "file")]),
            None,
            "labels must match exactly"
        );
    }

    #[test]
    fn anything_a_scraper_would_refuse_is_an_error() {
        let cases = [
            (GOOD.replace("# EOF\n", ""), "no # EOF"),
            (GOOD.to_owned() + "x 1\n", "after # EOF"),
            (
                GOOD.replace("_total{exporter=\"file\"}", "{exporter=\"file\"}"),
                "does not belong",
            ),
            (GOOD.replace("} 6", "} six"), "not a number"),
            (
                GOOD.replace("exporter=\"file\"", "exporter=file"),
                "without =\"value\"",
            ),
            (
                GOOD.replace("data_type=\"logs\",", "data_type=\"logs\",data_type=\"x\","),
                "twice",
            ),
            (
                GOOD.replace("{exporter=\"file\"} 6", "{exporter=\"a \\\"b\\\"\\\\c\"} 6"),
                "the same series twice",
            ),
            (GOOD.replace("# TYPE target info\n", ""), "does not belong"),
            (GOOD.replace("} 0\n", "}  0\n"), "not a number"),
            (
                GOOD.replace(
                    "# TYPE otelcol_exporter_queue_size gauge",
                    "# TYPE otelcol_exporter_queue_size meter",
                ),
                "unknown type",
            ),
            (
                GOOD.to_owned().replace(
                    "# EOF\n",
                    "# TYPE otelcol_exporter_queue_size gauge\n# EOF\n",
                ),
                "described twice",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(want), "{want:?} in {err}");
        }
    }
}
