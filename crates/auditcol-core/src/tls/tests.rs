use std::path::Path;
use std::time::Duration;

use auditcol_testkit::pki::{TestCa, TestPki, path_str};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::{ConfigDuration, ConfigError};

fn server(cert: &Path, key: &Path) -> TlsServerSettings {
    TlsServerSettings {
        cert_file: Some(path_str(cert).to_owned()),
        key_file: Some(path_str(key).to_owned()),
        ..TlsServerSettings::default()
    }
}

fn client(pki: &TestPki) -> TlsClientSettings {
    TlsClientSettings {
        ca_file: Some(path_str(&pki.ca).to_owned()),
        ..TlsClientSettings::default()
    }
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path_str(&path).to_owned()
}

/// (path, message) of an error, for table-driven checks.
fn parts(result: Result<(), ConfigError>) -> (String, String) {
    let e = result.unwrap_err();
    (e.path, e.message)
}

#[test]
fn server_file_errors_name_the_key_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let (cert, key) = (
        path_str(&pki.server.cert).to_owned(),
        path_str(&pki.server.key).to_owned(),
    );
    let missing = format!("{}/missing.pem", path_str(dir.path()));
    let text = write(dir.path(), "notes.txt", b"hello, not a certificate\n");
    let der = write(dir.path(), "server.der", &pki.server_der);
    let encrypted = write(
        dir.path(),
        "encrypted.key",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let other_key = path_str(&pki.client.key).to_owned();
    let dir_name = path_str(dir.path()).to_owned();
    let settings = |cert: &str, key: &str, ca: Option<&str>| TlsServerSettings {
        cert_file: Some(cert.to_owned()),
        key_file: Some(key.to_owned()),
        client_ca_file: ca.map(str::to_owned),
        ..TlsServerSettings::default()
    };
    let table: Vec<(TlsServerSettings, &str, String)> = vec![
        (
            settings(&missing, &key, None),
            "cert_file",
            format!("{missing}: file not found"),
        ),
        (
            settings(&dir_name, &key, None),
            "cert_file",
            format!("{dir_name}: is a directory, not a PEM file"),
        ),
        (
            settings(&text, &key, None),
            "cert_file",
            format!("{text}: not a PEM file: no `-----BEGIN ...-----` line"),
        ),
        (
            settings(&der, &key, None),
            "cert_file",
            format!(
                "{der}: not a PEM file: no `-----BEGIN ...-----` line (it looks like DER: convert it with `openssl x509 -inform der -in FILE -out FILE.pem`)"
            ),
        ),
        (
            settings(&key, &key, None),
            "cert_file",
            format!("{key}: no certificate in it (it holds PRIVATE KEY: is it the key file?)"),
        ),
        (
            settings(&cert, &cert, None),
            "key_file",
            format!(
                "{cert}: no private key in it (it holds CERTIFICATE: is it the certificate file?)"
            ),
        ),
        (
            settings(&cert, &encrypted, None),
            "key_file",
            format!(
                "{encrypted}: the private key is encrypted: give an unencrypted PEM key (e.g. `openssl pkey -in KEY -out KEY.plain`) and protect the file with its permissions"
            ),
        ),
        (
            settings(&cert, &other_key, None),
            "key_file",
            format!(
                "{other_key}: does not match the certificate in {cert}: the key's public key is not the certificate's (a key from another pair, or a certificate renewed with a new key?)"
            ),
        ),
        (
            settings(&cert, &key, Some(&key)),
            "client_ca_file",
            format!("{key}: no certificate in it (it holds PRIVATE KEY: is it the key file?)"),
        ),
        (
            settings(&cert, &key, Some(&missing)),
            "client_ca_file",
            format!("{missing}: file not found"),
        ),
    ];
    for (settings, path, message) in table {
        assert_eq!(
            parts(settings.validate()),
            (path.to_owned(), message),
            "{settings:?}"
        );
    }
    settings(&cert, &key, None).validate().unwrap();
    settings(&cert, &key, Some(path_str(&pki.ca)))
        .validate()
        .unwrap();
}

