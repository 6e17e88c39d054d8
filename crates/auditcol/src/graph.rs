//! `auditcol graph`: how a config wires receivers, processors and exporters,
//! as a Mermaid flowchart or a Graphviz digraph.
//!
//! Receivers and exporters are shared by the pipelines that list them (one
//! node each, fanning out and in); processors belong to their pipeline (one
//! node per pipeline, inside its box), as the collector builds them.

use std::collections::BTreeMap;
use std::fmt::Write;

use auditcol_core::config::CollectorConfig;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid flowchart (renders on GitHub and in most Markdown viewers).
    Mermaid,
    /// A Graphviz digraph (`dot -Tsvg`).
    Dot,
}

/// Nodes and edges of a config's pipelines.
struct Graph {
    /// Receiver and exporter node ids by component id.
    shared: BTreeMap<String, String>,
    /// Per pipeline: its id and its processors as (node id, component id).
    pipelines: Vec<(String, Vec<(String, String)>)>,
    edges: Vec<(String, String)>,
}

impl Graph {
    fn of(config: &CollectorConfig) -> Graph {
        let mut shared = BTreeMap::new();
        let mut node = |prefix: &str, id: &str| {
            let n = shared.len();
            shared
                .entry(format!("{prefix}{id}"))
                .or_insert_with(|| format!("{prefix}{n}"))
                .clone()
        };
        let mut pipelines = Vec::new();
        let mut edges = Vec::new();
        for (p, (name, pipeline)) in config.service.pipelines.iter().enumerate() {
            let processors: Vec<(String, String)> = pipeline
                .processors
                .iter()
                .enumerate()
                .map(|(i, id)| (format!("p{p}_{i}"), id.clone()))
                .collect();
            let receivers: Vec<String> = pipeline.receivers.iter().map(|r| node("r", r)).collect();
            let exporters: Vec<String> = pipeline.exporters.iter().map(|e| node("e", e)).collect();
            let first: Vec<String> = match processors.first() {
                Some((id, _)) => vec![id.clone()],
                None => exporters.clone(),
            };
            for r in &receivers {
                for f in &first {
                    edges.push((r.clone(), f.clone()));
                }
            }
            for pair in processors.windows(2) {
                edges.push((pair[0].0.clone(), pair[1].0.clone()));
            }
            if let Some((last, _)) = processors.last() {
                for e in &exporters {
                    edges.push((last.clone(), e.clone()));
                }
            }
            pipelines.push((name.clone(), processors));
        }
        Graph {
            shared,
            pipelines,
            edges,
        }
    }

    /// (node id, component id, kind) of receivers and exporters.
    fn shared_nodes(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.shared.iter().map(|(key, node)| {
            let (kind, id) = key.split_at(1);
            (
                node.as_str(),
                id,
                if kind == "r" { "receiver" } else { "exporter" },
            )
        })
    }
}

/// Draws the pipelines of `config`.
pub fn render(config: &CollectorConfig, format: GraphFormat) -> String {
    let graph = Graph::of(config);
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (node, id, kind) in graph.shared_nodes() {
                let shape = if kind == "receiver" {
                    ("([", "])")
                } else {
                    ("[[", "]]")
                };
                let _ = writeln!(
                    out,
                    "  {node}{}\"{}\"{}",
                    shape.0,
                    mermaid_text(id),
                    shape.1
                );
            }
            for (p, (name, processors)) in graph.pipelines.iter().enumerate() {
                let _ = writeln!(out, "  subgraph pipeline{p}[\"{}\"]", mermaid_text(name));
                for (node, id) in processors {
                    let _ = writeln!(out, "    {node}[\"{}\"]", mermaid_text(id));
                }
                out.push_str("  end\n");
            }
            for (from, to) in &graph.edges {
                let _ = writeln!(out, "  {from} --> {to}");
            }
        }
        GraphFormat::Dot => {
            out.push_str("digraph auditcol {\n  rankdir=LR;\n");
            for (node, id, kind) in graph.shared_nodes() {
                let shape = if kind == "receiver" {
                    "ellipse"
                } else {
                    "box3d"
                };
                let _ = writeln!(out, "  {node} [label={}, shape={shape}];", dot_text(id));
            }
            for (p, (name, processors)) in graph.pipelines.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  subgraph cluster_{p} {{\n    label={};",
                    dot_text(name)
                );
                for (node, id) in processors {
                    let _ = writeln!(out, "    {node} [label={}, shape=box];", dot_text(id));
                }
                out.push_str("  }\n");
            }
            for (from, to) in &graph.edges {
                let _ = writeln!(out, "  {from} -> {to};");
            }
            out.push_str("}\n");
        }
    }
    out
}

