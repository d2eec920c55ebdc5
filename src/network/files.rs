//! The files every container gets, as Docker gives them: `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf`. Rendering is pure; writing is in
//! place (truncate and write, never rename) because the files are bind
//! mounted into running containers, which keep the inode they were given.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

/// `/etc/hosts`: localhost, the container itself, then its peers.
pub fn hosts(own: &[(Ipv4Addr, Vec<String>)], peers: &[(Ipv4Addr, Vec<String>)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (ip, names) in own.iter().chain(peers) {
        if !names.is_empty() {
            out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
    }
    out
}

/// `/etc/resolv.conf` from the host's: its search and options lines, and its
/// nameservers except loopback ones (which mean nothing inside a network
/// namespace); none left means Docker's fallback of public resolvers.
pub fn resolv_conf(host: &str, own_network: bool) -> String {
    let mut servers = Vec::new();
    let mut rest = Vec::new();
    for line in host.lines().map(str::trim) {
        if let Some(server) = line.strip_prefix("nameserver") {
            let server = server.trim();
            let loopback = server.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback || !own_network {
                servers.push(server.to_string());
            }
        } else if line.starts_with("search") || line.starts_with("options") {
            rest.push(line.to_string());
        }
    }
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    for l in rest {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Docker's `--add-host` lines, `(address, name)` each, for the end of
/// /etc/hosts.
pub fn extra_hosts(lines: &[(String, String)]) -> String {
    lines.iter().map(|(ip, host)| format!("{ip}\t{host}\n")).collect()
}

/// `resolv` with its nameserver, search and options lines each replaced by
/// the given ones when there are any (Docker's `--dns`, `--dns-search`,
/// `--dns-option`); `search .` means no search domain at all.
pub fn with_dns(resolv: &str, servers: &[String], search: &[String], options: &[String]) -> String {
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    for line in resolv.lines() {
        let replaced = (line.starts_with("nameserver") && !servers.is_empty())
            || (line.starts_with("search") && !search.is_empty())
            || (line.starts_with("options") && !options.is_empty());
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    let search: Vec<&str> = search.iter().map(String::as_str).filter(|s| *s != ".").collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The host's resolver configuration: systemd-resolved's upstream list when
/// /etc/resolv.conf points at its stub (as Docker does), else /etc/resolv.conf.
pub fn host_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if etc.contains("127.0.0.53") {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return upstream;
        }
    }
    etc
}

/// The host's /etc/hosts, for containers on the host's network (empty
/// when it cannot be read, as a host without one resolves no names there).
pub fn host_hosts() -> String {
    std::fs::read_to_string("/etc/hosts").unwrap_or_default()
}

/// Writes `text` to `path` in place (a rename would detach the container's
/// bind mount), creating it when missing. An unchanged file is not touched,
/// and the file is never truncated before the new text is in: a process
/// reading its /etc/hosts while a peer comes or goes must not see it empty
/// (it did, as a failed lookup, with truncate-then-write).
pub fn write_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.set_len(text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_in_place_keeps_the_inode_and_leaves_no_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        write_in_place(&path, "127.0.0.1\tlocalhost\n10.89.0.3\tdb database\n").unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        write_in_place(&path, "127.0.0.1\tlocalhost\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "127.0.0.1\tlocalhost\n");
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()),
            inode
        );
    }

    #[test]
    fn hosts_lists_localhost_itself_and_peers() {
        let own = [("10.89.0.2".parse().unwrap(), vec!["web".to_string()])];
        let peers = [(
            "10.89.0.3".parse().unwrap(),
            vec!["db".to_string(), "database".to_string()],
        )];
        let text = hosts(&own, &peers);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.89.0.2\tweb\n"));
        assert!(text.ends_with("10.89.0.3\tdb database\n"));
    }

    #[test]
    fn dns_settings_replace_their_lines_and_keep_the_rest() {
        let base = "nameserver 10.89.0.1\nsearch example.org\noptions ndots:2\n";
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(with_dns(base, &[], &[], &[]), base);
        assert_eq!(
            with_dns(
                base,
                &s(&["192.0.2.53", "192.0.2.54"]),
                &s(&["a.test", "b.test"]),
                &s(&["ndots:1", "edns0"])
            ),
            "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch a.test b.test\noptions ndots:1 edns0\n"
        );
        assert_eq!(
            with_dns(base, &[], &s(&["."]), &[]),
            "nameserver 10.89.0.1\noptions ndots:2\n"
        );
        assert_eq!(extra_hosts(&[("10.1.2.3".into(), "db".into())]), "10.1.2.3\tdb\n");
    }

    #[test]
    fn resolv_conf_drops_loopback_servers_inside_a_namespace() {
        let host = "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org\n# x\noptions ndots:2\n";
        assert_eq!(
            resolv_conf(host, true),
            "nameserver 192.0.2.1\nsearch example.org\noptions ndots:2\n"
        );
        assert!(resolv_conf(host, false).contains("nameserver 127.0.0.53"));
        assert!(resolv_conf("nameserver 127.0.0.1\n", true).contains("nameserver 8.8.8.8"));
    }
}
