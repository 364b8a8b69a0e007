//! The JSON Schema of relay.yaml, generated from the types so it cannot drift from them.

use serde_json::{Value, json};

/// The JSON Schema describing a relay.yaml file.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(crate::types::RelayFile);
    let mut v = serde_json::to_value(schema).unwrap_or(Value::Null);
    allow_custom_step_parameters(&mut v);
    add_aliases(&mut v);
    v
}

/// Spellings the loader accepts besides the canonical one, which the derived schema
/// does not list.
fn add_aliases(schema: &mut Value) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(mut p) = props.get("permission_profiles").cloned() {
        p["description"] = json!("The same as `permission_profiles`.");
        props.insert("permissionProfiles".into(), p);
    }
}

/// The JSON Schema of a `.relay/steps.yaml` file of custom steps.
pub fn custom_steps_schema() -> Value {
    let schema = schemars::schema_for!(crate::custom_steps::CustomStepsFile);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// A step with `use` takes its custom step's parameters as further keys, which the
/// derived schema (every other key refused) cannot say: a step is either a step as
/// derived, or one with `use` whose further keys are single values.
fn allow_custom_step_parameters(schema: &mut Value) {
    let Some(step) = schema.pointer_mut("/$defs/Step") else {
        return;
    };
    let strict = step.clone();
    let mut using = strict.clone();
    using["required"] = json!(["name", "use"]);
    using["additionalProperties"] = json!({ "type": ["string", "number", "boolean"] });
    let description = strict.get("description").cloned().unwrap_or(Value::Null);
    *step = json!({ "description": description, "anyOf": [strict, using] });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(doc: Value) -> bool {
        jsonschema::validator_for(&json_schema())
            .expect("the schema compiles")
            .is_valid(&doc)
    }

    #[test]
    fn steps_take_extra_keys_only_with_use() {
        let with =
            |step: Value| json!({"name": "x", "workflows": [{"name": "w", "steps": [step]}]});
        assert!(valid(with(
            json!({"name": "a", "use": "run-check", "check": "lint"})
        )));
        assert!(!valid(with(
            json!({"name": "a", "use": "run-check", "check": {"nested": 1}})
        )));
        assert!(!valid(with(
            json!({"name": "a", "agent": "x", "task": "t", "dependOn": []})
        )));
        assert!(valid(with(
            json!({"name": "a", "type": "waitFor", "waitFor": {"path": "p"}})
        )));
    }

    #[test]
    fn fields_are_described() {
        let s = json_schema();
        let agent = &s["$defs"]["Agent"]["properties"];
        for field in [
            "permissions",
            "workdir",
            "additionalPaths",
            "watch",
            "subscriptions",
        ] {
            assert!(agent[field]["description"].is_string(), "agents[].{field}");
        }
        assert!(s["properties"]["permission_profiles"]["description"].is_string());
        let steps = custom_steps_schema();
        assert!(steps["$defs"]["CustomStepDef"]["properties"]["params"].is_object());
    }
}
