//! Every shipped config and every YAML example in a README must load.

use std::path::{Path, PathBuf};

use auditcol_core::config::CollectorConfig;
use auditcol_core::pipeline::Service;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A directory of test certificates (`ca.pem`, `server.pem`, `server.key`,
/// `client.pem`, `client.key`), made once per run: what examples read from
/// `${env:AUDITCOL_TLS_DIR}`, since their files are checked at load.
fn tls_dir() -> &'static str {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        auditcol_testkit::pki::TestPki::generate(dir.path());
        dir
    });
    dir.path().to_str().unwrap()
}

/// Builds `text` as `auditcol validate` does, with stand-ins for the secrets
/// that examples read from the environment (`${env:..._SECRET}`,
/// `_TOKEN`, `_PASSWORD`): examples never hold secrets, and an empty one is
/// a config error. A stand-in is one word, as a token must be. TLS files
/// come from [`tls_dir`].
fn build(text: &str) -> anyhow::Result<Service> {
    let env = |name: &str| {
        if name == "AUDITCOL_TLS_DIR" {
            return Some(tls_dir().to_owned());
        }
        std::env::var(name).ok().or_else(|| {
            ["_SECRET", "_TOKEN", "_PASSWORD"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
                .then(|| format!("stand-in-for-{name}"))
        })
    };
    let config = CollectorConfig::from_yaml(text, &env)?;
    Ok(Service::build(&config, &auditcol::registry())?)
}

#[test]
fn every_file_in_collector_config_is_valid() {
    let dir = workspace_root().join("collector-config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let service = build(&text).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert!(
                service.warnings().is_empty(),
                "{}: {:?}",
                path.display(),
                service.warnings()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "expected the default and at least two more configs, found {checked}"
    );
}

#[test]
fn default_yaml_is_the_embedded_default() {
    let text =
        std::fs::read_to_string(workspace_root().join("collector-config/default.yaml")).unwrap();
    assert_eq!(text, auditcol::DEFAULT_CONFIG);
}

/// The fenced ```yaml blocks of a Markdown file that hold a whole config.
fn yaml_examples(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => current = Some(String::new()),
            (Some(block), l) if l.starts_with("```") => {
                if block.contains("service:") {
                    blocks.push(std::mem::take(block));
                }
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn every_readme_config_example_is_valid() {
    let root = workspace_root();
    let mut readmes = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let readme = entry.unwrap().path().join("README.md");
        if readme.exists() {
            readmes.push(readme);
        }
    }
    let mut checked = 0;
    for readme in readmes {
        let text = std::fs::read_to_string(&readme).unwrap();
        for (i, example) in yaml_examples(&text).into_iter().enumerate() {
            build(&example).unwrap_or_else(|e| {
                panic!("{} example {}: {e:#}\n{example}", readme.display(), i + 1)
            });
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "expected an example in the README of every component, found {checked}"
    );
}
