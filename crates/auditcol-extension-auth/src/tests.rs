//! The factories, and the extensions as components find them through the host.

use std::collections::BTreeMap;

use auditcol_core::ComponentId;
use auditcol_core::auth::AuthSettings;
use auditcol_core::component::Host;
use serde_json::json;

use super::*;

fn build(
    factory: &dyn ExtensionFactory,
    name: &str,
    config: serde_json::Value,
) -> Result<Arc<dyn Extension>, ConfigError> {
    let id = ComponentId::new(factory.type_name(), Some(name));
    factory.build(&BuildContext::new(id), &config)
}

#[test]
fn the_type_names_are_the_collectors() {
    assert_eq!(BearerTokenAuthFactory.type_name(), "bearertokenauth");
    assert_eq!(BasicAuthFactory.type_name(), "basicauth");
}

#[test]
fn build_reports_config_errors_with_their_path_and_reads_no_file() {
    let err = build(&BearerTokenAuthFactory, "x", json!({"token": ""}))
        .err()
        .unwrap();
    assert_eq!(err.path, "token");
    let err = build(
        &BasicAuthFactory,
        "x",
        json!({"htpasswd": {"inline": "bob:plain"}}),
    )
    .err()
    .unwrap();
    assert_eq!(err.path, "htpasswd.inline");
    // Files are read at start, not at build (`auditcol validate` starts nothing).
    build(
        &BearerTokenAuthFactory,
        "x",
        json!({"filename": "/nonexistent/tokens"}),
    )
    .unwrap();
    build(
        &BasicAuthFactory,
        "x",
        json!({"htpasswd": {"file": "/nonexistent/htpasswd"}}),
    )
    .unwrap();
}

#[test]
fn each_extension_offers_the_sides_it_has() {
    let mut enabled = BTreeMap::new();
    for (factory, name, config) in [
        (
            &BearerTokenAuthFactory as &dyn ExtensionFactory,
            "both",
            json!({"token": "t"}),
        ),
        (
            &BasicAuthFactory,
            "server",
            json!({"htpasswd": {"inline": basic::htpasswd::tests::LEGACY_LINE}}),
        ),
        (
            &BasicAuthFactory,
            "client",
            json!({"client_auth": {"username": "u", "password": "p"}}),
        ),
    ] {
        let id = ComponentId::new(factory.type_name(), Some(name));
        enabled.insert(id, build(factory, name, config).unwrap());
    }
    let host = Host::new(enabled, Vec::new());
    let by = |id: &str| AuthSettings {
        authenticator: id.to_owned(),
    };
    assert!(
        by("bearertokenauth/both")
            .server_authenticator(&host)
            .is_ok()
    );
    assert!(
        by("bearertokenauth/both")
            .client_authenticator(&host)
            .is_ok()
    );
    assert!(by("basicauth/server").server_authenticator(&host).is_ok());
    assert!(by("basicauth/client").client_authenticator(&host).is_ok());
    let err = by("basicauth/client")
        .server_authenticator(&host)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "authenticator: extension `basicauth/client` is not a server authenticator: it cannot check the credentials of incoming requests (a `basicauth` with `htpasswd`, or a `bearertokenauth`, can)"
    );
    let err = by("basicauth/server")
        .client_authenticator(&host)
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with(
            "authenticator: extension `basicauth/server` is not a client authenticator"
        ),
        "{err}"
    );
}
