//! NAT, published ports and isolation with nftables, in one `inet` table of
//! berth's own per root. The table is rebuilt whole from the current state
//! in one atomic `nft -j` batch (add, delete, add: the delete never fails on
//! a missing table), so a rule flushed by hand comes back on the next sync,
//! and nothing outside berth's table is ever flushed or rewritten.

use std::net::Ipv4Addr;

use nftables::schema::Nftables;
use serde_json::{json, Value};

use super::ipam::Subnet;
use super::NetworkError;

/// A bridge network as NAT sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatNetwork {
    pub bridge: String,
    pub subnet: Subnet,
    /// No masquerade and no forwarding out: no route out of the host.
    pub internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: the host's `host_port` to a container's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub proto: Proto,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

fn prefix(s: &Subnet) -> Value {
    json!({"prefix": {"addr": s.addr.to_string(), "len": s.prefix}})
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn ip(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

/// The whole table as an nft JSON batch. Pure.
pub fn ruleset_json(table: &str, networks: &[NatNetwork], ports: &[PortForward]) -> Value {
    let mut cmds = Vec::new();
    let t = json!({"family": "inet", "name": table});
    cmds.push(json!({"add": {"table": t}}));
    cmds.push(json!({"delete": {"table": t}}));
    cmds.push(json!({"add": {"table": t}}));
    let chain = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": "inet", "table": table, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    cmds.push(chain("prerouting", "nat", "prerouting", -100));
    cmds.push(chain("output", "nat", "output", -100));
    cmds.push(chain("postrouting", "nat", "postrouting", 100));
    cmds.push(chain("forward", "filter", "forward", 0));
    let rule = |chain: &str, expr: Vec<Value>| json!({"add": {"rule": {"family": "inet", "table": table, "chain": chain, "expr": expr}}});

    for p in ports {
        // Packets to any local address (127.0.0.1 too) on the host port.
        for chain in ["prerouting", "output"] {
            cmds.push(rule(
                chain,
                vec![
                    matches(
                        "==",
                        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                        json!("local"),
                    ),
                    matches(
                        "==",
                        json!({"payload": {"protocol": p.proto.as_str(), "field": "dport"}}),
                        json!(p.host_port),
                    ),
                    json!({"dnat": {"family": "ip", "addr": p.container_ip.to_string(), "port": p.container_port}}),
                ],
            ));
        }
    }
    for n in networks {
        // Host-local clients of a published port (source 127.0.0.1) must get
        // an address the container can answer.
        cmds.push(rule(
            "postrouting",
            vec![
                matches("==", ip("saddr"), json!({"prefix": {"addr": "127.0.0.0", "len": 8}})),
                matches("==", meta("oifname"), json!(n.bridge)),
                json!({"masquerade": null}),
            ],
        ));
        if !n.internal {
            cmds.push(rule(
                "postrouting",
                vec![
                    matches("==", ip("saddr"), prefix(&n.subnet)),
                    matches("!=", ip("daddr"), prefix(&n.subnet)),
                    matches("!=", meta("oifname"), json!(n.bridge)),
                    json!({"masquerade": null}),
                ],
            ));
        }
    }
    // Forwarding: networks are isolated from each other; internal ones
    // reach nothing outside their bridge and nothing reaches them.
    for n in networks {
        for other in networks.iter().filter(|o| o.bridge != n.bridge) {
            cmds.push(rule(
                "forward",
                vec![
                    matches("==", meta("iifname"), json!(n.bridge)),
                    matches("==", meta("oifname"), json!(other.bridge)),
                    json!({"drop": null}),
                ],
            ));
        }
        if n.internal {
            for dir in [("iifname", "oifname"), ("oifname", "iifname")] {
                cmds.push(rule(
                    "forward",
                    vec![
                        matches("==", meta(dir.0), json!(n.bridge)),
                        matches("!=", meta(dir.1), json!(n.bridge)),
                        json!({"drop": null}),
                    ],
                ));
            }
        } else {
            cmds.push(rule(
                "forward",
                vec![matches("==", meta("iifname"), json!(n.bridge)), json!({"accept": null})],
            ));
            cmds.push(rule(
                "forward",
                vec![matches("==", meta("oifname"), json!(n.bridge)), json!({"accept": null})],
            ));
        }
    }
    json!({"nftables": cmds})
}

fn nft_err(e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Nft(e.to_string())
}

/// Replaces berth's table with exactly these networks and ports; with
/// neither, removes the table.
pub fn sync(table: &str, networks: &[NatNetwork], ports: &[PortForward]) -> Result<(), NetworkError> {
    if networks.is_empty() && ports.is_empty() {
        return remove_table(table);
    }
    let batch: Nftables = serde_json::from_value(ruleset_json(table, networks, ports)).map_err(nft_err)?;
    nftables::helper::apply_ruleset(&batch).map_err(nft_err)
}

/// Removes berth's table (only it); a missing table is fine.
pub fn remove_table(table: &str) -> Result<(), NetworkError> {
    let t = json!({"family": "inet", "name": table});
    let batch: Nftables =
        serde_json::from_value(json!({"nftables": [{"add": {"table": t}}, {"delete": {"table": t}}]}))
            .map_err(nft_err)?;
    nftables::helper::apply_ruleset(&batch).map_err(nft_err)
}

/// How many rules berth's table holds now (`None`: no table), to notice a
/// table flushed or deleted by hand.
pub fn rule_count(table: &str) -> Result<Option<usize>, NetworkError> {
    let args = ["list", "table", "inet", table];
    match nftables::helper::get_current_ruleset_with_args(nftables::helper::DEFAULT_NFT, args) {
        Ok(set) => Ok(Some(
            set.objects
                .iter()
                .filter(|o| {
                    matches!(
                        o,
                        nftables::schema::NfObject::ListObject(nftables::schema::NfListObject::Rule(_))
                    )
                })
                .count(),
        )),
        Err(_) => Ok(None),
    }
}

/// How many rules [`ruleset_json`] makes, to compare with [`rule_count`].
pub fn expected_rules(networks: &[NatNetwork], ports: &[PortForward]) -> usize {
    let v = ruleset_json("t", networks, ports);
    v["nftables"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["add"].get("rule").is_some()).count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> Vec<NatNetwork> {
        vec![
            NatNetwork {
                bridge: "bb1".into(),
                subnet: "10.89.0.0/24".parse().unwrap(),
                internal: false,
            },
            NatNetwork {
                bridge: "bb2".into(),
                subnet: "10.89.1.0/24".parse().unwrap(),
                internal: true,
            },
        ]
    }

    #[test]
    fn the_ruleset_parses_as_nftables_json_and_has_what_each_network_needs() {
        let ports = [PortForward {
            proto: Proto::Udp,
            host_port: 5353,
            container_ip: "10.89.0.2".parse().unwrap(),
            container_port: 53,
        }];
        let v = ruleset_json("berth-x", &nets(), &ports);
        let parsed: Nftables = serde_json::from_value(v.clone()).unwrap();
        assert!(parsed.objects.len() > 8);
        let text = v.to_string();
        // DNAT in both prerouting and output, for UDP.
        assert_eq!(
            text.matches(r#""dnat":{"addr":"10.89.0.2","family":"ip","port":53}"#)
                .count(),
            2
        );
        // One masquerade out for the non-internal network only, plus the
        // loopback one for each.
        assert_eq!(text.matches("masquerade").count(), 3);
        // The internal network drops forwarding both ways; networks are isolated.
        assert_eq!(text.matches("drop").count(), 4);
        assert_eq!(expected_rules(&nets(), &ports), 2 + 3 + 2 + 2 + 2);
        // Only berth's own table is ever named.
        assert!(v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.to_string().contains("berth-x")));
    }
}
