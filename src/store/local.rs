//! Helpers for a Durable Object's own SQLite storage, shared by the hubs' logs: the `meta`
//! table (named integers such as the newest seq) and single-integer queries.
//!
//! SQLite storage calls are synchronous: nothing here yields.

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

/// The `meta` table: one integer per key.
pub const META_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

/// The schema version an object's storage records (`meta.schema`), or `None` for storage that
/// has none yet (new, or made before versions were recorded; also when `meta` does not exist).
/// One read: objects are constructed on every wake from hibernation, and running the whole
/// `CREATE … IF NOT EXISTS` batch each time was a measurable share of a connect.
pub fn schema_version(sql: &SqlStorage) -> Option<i64> {
    meta(sql, "schema").ok().flatten()
}

/// Creates what `schema` and `meta` describe (idempotent statements) and records `version`.
pub fn create_schema(sql: &SqlStorage, schema: &str, version: i64) -> worker::Result<()> {
    sql.exec(schema, None)?;
    sql.exec(META_SCHEMA, None)?;
    set_meta(sql, "schema", version)
}

#[derive(Deserialize)]
struct IntRow {
    value: Option<i64>,
}

/// The single integer a query selects `AS value`, if any row has one.
pub fn int(
    sql: &SqlStorage,
    query: &str,
    bindings: Vec<SqlStorageValue>,
) -> worker::Result<Option<i64>> {
    let rows: Vec<IntRow> = sql.exec(query, bindings)?.to_array()?;
    Ok(rows.into_iter().next().and_then(|row| row.value))
}

pub fn meta(sql: &SqlStorage, key: &str) -> worker::Result<Option<i64>> {
    int(
        sql,
        "SELECT value FROM meta WHERE key = ?",
        vec![key.into()],
    )
}

pub fn set_meta(sql: &SqlStorage, key: &str, value: i64) -> worker::Result<()> {
    sql.exec(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        vec![key.into(), value.into()],
    )?;
    Ok(())
}

pub fn clear_meta(sql: &SqlStorage, key: &str) -> worker::Result<()> {
    sql.exec("DELETE FROM meta WHERE key = ?", vec![key.into()])?;
    Ok(())
}
