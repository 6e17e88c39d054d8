//! JSON values ⇄ OTLP `AnyValue`.
//!
//! Objects become `kvlistValue`, arrays `arrayValue`, integers that fit an
//! `i64` `intValue`, other numbers `doubleValue`, `null` an empty `AnyValue`.
//! The conversion is lossless for JSON that came from [`json_to_any`];
//! `bytesValue` (which JSON cannot carry) becomes a base64 string.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
};
use serde_json::{Map, Number, Value as Json};

use crate::view::AnyValueView;

/// Converts a JSON value into an OTLP `AnyValue`.
pub fn json_to_any(json: &Json) -> AnyValue {
    let value = match json {
        Json::Null => None,
        Json::Bool(b) => Some(Value::BoolValue(*b)),
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Json::String(s) => Some(Value::StringValue(s.clone())),
        Json::Array(items) => Some(Value::ArrayValue(ArrayValue {
            values: items.iter().map(json_to_any).collect(),
        })),
        Json::Object(map) => Some(Value::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(json_to_any(v)),
                    key_strindex: 0,
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// Converts an OTLP `AnyValue` into JSON.
pub fn any_to_json(any: &AnyValue) -> Json {
    value_to_json(any.value.as_ref())
}

/// Converts the inner value of an `AnyValue` (absent = `null`) into JSON.
pub fn value_to_json(value: Option<&Value>) -> Json {
    match value {
        // A profiling-only string-table reference means nothing in logs: treated as absent.
        None | Some(Value::StringValueStrindex(_)) => Json::Null,
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => Json::Number(Number::from(*i)),
        // Non-finite doubles have no JSON form.
        Some(Value::DoubleValue(d)) => Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::BytesValue(b)) => Json::String(base64(b)),
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(any_to_json).collect()),
        Some(Value::KvlistValue(kv)) => Json::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        value_to_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect::<Map<String, Json>>(),
        ),
    }
}

/// The string form of an attribute value: strings as they are, scalars in
/// their JSON spelling, structures as compact JSON.
pub fn value_to_string(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        other => value_to_json(other).to_string(),
    }
}

/// Converts a borrowed [`AnyValueView`] into JSON, as [`value_to_json`] does
/// for owned values.
pub fn view_to_json(value: AnyValueView<'_>) -> Json {
    match value {
        AnyValueView::Empty => Json::Null,
        AnyValueView::Bool(b) => Json::Bool(b),
        AnyValueView::Int(i) => Json::Number(Number::from(i)),
        AnyValueView::Double(d) => Number::from_f64(d).map_or(Json::Null, Json::Number),
        AnyValueView::String(s) => Json::String(s.to_owned()),
        AnyValueView::Bytes(b) => Json::String(base64(b)),
        AnyValueView::Array(a) => Json::Array(a.values().map(view_to_json).collect()),
        AnyValueView::Kvlist(kv) => Json::Object(
            kv.values()
                .map(|kv| (kv.key.to_owned(), view_to_json(kv.value)))
                .collect::<Map<String, Json>>(),
        ),
    }
}

/// The string form of a borrowed attribute value, as [`value_to_string`].
pub fn view_to_string(value: AnyValueView<'_>) -> String {
    match value {
        AnyValueView::String(s) => s.to_owned(),
        other => view_to_json(other).to_string(),
    }
}

/// Standard base64 with padding: how JSON output carries `bytesValue`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_become_kvlists_in_order() {
        let any = json_to_any(&json!({"b": 1, "a": "x"}));
        let Some(Value::KvlistValue(kv)) = any.value else {
            panic!("not a kvlist")
        };
        assert_eq!(kv.values[0].key, "b");
        assert_eq!(kv.values[1].key, "a");
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert_eq!(json_to_any(&json!(7)).value, Some(Value::IntValue(7)));
        assert_eq!(
            json_to_any(&json!(1.5)).value,
            Some(Value::DoubleValue(1.5))
        );
        assert_eq!(any_to_json(&json_to_any(&json!(2.0))).to_string(), "2.0");
    }

    #[test]
    fn null_is_an_empty_any_value() {
        assert_eq!(json_to_any(&Json::Null).value, None);
        assert_eq!(any_to_json(&AnyValue { value: None }), Json::Null);
    }

    #[test]
    fn bytes_become_base64() {
        let any = AnyValue {
            value: Some(Value::BytesValue(b"hello".to_vec())),
        };
        assert_eq!(any_to_json(&any), json!("aGVsbG8="));
    }

    #[test]
    fn nested_structures_round_trip() {
        let v = json!({"a": [1, {"b": null, "c": [true, "s", -3.25]}], "d": {}});
        assert_eq!(any_to_json(&json_to_any(&v)), v);
    }
}
