use super::*;
use crate::component::{
    ExporterFactory, ExtensionFactory, ProcessorFactory, ReceiverFactory, StartError,
};
use crate::config::{Validate, parse_component_config};
use crate::{LogBatch, LogsConsumer, PipelineError};
use async_trait::async_trait;
use std::sync::Mutex;

type Log = Arc<Mutex<Vec<String>>>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {
    #[serde(default)]
    fail_start: bool,
    /// An extension the component looks up in its host.
    #[serde(default)]
    uses: Option<String>,
}
impl Validate for Empty {}

/// A receiver whose `next` the test can reach after building.
struct TestReceiver {
    id: String,
    next: SharedConsumer,
    log: Log,
    fail: bool,
}
#[async_trait]
impl Component for TestReceiver {
    async fn start(&self) -> Result<(), StartError> {
        self.log.lock().unwrap().push(format!("start {}", self.id));
        if self.fail {
            return Err(StartError("port taken".into()));
        }
        Ok(())
    }
    async fn shutdown(&self, _: Instant) {
        self.log.lock().unwrap().push(format!("stop {}", self.id));
    }
}
impl Receiver for TestReceiver {}

struct Tagger {
    tag: String,
    next: SharedConsumer,
    log: Log,
}
#[async_trait]
impl Component for Tagger {
    async fn start(&self) -> Result<(), StartError> {
        self.log.lock().unwrap().push(format!("start {}", self.tag));
        Ok(())
    }
    async fn shutdown(&self, _: Instant) {
        self.log.lock().unwrap().push(format!("stop {}", self.tag));
    }
}
#[async_trait]
impl LogsConsumer for Tagger {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} saw {}", self.tag, batch.len()));
        self.next.consume(batch).await
    }
}
impl Processor for Tagger {}

struct Sink {
    id: String,
    log: Log,
}
#[async_trait]
impl Component for Sink {
    async fn start(&self) -> Result<(), StartError> {
        self.log.lock().unwrap().push(format!("start {}", self.id));
        Ok(())
    }
    async fn shutdown(&self, _: Instant) {
        self.log.lock().unwrap().push(format!("stop {}", self.id));
    }
}
#[async_trait]
impl LogsConsumer for Sink {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} got {}", self.id, batch.len()));
        Ok(())
    }
}
impl Exporter for Sink {}

struct Ext {
    id: String,
    log: Log,
}
#[async_trait]
impl Component for Ext {
    async fn start(&self) -> Result<(), StartError> {
        self.log.lock().unwrap().push(format!("start {}", self.id));
        Ok(())
    }
    async fn shutdown(&self, _: Instant) {
        self.log.lock().unwrap().push(format!("stop {}", self.id));
    }
}
impl Extension for Ext {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct Factories {
    log: Log,
    receivers: Arc<Mutex<Vec<Arc<TestReceiver>>>>,
}
impl ReceiverFactory for Factories {
    fn type_name(&self) -> &'static str {
        "test"
    }
    fn build(
        &self,
        ctx: &BuildContext,
        raw: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Receiver>, ConfigError> {
        let cfg: Empty = parse_component_config(raw)?;
        if let Some(uses) = &cfg.uses {
            let found = ctx
                .host
                .extension(uses)
                .map_err(|m| ConfigError::at("uses", m))?;
            assert!(found.as_any().downcast_ref::<Ext>().is_some());
        }
        let r = Arc::new(TestReceiver {
            id: ctx.id.to_string(),
            next,
            log: self.log.clone(),
            fail: cfg.fail_start,
        });
        self.receivers.lock().unwrap().push(r.clone());
        Ok(r)
    }
}
impl ProcessorFactory for Factories {
    fn type_name(&self) -> &'static str {
        "tag"
    }
    fn build(
        &self,
        ctx: &BuildContext,
        raw: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let _: Empty = parse_component_config(raw)?;
        let tag = format!("{}@{}", ctx.id, ctx.pipeline.as_deref().unwrap_or("-"));
        Ok(Arc::new(Tagger {
            tag,
            next,
            log: self.log.clone(),
        }))
    }
}
impl ExporterFactory for Factories {
    fn type_name(&self) -> &'static str {
        "sink"
    }
    fn build(
        &self,
        ctx: &BuildContext,
        raw: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError> {
        let _: Empty = parse_component_config(raw)?;
        Ok(Arc::new(Sink {
            id: ctx.id.to_string(),
            log: self.log.clone(),
        }))
    }
}

