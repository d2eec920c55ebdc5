//! Container identity and name resolution: hostname, domainname, extra
//! /etc/hosts lines, resolv.conf settings, MAC address, on-failure retries.
//! Every value here ends up in a file or a kernel call inside the
//! container, so a newline or a space is refused, never written.

use super::*;
use crate::manifest::types::RestartPolicy;

/// The `ip` of an extra host that stands for the gateway of the
/// container's first network (Docker's `host-gateway`).
pub const HOST_GATEWAY: &str = "host-gateway";

impl<'a> Validator<'a> {
    pub(super) fn identity(&mut self, o: &Object, spec: &ContainerSpec) {
        let shares_uts = spec.network.as_deref().is_some_and(|n| n.starts_with("container:"));
        for (field, value) in [("spec.hostname", &spec.hostname), ("spec.domainname", &spec.domainname)] {
            let Some(value) = value else { continue };
            if !is_hostname(value) {
                self.report(
                    o,
                    field,
                    format!(
                        "`{value}` is not a host name: labels of letters, digits and `-`, separated by `.`, \
                         at most 253 characters"
                    ),
                );
            } else if shares_uts && field == "spec.hostname" {
                // As Docker: the peer's namespace already has its name.
                self.report(
                    o,
                    field,
                    "`hostname` cannot be set with `network: container:NAME`: the container takes that container's",
                );
            }
        }
        let bridged = !spec.networks.is_empty();
        if shares_uts && !spec.extra_hosts.is_empty() {
            // Its /etc/hosts is the peer's, shared.
            self.report(
                o,
                "spec.extraHosts",
                "`extraHosts` cannot be set with `network: container:NAME`: the container takes that container's /etc/hosts",
            );
        }
        for (i, extra) in spec.extra_hosts.iter().enumerate() {
            let at = format!("spec.extraHosts[{i}]");
            if !is_hostname(&extra.host) {
                self.report(
                    o,
                    &format!("{at}.host"),
                    format!(
                        "`{}` is not a host name: letters, digits, `-` and `.`, no spaces",
                        extra.host
                    ),
                );
            }
            if extra.ip == HOST_GATEWAY {
                if !bridged {
                    self.report(
                        o,
                        &format!("{at}.ip"),
                        "`host-gateway` is the gateway of the container's first network: add `networks`",
                    );
                }
            } else if extra.ip.parse::<std::net::IpAddr>().is_err() {
                self.report(
                    o,
                    &format!("{at}.ip"),
                    format!(
                        "`{}` is not an IP address (as 10.0.0.1 or fd00::1) nor `host-gateway`",
                        extra.ip
                    ),
                );
            }
        }
        if let Some(dns) = &spec.dns {
            for (i, server) in dns.servers.iter().enumerate() {
                if server.parse::<std::net::IpAddr>().is_err() {
                    self.report(
                        o,
                        &format!("spec.dns.servers[{i}]"),
                        format!("`{server}` is not an IP address (as 192.0.2.53)"),
                    );
                }
            }
            for (i, domain) in dns.search.iter().enumerate() {
                // `.` alone is Docker's way of asking for no search domain.
                if domain != "." && !is_hostname(domain.trim_end_matches('.')) {
                    self.report(
                        o,
                        &format!("spec.dns.search[{i}]"),
                        format!("`{domain}` is not a domain name (as example.org)"),
                    );
                }
            }
            for (i, option) in dns.options.iter().enumerate() {
                if option.is_empty() || !option.bytes().all(|b| b.is_ascii_graphic()) {
                    self.report(
                        o,
                        &format!("spec.dns.options[{i}]"),
                        format!("`{option}` is not a resolv.conf option (as ndots:2): one word, no spaces"),
                    );
                }
            }
            if !dns.servers.is_empty() && spec.network.as_deref().is_some_and(|n| n.starts_with("container:")) {
                self.report(
                    o,
                    "spec.dns",
                    "`dns` cannot be set with `network: container:NAME`: the container takes that container's resolv.conf",
                );
            }
        }
        if let Some(mac) = &spec.mac_address {
            match parse_mac(mac) {
                Err(why) => self.report(o, "spec.macAddress", format!("`{mac}` {why}")),
                Ok(_) if !bridged => self.report(
                    o,
                    "spec.macAddress",
                    "`macAddress` is the address on the first of `networks`: add `networks`",
                ),
                Ok(_) => {}
            }
        }
        if spec.restart_max_retries.is_some() && spec.restart_policy != RestartPolicy::OnFailure {
            self.report(
                o,
                "spec.restartMaxRetries",
                "`restartMaxRetries` applies only to `restartPolicy: on-failure`",
            );
        }
    }
}

