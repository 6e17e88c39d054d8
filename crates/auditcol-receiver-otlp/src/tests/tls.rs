//! TLS on both listeners: files checked at build, ALPN, handshakes that
//! stall, mutual TLS and reloading. (The exporters' tests send real OTLP
//! over TLS to this receiver.)

use std::time::Duration;

use auditcol_core::tls::TlsClientSettings;
use auditcol_testkit::pki::{TestPki, path_str};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

fn tls(pki: &TestPki) -> serde_json::Value {
    json!({"cert_file": pki.server.cert, "key_file": pki.server.key})
}

fn trusting(pki: &TestPki) -> TlsClientSettings {
    TlsClientSettings {
        ca_file: Some(path_str(&pki.ca).to_owned()),
        ..TlsClientSettings::default()
    }
}

/// A TLS handshake offering `alpn`: the protocol agreed and the server's
/// certificate, or the handshake's error. (In TLS 1.3 a client learns that
/// its certificate was refused only at its first read: see [`get`].)
async fn handshake(
    client: &TlsClientSettings,
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> std::io::Result<(Option<Vec<u8>>, Vec<u8>)> {
    let tls = client.load(alpn).unwrap();
    let stream = tls.connect("127.0.0.1", addr.port()).await?;
    let (_, session) = stream.get_ref();
    let agreed = session.alpn_protocol().map(<[u8]>::to_vec);
    let presented = session.peer_certificates().unwrap()[0].to_vec();
    Ok((agreed, presented))
}

/// A GET over TLS and HTTP/1.1: the status line of the answer.
async fn get(client: &TlsClientSettings, addr: SocketAddr) -> std::io::Result<String> {
    let tls = client.load(&[b"http/1.1"]).unwrap();
    let mut stream = tls.connect("127.0.0.1", addr.port()).await?;
    stream
        .write_all(b"GET /v1/logs HTTP/1.1\r\nHost: auditcol\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

#[test]
fn tls_files_are_checked_when_the_config_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let missing = dir.path().join("missing.key");
    let err = parse_component_config::<OtlpReceiverConfig>(&json!({"protocols": {
        "grpc": {"tls": {"cert_file": pki.server.cert, "key_file": missing}},
    }}))
    .unwrap_err();
    assert_eq!(err.path, "protocols.grpc.tls.key_file");
    assert_eq!(
        err.message,
        format!("{}: file not found", missing.display())
    );
    let err = parse_component_config::<OtlpReceiverConfig>(&json!({"protocols": {
        "http": {"tls": {"cert_file": pki.server.cert, "key_file": pki.client.key}},
    }}))
    .unwrap_err();
    assert_eq!(err.path, "protocols.http.tls.key_file");
    assert!(
        err.message.contains("does not match the certificate in"),
        "{err}"
    );
    let err = parse_component_config::<OtlpReceiverConfig>(&json!({"protocols": {
        "http": {"tls": {"cert_file": pki.server.cert}},
    }}))
    .unwrap_err();
    assert_eq!(err.path, "protocols.http.tls.key_file");
}

#[tokio::test]
async fn grpc_offers_h2_only_and_http_offers_h2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let running = start(json!({"grpc": {"tls": tls(&pki)}, "http": {"tls": tls(&pki)}})).await;
    let client = trusting(&pki);
    let (agreed, presented) = handshake(&client, running.addr("grpc"), &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(agreed.as_deref(), Some(&b"h2"[..]));
    assert_eq!(presented, pki.server_der);
    let refused = handshake(&client, running.addr("grpc"), &[b"http/1.1"]).await;
    assert!(refused.is_err(), "gRPC is HTTP/2 only: {refused:?}");

    let (agreed, _) = handshake(&client, running.addr("http"), &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(agreed.as_deref(), Some(&b"h2"[..]));
    let (agreed, _) = handshake(&client, running.addr("http"), &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(agreed.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(
        get(&client, running.addr("http")).await.unwrap(),
        "HTTP/1.1 405 Method Not Allowed"
    );
}

#[tokio::test]
async fn the_listening_event_says_whether_tls_and_mutual_tls_are_on() {
    let (captured, _guard) = auditcol_testkit::CapturedLog::start();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let mut mutual = tls(&pki);
    mutual["client_ca_file"] = json!(pki.ca);
    let _running = start(json!({"grpc": {"tls": mutual}, "http": {"tls": tls(&pki)}})).await;
    let log = captured.text();
    let line = |protocol: &str| {
        log.lines()
            .find(|l| l.contains("listening") && l.contains(&format!("protocol=\"{protocol}\"")))
            .unwrap_or_else(|| panic!("no {protocol} event in {log}"))
            .to_owned()
    };
    assert!(line("grpc").contains("tls=\"mutual\""), "{log}");
    assert!(line("http").contains("tls=\"on\""), "{log}");
}

#[tokio::test]
async fn a_client_stalled_in_the_handshake_holds_up_no_one_and_loses_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let running = start(json!({"http": {
        "tls": tls(&pki), "max_connections": 2, "read_header_timeout": "300ms",
    }}))
    .await;
    let addr = running.addr("http");
    // Connects and never says a word: no ClientHello.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Meanwhile another client is served...
    assert_eq!(
        get(&trusting(&pki), addr).await.unwrap(),
        "HTTP/1.1 405 Method Not Allowed"
    );
    // ...and the silent one is closed at the deadline.
    let mut buf = [0u8; 1];
    assert_eq!(silent.read(&mut buf).await.unwrap(), 0);

    // With one slot, a stalled client keeps others out until its deadline.
    let single = start(json!({"http": {
        "tls": tls(&pki), "max_connections": 1, "read_header_timeout": "300ms",
    }}))
    .await;
    let addr = single.addr("http");
    let _silent = TcpStream::connect(addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(status) = get(&trusting(&pki), addr).await {
            assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_grpc_client_stalled_in_the_handshake_holds_up_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let running = start(json!({"grpc": {"tls": tls(&pki)}})).await;
    let addr = running.addr("grpc");
    let _silent = TcpStream::connect(addr).await.unwrap();
    let (agreed, _) = handshake(&trusting(&pki), addr, &[b"h2"]).await.unwrap();
    assert_eq!(agreed.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_of_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let mut mutual = tls(&pki);
    mutual["client_ca_file"] = json!(pki.ca);
    let running = start(json!({"http": {"tls": mutual}})).await;
    let addr = running.addr("http");
    assert!(get(&trusting(&pki), addr).await.is_err(), "no certificate");
    let stranger = auditcol_testkit::pki::TestCa::new("another CA")
        .client("stranger")
        .write(dir.path(), "stranger");
    let foreign = TlsClientSettings {
        cert_file: Some(path_str(&stranger.cert).to_owned()),
        key_file: Some(path_str(&stranger.key).to_owned()),
        ..trusting(&pki)
    };
    assert!(
        get(&foreign, addr).await.is_err(),
        "another CA's certificate"
    );
    let member = TlsClientSettings {
        cert_file: Some(path_str(&pki.client.cert).to_owned()),
        key_file: Some(path_str(&pki.client.key).to_owned()),
        ..trusting(&pki)
    };
    assert_eq!(
        get(&member, addr).await.unwrap(),
        "HTTP/1.1 405 Method Not Allowed"
    );
}

#[tokio::test]
async fn rotated_files_are_served_after_reload_interval_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let mut reloading = tls(&pki);
    reloading["reload_interval"] = json!("100ms");
    let running = start(json!({"grpc": {"tls": reloading}})).await;
    let addr = running.addr("grpc");
    let client = trusting(&pki);
    let (_, presented) = handshake(&client, addr, &[b"h2"]).await.unwrap();
    assert_eq!(presented, pki.server_der);

    let rotated = pki.authority.server(&["127.0.0.1"]);
    std::fs::write(&pki.server.key, &rotated.key_pem).unwrap();
    std::fs::write(&pki.server.cert, &rotated.cert_pem).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, presented) = handshake(&client, addr, &[b"h2"]).await.unwrap();
        if presented == rotated.der {
            break;
        }
        assert_eq!(
            presented, pki.server_der,
            "the old certificate until the reload"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
