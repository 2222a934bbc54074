//! Reading provider payloads: a JSON object parsed sparsely (only the fields
//! a provider reads are built), lenient string and time accessors. The
//! receive path's parse is most of its cost, hence the hand-written reader.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use super::ProviderError;

/// Parses a JSON body that must be an object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ProviderError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ProviderError::invalid_payload("the body must be a JSON object")),
        Err(e) => Err(ProviderError::invalid_payload(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// Parses a JSON object body keeping only the values at `paths` (`"a/b"` is
/// key `b` of the object at key `a`; a kept value is kept whole). The whole
/// body is still checked to be JSON, but everything else is skipped without
/// being built: providers read a handful of fields from payloads of a few
/// kilobytes to megabytes, and building the full tree was most of the cost of
/// receiving a notification. Arrays on the way to a path are not descended
/// into (kept as empty). Errors are worded as [`json_object`]'s.
pub fn json_object_sparse(body: &[u8], paths: &[&str]) -> Result<serde_json::Map<String, Value>, ProviderError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = serde::de::DeserializeSeed::deserialize(Sparse(paths), &mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    // Worded here rather than by a second, full parse: that built the whole
    // tree of a large body that is valid JSON but not an object.
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ProviderError::invalid_payload("the body must be a JSON object")),
        Err(e) => Err(ProviderError::invalid_payload(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// A kept value, with numbers exactly as written: an integer that fits 64
/// bits stays a number, any other number (beyond `u64`, a fraction, an
/// exponent) becomes its own text, never rounded through `f64` (an event id
/// `18446744073709551617` and `18446744073709551618` are two events).
fn exact_value<E: serde::de::Error>(raw: &serde_json::value::RawValue) -> Result<Value, E> {
    let text = raw.get();
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::from(n));
        }
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Value::from(n));
        }
        return Ok(Value::String(text.to_owned()));
    }
    serde_json::from_str(text).map_err(E::custom)
}

/// The paths still wanted below the current value.
struct Sparse<'p>(&'p [&'p str]);

impl<'de> serde::de::DeserializeSeed<'de> for Sparse<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Sparse<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let key = key.as_ref();
            if self.0.contains(&key) {
                let raw: &serde_json::value::RawValue = map.next_value()?;
                kept.insert(key.to_owned(), exact_value(raw)?);
                continue;
            }
            let below: Vec<&str> = self
                .0
                .iter()
                .filter_map(|path| path.strip_prefix(key)?.strip_prefix('/'))
                .collect();
            if below.is_empty() {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else {
                kept.insert(key.to_owned(), map.next_value_seed(Sparse(&below))?);
            }
        }
        Ok(Value::Object(kept))
    }
}

/// An object key, borrowed from the body unless it has escapes.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// A non-empty string at `pointer` (e.g. `/event/id`); numbers are accepted as
/// ids since providers are not always consistent.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<Cow<'a, str>> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// Parses a provider timestamp: RFC 3339 with any number of fractional digits
/// (FuseSign sends seven), a zone-less ISO-8601 time taken as UTC, or unix
/// seconds (BoldSign).
pub fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|secs| DateTime::from_timestamp(secs, 0)),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(secs) = s.parse::<i64>() {
                return DateTime::from_timestamp(secs, 0);
            }
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f%z",
                "%Y-%m-%dT%H:%M:%S%.f%#z",
            ]
            .iter()
            .find_map(|format| {
                DateTime::parse_from_str(s, format)
                    .map(|t| t.with_timezone(&Utc))
                    .ok()
                    .or_else(|| NaiveDateTime::parse_from_str(s, format).ok().map(|t| t.and_utc()))
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sparse_parsing_keeps_exactly_the_wanted_paths() {
        let body = br#"{"id":"e1","skip":{"deep":[1,{"x":2}],"s":"a\"b"},"obj":{"id":7,"name":null,"big":[1,2,3],
                        "inner":{"status":"SIGNED","other":true}},"esc\u0061ped":"yes","arr":[{"id":"no"}],
                        "whole":{"a":[1,2],"b":{"c":3}},"prim":"not an object","id":"e2"}"#;
        let paths = [
            "id",
            "obj/id",
            "obj/name",
            "obj/inner/status",
            "escaped",
            "arr/id",
            "whole",
            "prim/id",
            "gone",
        ];
        let sparse = Value::Object(json_object_sparse(body, &paths).expect("valid object"));
        assert_eq!(
            sparse,
            json!({
                "id": "e2",
                "obj": {"id": 7, "name": null, "inner": {"status": "SIGNED"}},
                "escaped": "yes",
                "arr": [],
                "whole": {"a": [1, 2], "b": {"c": 3}},
                "prim": "not an object",
            })
        );
        // The kept values are the full parse's.
        let full = Value::Object(json_object(body).expect("valid object"));
        for pointer in ["/id", "/obj/id", "/obj/inner/status", "/whole", "/prim"] {
            assert_eq!(sparse.pointer(pointer), full.pointer(pointer), "{pointer}");
        }
    }

    #[test]
    fn numbers_are_kept_exactly_as_written() {
        let body = br#"{"a": 18446744073709551617, "b": 18446744073709551618, "c": -42, "d": 18446744073709551615,
                        "e": 1.50, "f": 42.5e400, "g": "s", "h": {"x": 1}}"#;
        let kept =
            Value::Object(json_object_sparse(body, &["a", "b", "c", "d", "e", "f", "g", "h"]).expect("an object"));
        assert_eq!(
            kept,
            json!({"a": "18446744073709551617", "b": "18446744073709551618", "c": -42, "d": u64::MAX,
                   "e": "1.50", "f": "42.5e400", "g": "s", "h": {"x": 1}})
        );
        assert_eq!(str_at(&kept, "/a").as_deref(), Some("18446744073709551617"));
        assert_eq!(str_at(&kept, "/c").as_deref(), Some("-42"));
    }

    #[test]
    fn sparse_parsing_words_errors_as_the_full_parser() {
        for body in [
            &b"[1,2]"[..],
            b"\"text\"",
            b"{\"id\": ",
            b"{\"id\":1} trailing",
            b"\xff",
            b"",
        ] {
            let sparse = json_object_sparse(body, &["id"]).map_err(|e| e.to_string());
            let full = json_object(body).map_err(|e| e.to_string());
            assert!(sparse.is_err(), "{body:?}");
            assert_eq!(sparse, full, "{body:?}");
        }
    }

    #[test]
    fn parses_provider_timestamps() {
        let cases = [
            (json!("2026-11-20T09:41:27Z"), "2026-11-20T09:41:27+00:00"),
            (
                json!("2020-09-14T03:54:07.2844251Z"),
                "2020-09-14T03:54:07.284425100+00:00",
            ),
            (
                json!("2020-09-14T03:54:07.2844251"),
                "2020-09-14T03:54:07.284425100+00:00",
            ),
            (json!("2026-11-20T10:41:27+01:00"), "2026-11-20T09:41:27+00:00"),
            (json!("2026-11-20T09:41:27.000-0000"), "2026-11-20T09:41:27+00:00"),
            (json!(1763631687), "2025-11-20T09:41:27+00:00"),
            (json!("1763631687"), "2025-11-20T09:41:27+00:00"),
        ];
        for (input, expected) in cases {
            let parsed = parse_time(&input).unwrap_or_else(|| panic!("{input} parses"));
            assert_eq!(parsed.to_rfc3339(), expected, "{input}");
        }
        for bad in [json!("yesterday"), json!(null), json!({}), json!(""), json!(1e300)] {
            assert_eq!(parse_time(&bad), None, "{bad}");
        }
    }
}
