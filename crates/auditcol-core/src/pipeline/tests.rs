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
    board: StatusBoard,
}
#[async_trait]
impl Component for TestReceiver {
    async fn start(&self) -> Result<(), StartError> {
        self.log.lock().unwrap().push(format!("start {}", self.id));
        // What the health check would see while this receiver starts.
        let seen = self.board.snapshot();
        let states: Vec<String> = seen
            .components
            .iter()
            .map(|(c, s)| format!("{c}={}", s.as_str()))
            .collect();
        self.log.lock().unwrap().push(format!(
            "board while {} starts: {} {}",
            self.id,
            seen.service.as_str(),
            states.join(" ")
        ));
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
            board: ctx.host.status().clone(),
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

impl Fixture {
    /// The receiver built with id `id`.
    fn receiver(&self, id: &str) -> Arc<TestReceiver> {
        self.receivers
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id == id)
            .unwrap()
            .clone()
    }
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
    let a = f.receiver("test/a");
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
    assert_eq!(
        log.iter().filter(|l| l.starts_with("board while")).count(),
        2,
        "{log:?}"
    );
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
    // Never run, never counted: no series of theirs.
    assert!(!service.telemetry().encode().contains("processor=\"tag\""));
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
            "board while test starts: starting extensions::ext/b=running extensions::ext/a=running exporters::sink=running receivers::test=starting",
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

#[tokio::test]
async fn the_board_follows_every_component_through_start_and_shutdown() {
    let f = fixture();
    let service = build(&f, TWO_PIPELINES).unwrap();
    let board = service.status().clone();
    let states = |want: &str| {
        let now = board.snapshot();
        assert!(
            now.components.iter().all(|(_, s)| s.as_str() == want),
            "{now:?}"
        );
        now
    };
    let built = states("pending");
    assert_eq!(built.service, ServiceState::Starting);
    assert_eq!(
        built
            .components
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>(),
        [
            "exporters::sink/x",
            "exporters::sink/y",
            "processors::tag (logs/two)",
            "processors::tag (logs/one)",
            "receivers::test/a",
            "receivers::test/b",
        ]
    );
    service.start().await.unwrap();
    assert!(states("running").is_healthy());
    let log = f.log.lock().unwrap().clone();
    assert!(
        log.contains(&"board while test/b starts: starting exporters::sink/x=running exporters::sink/y=running processors::tag (logs/two)=running processors::tag (logs/one)=running receivers::test/a=running receivers::test/b=starting".to_owned()),
        "{log:?}"
    );
    service.shutdown(Instant::now()).await;
    assert_eq!(states("stopped").service, ServiceState::Stopped);
}

#[tokio::test]
async fn a_failed_start_is_on_the_board_with_its_reason() {
    let f = fixture();
    let service = build(
        &f,
        "receivers: {test: {fail_start: true}}\nexporters: {sink: {}}\nservice: {pipelines: {logs: {receivers: [test], exporters: [sink]}}}",
    )
    .unwrap();
    service.start().await.unwrap_err();
    let now = service.status().snapshot();
    assert_eq!(now.service, ServiceState::Failed);
    assert!(!now.is_healthy());
    assert_eq!(
        now.components,
        [
            ("exporters::sink".to_owned(), ComponentState::Stopped),
            (
                "receivers::test".to_owned(),
                ComponentState::Failed("port taken".into())
            ),
        ]
    );
}

#[tokio::test]
async fn the_pipeline_counts_what_enters_and_leaves_every_processor() {
    let f = fixture();
    let service = build(&f, TWO_PIPELINES).unwrap();
    let a = f.receiver("test/a");
    a.next.consume(LogBatch::sample_audit(2)).await.unwrap();
    let text = service.telemetry().encode();
    // One id in two pipelines: two instances, one series, as the Collector's.
    for line in [
        "otelcol_processor_incoming_items_total{otel_signal=\"logs\",processor=\"tag\"} 4",
        "otelcol_processor_outgoing_items_total{otel_signal=\"logs\",processor=\"tag\"} 4",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[test]
fn the_metrics_address_is_checked_at_build_and_unused_with_level_none() {
    let f = fixture();
    let pipelines = "pipelines: {logs: {receivers: [test], exporters: [sink]}}";
    let with = |telemetry: &str| {
        build(
            &f,
            &format!(
                "receivers: {{test: {{}}}}\nexporters: {{sink: {{}}}}\nservice: {{telemetry: {telemetry}, {pipelines}}}"
            ),
        )
    };
    let err = with("{metrics: {address: 'example.com:8888'}}")
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("service.telemetry.metrics.address: invalid endpoint `example.com:8888`"),
        "{err}"
    );
    let service = with("{metrics: {address: ':9999'}}").unwrap();
    assert_eq!(
        service.metrics_address().unwrap().to_string(),
        "0.0.0.0:9999"
    );
    let service = with("{metrics: {level: none}}").unwrap();
    assert_eq!(service.metrics_address(), None);
    assert_eq!(service.telemetry().encode(), "# EOF\n");
    let default = build(
        &f,
        &format!("receivers: {{test: {{}}}}\nexporters: {{sink: {{}}}}\nservice: {{{pipelines}}}"),
    )
    .unwrap();
    assert_eq!(
        default.metrics_address().unwrap().to_string(),
        "127.0.0.1:8888"
    );
}
