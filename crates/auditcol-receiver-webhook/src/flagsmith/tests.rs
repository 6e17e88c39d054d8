//! The Flagsmith mapping, table-driven over the examples of the Flagsmith
//! audit-log documentation (`seeds/flagsmith-audit-logs.txt`): its payload,
//! every `related_object_type` it lists, every audit-log event type it
//! lists (with the `log` texts Flagsmith writes for them), and its rules on
//! which of `related_object_id` / `related_object_uuid` is set.

use auditcol_core::LogBatch;
use serde_json::json;

use super::*;

/// The payload of the documentation, verbatim.
const DOCUMENTED_PAYLOAD: &str = include_str!("../../testdata/flagsmith-documented-entry.json");

/// The line the `json` output writes for the documented payload.
const DOCUMENTED_LINE: &str =
    include_str!("../../testdata/flagsmith-documented-entry.expected.jsonl");

fn documented() -> Value {
    crate::body::parse_events(DOCUMENTED_PAYLOAD.as_bytes(), crate::body::BodyKind::Json)
        .unwrap()
        .remove(0)
}

fn decode_one(value: Value) -> Result<Mapped, EventError> {
    decode(value, "events[0]").map(|m| m.expect("an audit-log entry"))
}

/// The `json` output line of a mapped event: through the core batch, as the
/// file exporter writes it.
fn output_line((event, attributes): &Mapped) -> String {
    let batch = LogBatch::try_from_events_with_attributes(
        "flagsmith",
        [(event, attributes.iter().map(|(k, v)| (*k, v.as_str())))],
    )
    .unwrap();
    let mut out = Vec::new();
    assert!(batch.records().next().unwrap().write_audit_json(&mut out));
    String::from_utf8(out).unwrap()
}

fn attribute<'m>(mapped: &'m Mapped, name: &str) -> Option<&'m str> {
    mapped
        .1
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_documented_payload_becomes_its_audit_event_line() {
    let mapped = decode_one(documented()).unwrap();
    assert_eq!(output_line(&mapped), DOCUMENTED_LINE.trim_end());
    assert_eq!(attribute(&mapped, FLAGSMITH_PROJECT_ID), Some("6"));
    assert_eq!(attribute(&mapped, FLAGSMITH_RELATED_OBJECT_ID), Some("6"));
    assert_eq!(attribute(&mapped, FLAGSMITH_ENVIRONMENT_ID), None);
    assert_eq!(attribute(&mapped, FLAGSMITH_RELATED_OBJECT_UUID), None);
    assert_eq!(
        attribute(&mapped, AUDIT_ID),
        None,
        "the documented payload has no id"
    );
}

#[test]
fn the_envelope_flagsmith_sends_gives_the_same_event_with_its_id() {
    // As Flagsmith's organisation webhooks send it: `json.dumps(sort_keys=True)`
    // of {"data": <AuditLogListSerializer>, "event_type": "AUDIT_LOG_CREATED"}.
    let mut entry = documented();
    entry["id"] = json!(812);
    entry["is_system_event"] = json!(false);
    let envelope = json!({"data": entry.clone(), "event_type": "AUDIT_LOG_CREATED"});
    let (event, attributes) = decode_one(envelope).unwrap();
    let (bare, _) = decode_one(entry).unwrap();
    assert_eq!(event, bare);
    assert_eq!(attributes[0], (AUDIT_ID, "812".to_owned()));
}

#[test]
fn an_envelope_error_names_the_field_inside_data() {
    let mut entry = documented();
    entry["created_date"] = json!("23/02/2020 17:30:57");
    let err = decode_one(json!({"event_type": "AUDIT_LOG_CREATED", "data": entry})).unwrap_err();
    assert_eq!(err.path, "events[0].data.created_date");
    assert!(err.reason.starts_with("not RFC 3339"), "{err}");
    let err = decode_one(json!({"event_type": "AUDIT_LOG_CREATED"})).unwrap_err();
    assert_eq!(err.path, "events[0].data");
    let err = decode_one(json!({"event_type": "AUDIT_LOG_CREATED", "data": []})).unwrap_err();
    assert_eq!(err.path, "events[0].data");
}

