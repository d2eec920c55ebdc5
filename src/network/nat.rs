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
    /// The one host address the port is published on; every local address
    /// when None.
    pub host_ip: Option<Ipv4Addr>,
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
    cmds.push(chain("input", "filter", "input", 0));
    let rule = |chain: &str, expr: Vec<Value>| json!({"add": {"rule": {"family": "inet", "table": table, "chain": chain, "expr": expr}}});

    for p in ports {
        // Packets to any local address (127.0.0.1 too) on the host port, or
        // to the one address it is published on. Both chains: output is
        // where the host's own connections (to 127.0.0.1) are seen.
        let daddr = match p.host_ip {
            Some(addr) => matches("==", ip("daddr"), json!(addr.to_string())),
            None => matches(
                "==",
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                json!("local"),
            ),
        };
        for chain in ["prerouting", "output"] {
            cmds.push(rule(
                chain,
                vec![
                    daddr.clone(),
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
    // `route_localnet=1` on a bridge (for the DNAT of ports published on
    // 127.0.0.1) also routes a neighbour's packets for 127.0.0.0/8 to the
    // host's loopback services (CVE-2020-8558). Only what berth DNATed may
    // arrive from a bridge for 127/8: replies to a host client of a
    // published port carry the DNAT status of their connection. A bitwise
    // test: `ct status != dnat` compares the whole status word, which is
    // never just `dnat`, and would drop every packet.
    for n in networks {
        cmds.push(rule(
            "input",
            vec![
                matches("==", meta("iifname"), json!(n.bridge)),
                matches("==", ip("daddr"), json!({"prefix": {"addr": "127.0.0.0", "len": 8}})),
                matches("==", json!({"&": [{"ct": {"key": "status"}}, "dnat"]}), json!(0)),
                json!({"drop": null}),
            ],
        ));
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

/// Pids of `nft` processes a thread of ours is waiting for. The daemon reaps
/// every other exited child (shims, orphans) with `waitpid`; it must leave
/// these to their waiter, or the waiter gets ECHILD. The lock is held from
/// spawn until the pid is listed, so the reaper never sees one unlisted.
/// One per daemon: its reaper and its network host share it.
#[derive(Debug, Default)]
pub struct ChildWaits(std::sync::Mutex<Vec<i32>>);

impl ChildWaits {
    /// The pids being waited for, locked: while held, no `nft` is spawned.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Vec<i32>> {
        // Only pids are pushed and removed: a panic cannot leave it half-changed.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `nft -j ARGS` with `input` on stdin; returns its stdout.
fn run_nft(waits: &ChildWaits, args: &[&str], input: Option<&str>) -> Result<String, NetworkError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = {
        let mut list = waits.lock();
        let child = Command::new("nft")
            .arg("-j")
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| nft_err(format!("cannot run nft: {e}")))?;
        list.push(child.id() as i32);
        child
    };
    let pid = child.id() as i32;
    let result = (|| {
        let mut child = child;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).map_err(nft_err)?;
        }
        child.wait_with_output().map_err(nft_err)
    })();
    waits.lock().retain(|p| *p != pid);
    let out = result?;
    if !out.status.success() {
        return Err(nft_err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apply(waits: &ChildWaits, batch: &Nftables) -> Result<(), NetworkError> {
    let text = serde_json::to_string(batch).map_err(nft_err)?;
    run_nft(waits, &["-f", "-"], Some(&text)).map(drop)
}

/// Replaces berth's table with exactly these networks and ports; with
/// neither, removes the table.
pub fn sync(
    waits: &ChildWaits,
    table: &str,
    networks: &[NatNetwork],
    ports: &[PortForward],
) -> Result<(), NetworkError> {
    if networks.is_empty() && ports.is_empty() {
        return remove_table(waits, table);
    }
    let batch: Nftables = serde_json::from_value(ruleset_json(table, networks, ports)).map_err(nft_err)?;
    apply(waits, &batch)?;
    neighbour_best_effort(waits, table, networks);
    Ok(())
}

/// The neighbour chain is another tool's: it may go between our listing and
/// our change. berth's own table is what must hold; this only helps.
fn neighbour_best_effort(waits: &ChildWaits, table: &str, networks: &[NatNetwork]) {
    if let Err(e) = sync_neighbour(waits, table, networks) {
        tracing::warn!("keeping berth's accepts in ip filter FORWARD: {e}");
    }
}

/// The base chain where Docker (through iptables-nft) sets its `FORWARD`
/// policy to drop. An accept in berth's own table does not override a drop
/// there, so berth's bridges get accept rules of their own in it, marked
/// with a comment naming berth's table: only those are ever deleted.
const NEIGHBOUR: [&str; 3] = ["ip", "filter", "FORWARD"];

fn neighbour_comment(table: &str) -> String {
    format!("berth:{table}")
}

/// Handles of berth's own rules (by comment) in a listed chain.
pub fn own_handles(listing: &Value, table: &str) -> Vec<u64> {
    let comment = neighbour_comment(table);
    listing["nftables"]
        .as_array()
        .map(|objects| {
            objects
                .iter()
                .filter_map(|o| o.get("rule"))
                .filter(|r| r["comment"].as_str() == Some(comment.as_str()))
                .filter_map(|r| r["handle"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// The batch that replaces berth's rules in the neighbour chain: delete the
/// old ones by handle, insert accepts for the non-internal bridges. Pure.
pub fn neighbour_batch(table: &str, old: &[u64], networks: &[NatNetwork]) -> Value {
    let [family, t, chain] = NEIGHBOUR;
    let mut cmds = Vec::new();
    for handle in old {
        // nft reads the handle only; the crate's type wants an `expr`.
        cmds.push(
            json!({"delete": {"rule": {"family": family, "table": t, "chain": chain, "handle": handle, "expr": []}}}),
        );
    }
    for n in networks.iter().filter(|n| !n.internal) {
        for dir in ["iifname", "oifname"] {
            cmds.push(json!({"insert": {"rule": {"family": family, "table": t, "chain": chain,
                "comment": neighbour_comment(table),
                "expr": [matches("==", meta(dir), json!(n.bridge)), json!({"accept": null})]}}}));
        }
    }
    json!({"nftables": cmds})
}

/// Keeps berth's accepts in the neighbour chain, when there is one.
fn sync_neighbour(waits: &ChildWaits, table: &str, networks: &[NatNetwork]) -> Result<(), NetworkError> {
    let [family, t, chain] = NEIGHBOUR;
    let Ok(text) = run_nft(waits, &["list", "chain", family, t, chain], None) else {
        // No such chain (no Docker): nothing to let through.
        return Ok(());
    };
    let listing: Value = serde_json::from_str(&text).map_err(nft_err)?;
    let old = own_handles(&listing, table);
    let batch = neighbour_batch(table, &old, networks);
    if batch["nftables"].as_array().is_none_or(|a| a.is_empty()) {
        return Ok(());
    }
    let batch: Nftables = serde_json::from_value(batch).map_err(nft_err)?;
    apply(waits, &batch)
}

/// Removes berth's table (only it); a missing table is fine.
pub fn remove_table(waits: &ChildWaits, table: &str) -> Result<(), NetworkError> {
    let t = json!({"family": "inet", "name": table});
    let batch: Nftables =
        serde_json::from_value(json!({"nftables": [{"add": {"table": t}}, {"delete": {"table": t}}]}))
            .map_err(nft_err)?;
    apply(waits, &batch)?;
    neighbour_best_effort(waits, table, &[]);
    Ok(())
}

/// The kernel's nftables ruleset generation: a counter that every change to
/// any table bumps (`NFT_MSG_GETGEN` over nfnetlink). Reading it is one
/// netlink round trip in process, where listing the table runs `nft`;
/// `None` when it cannot be read.
pub fn ruleset_generation() -> Option<u32> {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETGEN: u16 = 16;
    const NFT_MSG_NEWGEN: u16 = 15;
    const NFTA_GEN_ID: u16 = 1;
    const NLMSG_HDRLEN: usize = 16;
    const NFGENMSG_LEN: usize = 4;
    // SAFETY: socket(2) with constant arguments; the result is checked and owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // nlmsghdr (len, type, flags, seq, pid) + nfgenmsg (family, version, res_id).
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + NFGENMSG_LEN);
    req.extend_from_slice(&((NLMSG_HDRLEN + NFGENMSG_LEN) as u32).to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    // SAFETY: send(2) reads `req.len()` bytes of a buffer we own.
    if unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) } != req.len() as isize {
        return None;
    }
    let mut buf = [0u8; 512];
    // SAFETY: recv(2) writes at most `buf.len()` bytes into a buffer we own.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    let reply = buf.get(..usize::try_from(n).ok()?)?;
    parse_generation(reply, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN, NFTA_GEN_ID)
}

/// NFTA_GEN_ID of a `NFT_MSG_NEWGEN` reply. Pure.
fn parse_generation(reply: &[u8], newgen: u16, gen_id: u16) -> Option<u32> {
    let u16_at = |at: usize| reply.get(at..at + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let msg_len = reply
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)?;
    if u16_at(4)? != newgen || msg_len > reply.len() {
        return None;
    }
    // Attributes (nlattr: len, type, value padded to 4) after the 16-byte
    // header and the 4-byte nfgenmsg.
    let mut at = 20;
    while at + 4 <= msg_len {
        let len = u16_at(at)? as usize;
        if len < 4 {
            return None;
        }
        if u16_at(at + 2)? & 0x3fff == gen_id && len >= 8 {
            let v = reply.get(at + 4..at + 8)?;
            // Netfilter attributes are big-endian.
            return Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        at += (len + 3) & !3;
    }
    None
}

/// How many rules berth's table holds now (`None`: no table), to notice a
/// table flushed or deleted by hand.
pub fn rule_count(waits: &ChildWaits, table: &str) -> Result<Option<usize>, NetworkError> {
    let Ok(text) = run_nft(waits, &["list", "table", "inet", table], None) else {
        // nft fails on a missing table.
        return Ok(None);
    };
    // Plain JSON, not the crate's schema: it has no `!` (the listing's form
    // of `ct status & dnat == 0`), and one unknown expression would make
    // every pass see the table as broken and rebuild it.
    let listing: Value = serde_json::from_str(&text).map_err(nft_err)?;
    Ok(Some(count_rules(&listing)))
}

/// The rules in an `nft -j list` output. Pure.
fn count_rules(listing: &Value) -> usize {
    listing["nftables"]
        .as_array()
        .map_or(0, |objects| objects.iter().filter(|o| o.get("rule").is_some()).count())
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

    #[test]
    fn only_berths_own_rules_in_the_neighbour_chain_are_replaced() {
        let listing = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 5, "comment": "berth:berth-x", "expr": []}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 6, "expr": []}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 7, "comment": "berth:berth-y", "expr": []}},
        ]});
        assert_eq!(own_handles(&listing, "berth-x"), [5]);
        let batch = neighbour_batch("berth-x", &[5], &nets());
        let parsed: Nftables = serde_json::from_value(batch.clone()).unwrap();
        // One delete, then two accepts for the one non-internal bridge.
        assert_eq!(parsed.objects.len(), 3);
        let text = batch.to_string();
        assert!(text.contains(r#""handle":5"#) && !text.contains(r#""handle":6"#));
        assert_eq!(text.matches("berth:berth-x").count(), 2);
        assert!(!text.contains("bb2"), "internal networks get no accept: {text}");
    }

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
            host_ip: None,
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
        // The internal network drops forwarding both ways; networks are
        // isolated; each bridge's packets for 127/8 not DNATed are dropped.
        assert_eq!(text.matches("drop").count(), 4 + 2);
        assert_eq!(expected_rules(&nets(), &ports), 2 + 3 + 2 + 2 + 2 + 2);
        // Only berth's own table is ever named.
        assert!(v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.to_string().contains("berth-x")));
    }

    #[test]
    fn a_port_on_one_host_address_matches_that_address_not_every_local_one() {
        let forward = |host_ip: Option<&str>, container_ip: &str| PortForward {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|a| a.parse().unwrap()),
            host_port: 8080,
            container_ip: container_ip.parse().unwrap(),
            container_port: 80,
        };
        let ports = [
            forward(Some("127.0.0.1"), "10.89.0.2"),
            forward(Some("127.0.0.2"), "10.89.0.3"),
        ];
        let v = ruleset_json("berth-x", &nets(), &ports);
        let _: Nftables = serde_json::from_value(v.clone()).unwrap();
        let dnat: Vec<&Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            // The statement, not the guard's `ct status` flag of that name.
            .filter(|c| c.to_string().contains(r#""dnat":{"#))
            .collect();
        // Prerouting and output for each address, none by `fib daddr type local`.
        assert_eq!(dnat.len(), 4);
        for (cmd, (chain, addr, to)) in dnat.iter().zip([
            ("prerouting", "127.0.0.1", "10.89.0.2"),
            ("output", "127.0.0.1", "10.89.0.2"),
            ("prerouting", "127.0.0.2", "10.89.0.3"),
            ("output", "127.0.0.2", "10.89.0.3"),
        ]) {
            let rule = &cmd["add"]["rule"];
            assert_eq!(rule["chain"], chain);
            assert_eq!(
                rule["expr"][0],
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": addr}})
            );
            assert_eq!(rule["expr"][2]["dnat"]["addr"], to);
        }
        assert!(!v.to_string().contains("fib"), "{v}");
        assert_eq!(expected_rules(&nets(), &ports), 4 + 3 + 2 + 2 + 2 + 2);
        // Without an address, every local one.
        let v = ruleset_json("berth-x", &nets(), &[forward(None, "10.89.0.2")]);
        assert_eq!(v.to_string().matches(r#""fib""#).count(), 2);
    }

    #[test]
    fn each_bridge_drops_what_it_sends_to_loopback_unless_berth_dnated_it() {
        let v = ruleset_json("berth-x", &nets(), &[]);
        let _: Nftables = serde_json::from_value(v.clone()).unwrap();
        let guards: Vec<&Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["chain"] == "input")
            .collect();
        assert_eq!(guards.len(), 2, "internal networks are guarded too");
        for (rule, bridge) in guards.iter().zip(["bb1", "bb2"]) {
            let expr = rule["expr"].as_array().unwrap();
            assert_eq!(expr[0]["match"]["right"], bridge);
            assert_eq!(expr[1]["match"]["right"]["prefix"]["addr"], "127.0.0.0");
            // `ct status & dnat == 0`, not `ct status != dnat` (a compare of
            // the whole status word, true of DNATed connections too).
            assert_eq!(
                expr[2],
                json!({"match": {"op": "==", "left": {"&": [{"ct": {"key": "status"}}, "dnat"]}, "right": 0}})
            );
            assert_eq!(expr[3], json!({"drop": null}));
        }
    }

    #[test]
    fn the_ruleset_generation_is_read_from_a_newgen_reply() {
        // nlmsghdr(len 36, type 0x0a0f) + nfgenmsg + NFTA_GEN_ID (be 0x01020304)
        // + NFTA_GEN_PROC_PID, as the kernel sends it.
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&0x0a0fu16.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(&[1, 2, 3, 4]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&[0, 0, 0, 9]);
        assert_eq!(parse_generation(&m, 0x0a0f, 1), Some(0x0102_0304));
        // An error reply (NLMSG_ERROR) or a cut one gives nothing.
        let mut err = m.clone();
        err[4..6].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(parse_generation(&err, 0x0a0f, 1), None);
        assert_eq!(parse_generation(&m[..22], 0x0a0f, 1), None);
    }
}
