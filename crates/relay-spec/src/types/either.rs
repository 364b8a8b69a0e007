//! Fields the format lets be written two ways: `true`/`false` or a mapping of settings
//! (`trajectories: false`, `network: {allow: [...]}`), a name or a mapping
//! (`permissions: readonly`, `permissions: {access: ...}`). Deserialised by hand rather
//! than as untagged enums so that a typo inside the mapping still gets an error at its
//! position naming the closest known field.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};

/// `true`, `false`, or a mapping of settings.
#[derive(Debug, Clone, PartialEq)]
pub enum BoolOr<T> {
    /// Written as a boolean.
    Bool(bool),
    /// Written as a mapping.
    Value(T),
}

/// A name, or a mapping of settings.
#[derive(Debug, Clone, PartialEq)]
pub enum NameOr<T> {
    /// Written as a name.
    Name(String),
    /// Written as a mapping.
    Value(T),
}

impl<T> BoolOr<T> {
    /// The settings, when given as a mapping.
    pub fn value(&self) -> Option<&T> {
        match self {
            BoolOr::Value(v) => Some(v),
            BoolOr::Bool(_) => None,
        }
    }

    /// Whether it is turned off: `false` (a mapping counts as on).
    pub fn is_off(&self) -> bool {
        matches!(self, BoolOr::Bool(false))
    }
}

impl<T> NameOr<T> {
    /// The name, when given as one.
    pub fn name(&self) -> Option<&str> {
        match self {
            NameOr::Name(n) => Some(n),
            NameOr::Value(_) => None,
        }
    }

    /// The settings, when given as a mapping.
    pub fn value(&self) -> Option<&T> {
        match self {
            NameOr::Value(v) => Some(v),
            NameOr::Name(_) => None,
        }
    }
}

struct BoolOrVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoolOrVisitor<T> {
    type Value = BoolOr<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true, false or a mapping")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(BoolOr::Bool(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(BoolOr::Value)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for BoolOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BoolOrVisitor(PhantomData))
    }
}

struct NameOrVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NameOrVisitor<T> {
    type Value = NameOr<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name or a mapping")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(NameOr::Name(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(NameOr::Value)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NameOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NameOrVisitor(PhantomData))
    }
}

impl<T: Serialize> Serialize for BoolOr<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BoolOr::Bool(b) => s.serialize_bool(*b),
            BoolOr::Value(v) => v.serialize(s),
        }
    }
}

impl<T: Serialize> Serialize for NameOr<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NameOr::Name(n) => s.serialize_str(n),
            NameOr::Value(v) => v.serialize(s),
        }
    }
}

impl<T: JsonSchema> JsonSchema for BoolOr<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("BooleanOr{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inner = generator.subschema_for::<T>();
        json_schema!({ "anyOf": [{ "type": "boolean" }, inner] })
    }
}

impl<T: JsonSchema> JsonSchema for NameOr<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("NameOr{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inner = generator.subschema_for::<T>();
        json_schema!({ "anyOf": [{ "type": "string" }, inner] })
    }
}