#[test]
fn other_webhook_events_are_not_audit_log_entries() {
    for event_type in ["FLAG_UPDATED", "FLAG_DELETED", "NEW_VERSION_PUBLISHED"] {
        let envelope = json!({"event_type": event_type, "data": {"new_state": null}});
        assert_eq!(decode(envelope, "events[0]").unwrap(), None, "{event_type}");
    }
    let err = decode(json!({"event_type": 1, "data": {}}), "events[0]").unwrap_err();
    assert_eq!(err.path, "events[0].event_type");
}

/// One documented case: the entry's type, its `log`, which ids are set, and
/// the event it must become.
struct Case {
    what: &'static str,
    related_object_type: &'static str,
    log: &'static str,
    related_object_id: Option<i64>,
    related_object_uuid: Option<&'static str>,
    noun: &'static str,
    action: &'static str,
}

const UUID: &str = "0b4e3f6c-1d0a-4f1e-9a38-4f3b3c1f6a52";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // "Audit Log Event Types" of the documentation, with the texts Flagsmith writes.
    Case { what: "new environment created", related_object_type: "ENVIRONMENT", log: "New Environment created: production", related_object_id: Some(12), related_object_uuid: None, noun: "environment", action: "created" },
    Case { what: "environment meta-data updated", related_object_type: "ENVIRONMENT", log: "Environment updated: production", related_object_id: Some(12), related_object_uuid: None, noun: "environment", action: "updated" },
    Case { what: "new flag created", related_object_type: "FEATURE", log: "New Flag / Remote Config created: my_feature", related_object_id: Some(6), related_object_uuid: None, noun: "feature", action: "created" },
    Case { what: "flag state changed", related_object_type: "FEATURE_STATE", log: "Flag state updated for feature: my_feature", related_object_id: Some(41), related_object_uuid: None, noun: "feature_state", action: "updated" },
    Case { what: "flag deleted", related_object_type: "FEATURE", log: "Flag / Remote Config Deleted: my_feature", related_object_id: Some(6), related_object_uuid: None, noun: "feature", action: "deleted" },
    Case { what: "multivariate flag state changed", related_object_type: "FEATURE_STATE", log: "Remote config value updated for feature: my_feature", related_object_id: Some(41), related_object_uuid: None, noun: "feature_state", action: "updated" },
    Case { what: "new version published (EF_VERSION: uuid only)", related_object_type: "EF_VERSION", log: "New version published for feature: my_feature", related_object_id: None, related_object_uuid: Some(UUID), noun: "ef_version", action: "created" },
    Case { what: "new segment created", related_object_type: "SEGMENT", log: "New Segment created: beta_users", related_object_id: Some(9), related_object_uuid: None, noun: "segment", action: "created" },
    Case { what: "segment rule updated", related_object_type: "SEGMENT", log: "Segment updated: beta_users", related_object_id: Some(9), related_object_uuid: None, noun: "segment", action: "updated" },
    Case { what: "segment condition added", related_object_type: "SEGMENT", log: "Segment rules updated for flag: my_feature in environment: production", related_object_id: Some(9), related_object_uuid: None, noun: "segment", action: "updated" },
    Case { what: "segment condition updated", related_object_type: "FEATURE_STATE", log: "Flag state / Remote config value updated for feature 'my_feature' and segment 'new users'", related_object_id: Some(41), related_object_uuid: None, noun: "feature_state", action: "updated" },
    Case { what: "segment overrides re-ordered", related_object_type: "FEATURE", log: "Segment overrides re-ordered for feature 'my_feature'.", related_object_id: Some(6), related_object_uuid: None, noun: "feature", action: "updated" },
    Case { what: "identity feature state overridden", related_object_type: "FEATURE_STATE", log: "Identity override created for feature 'my_feature' and identity 'deleted-user@example.com'", related_object_id: Some(44), related_object_uuid: None, noun: "feature_state", action: "created" },
    // The rest of the documented `related_object_type` values.
    Case { what: "segment deleted (both ids)", related_object_type: "SEGMENT", log: "Segment deleted: beta_users", related_object_id: Some(9), related_object_uuid: Some(UUID), noun: "segment", action: "deleted" },
    Case { what: "change request", related_object_type: "CHANGE_REQUEST", log: "Change Request: Enable my_feature approved", related_object_id: Some(3), related_object_uuid: None, noun: "change_request", action: "updated" },
    Case { what: "edge identity (uuid only)", related_object_type: "EDGE_IDENTITY", log: "Feature override deleted for feature 'my_feature' and identity 'user-42'", related_object_id: None, related_object_uuid: Some(UUID), noun: "edge_identity", action: "deleted" },
    Case { what: "import request", related_object_type: "IMPORT_REQUEST", log: "New import request: flags.json", related_object_id: Some(2), related_object_uuid: None, noun: "import_request", action: "created" },
    Case { what: "feature health", related_object_type: "FEATURE_HEALTH", log: "Feature health status updated for feature: my_feature", related_object_id: Some(5), related_object_uuid: None, noun: "feature_health", action: "updated" },
    Case { what: "release pipeline", related_object_type: "RELEASE_PIPELINE", log: "Feature: my_feature removed from Release Pipeline: weekly", related_object_id: Some(1), related_object_uuid: None, noun: "release_pipeline", action: "deleted" },
    // Newer values than the documentation lists are kept, lower-cased.
    Case { what: "a newer type", related_object_type: "WAREHOUSE_CONNECTION", log: "Warehouse connection created", related_object_id: Some(1), related_object_uuid: None, noun: "warehouse_connection", action: "created" },
    Case { what: "a type that is not a name", related_object_type: "Feature health status", log: "Health provider removed", related_object_id: None, related_object_uuid: None, noun: "feature_health_status", action: "deleted" },
];

