//! Binding values for D1 statements, and reading the values it answers.
//!
//! D1 takes JavaScript values. workers-rs binds Rust integers as 32-bit, which would cut unix
//! milliseconds, so integers go through `f64` here (exact up to 2^53, far beyond any seq or time).

use serde::{Deserialize, Deserializer};
use wasm_bindgen::JsValue;
use worker::{D1Database, Env};

use crate::error::ApiError;
use crate::message::Content;

/// The D1 binding.
pub fn db(env: &Env) -> Result<D1Database, ApiError> {
    Ok(env.d1("DB")?)
}

pub fn int(value: i64) -> JsValue {
    JsValue::from_f64(value as f64)
}

pub fn opt_int(value: Option<i64>) -> JsValue {
    value.map_or(JsValue::NULL, int)
}

pub fn text(value: &str) -> JsValue {
    JsValue::from_str(value)
}

pub fn opt_text(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from_str)
}

/// A message's content as the six columns `type, body, url, title, data, client_id`, in that
/// order (room and direct message tables both have them).
pub fn content_columns(content: &Content) -> [JsValue; 6] {
    let data = crate::message::data_column(&content.data);
    [
        text(&content.kind),
        text(&content.body),
        opt_text(content.url.as_deref()),
        opt_text(content.title.as_deref()),
        opt_text(data.as_deref()),
        opt_text(content.client_id.as_deref()),
    ]
}

/// A 0/1 column read as a bool (D1 answers SQLite's integers as numbers).
pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(deserializer)? != 0)
}

/// True when a D1 error is a UNIQUE or PRIMARY KEY violation (a conflict, not a failure).
pub fn is_conflict(err: &worker::Error) -> bool {
    err.to_string().contains("UNIQUE constraint failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Row {
        #[serde(deserialize_with = "flag")]
        set: bool,
    }

    #[test]
    fn flags_read_integers() {
        let read = |raw: &str| serde_json::from_str::<Row>(raw).map(|row| row.set);
        assert!(!read(r#"{"set":0}"#).unwrap());
        assert!(read(r#"{"set":1}"#).unwrap());
        assert!(read(r#"{"set":"1"}"#).is_err());
    }
}