#[test]
fn server_keys_are_required_and_reload_interval_positive() {
    let table = [
        (
            TlsServerSettings::default(),
            "cert_file",
            "is required with `tls`: the server's certificate (PEM)",
        ),
        (
            TlsServerSettings {
                cert_file: Some("c.pem".into()),
                ..TlsServerSettings::default()
            },
            "key_file",
            "is required with `tls`: the private key of the certificate (PEM)",
        ),
        (
            TlsServerSettings {
                cert_file: Some(" ".into()),
                key_file: Some("k.pem".into()),
                ..TlsServerSettings::default()
            },
            "cert_file",
            "must not be empty: the server's certificate (PEM)",
        ),
        (
            TlsServerSettings {
                cert_file: Some("c.pem".into()),
                key_file: Some("k.pem".into()),
                reload_interval: Some(ConfigDuration::from_secs(0)),
                ..TlsServerSettings::default()
            },
            "reload_interval",
            "must be more than 0: how often the files are looked at again (remove the key to never reload)",
        ),
    ];
    for (settings, path, message) in table {
        assert_eq!(
            parts(settings.validate()),
            (path.to_owned(), message.to_owned())
        );
    }
}

#[test]
fn min_version_reads_strings_and_yaml_numbers_and_refuses_old_versions() {
    let parse = |v: serde_json::Value| serde_json::from_value::<TlsVersion>(v);
    assert_eq!(parse(serde_json::json!("1.3")).unwrap(), TlsVersion::V1_3);
    assert_eq!(parse(serde_json::json!(1.2)).unwrap(), TlsVersion::V1_2);
    assert_eq!(parse(serde_json::json!(1.3)).unwrap(), TlsVersion::V1_3);
    let old = parse(serde_json::json!("1.1")).unwrap_err().to_string();
    assert!(old.contains("TLS 1.1 is not supported"), "{old}");
    let unknown = parse(serde_json::json!("2")).unwrap_err().to_string();
    assert!(unknown.contains("write \"1.2\" or \"1.3\""), "{unknown}");
    let unknown_key =
        serde_json::from_value::<TlsServerSettings>(serde_json::json!({"ca_file": "x"}))
            .unwrap_err()
            .to_string();
    assert!(
        unknown_key.contains("unknown field `ca_file`"),
        "{unknown_key}"
    );
}

#[test]
fn client_keys_are_checked_before_files() {
    let table = [
        (
            TlsClientSettings {
                cert_file: Some("c.pem".into()),
                ..TlsClientSettings::default()
            },
            "key_file",
            "is required with `cert_file`: the client certificate's private key",
        ),
        (
            TlsClientSettings {
                key_file: Some("k.pem".into()),
                ..TlsClientSettings::default()
            },
            "cert_file",
            "is required with `key_file`: the client certificate",
        ),
        (
            TlsClientSettings {
                ca_file: Some(String::new()),
                ..TlsClientSettings::default()
            },
            "ca_file",
            "must not be empty: give a value or remove the key",
        ),
        (
            TlsClientSettings {
                ca_file: Some("ca.pem".into()),
                insecure_skip_verify: true,
                ..TlsClientSettings::default()
            },
            "ca_file",
            "is unused with `insecure_skip_verify: true`, which accepts any server certificate and name: remove one of the two",
        ),
        (
            TlsClientSettings {
                server_name_override: Some("audit.example".into()),
                insecure_skip_verify: true,
                ..TlsClientSettings::default()
            },
            "server_name_override",
            "is unused with `insecure_skip_verify: true`, which accepts any server certificate and name: remove one of the two",
        ),
        (
            TlsClientSettings {
                server_name_override: Some("not a name!".into()),
                ..TlsClientSettings::default()
            },
            "server_name_override",
            "`not a name!` is not a DNS name or an IP address",
        ),
    ];
    for (settings, path, message) in table {
        assert_eq!(
            parts(settings.validate()),
            (path.to_owned(), message.to_owned()),
            "{settings:?}"
        );
    }
    TlsClientSettings::default().validate().unwrap();
    TlsClientSettings {
        insecure_skip_verify: true,
        ..TlsClientSettings::default()
    }
    .validate()
    .unwrap();
}

#[test]
fn client_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let key = path_str(&pki.client.key).to_owned();
    let ca_is_a_key = TlsClientSettings {
        ca_file: Some(key.clone()),
        ..TlsClientSettings::default()
    };
    assert_eq!(
        parts(ca_is_a_key.validate()),
        (
            "ca_file".to_owned(),
            format!("{key}: no certificate in it (it holds PRIVATE KEY: is it the key file?)")
        )
    );
    let mismatched = TlsClientSettings {
        cert_file: Some(path_str(&pki.client.cert).to_owned()),
        key_file: Some(path_str(&pki.server.key).to_owned()),
        ..client(&pki)
    };
    let (path, message) = parts(mismatched.validate());
    assert_eq!(path, "key_file");
    assert!(
        message.contains("does not match the certificate in"),
        "{message}"
    );
    let good = TlsClientSettings {
        cert_file: Some(path_str(&pki.client.cert).to_owned()),
        key_file: Some(path_str(&pki.client.key).to_owned()),
        ..client(&pki)
    };
    good.validate().unwrap();
}