fn entry(case: &Case) -> Value {
    let mut entry = documented();
    entry["id"] = json!(1000);
    entry["environment"] = json!({"id": 12, "name": "production", "api_key": "ser.abc"});
    entry["log"] = json!(case.log);
    entry["related_object_type"] = json!(case.related_object_type);
    entry["related_object_id"] = json!(case.related_object_id);
    entry["related_object_uuid"] = json!(case.related_object_uuid);
    entry
}

#[test]
fn every_documented_case_becomes_the_expected_event() {
    for case in CASES {
        let mapped = decode_one(entry(case)).unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let (event, _) = &mapped;
        assert_eq!(
            (event.event_type.as_str(), event.action.as_str()),
            (case.noun, case.action),
            "{}",
            case.what
        );
        assert_eq!(event.payload, entry(case), "{}: the whole entry", case.what);
        assert_eq!(event.timestamp, 1_582_479_057_006_318_000, "{}", case.what);
        assert_eq!(attribute(&mapped, AUDIT_ID), Some("1000"), "{}", case.what);
        assert_eq!(attribute(&mapped, FLAGSMITH_PROJECT_ID), Some("6"));
        assert_eq!(attribute(&mapped, FLAGSMITH_ENVIRONMENT_ID), Some("12"));
        assert_eq!(
            attribute(&mapped, FLAGSMITH_RELATED_OBJECT_ID),
            case.related_object_id.map(|id| id.to_string()).as_deref(),
            "{}",
            case.what
        );
        assert_eq!(
            attribute(&mapped, FLAGSMITH_RELATED_OBJECT_UUID),
            case.related_object_uuid,
            "{}",
            case.what
        );
        let line: Value = serde_json::from_str(&output_line(&mapped)).unwrap();
        assert_eq!(line["type"], case.noun, "{}", case.what);
        assert_eq!(line["action"], case.action, "{}", case.what);
        assert_eq!(line["metadata"]["actor"]["email"], "user@domain.com");
    }
}

