//! Network objects: driver, subnet, gateway, ipRange (parsed by `crate::cidr`).

use super::*;
use crate::cidr::{parse_range, parse_subnet};

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
                (Ok(ip), Some((text, Ok(net)))) if !net.is_host(ip) => self.report(
                    o,
                    "spec.gateway",
                    format!("gateway {gw} is not a host address of subnet {text}"),
                ),
                (Ok(_), Some(_)) => {}
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
                (Ok(r), Some((text, Ok(net)))) if !net.covers(&r) => self.report(
                    o,
                    "spec.ipRange",
                    format!("ipRange {range} is not inside subnet {text}"),
                ),
                (Ok(_), Some(_)) => {}
            }
        }
        if let Some(mtu) = spec.mtu {
            if !(576..=65535).contains(&mtu) {
                self.report(o, "spec.mtu", format!("mtu {mtu} is out of range: use 576 to 65535"));
            }
        }
    }
}
