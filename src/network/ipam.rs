//! IPv4 address management, pure: subnets, the choice of a free subnet from
//! a pool, and the next free address of a subnet. Which addresses are taken
//! is the caller's (the store's) business; nothing here remembers anything.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::NetworkError;

pub use crate::cidr::Subnet;

/// The pool subnets are chosen from when a network names none (and the
/// daemon is given no `--default-address-pool`): /24s of 10.77.0.0/16.
/// Not Docker's defaults (172.17.0.0/16 to 172.31.0.0/16, 192.168.0.0/16)
/// nor podman's (10.88.0.0/16 for `podman`, then 10.89.0.0/16 up to
/// 10.128.0.0/9 for its networks), whose networks may be defined while
/// nothing routes them yet.
pub const DEFAULT_POOL: &str = "10.77.0.0/16";
pub const DEFAULT_POOL_PREFIX: u8 = 24;

/// A pool of subnets of one size, as Docker's
/// `--default-address-pool base=10.77.0.0/16,size=24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub base: Subnet,
    pub size: u8,
}

impl Pool {
    pub fn default_pools() -> Vec<Pool> {
        vec![Pool {
            base: Subnet::new(Ipv4Addr::new(10, 77, 0, 0), 16),
            size: DEFAULT_POOL_PREFIX,
        }]
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base={},size={}", self.base, self.size)
    }
}

impl FromStr for Pool {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Pool, NetworkError> {
        let bad = |why: String| NetworkError::Invalid(format!("address pool `{s}`: {why}"));
        let (mut base, mut size) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("base", v)) => base = Some(v.parse::<Subnet>().map_err(|e| bad(e.to_string()))?),
                Some(("size", v)) => {
                    size = Some(
                        v.parse::<u8>()
                            .map_err(|_| bad(format!("size `{v}` is not a number")))?,
                    )
                }
                _ => return Err(bad(format!("`{part}`: expected base=CIDR,size=PREFIX"))),
            }
        }
        let base = base.ok_or_else(|| bad("base=CIDR is missing".into()))?;
        let size = size.ok_or_else(|| bad("size=PREFIX is missing".into()))?;
        if size < base.prefix || size > 30 {
            return Err(bad(format!("size must be {} to 30", base.prefix)));
        }
        Ok(Pool { base, size })
    }
}

/// A network's subnet (see [`crate::cidr::parse_subnet`]).
impl FromStr for Subnet {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Subnet, NetworkError> {
        crate::cidr::parse_subnet(s).map_err(|why| NetworkError::Invalid(format!("subnet `{s}`: {why}")))
    }
}

/// The first subnet of the first pool that has one free around `taken`.
pub fn choose_from_pools(pools: &[Pool], taken: &[Subnet]) -> Option<Subnet> {
    pools.iter().find_map(|p| choose_subnet(p.base, p.size, taken))
}

/// Subnets of podman's networks (`/etc/containers/networks/*.json`, one
/// document each): netavark routes them only while a container runs, so
/// routes alone do not show them.
pub fn podman_subnets(documents: &[String]) -> Vec<Subnet> {
    let mut out = Vec::new();
    for doc in documents {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(doc) else {
            continue;
        };
        for s in v["subnets"].as_array().into_iter().flatten() {
            if let Some(subnet) = s["subnet"].as_str().and_then(|t| parse_range(t).ok()) {
                out.push(subnet);
            }
        }
    }
    out
}

/// An address range such as an `ipRange`: like a subnet, up to a /32.
pub fn parse_range(s: &str) -> Result<Subnet, NetworkError> {
    crate::cidr::parse_range(s).map_err(|why| NetworkError::Invalid(format!("range `{s}`: {why}")))
}

/// The first `prefix`-sized subnet of `pool` that overlaps none of `taken`
/// (routes on the host and subnets of other networks).
pub fn choose_subnet(pool: Subnet, prefix: u8, taken: &[Subnet]) -> Option<Subnet> {
    // A default route (0.0.0.0/0) overlaps everything and routes nothing specific.
    pool.subnets(prefix)
        .find(|candidate| !taken.iter().filter(|t| t.prefix > 0).any(|t| t.overlaps(candidate)))
}

