//! Docker's sizes (`100m` = 104857600 bytes) for the storage flags and the
//! local driver's `o=size=`. The resources group's
//! `quantity::parse_docker_size` replaces this once both are merged.

/// `N[b|k|m|g]` (and `kb`, `mb`, `gb`, any case), binary units, as Docker's
/// `units.RAMInBytes`; `None` for anything else or an overflow.
pub fn parse(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    if number.is_empty() {
        return None;
    }
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(1u64 << shift);
    }
    let f: f64 = number.parse().ok()?;
    let bytes = f * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_units_are_binary() {
        assert_eq!(super::parse("100m"), Some(104_857_600));
        assert_eq!(super::parse("64M"), Some(64 << 20));
        assert_eq!(super::parse("1g"), Some(1 << 30));
        assert_eq!(super::parse("512k"), Some(512 << 10));
        assert_eq!(super::parse("1.5k"), Some(1536));
        assert_eq!(super::parse("4096"), Some(4096));
        assert_eq!(super::parse("10b"), Some(10));
        for bad in ["", "m", "10x", "-1m", "1mi5", "99999999999999999999g"] {
            assert_eq!(super::parse(bad), None, "{bad}");
        }
    }
}
