use std::time::Duration;

use auditcol_core::config::parse_component_config;
use serde_json::json;

use super::htpasswd::tests::*;
use super::*;

fn extension(config: serde_json::Value) -> BasicAuth {
    let config: BasicAuthConfig = parse_component_config(&config).unwrap();
    BasicAuth::new(ComponentId::new(TYPE_NAME, Some("test")), &config).unwrap()
}

fn server(config: serde_json::Value) -> Arc<BasicServer> {
    match extension(config).side {
        Side::Server(server) => server,
        Side::Client(_) => panic!("a client"),
    }
}

fn inline(lines: &[&str]) -> serde_json::Value {
    json!({"htpasswd": {"inline": lines.join("\n")}})
}

fn basic(user: &str, password: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    map.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
    map
}

fn raw(value: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    map
}

fn reason(result: Result<(), AuthError>) -> String {
    match result {
        Err(AuthError::Unauthenticated(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn right_credentials_are_accepted_and_wrong_ones_refused_alike() {
    let server = server(inline(&[FLIPT_LINE, LEGACY_LINE]));
    server
        .authenticate(&basic("flipt", FLIPT_PASSWORD))
        .await
        .unwrap();
    server
        .authenticate(&basic("legacy", LEGACY_PASSWORD))
        .await
        .unwrap();
    for (user, password) in [
        ("flipt", "wrong"),
        ("flipt", LEGACY_PASSWORD),
        ("legacy", FLIPT_PASSWORD),
        ("nobody", FLIPT_PASSWORD),
        ("", ""),
        ("flipt", ""),
    ] {
        assert_eq!(
            reason(server.authenticate(&basic(user, password)).await),
            "wrong user name or password",
            "{user}:{password}"
        );
    }
    assert_eq!(server.challenge(), "Basic realm=\"auditcol\"");
}

#[tokio::test]
async fn malformed_headers_are_refused_with_what_is_wrong() {
    let server = server(inline(&[FLIPT_LINE]));
    let cases = [
        (HeaderMap::new(), "no authorization header"),
        (raw("Bearer abc"), "authorization header is not `Basic …`"),
        (
            raw("Basic %%%"),
            "the Basic credentials are not valid base64",
        ),
        (
            raw(&format!("Basic {}", STANDARD.encode("no-colon"))),
            "the Basic credentials are not `user:password`",
        ),
    ];
    for (headers, want) in cases {
        assert_eq!(reason(server.authenticate(&headers).await), want);
    }
}

#[tokio::test]
async fn a_password_with_a_colon_is_split_at_the_first_one() {
    // htpasswd users cannot hold `:`, passwords can.
    let line = format!(
        "carol:{{SHA}}{}",
        STANDARD.encode(<sha1::Sha1 as sha1::Digest>::digest(b"a:b"))
    );
    let server = server(inline(&[&line]));
    server.authenticate(&basic("carol", "a:b")).await.unwrap();
}

#[tokio::test]
async fn a_verified_credential_is_cached_under_a_keyed_hash_and_skips_bcrypt() {
    let server = server(inline(&[FLIPT_LINE, AGENT_LINE]));
    let users = server.users().unwrap();
    server
        .authenticate(&basic("flipt", FLIPT_PASSWORD))
        .await
        .unwrap();
    assert_eq!(users.verified.len(), 1);
    // Wrong passwords are not cached.
    reason(server.authenticate(&basic("agent", "wrong")).await);
    assert_eq!(users.verified.len(), 1);

    // With every place taken and the queue full, bcrypt cannot run: the
    // cached credential still passes, an uncached one is told to come back.
    let held: Vec<_> = (0..concurrent_checks())
        .map(|_| server.limit.permits.clone().try_acquire_owned().unwrap())
        .collect();
    server
        .limit
        .waiting
        .store(server.limit.max_waiting, Ordering::SeqCst);
    server
        .authenticate(&basic("flipt", FLIPT_PASSWORD))
        .await
        .unwrap();
    let busy = server
        .authenticate(&basic("agent", AGENT_PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        busy,
        AuthError::Unavailable("too many password checks in progress; retry shortly".into())
    );
    server.limit.waiting.store(0, Ordering::SeqCst);
    drop(held);
    server
        .authenticate(&basic("agent", AGENT_PASSWORD))
        .await
        .unwrap();
    assert_eq!(users.verified.len(), 2);
}

#[test]
fn the_cache_key_depends_on_user_password_and_the_secret_key() {
    let cache = VerifiedCache::new(2);
    let other = VerifiedCache::new(2);
    let key = cache.key_of(b"flipt", b"pw");
    assert_eq!(key, cache.key_of(b"flipt", b"pw"));
    assert_ne!(key, other.key_of(b"flipt", b"pw"), "a key of its own");
    assert_ne!(
        key,
        cache.key_of(b"flip", b"tpw"),
        "user and password stay apart"
    );
    assert_ne!(key, cache.key_of(b"flipt", b"pW"));
}

#[test]
fn the_cache_keeps_the_newest_entries_up_to_its_capacity() {
    let cache = VerifiedCache::new(2);
    let [a, b, c] = [b"a", b"b", b"c"].map(|u| cache.key_of(u, b"pw"));
    cache.insert(a);
    cache.insert(b);
    cache.insert(a);
    assert_eq!(cache.len(), 2);
    cache.insert(c);
    assert_eq!(cache.len(), 2);
    assert!(!cache.contains(&a), "the oldest made room");
    assert!(cache.contains(&b) && cache.contains(&c));
}

#[tokio::test]
async fn the_check_limit_queues_a_few_and_refuses_the_rest_at_once() {
    let limit = Arc::new(CheckLimit::new(1, 1));
    let running = limit.acquire().await.unwrap();
    let queued = tokio::spawn({
        let limit = limit.clone();
        async move { limit.acquire().await.map(drop) }
    });
    while limit.waiting.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        limit.acquire().await,
        Err(AuthError::Unavailable(_))
    ));
    assert_eq!(
        limit.waiting.load(Ordering::SeqCst),
        1,
        "the refused one left"
    );
    drop(running);
    queued.await.unwrap().unwrap();
    assert_eq!(limit.waiting.load(Ordering::SeqCst), 0);
    // A waiter that gives up leaves the queue.
    let running = limit.acquire().await.unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(20), limit.acquire()).await;
    assert!(gave_up.is_err());
    assert_eq!(limit.waiting.load(Ordering::SeqCst), 0);
    drop(running);
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_runs_at_most_the_allowed_checks_at_once() {
    let server = server(inline(&[FLIPT_LINE]));
    let allowed = concurrent_checks();
    let flood: Vec<_> = (0..(allowed * (WAITING_PER_CHECK + 1) + 8))
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .authenticate(&basic("flipt", &format!("guess{i}")))
                    .await
            })
        })
        .collect();
    let mut unavailable = 0;
    for attempt in flood {
        match attempt.await.unwrap() {
            Err(AuthError::Unauthenticated(_)) => {}
            Err(AuthError::Unavailable(_)) => unavailable += 1,
            Ok(()) => panic!("a wrong password was accepted"),
        }
    }
    assert!(unavailable >= 8, "only {unavailable} turned away");
    assert_eq!(
        server.limit.permits.available_permits(),
        allowed,
        "all given back"
    );
}