/// The lowest free host address of `subnet`, skipping the gateway and `used`.
pub fn allocate(
    network: &str,
    subnet: Subnet,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, NetworkError> {
    allocate_in(network, subnet, None, gateway, used)
}

/// [`allocate`], only within `range` (a network's `ipRange`) when given.
pub fn allocate_in(
    network: &str,
    subnet: Subnet,
    range: Option<Subnet>,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, NetworkError> {
    subnet
        .hosts()
        .filter(|ip| range.is_none_or(|r| r.contains(*ip)))
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or_else(|| NetworkError::SubnetFull {
            network: network.to_string(),
            subnet: range.unwrap_or(subnet).to_string(),
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
    if !subnet.is_host(ip) {
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

    /// A subnet or a route (any prefix).
    fn s(text: &str) -> Subnet {
        parse_range(text).unwrap()
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
            s("10.77.0.0/24"),
            s("10.77.1.128/25"),
            s("192.168.1.0/24"),
        ];
        assert_eq!(choose_subnet(pool, 24, &taken), Some(s("10.77.2.0/24")));
        assert_eq!(choose_subnet(pool, 24, &[s("10.0.0.0/8")]), None);
        assert_eq!(choose_subnet(s("10.77.0.0/24"), 16, &[]), None);
    }

    #[test]
    fn an_ip_range_bounds_allocation_and_pools_parse_as_dockers_flag() {
        let net = s("10.88.0.0/24");
        let range = parse_range("10.88.0.16/30").unwrap();
        let mut used = BTreeSet::new();
        for want in ["10.88.0.16", "10.88.0.17", "10.88.0.18", "10.88.0.19"] {
            let ip = allocate_in("n", net, Some(range), net.default_gateway(), &used).unwrap();
            assert_eq!(ip.to_string(), want);
            used.insert(ip);
        }
        let err = allocate_in("n", net, Some(range), net.default_gateway(), &used).unwrap_err();
        assert!(err.to_string().contains("subnet 10.88.0.16/30 is full"), "{err}");
        assert!(parse_range("10.88.0.17/30")
            .unwrap_err()
            .to_string()
            .contains("did you mean 10.88.0.16/30"));
        assert_eq!(parse_range("10.88.0.9/32").unwrap().to_string(), "10.88.0.9/32");
        // The whole space parses as a range (a default route is one), not
        // as a network's subnet.
        assert_eq!(parse_range("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        let err = "0.0.0.0/0".parse::<Subnet>().unwrap_err().to_string();
        assert!(err.contains("the prefix must be 1 to 30"), "{err}");

        let pool: Pool = "base=10.60.0.0/16,size=26".parse().unwrap();
        assert_eq!(pool.to_string(), "base=10.60.0.0/16,size=26");
        for (bad, why) in [
            ("base=10.60.0.0/16", "size=PREFIX is missing"),
            ("size=24", "base=CIDR is missing"),
            ("base=10.60.0.0/16,size=8", "size must be 16 to 30"),
            ("base=10.60.0.1/16,size=24", "did you mean"),
            ("cidr=10.60.0.0/16", "expected base=CIDR,size=PREFIX"),
        ] {
            let err = bad.parse::<Pool>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let pools = [pool, Pool::default_pools()[0]];
        let first = choose_from_pools(&pools, &[]).unwrap();
        assert_eq!(first.to_string(), "10.60.0.0/26");
        // The first pool full, the next is used.
        assert_eq!(
            choose_from_pools(&pools, &[s("10.60.0.0/16")]).unwrap().to_string(),
            "10.77.0.0/24"
        );
    }

    #[test]
    fn the_default_pool_is_neither_dockers_nor_podmans() {
        let ours = Pool::default_pools();
        for theirs in [
            "172.16.0.0/12",
            "192.168.0.0/16",
            "10.88.0.0/16",
            "10.89.0.0/16",
            "10.90.0.0/15",
            "10.92.0.0/14",
            "10.96.0.0/11",
            "10.128.0.0/9",
        ] {
            assert!(ours.iter().all(|p| !p.base.overlaps(&s(theirs))), "{theirs}");
        }
        let podman = [
            r#"{"name":"p","driver":"bridge","subnets":[{"subnet":"10.77.0.0/24","gateway":"10.77.0.1"}]}"#.to_string(),
        ];
        let taken = podman_subnets(&podman);
        assert_eq!(taken, [s("10.77.0.0/24")]);
        assert_eq!(choose_from_pools(&ours, &taken), Some(s("10.77.1.0/24")));
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