impl ExtensionFactory for Factories {
    fn type_name(&self) -> &'static str {
        "ext"
    }
    fn build(
        &self,
        ctx: &BuildContext,
        raw: &serde_json::Value,
    ) -> Result<Arc<dyn Extension>, ConfigError> {
        let _: Empty = parse_component_config(raw)?;
        Ok(Arc::new(Ext {
            id: ctx.id.to_string(),
            log: self.log.clone(),
        }))
    }
}

struct Fixture {
    log: Log,
    receivers: Arc<Mutex<Vec<Arc<TestReceiver>>>>,
    registry: Registry,
}

fn fixture() -> Fixture {
    let log: Log = Arc::default();
    let receivers: Arc<Mutex<Vec<Arc<TestReceiver>>>> = Arc::default();
    let f = || Factories {
        log: log.clone(),
        receivers: receivers.clone(),
    };
    let registry = Registry::new()
        .receiver(f())
        .processor(f())
        .exporter(f())
        .extension(f());
    Fixture {
        log,
        receivers,
        registry,
    }
}

fn build(f: &Fixture, yaml: &str) -> Result<Service, LoadError> {
    let config = CollectorConfig::from_yaml(yaml, &|_| None)?;
    Service::build(&config, &f.registry)
}

const TWO_PIPELINES: &str = r#"
receivers: {test/a: {}, test/b: {}}
processors: {tag: {}}
exporters: {sink/x: {}, sink/y: {}}
service:
  pipelines:
    logs/one: {receivers: [test/a], processors: [tag], exporters: [sink/x, sink/y]}
    logs/two: {receivers: [test/a, test/b], processors: [tag], exporters: [sink/y]}
"#;

#[tokio::test]
async fn shared_receiver_fans_out_to_each_pipeline_with_its_own_processor() {
    let f = fixture();
    let service = build(&f, TWO_PIPELINES).unwrap();
    assert!(service.warnings().is_empty());
    let a = f
        .receivers
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.id == "test/a")
        .unwrap()
        .clone();
    a.next.consume(LogBatch::sample_audit(2)).await.unwrap();
    let mut log = f.log.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        vec![
            "sink/x got 2",
            "sink/y got 2",
            "sink/y got 2",
            "tag@logs/one saw 2",
            "tag@logs/two saw 2"
        ]
    );
}

#[tokio::test]
async fn start_goes_downstream_first_and_exporters_stop_last() {
    let f = fixture();
    let service = build(&f, TWO_PIPELINES).unwrap();
    service.start().await.unwrap();
    service.shutdown(Instant::now()).await;
    let log = f.log.lock().unwrap().clone();
    let pos = |s: &str| {
        log.iter()
            .position(|l| l == s)
            .unwrap_or_else(|| panic!("{s} not in {log:?}"))
    };
    assert!(pos("start sink/x") < pos("start tag@logs/one"));
    assert!(pos("start tag@logs/one") < pos("start test/a"));
    assert!(pos("stop test/a") < pos("stop sink/x"));
    assert!(pos("stop tag@logs/one") < pos("stop tag@logs/two"));
    assert!(pos("stop tag@logs/two") < pos("stop sink/y"));
}

#[tokio::test]
async fn failed_start_names_the_component_and_stops_the_others() {
    let f = fixture();
    let service = build(
        &f,
        "receivers: {test: {fail_start: true}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [test], exporters: [sink]}}}",
    )
    .unwrap();
    let err = service.start().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "receivers::test: failed to start: port taken"
    );
    assert!(f.log.lock().unwrap().contains(&"stop sink".to_owned()));
}

#[test]
fn unused_components_are_validated_and_warned_about() {
    let f = fixture();
    let service = build(
        &f,
        "receivers: {test: {}, test/spare: {}}\nprocessors: {tag: {}}\nexporters: {sink: {}, sink/spare: {}}\nservice: {pipelines: {logs: {receivers: [test], exporters: [sink]}}}",
    )
    .unwrap();
    assert_eq!(
        service.warnings(),
        [
            "exporters::sink/spare is defined but used in no pipeline",
            "processors::tag is defined but used in no pipeline",
            "receivers::test/spare is defined but used in no pipeline",
        ]
    );
    let err = build(
        &f,
        "receivers: {test: {}}\nprocessors: {tag: {bogus: 1}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [test], exporters: [sink]}}}",
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("processors::tag: bogus: unknown field `bogus`"),
        "{err}"
    );
}

