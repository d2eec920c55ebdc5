//! Network objects: driver, subnet, gateway, ipRange; the one IPv4 subnet parser.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn network(&mut self, o: &Object, spec: &NetworkSpec) {
        match spec.driver.as_deref() {
            None | Some("bridge") => {
                if spec.parent.is_some() {
                    self.report(o, "spec.parent", "`parent` is for `driver: macvlan`");
                }
            }
            Some("macvlan") => {
                match spec.parent.as_deref() {
                    None => self.report(o, "spec.parent", "a macvlan network needs `parent`: a host interface"),
                    Some(p) if p.is_empty() || p.len() > 15 || p.contains(['/', ' ']) => {
                        self.report(o, "spec.parent", format!("`{p}` is not an interface name"))
                    }
                    Some(_) => {}
                }
                if spec.subnet.is_none() {
                    self.report(o, "spec.subnet", "a macvlan network needs `subnet` (the parent's LAN)");
                }
            }
            Some(other) => self.report(
                o,
                "spec.driver",
                format!("unknown network driver `{other}`: expected `bridge` or `macvlan`"),
            ),
        }
        let subnet = spec.subnet.as_deref().map(|text| (text, parse_subnet(text)));
        if let Some((text, Err(why))) = &subnet {
            self.report(o, "spec.subnet", format!("subnet `{text}`: {why}"));
        }
        if let Some(gw) = &spec.gateway {
            match (gw.parse::<std::net::Ipv4Addr>(), &subnet) {
                (Err(_), _) => self.report(o, "spec.gateway", format!("gateway `{gw}` is not an IPv4 address")),
                (Ok(_), None) => self.report(o, "spec.gateway", "a gateway needs a `subnet` to be in"),
                (Ok(ip), Some((text, Ok((net, prefix))))) => {
                    let mask = u32::MAX << (32 - u32::from(*prefix));
                    let host = u32::from(ip) & !mask;
                    if u32::from(ip) & mask != *net || host == 0 || host == !mask {
                        self.report(
                            o,
                            "spec.gateway",
                            format!("gateway {gw} is not a host address of subnet {text}"),
                        );
                    }
                }
                (Ok(_), Some((_, Err(_)))) => {}
            }
        }
        if spec.subnet6.is_some() {
            self.report(
                o,
                "spec.subnet6",
                "IPv6 is not supported yet: remove `subnet6` (the network gets IPv4 only)",
            );
        }
        if let Some(range) = &spec.ip_range {
            match (parse_range(range), &subnet) {
                (Err(why), _) => self.report(o, "spec.ipRange", format!("ipRange `{range}`: {why}")),
                (Ok(_), None) => self.report(o, "spec.ipRange", "an ipRange needs a `subnet` to be in"),
                (Ok((first, prefix)), Some((text, Ok((net, net_prefix))))) => {
                    let mask = u32::MAX << (32 - u32::from(*net_prefix));
                    if prefix < *net_prefix || first & mask != *net {
                        self.report(
                            o,
                            "spec.ipRange",
                            format!("ipRange {range} is not inside subnet {text}"),
                        );
                    }
                }
                (Ok(_), Some((_, Err(_)))) => {}
            }
        }
        if let Some(mtu) = spec.mtu {
            if !(576..=65535).contains(&mtu) {
                self.report(o, "spec.mtu", format!("mtu {mtu} is out of range: use 576 to 65535"));
            }
        }
    }
}

/// `a.b.c.d/n` as (network address, prefix), with room for a gateway and a host.
pub(super) fn parse_subnet(text: &str) -> Result<(u32, u8), String> {
    let (net, prefix) = parse_range(text)?;
    if !(1..=30).contains(&prefix) {
        return Err("the prefix must be 1 to 30 (room for a gateway and a host)".into());
    }
    Ok((net, prefix))
}

/// `a.b.c.d/n` as (network address, prefix), any prefix up to 32.
pub(super) fn parse_range(text: &str) -> Result<(u32, u8), String> {
    parse_cidr(text).map(|(net, prefix)| (u32::from(net), prefix))
}

/// `a.b.c.d/n` (any prefix, 0 to 32) as its network address and prefix;
/// an address with host bits set is refused with the one that was meant.
/// The one parser of IPv4 subnets: `network` takes its ranges and subnets
/// from it too, adding its own limits on the prefix.
pub fn parse_cidr(text: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (addr, prefix) = text.split_once('/').ok_or("expected ADDRESS/PREFIX, as 10.89.0.0/24")?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| "not an IPv4 address".to_string())?;
    let prefix: u8 = prefix.parse().map_err(|_| "the prefix is not a number".to_string())?;
    if prefix > 32 {
        return Err("the prefix must be 32 or less".into());
    }
    // checked_shl: a /0 shifts by 32, which u32 cannot.
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let net = std::net::Ipv4Addr::from(u32::from(addr) & mask);
    if net != addr {
        return Err(format!("host bits are set; did you mean {net}/{prefix}?"));
    }
    Ok((net, prefix))
}
