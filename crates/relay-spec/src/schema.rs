//! The JSON Schema of relay.yaml, generated from the types so it cannot drift from them.

/// The JSON Schema describing a relay.yaml file.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(crate::types::RelayFile);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}
