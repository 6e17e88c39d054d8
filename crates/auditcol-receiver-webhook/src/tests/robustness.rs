//! Fuzz-style robustness: random bytes, truncated bodies and random JSON
//! never panic — each is accepted or refused with a 4xx — and the server
//! keeps serving.

use proptest::prelude::*;

use super::*;
use crate::body::BodyKind;
use crate::decode::decode_request;

const FORMATS: [Format; 2] = [Format::Audit, Format::Flagsmith];
const KINDS: [BodyKind; 2] = [BodyKind::Json, BodyKind::Ndjson];

/// Decodes `body` every way, and the events into a batch as the receiver
/// does; only panics are failures.
fn decode_every_way(body: &[u8]) {
    for format in FORMATS {
        for kind in KINDS {
            if let Ok(decoded) = decode_request(format, kind, body) {
                let _ = LogBatch::try_from_events_with_attributes(
                    "fuzz",
                    decoded
                        .events
                        .iter()
                        .map(|e| (&e.event, e.attributes.iter().map(|(k, v)| (*k, v.as_str())))),
                );
            }
        }
    }
}

/// Bodies close to valid ones: each example, and each of its prefixes.
fn examples() -> Vec<String> {
    vec![
        flipt_event("flipt", "2024-05-01T10:00:00Z"),
        flagsmith_envelope(1, "New Flag / Remote Config created: my_feature"),
        format!(
            "[{},{}]",
            flipt_event("a", "2024-05-01T10:00:00Z"),
            flipt_event("b", "2024-05-01T10:00:00.123456789+02:00")
        ),
    ]
}

#[test]
fn every_truncation_of_a_valid_body_is_decoded_or_refused() {
    for example in examples() {
        for end in 0..=example.len() {
            decode_every_way(&example.as_bytes()[..end]);
        }
    }
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        Just(json!("2024-05-01T10:00:00Z")),
        Just(json!("AUDIT_LOG_CREATED")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("version".to_owned()),
                        Just("type".to_owned()),
                        Just("action".to_owned()),
                        Just("timestamp".to_owned()),
                        Just("metadata".to_owned()),
                        Just("actor".to_owned()),
                        Just("payload".to_owned()),
                        Just("event_type".to_owned()),
                        Just("data".to_owned()),
                        Just("author".to_owned()),
                        Just("created_date".to_owned()),
                        Just("related_object_type".to_owned()),
                        Just("log".to_owned()),
                        Just("id".to_owned()),
                        Just("project".to_owned()),
                        ".{0,6}",
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kvs| serde_json::Value::Object(kvs.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_every_way(&body);
    }

    #[test]
    fn random_json_never_panics(value in any_json()) {
        decode_every_way(value.to_string().as_bytes());
        decode_every_way(format!("[{value},{value}]").as_bytes());
    }

    #[test]
    fn a_valid_body_with_one_byte_changed_never_panics(
        which in 0usize..3, at in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let mut body = examples()[which].clone().into_bytes();
        let i = at.index(body.len());
        body[i] = byte;
        decode_every_way(&body);
    }
}

#[tokio::test]
async fn the_server_answers_every_truncated_body_and_keeps_serving() {
    let running = start(json!({"format": "flagsmith"})).await;
    let body = flagsmith_envelope(1, "New Segment created: beta");
    for end in (0..body.len()).step_by(7) {
        let reply = post_json(&running, &body.as_bytes()[..end]).await;
        assert!(
            reply.status == StatusCode::BAD_REQUEST,
            "{end}: {} {}",
            reply.status,
            reply.text()
        );
        assert!(!reply.error().is_empty());
    }
    assert!(running.consumer.batches().is_empty());
    assert_still_serves(&running).await;
}
