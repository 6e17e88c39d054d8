use std::time::Duration;

use auditcol_core::config::parse_component_config;
use serde_json::json;

use super::*;

fn extension(config: serde_json::Value) -> BearerTokenAuth {
    let config: BearerTokenAuthConfig = parse_component_config(&config).unwrap();
    BearerTokenAuth::new(ComponentId::new(TYPE_NAME, Some("test")), &config).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

async fn check(ext: &BearerTokenAuth, pairs: &[(&str, &str)]) -> Result<(), AuthError> {
    ext.server_authenticator()
        .unwrap()
        .authenticate(&headers(pairs))
        .await
}

fn refused(result: Result<(), AuthError>) -> String {
    match result {
        Err(AuthError::Unauthenticated(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_right_token_is_accepted_and_anything_else_refused_without_echo() {
    let ext = extension(json!({"token": "s3cret-token"}));
    check(&ext, &[("authorization", "Bearer s3cret-token")])
        .await
        .unwrap();
    check(&ext, &[("Authorization", "bearer s3cret-token")])
        .await
        .unwrap();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "no authorization header"),
        (
            &[("authorization", "Bearer wrong-token")],
            "the token is not one of the configured tokens",
        ),
        (
            &[("authorization", "Basic s3cret-token")],
            "authorization header is not `Bearer …`",
        ),
        (
            &[("authorization", "s3cret-token")],
            "authorization header is not `Bearer …`",
        ),
        (
            &[
                ("authorization", "Bearer s3cret-token"),
                ("authorization", "Bearer s3cret-token"),
            ],
            "authorization header given more than once",
        ),
    ];
    for (pairs, want) in cases {
        let reason = refused(check(&ext, pairs).await);
        assert_eq!(reason, want, "{pairs:?}");
        assert!(!reason.contains("s3cret"), "{reason}");
    }
    assert_eq!(
        ext.server_authenticator().unwrap().challenge(),
        "Bearer",
        "WWW-Authenticate"
    );
}

#[tokio::test]
async fn near_misses_are_refused_prefixes_extensions_and_one_changed_byte() {
    let ext = extension(json!({"token": "abcdefghijklmnop"}));
    for guess in [
        "abcdefghijklmno",
        "abcdefghijklmnopq",
        "abcdefghijklmnoP",
        "Abcdefghijklmnop",
        "a",
        "abcdefghijklmnopabcdefghijklmnop",
    ] {
        let value = format!("Bearer {guess}");
        refused(check(&ext, &[("authorization", &value)]).await);
    }
}

#[test]
fn every_configured_token_is_compared_whichever_matches() {
    // The comparison is over digests of equal length, and all of them are
    // visited: the last token matches as well as the first, and a presented
    // token equal to none of them matches nothing.
    let set = TokenSet::new(&["first", "second", "third"], "Bearer").unwrap();
    assert_eq!(set.len(), 3);
    assert!(set.contains(b"first"));
    assert!(set.contains(b"third"));
    assert!(!set.contains(b"fourth"));
    assert!(!set.contains(b""));
    // A digest of a configured token is not the token.
    let digest: [u8; 32] = Sha256::digest(b"first").into();
    assert!(!set.contains(&digest));
}

#[tokio::test]
async fn any_of_several_tokens_is_accepted_and_a_client_sends_the_first() {
    let ext = extension(json!({"tokens": ["token-a", "token-b"]}));
    check(&ext, &[("authorization", "Bearer token-a")])
        .await
        .unwrap();
    check(&ext, &[("authorization", "Bearer token-b")])
        .await
        .unwrap();
    let client = ext.client_authenticator().unwrap().headers().unwrap();
    assert_eq!(client.len(), 1);
    let value = client.get("authorization").unwrap();
    assert_eq!(value, "Bearer token-a");
    assert!(
        value.is_sensitive(),
        "never indexed by HPACK, hidden in Debug"
    );
    assert!(!format!("{client:?}").contains("token-a"));
}

#[tokio::test]
async fn another_header_and_an_empty_scheme_carry_the_token_alone() {
    let ext = extension(json!({"token": "k3y", "scheme": "", "header": "X-API-Key"}));
    check(&ext, &[("x-api-key", "k3y")]).await.unwrap();
    assert_eq!(
        refused(check(&ext, &[("authorization", "k3y")]).await),
        "no x-api-key header"
    );
    let client = ext.client_authenticator().unwrap().headers().unwrap();
    assert_eq!(client.get("x-api-key").unwrap(), "k3y");

    let ext = extension(json!({"token": "k3y", "scheme": "Token"}));
    check(&ext, &[("authorization", "Token k3y")])
        .await
        .unwrap();
    assert_eq!(ext.server_authenticator().unwrap().challenge(), "Token");
}

#[test]
fn tokens_files_take_the_first_word_of_each_line_and_skip_comments() {
    let text = "# ingest tokens\n\ntoken-a  # the SDKs\n  token-b // the agents\r\n";
    assert_eq!(parse_tokens_file(text).unwrap(), ["token-a", "token-b"]);
    assert_eq!(
        parse_tokens_file("# only a comment\n\n").unwrap_err(),
        "holds no token: write one token per line"
    );
    let err = parse_tokens_file("good\ncafé-secret\n").unwrap_err();
    assert_eq!(
        err,
        "line 2: the token must be printable ASCII without spaces: it travels in an HTTP header"
    );
}

#[tokio::test]
async fn a_tokens_file_is_read_at_start_and_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, "old-token\n").unwrap();
    let ext = extension(json!({"filename": path}));
    // Nothing is read before start: the server cannot check, the client cannot send.
    assert!(matches!(
        check(&ext, &[("authorization", "Bearer old-token")]).await,
        Err(AuthError::Unavailable(_))
    ));
    assert!(ext.client_authenticator().unwrap().headers().is_err());

    ext.start().await.unwrap();
    check(&ext, &[("authorization", "Bearer old-token")])
        .await
        .unwrap();

    // Rotation: the new token is written beside the old, then the old removed.
    std::fs::write(&path, "new-token\nold-token\n").unwrap();
    wait_until(|| async {
        check(&ext, &[("authorization", "Bearer new-token")])
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        ext.client_authenticator().unwrap().headers().unwrap()["authorization"],
        "Bearer new-token"
    );
    std::fs::write(&path, "new-token\n").unwrap();
    wait_until(|| async {
        check(&ext, &[("authorization", "Bearer old-token")])
            .await
            .is_err()
    })
    .await;

    // A broken version keeps the tokens in force.
    std::fs::write(&path, "# all removed by mistake\n").unwrap();
    tokio::time::sleep(crate::watched::POLL_INTERVAL * 3).await;
    check(&ext, &[("authorization", "Bearer new-token")])
        .await
        .unwrap();
    ext.shutdown(Instant::now()).await;
}

async fn wait_until<F: Future<Output = bool>>(condition: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the tokens file was not read again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_missing_or_empty_tokens_file_fails_the_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    let ext = extension(json!({"tokens_file": path}));
    let err = ext.start().await.unwrap_err().to_string();
    assert!(
        err.starts_with("extension bearertokenauth/test: cannot read the tokens file")
            && err.contains(path.to_str().unwrap()),
        "{err}"
    );
    std::fs::write(&path, "\n").unwrap();
    let err = ext.start().await.unwrap_err().to_string();
    assert!(
        err.ends_with("holds no token: write one token per line"),
        "{err}"
    );
}