#[tokio::test]
async fn an_htpasswd_file_is_read_at_start_merged_with_inline_and_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, format!("{FLIPT_LINE}\n{LEGACY_LINE}\n")).unwrap();
    let ext = extension(json!({"htpasswd": {"file": path, "inline": AGENT_LINE}}));
    let server = ext.server_authenticator().unwrap();
    assert!(matches!(
        server.authenticate(&basic("flipt", FLIPT_PASSWORD)).await,
        Err(AuthError::Unavailable(_))
    ));
    ext.start().await.unwrap();
    for (user, password) in [
        ("flipt", FLIPT_PASSWORD),
        ("legacy", LEGACY_PASSWORD),
        ("agent", AGENT_PASSWORD),
    ] {
        server.authenticate(&basic(user, password)).await.unwrap();
    }
    // Removing a user takes effect without a restart, cache included.
    std::fs::write(&path, format!("{LEGACY_LINE}\n")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server
        .authenticate(&basic("flipt", FLIPT_PASSWORD))
        .await
        .is_ok()
    {
        assert!(std::time::Instant::now() < deadline, "not read again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
        .authenticate(&basic("agent", AGENT_PASSWORD))
        .await
        .unwrap();
    ext.shutdown(Instant::now()).await;
}

#[tokio::test]
async fn a_bad_htpasswd_file_fails_the_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, format!("{FLIPT_LINE}\nbob:hunter2\n")).unwrap();
    let ext = extension(json!({"htpasswd": {"file": path}}));
    let err = ext.start().await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "extension basicauth/test: htpasswd file {}: line 2: user `bob`: the password is not hashed",
            path.display()
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[tokio::test]
async fn the_client_sends_basic_credentials_as_a_sensitive_header() {
    let ext =
        extension(json!({"client_auth": {"username": "auditcol", "password": "pw:with-colon"}}));
    assert!(ext.server_authenticator().is_none());
    let headers = ext.client_authenticator().unwrap().headers().unwrap();
    let value = &headers[AUTHORIZATION];
    assert!(value.is_sensitive());
    assert_eq!(
        value,
        &format!("Basic {}", STANDARD.encode("auditcol:pw:with-colon"))
    );
    // What the client sends, a server with the same user accepts.
    let line = format!(
        "auditcol:{{SHA}}{}",
        STANDARD.encode(<sha1::Sha1 as sha1::Digest>::digest(b"pw:with-colon"))
    );
    server(inline(&[&line]))
        .authenticate(&headers)
        .await
        .unwrap();

    let server_ext = extension(inline(&[FLIPT_LINE]));
    assert!(server_ext.client_authenticator().is_none());
}