#[test]
fn check_unused_names_the_first_tls_key_set() {
    let why = "is unused: plain text";
    TlsClientSettings {
        insecure: true,
        ..TlsClientSettings::default()
    }
    .check_unused(why)
    .unwrap();
    let table = [
        (
            TlsClientSettings {
                key_file: Some("k".into()),
                cert_file: Some("c".into()),
                ..TlsClientSettings::default()
            },
            "cert_file",
        ),
        (
            TlsClientSettings {
                insecure_skip_verify: true,
                ..TlsClientSettings::default()
            },
            "insecure_skip_verify",
        ),
        (
            TlsClientSettings {
                min_version: Some(TlsVersion::V1_3),
                ..TlsClientSettings::default()
            },
            "min_version",
        ),
    ];
    for (settings, path) in table {
        assert_eq!(
            parts(settings.check_unused(why)),
            (path.to_owned(), why.to_owned())
        );
    }
}

// ------------------------------------------------------------ handshakes

/// A listener served by `tls`: what each accepted connection sent first,
/// `None` for a refused handshake.
async fn serve(
    tls: Arc<ServerTls>,
    timeout: Duration,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<Vec<u8>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, client) = listener.accept().await.unwrap();
            let (tls, tx) = (tls.clone(), tx.clone());
            tokio::spawn(async move {
                let outcome = match tls.accept(tcp, client, timeout).await {
                    Some(mut connection) => {
                        let mut got = vec![0u8; 5];
                        connection.read_exact(&mut got).await.unwrap();
                        connection.write_all(b"ok").await.unwrap();
                        connection.shutdown().await.unwrap();
                        Some(got)
                    }
                    None => None,
                };
                let _ = tx.send(outcome);
            });
        }
    });
    (addr, rx)
}

/// Connects with `settings`, sends `hello` and reads the answer; the
/// server's certificate on success.
async fn hello(
    settings: &TlsClientSettings,
    addr: std::net::SocketAddr,
) -> std::io::Result<Vec<u8>> {
    let tls = settings.load(&[]).unwrap();
    let mut stream = tls.connect("127.0.0.1", addr.port()).await?;
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    stream.write_all(b"hello").await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    if answer != b"ok" {
        return Err(std::io::Error::other(format!("answer {answer:?}")));
    }
    Ok(presented)
}

#[tokio::test]
async fn the_first_bytes_after_the_handshake_are_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let tls = ServerTls::load(&server(&pki.server.cert, &pki.server.key), &[], "test").unwrap();
    let (addr, mut outcomes) = serve(tls.clone(), Duration::from_secs(10)).await;
    let presented = hello(&client(&pki), addr).await.unwrap();
    assert_eq!(presented, pki.server_der);
    assert_eq!(
        outcomes.recv().await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(tls.failed_handshakes(), 0);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let tls = ServerTls::load(&server(&pki.server.cert, &pki.server.key), &[], "test").unwrap();
    let (addr, mut outcomes) = serve(tls.clone(), Duration::from_secs(10)).await;
    let other = TestCa::new("another CA").write(&dir.path().join("other-ca.pem"));
    let untrusting = TlsClientSettings {
        ca_file: Some(path_str(&other).to_owned()),
        ..TlsClientSettings::default()
    };
    let err = hello(&untrusting, addr).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert_eq!(outcomes.recv().await.unwrap(), None);
    assert_eq!(tls.failed_handshakes(), 1);
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_of_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let settings = TlsServerSettings {
        client_ca_file: Some(path_str(&pki.ca).to_owned()),
        ..server(&pki.server.cert, &pki.server.key)
    };
    let tls = ServerTls::load(&settings, &[], "test").unwrap();
    assert!(tls.mutual());
    let (addr, mut outcomes) = serve(tls.clone(), Duration::from_secs(10)).await;

    assert!(hello(&client(&pki), addr).await.is_err(), "no certificate");
    assert_eq!(outcomes.recv().await.unwrap(), None);

    let stranger = TestCa::new("another CA")
        .client("stranger")
        .write(dir.path(), "stranger");
    let foreign = TlsClientSettings {
        cert_file: Some(path_str(&stranger.cert).to_owned()),
        key_file: Some(path_str(&stranger.key).to_owned()),
        ..client(&pki)
    };
    assert!(
        hello(&foreign, addr).await.is_err(),
        "another CA's certificate"
    );
    assert_eq!(outcomes.recv().await.unwrap(), None);

    let member = TlsClientSettings {
        cert_file: Some(path_str(&pki.client.cert).to_owned()),
        key_file: Some(path_str(&pki.client.key).to_owned()),
        ..client(&pki)
    };
    hello(&member, addr).await.unwrap();
    assert_eq!(
        outcomes.recv().await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(tls.failed_handshakes(), 2);
}

#[tokio::test]
async fn a_silent_client_is_dropped_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let tls = ServerTls::load(&server(&pki.server.cert, &pki.server.key), &[], "test").unwrap();
    let (addr, mut outcomes) = serve(tls.clone(), Duration::from_millis(200)).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert_eq!(outcomes.recv().await.unwrap(), None);
    let mut buf = [0u8; 1];
    assert_eq!(
        silent.read(&mut buf).await.unwrap(),
        0,
        "closed by the server"
    );
    assert_eq!(tls.failed_handshakes(), 1);
}