/// RFC 1123 host name: dot-separated labels of ASCII letters, digits and
/// `-`, each 1–63 long and not starting or ending with `-`; 253 in all.
pub fn is_hostname(name: &str) -> bool {
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

/// A MAC address `aa:bb:cc:dd:ee:ff` (or with `-`), which must be unicast
/// (a multicast one would be refused by the kernel as a link address) and
/// not all zeros.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let bytes: Vec<u8> = parts
        .iter()
        .filter(|p| p.len() == 2)
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    let Ok(mac) = <[u8; 6]>::try_from(bytes.as_slice()) else {
        return Err("is not a MAC address: six two-digit hex bytes, as 02:42:ac:11:00:02".into());
    };
    if parts.len() != 6 {
        return Err("is not a MAC address: six two-digit hex bytes, as 02:42:ac:11:00:02".into());
    }
    if mac[0] & 1 == 1 {
        return Err("is a multicast address: the first byte must be even, as 02:…".into());
    }
    if mac == [0; 6] {
        return Err("is all zeros: not an interface address".into());
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::{find, render};
    use crate::manifest::{parse_with_positions, Source};

    const NET: &str = "---\napiVersion: berth/v1\nkind: Network\nmetadata: {name: front}\nspec: {driver: bridge}\n";

    fn check(spec: &str) -> Vec<Diagnostic> {
        let text = format!(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec:\n  image: busybox:1\n  command: [sh]\n{spec}{NET}"
        );
        let sources = [Source {
            file: "m.yaml".into(),
            text,
        }];
        let (objects, positions) = parse_with_positions(&sources).unwrap_or_else(|d| panic!("{}", render(&d)));
        validate_with_positions(&objects, &positions, &|_, _| false)
    }

    #[test]
    fn identity_fields_that_are_well_formed_pass() {
        let d = check(
            "  networks: [front]\n  hostname: web.example\n  domainname: example.org\n  extraHosts:\n    - {host: db.local, ip: 10.1.2.3}\n    - {host: gw, ip: host-gateway}\n    - {host: six, ip: \"fd00::1\"}\n  dns: {servers: [192.0.2.53], search: [example.org, .], options: [\"ndots:2\", edns0]}\n  macAddress: \"02:42:ac:11:00:02\"\n  restartPolicy: on-failure\n  restartMaxRetries: 2\n",
        );
        assert!(d.is_empty(), "{}", render(&d));
    }

    #[test]
    fn bad_identity_values_are_reported_at_their_field() {
        let d = check(
            "  networks: [front]\n  hostname: \"web host\"\n  domainname: -bad\n  extraHosts:\n    - {host: \"db\\nevil\", ip: 10.1.2.3}\n    - {host: x, ip: 10.1.2}\n  dns: {servers: [dns.google], search: [\"a b\"], options: [\"nd ots\"]}\n  macAddress: \"01:00:5e:00:00:01\"\n  restartMaxRetries: 2\n",
        );
        let e = find(&d, "`web host` is not a host name");
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("m.yaml", 8, "spec.hostname")
        );
        let e = find(&d, "`-bad` is not a host name");
        assert_eq!((e.line, e.field.as_str()), (9, "spec.domainname"));
        let e = find(&d, "is not a host name: letters");
        assert_eq!((e.line, e.field.as_str()), (11, "spec.extraHosts[0].host"));
        let e = find(&d, "`10.1.2` is not an IP address");
        assert_eq!((e.line, e.field.as_str()), (12, "spec.extraHosts[1].ip"));
        let e = find(&d, "`dns.google` is not an IP address");
        assert_eq!((e.line, e.field.as_str()), (13, "spec.dns.servers[0]"));
        find(&d, "`a b` is not a domain name");
        find(&d, "`nd ots` is not a resolv.conf option");
        let e = find(&d, "is a multicast address");
        assert_eq!((e.line, e.field.as_str()), (14, "spec.macAddress"));
        let e = find(&d, "applies only to `restartPolicy: on-failure`");
        assert_eq!((e.line, e.field.as_str()), (15, "spec.restartMaxRetries"));
        assert_eq!(d.len(), 9, "{}", render(&d));
    }

    #[test]
    fn host_gateway_and_a_mac_need_a_network_and_a_shared_namespace_no_hostname() {
        let d = check(
            "  network: none\n  extraHosts: [{host: gw, ip: host-gateway}]\n  macAddress: \"02:00:00:00:00:01\"\n",
        );
        find(&d, "`host-gateway` is the gateway of the container's first network");
        find(&d, "`macAddress` is the address on the first of `networks`");
        let d = check("  network: \"container:db\"\n  hostname: x\n  extraHosts: [{host: a, ip: 10.0.0.1}]\n");
        find(&d, "`hostname` cannot be set with `network: container:NAME`");
        find(&d, "`extraHosts` cannot be set with `network: container:NAME`");
        let d = check("  network: none\n  publishAll: true\n");
        let e = find(&d, "publishing ports needs a bridge network");
        assert_eq!(e.field, "spec.publishAll");
    }

    #[test]
    fn mac_addresses_parse_in_both_spellings() {
        assert_eq!(parse_mac("02:42:AC:11:00:02"), Ok([2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(parse_mac("02-42-ac-11-00-02"), Ok([2, 0x42, 0xac, 0x11, 0, 2]));
        for bad in [
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
            "00:00:00:00:00:00",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