#[test]
fn a_null_author_is_a_system_event() {
    let mut entry = documented();
    entry["author"] = Value::Null;
    let mapped = decode_one(entry.clone()).unwrap();
    let actor: Vec<_> = mapped.0.metadata.actor.fields().collect();
    assert_eq!(actor, [("authentication", "system")]);
    entry.as_object_mut().unwrap().remove("author");
    let absent = decode_one(entry).unwrap().0;
    assert_eq!(absent.metadata, mapped.0.metadata, "an absent author too");
}

#[test]
fn empty_author_fields_are_left_out() {
    let mut entry = documented();
    entry["author"] = json!({"id": 3, "email": "a@b.c", "first_name": "", "last_name": null,
                             "last_login": "2024-05-01T10:00:00Z", "uuid": UUID});
    let actor: Vec<_> = decode_one(entry)
        .unwrap()
        .0
        .metadata
        .actor
        .fields()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        actor,
        [("email".into(), "a@b.c".into()), ("id".into(), "3".into())]
    );
}

#[test]
fn a_field_the_mapping_reads_with_the_wrong_type_is_named() {
    let cases = [
        ("created_date", json!(null), "events[0].created_date"),
        ("log", json!(7), "events[0].log"),
        (
            "related_object_type",
            json!(""),
            "events[0].related_object_type",
        ),
        (
            "related_object_type",
            json!(null),
            "events[0].related_object_type",
        ),
        ("author", json!("kyle"), "events[0].author"),
        ("author", json!({"email": ["a"]}), "events[0].author.email"),
        ("project", json!(6), "events[0].project"),
        ("project", json!({"id": 6.5}), "events[0].project.id"),
        (
            "related_object_id",
            json!(true),
            "events[0].related_object_id",
        ),
        ("id", json!({}), "events[0].id"),
    ];
    for (field, value, path) in cases {
        let mut entry = documented();
        entry[field] = value.clone();
        let err = decode_one(entry).unwrap_err();
        assert_eq!(err.path, path, "{field} = {value}: {err}");
    }
    let err = decode_one(json!(["not", "an", "entry"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "events[0]: expected a JSON object (a Flagsmith audit-log entry), got an array"
    );
}

#[test]
fn unknown_fields_stay_in_the_payload() {
    let mut entry = documented();
    entry["change_type"] = json!("CREATE");
    let (event, _) = decode_one(entry).unwrap();
    assert_eq!(event.payload["change_type"], "CREATE");
}

#[test]
fn the_action_rule() {
    #[rustfmt::skip]
    let cases = [
        ("New Flag / Remote Config created: my_feature", "created"),
        ("new segment", "created"),
        ("Flag / Remote Config Deleted: my_feature", "deleted"),
        ("Feature: x removed from Release Pipeline: y", "deleted"),
        ("Change Request: launch created", "created"),
        ("Change Request: launch deleted", "deleted"),
        ("Change Request: launch committed", "updated"),
        ("Flag state updated for feature: new_checkout", "updated"),
        ("Flag state updated for feature: removed-banner", "updated"),
        ("Flag state / Remote config value updated for feature 'new' and identity 'deleted'", "updated"),
        ("Segment override created for feature 'deleted' and segment 'x'", "created"),
        ("Release Pipeline: weekly cloned", "updated"),
        ("", "updated"),
        ("NEW", "created"),
        ("Identity 'unterminated quote created", "updated"),
    ];
    for (log, action) in cases {
        assert_eq!(infer_action(log), action, "{log:?}");
    }
}

#[test]
fn nouns_are_lower_case_names() {
    assert_eq!(noun_for("FEATURE_STATE"), "feature_state");
    assert_eq!(noun_for("EF_VERSION"), "ef_version");
    assert_eq!(noun_for("Feature health status"), "feature_health_status");
    assert_eq!(noun_for("Ünïcode/Type"), "_n_code_type");
}