/// Text inside a Mermaid `"…"` label.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// A quoted DOT string.
fn dot_text(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_PIPELINES: &str = r#"
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:4317"}}}
  webhook/flipt: {endpoint: "127.0.0.1:8088"}
processors:
  filter/flags: {events: ["flag:*"]}
  batch: {}
exporters:
  file/flags: {path: /tmp/flags.jsonl}
  file/all: {path: /tmp/all.jsonl}
service:
  pipelines:
    logs/all: {receivers: [otlp, webhook/flipt], processors: [batch], exporters: [file/all]}
    logs/flags: {receivers: [otlp], processors: [filter/flags, batch], exporters: [file/flags, file/all]}
"#;

    fn config(text: &str) -> CollectorConfig {
        CollectorConfig::from_yaml(text, &|_| None).unwrap()
    }

    #[test]
    fn mermaid_of_two_pipelines_matches_the_reviewed_picture() {
        let expected = r#"flowchart LR
  e2[["file/all"]]
  e3[["file/flags"]]
  r0(["otlp"])
  r1(["webhook/flipt"])
  subgraph pipeline0["logs/all"]
    p0_0["batch"]
  end
  subgraph pipeline1["logs/flags"]
    p1_0["filter/flags"]
    p1_1["batch"]
  end
  r0 --> p0_0
  r1 --> p0_0
  p0_0 --> e2
  r0 --> p1_0
  p1_0 --> p1_1
  p1_1 --> e3
  p1_1 --> e2
"#;
        assert_eq!(
            render(&config(TWO_PIPELINES), GraphFormat::Mermaid),
            expected
        );
    }

    #[test]
    fn dot_of_two_pipelines_matches_the_reviewed_picture() {
        let dot = render(&config(TWO_PIPELINES), GraphFormat::Dot);
        assert!(
            dot.starts_with("digraph auditcol {\n  rankdir=LR;\n"),
            "{dot}"
        );
        assert!(
            dot.contains("  r0 [label=\"otlp\", shape=ellipse];\n"),
            "{dot}"
        );
        assert!(dot.contains("  subgraph cluster_1 {\n    label=\"logs/flags\";\n    p1_0 [label=\"filter/flags\", shape=box];\n"), "{dot}");
        assert!(dot.contains("  p1_1 -> e3;\n"), "{dot}");
        assert!(dot.ends_with("}\n"));
    }

    #[test]
    fn a_pipeline_without_processors_goes_straight_to_its_exporters() {
        let text = r#"
receivers: {otlp: {protocols: {http: {}}}}
exporters: {file: {path: /tmp/a}}
service: {pipelines: {logs: {receivers: [otlp], exporters: [file]}}}
"#;
        let mermaid = render(&config(text), GraphFormat::Mermaid);
        assert!(mermaid.contains("  r0 --> e1\n"), "{mermaid}");
    }

    #[test]
    fn quotes_in_names_cannot_break_the_picture() {
        assert_eq!(mermaid_text(r#"file/a"b"#), "file/a#quot;b");
        assert_eq!(dot_text(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
