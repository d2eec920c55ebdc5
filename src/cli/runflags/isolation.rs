//! The isolation flags of `docker run` (issue 20): privileges, capabilities,
//! seccomp, devices, namespaces, sysctls, ulimits, the init and stopping.
//! Pure, as the rest of `runflags`. Values the manifest validator checks
//! (capability names, sysctl namespaces…) are also checked here, so that a
//! bad flag is named as the flag the user typed.

use super::{invalid, RunFlagsError};
use crate::cli::args::RunArgs;
use crate::manifest::isolation::{self, NamespaceMode};
use crate::manifest::{ContainerSpec, Device, SecurityContext, Ulimit};

/// `--security-opt seccomp=unconfined|PROFILE.json`: a relative profile
/// path is the caller's, made absolute with its working directory, as the
/// daemon reads the file on the same host.
pub(super) fn seccomp(
    spec: &mut ContainerSpec,
    opt: &str,
    profile: &str,
    caller_env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), RunFlagsError> {
    let value = match profile {
        "" => {
            return Err(invalid(
                "--security-opt",
                opt,
                "give seccomp=unconfined or seccomp=PROFILE.json",
            ))
        }
        "unconfined" | "default" => profile.to_string(),
        path if path.starts_with('/') => path.to_string(),
        path => {
            let cwd = caller_env("PWD").ok_or_else(|| {
                invalid(
                    "--security-opt",
                    opt,
                    "give the profile's absolute path (PWD is not set)",
                )
            })?;
            format!("{}/{path}", cwd.trim_end_matches('/'))
        }
    };
    security(spec).seccomp_profile = Some(value);
    Ok(())
}

fn security(spec: &mut ContainerSpec) -> &mut SecurityContext {
    spec.security_context.get_or_insert_with(SecurityContext::default)
}

pub(super) fn apply(args: &RunArgs, spec: &mut ContainerSpec) -> Result<(), RunFlagsError> {
    if args.privileged == Some(true) {
        security(spec).privileged = true;
    }
    for (flag, list) in [("--cap-add", &args.cap_add), ("--cap-drop", &args.cap_drop)] {
        for cap in list {
            let name = isolation::normalize_capability(cap).ok_or_else(|| {
                invalid(
                    flag,
                    cap,
                    "unknown capability: give a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL",
                )
            })?;
            let sc = security(spec);
            let set = if flag == "--cap-add" {
                &mut sc.cap_add
            } else {
                &mut sc.cap_drop
            };
            set.push(name);
        }
    }
    for text in &args.device {
        spec.devices.push(device(text)?);
    }
    for rule in &args.device_cgroup_rule {
        isolation::parse_device_rule(rule).map_err(|why| invalid("--device-cgroup-rule", rule, why))?;
        spec.device_cgroup_rules.push(rule.clone());
    }
    for group in &args.group_add {
        security(spec).group_add.push(group.clone());
    }
    for (flag, field, value, out) in [
        ("--pid", "pid", &args.pid, &mut spec.pid),
        ("--ipc", "ipc", &args.ipc, &mut spec.ipc),
        ("--uts", "uts", &args.uts, &mut spec.uts),
    ] {
        let Some(text) = value else { continue };
        // Docker's `shareable` is a private namespace others may join:
        // every berth namespace is.
        let text = if field == "ipc" && text == "shareable" {
            "private"
        } else {
            text
        };
        match isolation::namespace_mode(field, text).map_err(|why| invalid(flag, text, why))? {
            NamespaceMode::Private => {}
            _ => *out = Some(text.to_string()),
        }
    }
    for pair in &args.sysctl {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid("--sysctl", pair, "expected NAME=VALUE"))?;
        let ns = isolation::sysctl_namespace(name).map_err(|why| invalid("--sysctl", pair, why))?;
        if ns == isolation::SysctlNamespace::Network && args.network.as_deref() == Some("host") {
            return Err(invalid(
                "--sysctl",
                pair,
                "a net.* sysctl would change the host's network: not with --network host",
            ));
        }
        security(spec).sysctls.insert(name.to_string(), value.to_string());
    }
    for text in &args.ulimit {
        let (name, limit) = ulimit(text)?;
        security(spec).ulimits.insert(name, limit);
    }
    if let Some(adj) = args.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid("--oom-score-adj", &adj.to_string(), "give -1000 to 1000"));
        }
        security(spec).oom_score_adj = Some(adj);
    }
    if let Some(signal) = &args.stop_signal {
        isolation::signal_number(signal).ok_or_else(|| {
            invalid(
                "--stop-signal",
                signal,
                "not a signal: give a name (SIGTERM, QUIT) or a number",
            )
        })?;
        spec.stop_signal = Some(signal.clone());
    }
    if let Some(secs) = args.stop_timeout {
        spec.stop_grace_period = Some(crate::manifest::Duration(std::time::Duration::from_secs(secs)));
    }
    if args.init == Some(true) {
        spec.init = true;
    }
    Ok(())
}

