//! IPv4 address management, pure: subnets, the choice of a free subnet from
//! a pool, and the next free address of a subnet. Which addresses are taken
//! is the caller's (the store's) business; nothing here remembers anything.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::NetworkError;

/// An IPv4 subnet such as `10.89.0.0/24`; the address is its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// The pool subnets are chosen from when a network names none: /24s of
/// 10.89.0.0/16, as podman's default pool.
pub const DEFAULT_POOL: &str = "10.89.0.0/16";
pub const DEFAULT_POOL_PREFIX: u8 = 24;

impl Subnet {
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

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The conventional gateway: the first host address.
    pub fn default_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + 1)
    }

    /// Host addresses: without the network and broadcast addresses (a /31
    /// or /32 has no room for a gateway and a host, and is refused on parse).
    fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        (self.first() + 1..self.last()).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Subnet, NetworkError> {
        let bad = |why: &str| NetworkError::Invalid(format!("subnet `{s}`: {why}"));
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("the prefix is not a number"))?;
        if prefix > 30 {
            return Err(bad("the prefix must be 30 or less (room for a gateway and a host)"));
        }
        let subnet = Subnet::new(addr, prefix);
        if subnet.addr != addr {
            return Err(bad(&format!("host bits are set; did you mean {subnet}?")));
        }
        Ok(subnet)
    }
}

/// The first `prefix`-sized subnet of `pool` that overlaps none of `taken`
/// (routes on the host and subnets of other networks).
pub fn choose_subnet(pool: Subnet, prefix: u8, taken: &[Subnet]) -> Option<Subnet> {
    if prefix < pool.prefix {
        return None;
    }
    let step = 1u64 << (32 - u32::from(prefix));
    let mut at = u64::from(pool.first());
    while at + step - 1 <= u64::from(pool.last()) {
        let candidate = Subnet::new(Ipv4Addr::from(at as u32), prefix);
        // A default route (0.0.0.0/0) overlaps everything and routes nothing specific.
        if !taken.iter().filter(|t| t.prefix > 0).any(|t| t.overlaps(&candidate)) {
            return Some(candidate);
        }
        at += step;
    }
    None
}

/// The lowest free host address of `subnet`, skipping the gateway and `used`.
pub fn allocate(
    network: &str,
    subnet: Subnet,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, NetworkError> {
    subnet
        .hosts()
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or_else(|| NetworkError::SubnetFull {
            network: network.to_string(),
            subnet: subnet.to_string(),
        })
}

/// Checks a requested static address: inside the subnet, a host address,
/// not the gateway and not taken.
pub fn check_static(
    network: &str,
    subnet: Subnet,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    ip: Ipv4Addr,
) -> Result<Ipv4Addr, NetworkError> {
    let bad = |why: String| NetworkError::Invalid(format!("network {network}: address {ip}: {why}"));
    if !subnet.hosts().any(|h| h == ip) {
        return Err(bad(format!("not a host address of {subnet}")));
    }
    if ip == gateway {
        return Err(bad("is the gateway".into()));
    }
    if used.contains(&ip) {
        return Err(bad("is already in use".into()));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    #[test]
    fn subnets_parse_and_refuse_host_bits_and_tiny_prefixes() {
        assert_eq!(s("10.88.0.0/24").to_string(), "10.88.0.0/24");
        let err = "10.88.0.1/24".parse::<Subnet>().unwrap_err().to_string();
        assert!(err.contains("did you mean 10.88.0.0/24"), "{err}");
        assert!("10.0.0.0/31".parse::<Subnet>().is_err());
        assert!("10.0.0.0".parse::<Subnet>().is_err());
        assert!("fd00::/64".parse::<Subnet>().is_err());
    }

    #[test]
    fn addresses_are_given_lowest_first_never_twice_and_never_the_gateway() {
        let net = s("10.88.0.0/29");
        let gw = net.default_gateway();
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        for _ in 0..5 {
            let ip = allocate("n", net, gw, &used).unwrap();
            used.insert(ip);
            got.push(ip.to_string());
        }
        assert_eq!(got, ["10.88.0.2", "10.88.0.3", "10.88.0.4", "10.88.0.5", "10.88.0.6"]);
        let err = allocate("n", net, gw, &used).unwrap_err().to_string();
        assert_eq!(
            err,
            "network n: subnet 10.88.0.0/29 is full: remove a container or use a larger subnet"
        );
        // A freed address is given again.
        used.remove(&"10.88.0.4".parse().unwrap());
        assert_eq!(allocate("n", net, gw, &used).unwrap().to_string(), "10.88.0.4");
    }

    #[test]
    fn a_subnet_is_chosen_around_routes_already_on_the_host() {
        let pool = s(DEFAULT_POOL);
        let taken = [
            s("0.0.0.0/0"),
            s("10.89.0.0/24"),
            s("10.89.1.128/25"),
            s("192.168.1.0/24"),
        ];
        assert_eq!(choose_subnet(pool, 24, &taken), Some(s("10.89.2.0/24")));
        assert_eq!(choose_subnet(pool, 24, &[s("10.0.0.0/8")]), None);
        assert_eq!(choose_subnet(s("10.89.0.0/24"), 16, &[]), None);
    }

    #[test]
    fn static_addresses_are_checked() {
        let net = s("10.88.0.0/24");
        let gw = net.default_gateway();
        let used: BTreeSet<Ipv4Addr> = ["10.88.0.5".parse().unwrap()].into();
        assert!(check_static("n", net, gw, &used, "10.88.0.9".parse().unwrap()).is_ok());
        for (ip, why) in [
            ("10.88.0.5", "already in use"),
            ("10.88.0.1", "gateway"),
            ("10.88.1.9", "not a host address"),
            ("10.88.0.255", "not a host address"),
        ] {
            let err = check_static("n", net, gw, &used, ip.parse().unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{ip}: {err}");
        }
    }
}
