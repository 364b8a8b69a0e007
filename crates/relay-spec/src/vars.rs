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
    let map: BTreeMap<String, serde_saphyr::Spanned<VarValue>> =
        serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let not = match v.value {
            VarValue::Scalar(s) => {
                out.insert(k, s.as_text());
                continue;
            }
            VarValue::List => "a list",
            VarValue::Mapping => "a mapping",
            VarValue::Null => "null (no value)",
        };
        let at = crate::diagnostic::Pos::from_location(&v.referenced)
            .map(|p| format!(" (line {}, column {})", p.line, p.column))
            .unwrap_or_default();
        return Err(err(format!(
            "variable `{}`{at} must be a string, number or boolean, not {not}",
            crate::suggest::shown(&k)
        )));
    }
    Ok(out)
}

/// A value of a vars file: a scalar, or what a variable cannot be (told apart so the
/// message can say which).
enum VarValue {
    Scalar(crate::types::Scalar),
    List,
    Mapping,
    Null,
}

impl<'de> serde::Deserialize<'de> for VarValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::types::Scalar;
        use serde::de::{IgnoredAny, MapAccess, SeqAccess};
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = VarValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<VarValue, E> {
                Ok(VarValue::Scalar(Scalar::Text(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<VarValue, E> {
                Ok(VarValue::Scalar(Scalar::Text(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<VarValue, E> {
                Ok(VarValue::Scalar(Scalar::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<VarValue, E> {
                Ok(VarValue::Scalar(Scalar::Int(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<VarValue, E> {
                Ok(VarValue::Scalar(match i64::try_from(v) {
                    Ok(i) => Scalar::Int(i),
                    Err(_) => Scalar::Text(v.to_string()),
                }))
            }
            fn visit_f64<E>(self, v: f64) -> Result<VarValue, E> {
                Ok(VarValue::Scalar(Scalar::Float(v)))
            }
            fn visit_unit<E>(self) -> Result<VarValue, E> {
                Ok(VarValue::Null)
            }
            fn visit_none<E>(self) -> Result<VarValue, E> {
                Ok(VarValue::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<VarValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(VarValue::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VarValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(VarValue::Mapping)
            }
        }
        d.deserialize_any(V)
    }
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

    #[test]
    fn a_vars_file_value_that_is_no_scalar_is_named_with_what_it_is() {
        let dir = std::env::temp_dir().join(format!("relay-vars-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("v.yaml");
        let cases = [
            (
                "base: main\nfeature: [1, {a: 2}]\n",
                "a list",
                "line 2, column 10",
            ),
            ("feature: {a: 2}\n", "a mapping", "line 1, column 10"),
            ("feature: ~\n", "null (no value)", "line 1, column 10"),
            (r#"{"feature": [1]}"#, "a list", "line 1"),
        ];
        for (text, what, at) in cases {
            std::fs::write(&f, text).unwrap();
            let e = read_vars_file(&f).unwrap_err().to_string();
            assert!(
                e.ends_with(&format!(
                    "variable `feature` ({at}) must be a string, number or boolean, not {what}"
                )) || (at == "line 1"
                    && e.contains(&format!("must be a string, number or boolean, not {what}"))),
                "{e}"
            );
            assert!(!e.contains("untagged"), "{e}");
        }
        std::fs::write(&f, "big: 18446744073709551615\nf: 1.5\nyes: true\n").unwrap();
        let v = read_vars_file(&f).unwrap();
        assert_eq!(
            (v["big"].as_str(), v["f"].as_str(), v["yes"].as_str()),
            ("18446744073709551615", "1.5", "true")
        );
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