#[test]
fn wiring_errors_name_the_pipeline() {
    let f = fixture();
    let cases = [
        (
            "receivers: {test: {}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [test], exporters: [sink/nope]}}}",
            "service::pipelines::logs: exporters references `sink/nope`, which is not defined in the `exporters` section",
        ),
        (
            "receivers: {test: {}}\nexporters: {sink: {}}\nservice: {pipelines: {traces: {receivers: [test], exporters: [sink]}}}",
            "service::pipelines::traces: invalid pipeline id `traces`: auditcol carries logs only, use `logs` or `logs/<name>`",
        ),
        (
            "receivers: {test: {}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [], exporters: [sink]}}}",
            "service::pipelines::logs: `receivers` must list at least one component",
        ),
        (
            "receivers: {test: {}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [test, test], exporters: [sink]}}}",
            "service::pipelines::logs: receivers lists `test` twice",
        ),
        (
            "receivers: {kafka: {}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [kafka], exporters: [sink]}}}",
            "receivers::kafka: unknown receiver type `kafka`; known types: test",
        ),
        (
            "receivers: {Test: {}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [Test], exporters: [sink]}}}",
            "receivers.Test: invalid component id `Test`: the type must be lower-case letters, digits and `_`, starting with a letter",
        ),
    ];
    for (yaml, expected) in cases {
        let err = build(&f, yaml).err().unwrap();
        assert_eq!(err.to_string(), expected);
    }
}

const WITH_EXTENSIONS: &str = r#"
extensions: {ext/a: {}, ext/b: {}, ext/spare: {}}
receivers: {test: {uses: ext/b}}
exporters: {sink: {}}
service:
  extensions: [ext/b, ext/a]
  pipelines: {logs: {receivers: [test], exporters: [sink]}}
"#;

#[tokio::test]
async fn extensions_start_first_in_listed_order_and_stop_last() {
    let f = fixture();
    let service = build(&f, WITH_EXTENSIONS).unwrap();
    assert_eq!(
        service.warnings(),
        ["extensions::ext/spare is defined but not listed in service.extensions"]
    );
    service.start().await.unwrap();
    service.shutdown(Instant::now()).await;
    let log = f.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "start ext/b",
            "start ext/a",
            "start sink",
            "start test",
            "stop test",
            "stop sink",
            "stop ext/a",
            "stop ext/b"
        ]
    );
}

#[test]
fn extension_references_say_what_is_missing() {
    let f = fixture();
    let cases = [
        (
            WITH_EXTENSIONS.replace("uses: ext/b", "uses: ext/spare"),
            "receivers::test: uses: extension `ext/spare` is defined but not enabled: list it in `service.extensions`",
        ),
        (
            WITH_EXTENSIONS.replace("uses: ext/b", "uses: ext/none"),
            "receivers::test: uses: extension `ext/none` is not defined in the `extensions` section",
        ),
        (
            WITH_EXTENSIONS.replace("[ext/b, ext/a]", "[ext/b, ext/c]"),
            "service.extensions: references `ext/c`, which is not defined in the `extensions` section",
        ),
        (
            WITH_EXTENSIONS.replace("[ext/b, ext/a]", "[ext/b, ext/b]"),
            "service.extensions: lists `ext/b` twice",
        ),
        (
            WITH_EXTENSIONS.replace("ext/spare: {}", "ext/spare: {bogus: 1}"),
            "extensions::ext/spare: bogus: unknown field `bogus`",
        ),
        (
            WITH_EXTENSIONS.replace("ext/spare: {}", "nope: {}"),
            "extensions::nope: unknown extension type `nope`; known types: ext",
        ),
    ];
    for (yaml, want) in cases {
        let err = build(&f, &yaml).err().expect(want).to_string();
        assert!(err.starts_with(want), "{err}\nwanted: {want}");
    }
}
