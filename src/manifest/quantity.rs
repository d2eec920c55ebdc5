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

/// The memory plus swap limit, as Docker's `--memory-swap`: a size, or
/// `unlimited` (Docker's `-1`, also accepted) for unlimited swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemorySwap {
    Unlimited,
    Limit(Memory),
}

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

/// Docker's sizes for flags (`--memory=100m`, `--device-read-bps=1mb`), as
/// its `units.RAMInBytes`: a number (a fraction allowed), an optional space,
/// an optional unit `b`, `k`, `m`, `g`, `t`, `p` in either case, binary
/// (`m` is 2^20), optionally followed by `i` and/or `b`, so `100Mi` and
/// `100MB` are Docker's 100 MiB too. Manifests keep Kubernetes quantities
/// ([`Memory`]), where `M` is 10^6: this is for flags only.
pub fn parse_docker_size(text: &str) -> Result<u64, QuantityError> {
    let bad = || {
        QuantityError(format!(
            "malformed size {text:?}: expected a number of bytes with an optional unit b, k, m, g, t (binary, e.g. 100m)"
        ))
    };
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, rest) = t.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars();
    let shift = match chars.next().map(|c| c.to_ascii_lowercase()) {
        None => 0,
        Some('b') if chars.as_str().is_empty() => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        Some(_) => return Err(bad()),
    };
    let tail = chars.as_str().to_ascii_lowercase();
    if !matches!(tail.as_str(), "" | "i" | "b" | "ib") || (shift == 0 && !tail.is_empty()) {
        return Err(bad());
    }
    let bytes = value * (1u64 << shift) as f64;
    // Docker truncates a fractional byte count (`1.5b` is 1).
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A cpuset list as the kernel reads it: `0`, `0-3`, `0-2,4,6-7`.
pub fn is_cpu_list(list: &str) -> bool {
    list.split(',').all(|part| {
        let number = |n: &str| !n.is_empty() && n.len() <= 5 && n.bytes().all(|c| c.is_ascii_digit());
        match part.split_once('-') {
            Some((a, b)) => number(a) && number(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
            None => number(part),
        }
    })
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

impl FromStr for MemorySwap {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "-1" | "unlimited" => Ok(MemorySwap::Unlimited),
            t => t.parse().map(MemorySwap::Limit).map_err(|_| {
                QuantityError(format!(
                    "malformed memory+swap limit {s:?}: expected a memory quantity such as 200Mi, or `unlimited`"
                ))
            }),
        }
    }
}

impl fmt::Display for MemorySwap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemorySwap::Unlimited => f.write_str("unlimited"),
            MemorySwap::Limit(m) => m.fmt(f),
        }
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
impl Serialize for MemorySwap {
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
impl<'de> Deserialize<'de> for MemorySwap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber(
            std::marker::PhantomData,
            "a memory quantity such as 200Mi, or `unlimited`",
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
impl JsonSchema for MemorySwap {
    fn schema_name() -> Cow<'static, str> {
        "MemorySwap".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "memory plus swap: bytes, a number with a suffix k, Ki, M, Mi, G, Gi, T, Ti, or `unlimited`",
            "anyOf": [
                {"type": "integer", "minimum": -1},
                {"type": "string", "pattern": "^([0-9]+(k|K|Ki|M|Mi|G|Gi|T|Ti)?|unlimited|-1)$"}
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
    fn docker_sizes_are_binary_and_take_every_docker_spelling() {
        let size = |t: &str| parse_docker_size(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(size("100m"), 104_857_600);
        assert_eq!(size("100M"), 104_857_600);
        assert_eq!(size("100Mi"), 104_857_600);
        assert_eq!(size("100MB"), 104_857_600);
        assert_eq!(size("100mib"), 104_857_600);
        assert_eq!(size("100 m"), 104_857_600);
        assert_eq!(size("512"), 512);
        assert_eq!(size("512b"), 512);
        assert_eq!(size("4k"), 4096);
        assert_eq!(size("1g"), 1 << 30);
        assert_eq!(size("1.5g"), 3 << 29);
        assert_eq!(size("2t"), 2 << 40);
        for bad in [
            "",
            "m",
            "-1",
            "100x",
            "100mm",
            "100bi",
            "1..5m",
            ".5m",
            "5.m",
            "100  m",
            "1e3",
            "99999999p",
        ] {
            assert!(parse_docker_size(bad).is_err(), "{bad:?}");
        }
        let e = parse_docker_size("100x").unwrap_err().0;
        assert!(e.contains("\"100x\"") && e.contains("100m"), "{e}");
    }

    #[test]
    fn cpu_lists_are_numbers_and_ascending_ranges() {
        for good in ["0", "0-1", "0-2,4,6-7", "12"] {
            assert!(is_cpu_list(good), "{good}");
        }
        for bad in ["", "a", "1-", "-1", "3-1", "0,,1", "0 1", "999999"] {
            assert!(!is_cpu_list(bad), "{bad}");
        }
    }

    #[test]
    fn memory_swap_is_a_size_or_unlimited() {
        assert_eq!(
            "200Mi".parse::<MemorySwap>().unwrap(),
            MemorySwap::Limit(Memory(200 << 20))
        );
        assert_eq!("-1".parse::<MemorySwap>().unwrap(), MemorySwap::Unlimited);
        assert_eq!("unlimited".parse::<MemorySwap>().unwrap().to_string(), "unlimited");
        let e = "-2".parse::<MemorySwap>().unwrap_err().0;
        assert!(e.contains("`unlimited`"), "{e}");
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
