//! User variables: `--var KEY=VALUE` pairs and `--vars-file FILE` (YAML or JSON mapping).

use std::collections::BTreeMap;
use std::path::Path;

/// Why variables could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    /// A `--var` argument without `=`.
    #[error("--var `{0}` is not of the form KEY=VALUE")]
    NotKeyValue(String),
    /// A `--var` with an empty key.
    #[error("--var `{0}` has an empty key")]
    EmptyKey(String),
    /// `--input` is not a JSON object.
    #[error("--input is not a JSON object of variables: {0}")]
    Input(String),
    /// The vars file could not be read.
    #[error("cannot read vars file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Parses one `KEY=VALUE` argument.
pub fn parse_var(arg: &str) -> Result<(String, String), VarsError> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| VarsError::NotKeyValue(arg.to_string()))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(VarsError::EmptyKey(arg.to_string()));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Reads a YAML or JSON mapping of variable names to scalar values.
pub fn read_vars_file(path: &Path) -> Result<BTreeMap<String, String>, VarsError> {
    let err = |reason: String| VarsError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    // JSON is a subset of YAML, so one parser reads both.
    let map: BTreeMap<String, crate::types::Scalar> =
        serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?;
    Ok(map.into_iter().map(|(k, v)| (k, v.as_text())).collect())
}

/// Reads `--input`: a JSON object (`{"k": "v"}`), or `@FILE` holding one. Text values are
/// taken as they are; numbers, booleans, lists and objects as their JSON text (a list
/// feeds a `loop.over: "{{name}}"`).
pub fn parse_input(arg: &str) -> Result<BTreeMap<String, String>, VarsError> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| VarsError::File {
            path: path.to_string(),
            reason: e.to_string(),
        })?,
        None => arg.to_string(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| VarsError::Input(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(VarsError::Input(format!(
            "it is {}",
            match value {
                serde_json::Value::Array(_) => "a list",
                serde_json::Value::String(_) => "a text",
                serde_json::Value::Null => "null",
                _ => "a single value",
            }
        )));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if k.trim().is_empty() {
            return Err(VarsError::Input("a key is empty".into()));
        }
        let v = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_a_json_object_inline_or_from_a_file() {
        let m = parse_input(r#"{"k": "v", "n": 2, "files": ["a", "b"]}"#).unwrap();
        assert_eq!(m["k"], "v");
        assert_eq!(m["n"], "2");
        assert_eq!(m["files"], r#"["a","b"]"#);
        let e = parse_input("[1]").unwrap_err().to_string();
        assert!(e.contains("a list"), "{e}");
        assert!(parse_input("{nope").is_err());
        let dir = std::env::temp_dir().join(format!("relay-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("in.json");
        std::fs::write(&f, r#"{"from": "file"}"#).unwrap();
        assert_eq!(
            parse_input(&format!("@{}", f.display())).unwrap()["from"],
            "file"
        );
        let e = parse_input("@/nonexistent/in.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/in.json"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn var_splits_at_the_first_equals() {
        assert_eq!(parse_var("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(matches!(parse_var("nope"), Err(VarsError::NotKeyValue(_))));
        assert!(matches!(parse_var("=x"), Err(VarsError::EmptyKey(_))));
    }

    #[test]
    fn vars_file_reads_yaml_and_json() {
        let dir = std::env::temp_dir().join(format!("relay-vars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let y = dir.join("v.yaml");
        std::fs::write(&y, "task: Add OAuth\nretries: 3\n").unwrap();
        let j = dir.join("v.json");
        std::fs::write(&j, r#"{"base": "main", "n": 1.5}"#).unwrap();
        let vy = read_vars_file(&y).unwrap();
        assert_eq!(vy["task"], "Add OAuth");
        assert_eq!(vy["retries"], "3");
        let vj = read_vars_file(&j).unwrap();
        assert_eq!(vj["base"], "main");
        assert!(read_vars_file(&dir.join("missing.yaml")).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[cfg(test)]
mod default_tests {
    #[test]
    fn declared_defaults_fill_in_and_given_values_win() {
        let l = crate::parse(
            "name: t\nvariables:\n  base: {default: main}\n  n: {default: 3}\n  task: {description: what}\n",
            "w.yaml",
        )
        .unwrap();
        let given = std::collections::BTreeMap::from([("n".to_string(), "7".to_string())]);
        let vars = l.file.vars_with_defaults(&given);
        assert_eq!(vars["base"], "main");
        assert_eq!(vars["n"], "7");
        assert!(!vars.contains_key("task"), "no default, nothing invented");
    }
}
