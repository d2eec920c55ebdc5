//! What the isolation settings may hold: capability names, namespaced
//! sysctls, ulimit names, namespace modes, device rules and signals. Pure:
//! the validator and the CLI's flag parser share these, so a value is
//! refused the same way from a flag and from a manifest.

pub use crate::capabilities::CAPABILITIES;

/// A capability as Docker takes it (`net_admin`, `CAP_NET_ADMIN`, `all`)
/// in its canonical spelling: `CAP_NET_ADMIN`, or `ALL`. None when the
/// kernel knows no such capability.
pub fn normalize_capability(text: &str) -> Option<String> {
    let upper = text.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Some(upper);
    }
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES.contains(&bare).then(|| format!("CAP_{bare}"))
}

/// Which namespace a sysctl belongs to, for the sysctls a container may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Network,
    Ipc,
}

/// The namespace of a sysctl a container may set (Docker's list: `net.*`,
/// `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`), or why not.
pub fn sysctl_namespace(name: &str) -> Result<SysctlNamespace, String> {
    let ipc = [
        "kernel.shmmax",
        "kernel.shmall",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && !name.contains("..");
    if !valid_name {
        return Err(format!("`{name}` is not a sysctl name"));
    }
    if name.starts_with("net.") {
        Ok(SysctlNamespace::Network)
    } else if ipc.contains(&name)
        || name.starts_with("kernel.msg")
        || name == "kernel.sem"
        || name.starts_with("fs.mqueue.")
    {
        Ok(SysctlNamespace::Ipc)
    } else {
        Err(format!(
            "sysctl `{name}` is not namespaced: setting it would change the host; a container may set net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*"
        ))
    }
}

/// `ulimit` names as Docker takes them, with their rlimit names.
pub const ULIMITS: [(&str, &str); 16] = [
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
    ("as", "RLIMIT_AS"),
];

/// The rlimit name (`RLIMIT_NOFILE`) of a ulimit name (`nofile`).
pub fn rlimit_name(ulimit: &str) -> Option<&'static str> {
    ULIMITS.iter().find(|(n, _)| *n == ulimit).map(|(_, r)| *r)
}

/// A namespace mode: the container's own, the host's, or another container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMode<'a> {
    Private,
    Host,
    Container(&'a str),
}

/// `host`, `container:NAME`, or `private`/empty for the default; `uts`
/// takes no `container:`.
pub fn namespace_mode<'a>(field: &str, text: &'a str) -> Result<NamespaceMode<'a>, String> {
    match text {
        "" | "private" => Ok(NamespaceMode::Private),
        "host" => Ok(NamespaceMode::Host),
        other => match other.strip_prefix("container:") {
            Some(peer) if field != "uts" && !peer.is_empty() => Ok(NamespaceMode::Container(peer)),
            _ if field == "uts" => Err(format!("unknown uts mode `{other}`: expected `host`")),
            _ => Err(format!(
                "unknown {field} mode `{other}`: expected `host` or `container:NAME`"
            )),
        },
    }
}

/// A device cgroup rule, Docker's `--device-cgroup-rule` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// `c`, `b` or `a`.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// `c 1:3 rwm`, `b *:* r`, `a *:* rwm`.
pub fn parse_device_rule(text: &str) -> Result<DeviceRule, String> {
    let bad = || format!("device rule `{text}` is not `TYPE MAJOR:MINOR ACCESS` (e.g. `c 1:3 rwm`, `c 42:* r`)");
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [kind, numbers, access] = parts[..] else {
        return Err(bad());
    };
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next().unwrap_or('a'),
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |n: &str| match n {
        "*" => Ok(None),
        n => n.parse::<u32>().map(|v| Some(i64::from(v))).map_err(|_| bad()),
    };
    if !is_device_access(access) {
        return Err(bad());
    }
    Ok(DeviceRule {
        kind,
        major: number(major)?,
        minor: number(minor)?,
        access: access.to_string(),
    })
}

/// Letters of `rwm`, each at most once, at least one.
pub fn is_device_access(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'))
        && text.bytes().enumerate().all(|(i, b)| !text[..i].contains(b as char))
}

/// A signal as Docker takes it: `SIGTERM`, `term`, `15`; its number.
pub fn signal_number(text: &str) -> Option<i32> {
    use std::str::FromStr;
    if let Ok(n) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok().map(|s| s as i32);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).ok().map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_take_any_case_with_or_without_the_prefix() {
        for text in ["net_admin", "CAP_NET_ADMIN", "Cap_Net_Admin", "NET_ADMIN"] {
            assert_eq!(normalize_capability(text).as_deref(), Some("CAP_NET_ADMIN"), "{text}");
        }
        assert_eq!(normalize_capability("all").as_deref(), Some("ALL"));
        assert_eq!(normalize_capability("CAP_ALL"), None);
        assert_eq!(normalize_capability("NET_FLY"), None);
        assert_eq!(normalize_capability(""), None);
    }

    #[test]
    fn only_namespaced_sysctls_are_allowed() {
        assert_eq!(sysctl_namespace("net.ipv4.ip_forward"), Ok(SysctlNamespace::Network));
        for ipc in ["kernel.shmmax", "kernel.msgmax", "kernel.sem", "fs.mqueue.msg_max"] {
            assert_eq!(sysctl_namespace(ipc), Ok(SysctlNamespace::Ipc), "{ipc}");
        }
        for host in ["kernel.hostname", "kernel.domainname", "vm.swappiness", "kernel.shmfoo"] {
            let e = sysctl_namespace(host).unwrap_err();
            assert!(e.contains(host) && e.contains("not namespaced"), "{e}");
        }
        assert!(sysctl_namespace("net/../x").is_err());
        assert!(sysctl_namespace("").is_err());
    }

    #[test]
    fn namespace_modes() {
        assert_eq!(namespace_mode("pid", "host"), Ok(NamespaceMode::Host));
        assert_eq!(
            namespace_mode("ipc", "container:db"),
            Ok(NamespaceMode::Container("db"))
        );
        assert_eq!(namespace_mode("ipc", "private"), Ok(NamespaceMode::Private));
        assert!(namespace_mode("uts", "container:db").is_err());
        assert!(namespace_mode("pid", "container:").is_err());
        assert!(namespace_mode("pid", "shared")
            .unwrap_err()
            .contains("pid mode `shared`"));
    }

    #[test]
    fn device_rules_take_dockers_form() {
        assert_eq!(
            parse_device_rule("c 1:3 rwm"),
            Ok(DeviceRule {
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: "rwm".into()
            })
        );
        let any = parse_device_rule("b *:* r").unwrap();
        assert_eq!((any.major, any.minor), (None, None));
        for bad in ["c 1:3", "x 1:3 rwm", "c 1-3 rwm", "c 1:3 rwx", "c 1:3 rr", "c -1:3 r"] {
            assert!(parse_device_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_number("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(signal_number("quit"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGFLY"), None);
        assert_eq!(signal_number("0"), None);
    }
}