/// `HOST[:CONTAINER[:PERMISSIONS]]`; `HOST:PERMISSIONS` too, as Docker reads
/// a last part made of `rwm` as permissions.
fn device(text: &str) -> Result<Device, RunFlagsError> {
    let bad = |why: &str| invalid("--device", text, why);
    let parts: Vec<&str> = text.split(':').collect();
    let (host, path, permissions) = match parts[..] {
        [host] => (host, None, None),
        [host, p] if isolation::is_device_access(p) => (host, None, Some(p)),
        [host, path] => (host, Some(path), None),
        [host, path, p] => (host, Some(path), Some(p)),
        _ => return Err(bad("expected HOST[:CONTAINER[:rwm]]")),
    };
    for p in std::iter::once(host).chain(path) {
        if !p.starts_with("/dev/") || p.split('/').any(|c| c == "..") {
            return Err(bad("a device path must be under /dev (e.g. /dev/fuse)"));
        }
    }
    if let Some(p) = permissions {
        if !isolation::is_device_access(p) {
            return Err(bad("permissions are letters of rwm"));
        }
    }
    Ok(Device {
        host_path: host.to_string(),
        path: path.map(str::to_string),
        permissions: permissions.map(str::to_string),
    })
}

/// `NAME=SOFT[:HARD]` (hard = soft when not given, as Docker).
fn ulimit(text: &str) -> Result<(String, Ulimit), RunFlagsError> {
    let bad = |why: String| invalid("--ulimit", text, why);
    let (name, limits) = text
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]".into()))?;
    if isolation::rlimit_name(name).is_none() {
        let known: Vec<&str> = isolation::ULIMITS.iter().map(|(n, _)| *n).collect();
        return Err(bad(format!(
            "unknown ulimit `{name}`: expected one of {}",
            known.join(", ")
        )));
    }
    let number = |n: &str| n.parse::<u64>().map_err(|_| bad(format!("`{n}` is not a number")));
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(limits)?, number(limits)?),
    };
    if soft > hard {
        return Err(bad(format!("soft limit {soft} is above the hard limit {hard}")));
    }
    Ok((name.to_string(), Ulimit { soft, hard }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_args;
    use super::*;

    fn spec_of(argv: &[&str]) -> Result<ContainerSpec, RunFlagsError> {
        super::super::parse(&run_args(argv), &|k| (k == "PWD").then(|| "/home/u".to_string())).map(|f| f.spec)
    }

    fn refused(argv: &[&str], flag: &str) -> String {
        let e = spec_of(argv).unwrap_err().to_string();
        assert!(e.starts_with(flag), "{argv:?}: {e}");
        e
    }

    #[test]
    fn privileged_is_only_set_by_the_flag() {
        let sc = |argv: &[&str]| spec_of(argv).unwrap().security_context.unwrap_or_default();
        assert!(sc(&["--privileged", "busybox"]).privileged);
        assert!(sc(&["--privileged=true", "busybox"]).privileged);
        assert!(!sc(&["--privileged=false", "busybox"]).privileged);
        assert!(!sc(&["--cap-add", "ALL", "busybox"]).privileged);
        // `--privileged busybox` must not swallow the image as its value.
        assert_eq!(spec_of(&["--privileged", "busybox", "id"]).unwrap().image, "busybox");
    }

    #[test]
    fn capabilities_in_any_spelling_and_unknown_ones_refused_by_name() {
        let sc = spec_of(&[
            "--cap-drop",
            "all",
            "--cap-add",
            "net_bind_service",
            "--cap-add",
            "CAP_NET_ADMIN",
            "busybox",
        ])
        .unwrap()
        .security_context
        .unwrap();
        assert_eq!(sc.cap_drop, ["ALL"]);
        assert_eq!(sc.cap_add, ["CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"]);
        let e = refused(&["--cap-add", "NET_FLY", "busybox"], "--cap-add \"NET_FLY\"");
        assert!(e.contains("unknown capability"), "{e}");
        refused(&["--cap-drop", "CAP_", "busybox"], "--cap-drop");
    }

    #[test]
    fn seccomp_profiles() {
        let profile = |argv: &[&str]| spec_of(argv).unwrap().security_context.unwrap().seccomp_profile;
        assert_eq!(
            profile(&["--security-opt", "seccomp=unconfined", "busybox"]).as_deref(),
            Some("unconfined")
        );
        assert_eq!(
            profile(&["--security-opt", "seccomp:unconfined", "busybox"]).as_deref(),
            Some("unconfined")
        );
        assert_eq!(
            profile(&["--security-opt", "seccomp=/etc/p.json", "busybox"]).as_deref(),
            Some("/etc/p.json")
        );
        assert_eq!(
            profile(&["--security-opt", "seccomp=p.json", "busybox"]).as_deref(),
            Some("/home/u/p.json")
        );
        let sc = spec_of(&[
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
        ])
        .unwrap()
        .security_context
        .unwrap();
        assert_eq!(
            (sc.no_new_privileges, sc.seccomp_profile.as_deref()),
            (Some(true), Some("unconfined"))
        );
        refused(&["--security-opt", "seccomp=", "busybox"], "--security-opt");
    }

    #[test]
    fn devices_in_dockers_forms_and_only_under_dev() {
        let devices = spec_of(&[
            "--device",
            "/dev/null",
            "--device",
            "/dev/null:/dev/mynull",
            "--device",
            "/dev/zero:/dev/z:r",
            "--device",
            "/dev/fuse:rw",
            "busybox",
        ])
        .unwrap()
        .devices;
        let forms: Vec<(&str, Option<&str>, Option<&str>)> = devices
            .iter()
            .map(|d| (d.host_path.as_str(), d.path.as_deref(), d.permissions.as_deref()))
            .collect();
        assert_eq!(
            forms,
            [
                ("/dev/null", None, None),
                ("/dev/null", Some("/dev/mynull"), None),
                ("/dev/zero", Some("/dev/z"), Some("r")),
                ("/dev/fuse", None, Some("rw")),
            ]
        );
        for bad in [
            "/etc/passwd",
            "/dev/../etc/shadow",
            "/dev/null:/etc/null",
            "/dev/null:/dev/n:rx",
            "a:b:c:d",
        ] {
            refused(&["--device", bad, "busybox"], "--device");
        }
        refused(
            &["--device-cgroup-rule", "c 1:3 rwx", "busybox"],
            "--device-cgroup-rule",
        );
        let rules = spec_of(&["--device-cgroup-rule", "c 42:* rmw", "busybox"])
            .unwrap()
            .device_cgroup_rules;
        assert_eq!(rules, ["c 42:* rmw"]);
    }

    #[test]
    fn namespace_modes() {
        let spec = spec_of(&["--pid", "host", "--ipc", "container:db", "--uts", "host", "busybox"]).unwrap();
        assert_eq!(
            (spec.pid.as_deref(), spec.ipc.as_deref(), spec.uts.as_deref()),
            (Some("host"), Some("container:db"), Some("host"))
        );
        assert_eq!(spec_of(&["--ipc", "shareable", "busybox"]).unwrap().ipc, None);
        refused(&["--pid", "shared", "busybox"], "--pid");
        refused(&["--uts", "container:db", "busybox"], "--uts");
    }

    #[test]
    fn sysctls_namespaced_only_and_no_net_with_host_network() {
        let sc = spec_of(&[
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "kernel.shmmax=1000",
            "busybox",
        ])
        .unwrap()
        .security_context
        .unwrap();
        assert_eq!(sc.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(sc.sysctls["kernel.shmmax"], "1000");
        let e = refused(&["--sysctl", "kernel.hostname=x", "busybox"], "--sysctl");
        assert!(e.contains("not namespaced"), "{e}");
        refused(&["--sysctl", "net.ipv4.ip_forward", "busybox"], "--sysctl");
        let e = refused(
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox"],
            "--sysctl",
        );
        assert!(e.contains("--network host"), "{e}");
    }

    #[test]
    fn ulimits_oom_score_and_stopping() {
        let spec = spec_of(&[
            "--ulimit",
            "nofile=100:200",
            "--ulimit",
            "core=0",
            "--oom-score-adj",
            "-500",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "3",
            "--init",
            "busybox",
        ])
        .unwrap();
        let sc = spec.security_context.unwrap();
        assert_eq!(sc.ulimits["nofile"], Ulimit { soft: 100, hard: 200 });
        assert_eq!(sc.ulimits["core"], Ulimit { soft: 0, hard: 0 });
        assert_eq!(sc.oom_score_adj, Some(-500));
        assert_eq!(spec.stop_signal.as_deref(), Some("SIGUSR1"));
        assert_eq!(spec.stop_grace_period.unwrap().0, std::time::Duration::from_secs(3));
        assert!(spec.init);
        refused(&["--ulimit", "nofile=200:100", "busybox"], "--ulimit");
        refused(&["--ulimit", "fly=1", "busybox"], "--ulimit");
        refused(&["--ulimit", "nofile=x", "busybox"], "--ulimit");
        refused(&["--oom-score-adj", "1001", "busybox"], "--oom-score-adj");
        refused(&["--stop-signal", "SIGFLY", "busybox"], "--stop-signal");
        assert!(!spec_of(&["busybox"]).unwrap().init);
    }
}
