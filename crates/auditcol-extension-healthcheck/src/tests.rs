use std::time::Duration;

use auditcol_core::status::ServiceState;
use auditcol_testkit::{Reply, send};
use axum::http::Method;

use super::*;

fn extension(path: &str, board: &StatusBoard) -> HealthCheckExtension {
    let config = HealthCheckConfig {
        endpoint: "127.0.0.1:0".into(),
        path: path.into(),
    };
    HealthCheckExtension::new(ComponentId::new(TYPE_NAME, None), &config, board.clone()).unwrap()
}

async fn get(extension: &HealthCheckExtension, path: &str) -> Reply {
    send(
        extension.local_addr().unwrap(),
        Method::GET,
        path,
        &[],
        Vec::new(),
    )
    .await
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn starting_is_503_with_each_components_state() {
    let board = StatusBoard::default();
    board.set_component("extensions::health_check", ComponentState::Running);
    board.set_component("exporters::file", ComponentState::Starting);
    board.set_component("receivers::otlp", ComponentState::Pending);
    let ext = extension("/", &board);
    ext.start().await.unwrap();
    let reply = get(&ext, "/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "status": "starting",
            "components": {
                "extensions::health_check": "running",
                "exporters::file": "starting",
                "receivers::otlp": "pending"
            }
        })
    );
    ext.shutdown(deadline()).await;
}

#[tokio::test]
async fn running_is_200_and_stopping_is_503_again() {
    let board = StatusBoard::default();
    board.set_component("receivers::otlp", ComponentState::Running);
    board.set_service(ServiceState::Running);
    let ext = extension("/health", &board);
    ext.start().await.unwrap();
    let reply = get(&ext, "/health").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ok");

    board.set_service(ServiceState::Stopping);
    board.set_component("receivers::otlp", ComponentState::Stopping);
    let reply = get(&ext, "/health").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["status"], "stopping");
    assert_eq!(reply.json()["components"]["receivers::otlp"], "stopping");
    ext.shutdown(deadline()).await;
}

#[tokio::test]
async fn a_failed_component_is_503_with_its_reason() {
    let board = StatusBoard::default();
    board.set_service(ServiceState::Running);
    board.set_component(
        "exporters::kafka",
        ComponentState::Failed("brokers down".into()),
    );
    let ext = extension("/", &board);
    ext.start().await.unwrap();
    let reply = get(&ext, "/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["components"]["exporters::kafka"], "failed");
    assert_eq!(reply.json()["errors"]["exporters::kafka"], "brokers down");
    ext.shutdown(deadline()).await;
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let board = StatusBoard::default();
    let ext = extension("/health", &board);
    ext.start().await.unwrap();
    assert_eq!(get(&ext, "/").await.status, 404);
    let addr = ext.local_addr().unwrap();
    let post = send(addr, Method::POST, "/health", &[], b"{}".to_vec()).await;
    assert_eq!(post.status, 405);
    ext.shutdown(deadline()).await;
}

#[tokio::test]
async fn a_port_in_use_fails_the_start_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = HealthCheckConfig {
        endpoint: addr.to_string(),
        path: "/".into(),
    };
    let ext = HealthCheckExtension::new(
        ComponentId::new(TYPE_NAME, None),
        &config,
        StatusBoard::default(),
    )
    .unwrap();
    let err = ext.start().await.unwrap_err();
    assert!(err.0.contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn the_endpoint_is_closed_after_shutdown() {
    let board = StatusBoard::default();
    let ext = extension("/", &board);
    ext.start().await.unwrap();
    let addr = ext.local_addr().unwrap();
    ext.shutdown(deadline()).await;
    assert!(ext.local_addr().is_none());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn the_factory_reads_the_board_of_its_host() {
    use auditcol_core::component::Host;
    let board = StatusBoard::default();
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None))
        .with_host(Host::default().with_status(board.clone()));
    let built = HealthCheckExtensionFactory
        .build(&ctx, &serde_json::json!({"endpoint": "127.0.0.1:0"}))
        .unwrap();
    let ext = built
        .as_any()
        .downcast_ref::<HealthCheckExtension>()
        .unwrap();
    board.set_component("receivers::otlp", ComponentState::Running);
    assert_eq!(ext.board.snapshot(), board.snapshot());
}
