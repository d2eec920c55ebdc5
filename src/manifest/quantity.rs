//! Quantities in manifests: memory sizes (`100Mi`), CPU counts (`0.5`) and
//! durations (`10s`). Each parses from a string (or a plain number) and
//! serializes to one canonical form so that spec hashes are stable.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written as `123`, `100k`, `100Ki`, `64M`, `64Mi`, `1G`, `1Gi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory(pub u64);

/// A CPU count, as Docker's `--cpus`: `0.5` is half a core.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cpus(pub f64);

/// A duration written as `10s`, `500ms`, `1m30s`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(pub String);

impl FromStr for Memory {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            QuantityError(format!("malformed memory quantity {s:?}: expected a number of bytes with an optional suffix k, Ki, M, Mi, G, Gi, T, Ti (e.g. 100Mi)"))
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, suffix) = t.split_at(split);
        if digits.is_empty() {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let mult: u64 = match suffix {
            "" => 1,
            "k" | "K" => 1000,
            "Ki" => 1 << 10,
            "M" => 1000 * 1000,
            "Mi" => 1 << 20,
            "G" => 1000 * 1000 * 1000,
            "Gi" => 1 << 30,
            "T" => 1000u64.pow(4),
            "Ti" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(Memory).ok_or_else(bad)
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (suffix, unit) in [("Ti", 1u64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if n != 0 && n.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", n / unit);
            }
        }
        write!(f, "{n}")
    }
}

impl FromStr for Cpus {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            QuantityError(format!(
                "malformed cpu quantity {s:?}: expected a positive number of cores such as 0.5 or 2"
            ))
        };
        let v: f64 = s.trim().parse().map_err(|_| bad())?;
        Cpus::new(v).ok_or_else(bad)
    }
}

impl Cpus {
    pub fn new(v: f64) -> Option<Cpus> {
        (v.is_finite() && v > 0.0 && v <= 1024.0).then_some(Cpus(v))
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Duration {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            QuantityError(format!(
                "malformed duration {s:?}: expected a number with a unit ms, s, m or h (e.g. 10s, 1m30s)"
            ))
        };
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total = std::time::Duration::ZERO;
        while !rest.is_empty() {
            let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
            let (num, tail) = rest.split_at(split);
            let value: f64 = num.parse().map_err(|_| bad())?;
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(unit_len);
            let secs = match unit {
                "ms" => value / 1000.0,
                "s" => value,
                "m" => value * 60.0,
                "h" => value * 3600.0,
                _ => return Err(bad()),
            };
            total += std::time::Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
            rest = next;
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}
impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Accepts a string or a number and hands its text to `FromStr`.
struct TextOrNumber<T>(std::marker::PhantomData<T>, &'static str);

impl<T: FromStr<Err = QuantityError>> Visitor<'_> for TextOrNumber<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|e: QuantityError| E::custom(e.0))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber(
            std::marker::PhantomData,
            "a memory quantity such as 100Mi",
        ))
    }
}
impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber(std::marker::PhantomData, "a cpu count such as 0.5"))
    }
}
impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber(std::marker::PhantomData, "a duration such as 10s"))
    }
}

impl JsonSchema for Memory {
    fn schema_name() -> Cow<'static, str> {
        "Memory".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "bytes, or a number with a suffix k, Ki, M, Mi, G, Gi, T, Ti",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(k|K|Ki|M|Mi|G|Gi|T|Ti)?$"}
            ]
        })
    }
}
impl JsonSchema for Cpus {
    fn schema_name() -> Cow<'static, str> {
        "Cpus".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "CPU cores, e.g. 0.5",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": "^[0-9]*\\.?[0-9]+$"}
            ]
        })
    }
}
impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "a duration such as 10s, 500ms, 1m30s",
            "type": "string",
            "pattern": "^([0-9]*\\.?[0-9]+(ms|s|m|h))+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_suffixes_parse_to_bytes() {
        assert_eq!("100Mi".parse::<Memory>().unwrap().0, 100 << 20);
        assert_eq!("1G".parse::<Memory>().unwrap().0, 1_000_000_000);
        assert_eq!("512".parse::<Memory>().unwrap().0, 512);
        assert!("100MB".parse::<Memory>().is_err());
        assert!("Mi".parse::<Memory>().is_err());
        assert!("-5".parse::<Memory>().is_err());
    }

    #[test]
    fn durations_parse_compound_forms() {
        assert_eq!("1m30s".parse::<Duration>().unwrap().0.as_secs(), 90);
        assert_eq!("500ms".parse::<Duration>().unwrap().0.as_millis(), 500);
        assert!("10".parse::<Duration>().is_err());
        assert!("10x".parse::<Duration>().is_err());
    }

    #[test]
    fn cpus_must_be_positive() {
        assert!("0".parse::<Cpus>().is_err());
        assert_eq!("0.5".parse::<Cpus>().unwrap().0, 0.5);
    }

    #[test]
    fn canonical_forms_round_trip() {
        let m: Memory = "1024Ki".parse().unwrap();
        assert_eq!(m.to_string(), "1Mi");
        let d: Duration = "90s".parse().unwrap();
        assert_eq!(d.to_string(), "90s");
    }
}