#[tokio::test]
async fn server_name_override_checks_the_certificate_against_that_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let named = pki
        .authority
        .server(&["audit.internal"])
        .write(dir.path(), "named");
    let tls = ServerTls::load(&server(&named.cert, &named.key), &[], "test").unwrap();
    let (addr, _outcomes) = serve(tls, Duration::from_secs(10)).await;
    let err = hello(&client(&pki), addr).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let overriding = TlsClientSettings {
        server_name_override: Some("audit.internal".into()),
        ..client(&pki)
    };
    hello(&overriding, addr).await.unwrap();
    let skipping = TlsClientSettings {
        insecure_skip_verify: true,
        ..TlsClientSettings::default()
    };
    hello(&skipping, addr).await.unwrap();
}

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let settings = TlsServerSettings {
        min_version: TlsVersion::V1_3,
        ..server(&pki.server.cert, &pki.server.key)
    };
    let tls = ServerTls::load(&settings, &[], "test").unwrap();
    let (addr, _outcomes) = serve(tls, Duration::from_secs(10)).await;
    // A TLS 1.2-only client, made directly with rustls.
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                std::fs::read(&pki.ca)
                    .map(|pem| {
                        use rustls::pki_types::pem::PemObject;
                        rustls::pki_types::CertificateDer::from_pem_slice(&pem)
                            .unwrap()
                            .to_vec()
                    })
                    .unwrap(),
            ))
            .unwrap();
        roots
    };
    let old = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let err = tokio_rustls::TlsConnector::from(Arc::new(old))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("version"), "{err}");
    hello(&client(&pki), addr).await.unwrap();
}

#[tokio::test]
async fn reload_serves_rotated_files_and_keeps_the_old_ones_when_the_new_are_bad() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let settings = TlsServerSettings {
        reload_interval: Some(ConfigDuration::from_secs(60)),
        ..server(&pki.server.cert, &pki.server.key)
    };
    let tls = ServerTls::load(&settings, &[], "test").unwrap();
    let (addr, _outcomes) = serve(tls.clone(), Duration::from_secs(10)).await;
    assert_eq!(tls.reload().await, ReloadOutcome::Unchanged);

    let rotated = pki.authority.server(&["127.0.0.1"]);
    std::fs::write(&pki.server.cert, &rotated.cert_pem).unwrap();
    std::fs::write(&pki.server.key, &rotated.key_pem).unwrap();
    assert_eq!(tls.reload().await, ReloadOutcome::Reloaded);
    assert_eq!(hello(&client(&pki), addr).await.unwrap(), rotated.der);

    // Half a rotation: a new certificate with the old key.
    let next = pki.authority.server(&["127.0.0.1"]);
    std::fs::write(&pki.server.cert, &next.cert_pem).unwrap();
    let ReloadOutcome::Failed(error) = tls.reload().await else {
        panic!("a key that does not match must not load");
    };
    assert_eq!(error.path, "key_file");
    assert!(
        error.message.starts_with(path_str(&pki.server.key)),
        "{error}"
    );
    assert_eq!(tls.reload().await, ReloadOutcome::Unchanged, "warned once");
    assert_eq!(hello(&client(&pki), addr).await.unwrap(), rotated.der);

    std::fs::remove_file(&pki.server.key).unwrap();
    let ReloadOutcome::Failed(error) = tls.reload().await else {
        panic!("a missing key must not load");
    };
    assert_eq!(
        error.message,
        format!("{}: file not found", path_str(&pki.server.key))
    );

    std::fs::write(&pki.server.key, &next.key_pem).unwrap();
    assert_eq!(tls.reload().await, ReloadOutcome::Reloaded);
    assert_eq!(hello(&client(&pki), addr).await.unwrap(), next.der);
}
