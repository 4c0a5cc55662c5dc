//! Settings that are on by default and can be turned off. Off is written `false`:
//! TOML has no null, and a missing key means the default, which is on.
//!
//! Each reads a value, or `false` or null (JSON's `null`, YAML's `~`) for off, and
//! writes `false` for off, so that what is written reads back the same in every format.

use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// An `Option<Duration>` whose `None` is written `false`: a human duration (`"60s"`),
/// or `false` or null for none.
pub(super) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => humantime_serde::serialize(d, s),
            None => s.serialize_bool(false),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        d.deserialize_any(Off::<Duration>::new("a duration such as \"60s\""))
    }
}

/// An `Option<T>` for a table `T` whose `None` is written `false`: a table, `true` for
/// `T::default()`, or `false` or null for none.
pub(super) mod table {
    use super::*;

    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => t.serialize(s),
            None => s.serialize_bool(false),
        }
    }

    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: DeserializeOwned + Default,
        D: Deserializer<'de>,
    {
        let table =
            d.deserialize_any(Off::<Table<T>>::new("a table (or true for the defaults)"))?;
        Ok(table.map(|Table(t)| t))
    }
}

/// Reads `false` and null as `None`, and the rest as `T`.
struct Off<T> {
    what: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<T> Off<T> {
    fn new(what: &'static str) -> Self {
        Off {
            what,
            _t: PhantomData,
        }
    }
}

/// What [`Off`] reads besides `false` and null; anything not overridden is refused.
trait OffValue: Sized {
    fn from_str<E: de::Error>(v: &str, expected: &dyn de::Expected) -> Result<Self, E> {
        Err(E::invalid_type(de::Unexpected::Str(v), expected))
    }

    fn from_true<E: de::Error>(expected: &dyn de::Expected) -> Result<Self, E> {
        Err(E::invalid_type(de::Unexpected::Bool(true), expected))
    }

    fn from_map<'de, A: MapAccess<'de>>(
        map: A,
        expected: &dyn de::Expected,
    ) -> Result<Self, A::Error> {
        let _ = map;
        Err(de::Error::invalid_type(de::Unexpected::Map, expected))
    }
}

impl OffValue for Duration {
    fn from_str<E: de::Error>(v: &str, _: &dyn de::Expected) -> Result<Self, E> {
        // The same parser, and so the same error, as every other duration.
        humantime_serde::deserialize(IntoDeserializer::<E>::into_deserializer(v))
    }
}

/// A table read from a map, or `T::default()` from `true`.
struct Table<T>(T);

impl<T: DeserializeOwned + Default> OffValue for Table<T> {
    fn from_true<E: de::Error>(_: &dyn de::Expected) -> Result<Self, E> {
        Ok(Table(T::default()))
    }

    fn from_map<'de, A: MapAccess<'de>>(map: A, _: &dyn de::Expected) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Table)
    }
}

impl<'de, T: OffValue> Visitor<'de> for Off<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, or false (or null) for none", self.what)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        if v {
            T::from_true(&self).map(Some)
        } else {
            Ok(None)
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        T::from_str(v, &self).map(Some)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_map(map, &self).map(Some)
    }
}
