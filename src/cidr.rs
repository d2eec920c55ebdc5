//! IPv4 subnets: the one parser of `a.b.c.d/n` and the arithmetic on it,
//! in a leaf module that manifest validation, IPAM and the stored records
//! all use (validation checked subnets with mask arithmetic of its own, and
//! IPAM parsed them again with other prefix limits).

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 subnet such as `10.89.0.0/24`; the address is its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// `addr`'s subnet of `prefix` bits (host bits dropped; a prefix over
    /// 32 is 32).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        let prefix = prefix.min(32);
        Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    fn last(&self) -> u32 {
        self.first() | !mask(self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.first()
    }

    /// Whether `other` lies wholly inside this subnet.
    pub fn covers(&self, other: &Subnet) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The conventional gateway: the first host address.
    pub fn default_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + 1)
    }

    /// Whether `ip` is a host address: inside, and neither the network nor
    /// the broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && u32::from(ip) != self.first() && u32::from(ip) != self.last()
    }

    /// Host addresses: without the network and broadcast addresses.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        (self.first().saturating_add(1)..self.last()).map(Ipv4Addr::from)
    }

    /// Splits the address space into `prefix`-sized subnets of this one, in
    /// order (none when `prefix` is shorter than its own).
    pub fn subnets(&self, prefix: u8) -> impl Iterator<Item = Subnet> {
        let (first, last) = (u64::from(self.first()), u64::from(self.last()));
        let step = 1u64 << (32 - u32::from(prefix.min(32)));
        let count = if prefix < self.prefix || prefix > 32 {
            0
        } else {
            (last - first + 1) / step
        };
        (0..count).map(move |i| Subnet::new(Ipv4Addr::from((first + i * step) as u32), prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    // checked_shl: a /0 shifts by 32, which u32 cannot.
    u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `a.b.c.d/n`, any prefix from 0 to 32 (a range, a route): the one parser.
/// An address with host bits set is refused with the one that was meant.
pub fn parse_range(text: &str) -> Result<Subnet, String> {
    let (addr, prefix) = text.split_once('/').ok_or("expected ADDRESS/PREFIX, as 10.89.0.0/24")?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| "not an IPv4 address".to_string())?;
    let prefix: u8 = prefix.parse().map_err(|_| "the prefix is not a number".to_string())?;
    if prefix > 32 {
        return Err("the prefix must be 32 or less".into());
    }
    let subnet = Subnet::new(addr, prefix);
    if subnet.addr != addr {
        return Err(format!("host bits are set; did you mean {subnet}?"));
    }
    Ok(subnet)
}

/// A network's subnet: [`parse_range`], with room for a gateway and a host.
pub fn parse_subnet(text: &str) -> Result<Subnet, String> {
    let subnet = parse_range(text)?;
    if !(1..=30).contains(&subnet.prefix) {
        return Err("the prefix must be 1 to 30 (room for a gateway and a host)".into());
    }
    Ok(subnet)
}

/// Stored as its text (`10.89.0.0/24`), so records written when subnets
/// were kept as strings read unchanged.
impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read with [`parse_range`] (any prefix): a stored subnet was checked when
/// it was made, and an `ipRange` (up to a /32) is one too.
impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        let text = String::deserialize(d)?;
        parse_range(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parser_gives_ranges_any_prefix_and_subnets_room_for_a_gateway_and_a_host() {
        assert_eq!(parse_range("10.89.0.9/32").unwrap().to_string(), "10.89.0.9/32");
        assert_eq!(parse_range("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(
            parse_subnet("10.89.0.0/24").unwrap(),
            Subnet::new([10, 89, 0, 0].into(), 24)
        );
        for (bad, why) in [
            ("10.89.0.1/24", "host bits are set; did you mean 10.89.0.0/24?"),
            ("10.0.0.0/0", "host bits are set; did you mean 0.0.0.0/0?"),
            ("10.89.0.0", "expected ADDRESS/PREFIX"),
            ("10.89.0/24", "not an IPv4 address"),
            ("fd00::/64", "not an IPv4 address"),
            ("10.89.0.0/x", "the prefix is not a number"),
            ("10.89.0.0/33", "the prefix must be 32 or less"),
        ] {
            let err = parse_range(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        for bad in ["10.89.0.0/31", "10.89.0.0/32", "0.0.0.0/0"] {
            assert!(
                parse_subnet(bad).unwrap_err().contains("the prefix must be 1 to 30"),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_addresses_exclude_the_network_and_broadcast_and_ranges_nest() {
        let net = parse_subnet("10.88.0.0/29").unwrap();
        let hosts: Vec<String> = net.hosts().map(|h| h.to_string()).collect();
        assert_eq!(hosts.first().map(String::as_str), Some("10.88.0.1"));
        assert_eq!(hosts.len(), 6);
        assert!(net.is_host("10.88.0.6".parse().unwrap()));
        assert!(!net.is_host("10.88.0.0".parse().unwrap()));
        assert!(!net.is_host("10.88.0.7".parse().unwrap()));
        assert!(!net.is_host("10.88.0.8".parse().unwrap()));
        assert!(net.covers(&parse_range("10.88.0.4/30").unwrap()));
        assert!(!net.covers(&parse_range("10.88.0.0/28").unwrap()));
        assert!(!net.covers(&parse_range("10.88.1.0/30").unwrap()));
        let whole = parse_range("0.0.0.0/0").unwrap();
        assert!(whole.covers(&net) && whole.overlaps(&net));
        assert_eq!(whole.hosts().next(), Some(Ipv4Addr::new(0, 0, 0, 1)));
        let quarters: Vec<String> = parse_subnet("10.88.0.0/24")
            .unwrap()
            .subnets(26)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            quarters,
            ["10.88.0.0/26", "10.88.0.64/26", "10.88.0.128/26", "10.88.0.192/26"]
        );
        assert_eq!(net.subnets(24).count(), 0);
        assert_eq!(whole.subnets(1).count(), 2);
    }
}
