//! Container isolation: privileges, capabilities, seccomp, devices,
//! namespaces, sysctls, ulimits, the init and the stop signal.

use super::*;
use crate::manifest::isolation::{self, NamespaceMode, SysctlNamespace};

impl<'a> Validator<'a> {
    pub(super) fn isolation(&mut self, o: &Object, spec: &ContainerSpec) {
        for (field, mode) in [("pid", &spec.pid), ("ipc", &spec.ipc), ("uts", &spec.uts)] {
            let Some(text) = mode else { continue };
            let at = format!("spec.{field}");
            match isolation::namespace_mode(field, text) {
                Ok(NamespaceMode::Container(peer)) if peer == o.name() => {
                    self.report(o, &at, format!("a container cannot share its own {field} namespace"))
                }
                Ok(NamespaceMode::Container(peer)) => self.reference(o, &at, Kind::Container, peer),
                Ok(_) => {}
                Err(why) => self.report(o, &at, why),
            }
        }
        for (i, d) in spec.devices.iter().enumerate() {
            let at = format!("spec.devices[{i}]");
            for (field, path) in [("hostPath", Some(&d.host_path)), ("path", d.path.as_ref())] {
                let Some(path) = path else { continue };
                let normal = is_absolute(path) && !path.split('/').any(|c| c == "..");
                if !normal || !path.starts_with("/dev/") {
                    self.report(
                        o,
                        &format!("{at}.{field}"),
                        format!("device `{path}` is not under /dev: give a device path such as /dev/fuse"),
                    );
                }
            }
            if let Some(p) = &d.permissions {
                if !isolation::is_device_access(p) {
                    self.report(
                        o,
                        &format!("{at}.permissions"),
                        format!("permissions `{p}` are not letters of `rwm`"),
                    );
                }
            }
        }
        for (i, rule) in spec.device_cgroup_rules.iter().enumerate() {
            if let Err(why) = isolation::parse_device_rule(rule) {
                self.report(o, &format!("spec.deviceCgroupRules[{i}]"), why);
            }
        }
        if let Some(signal) = &spec.stop_signal {
            if isolation::signal_number(signal).is_none() {
                self.report(
                    o,
                    "spec.stopSignal",
                    format!("`{signal}` is not a signal: give a name (SIGTERM, QUIT) or a number"),
                );
            }
        }
        let Some(sc) = &spec.security_context else { return };
        for (field, caps) in [("capAdd", &sc.cap_add), ("capDrop", &sc.cap_drop)] {
            for (i, cap) in caps.iter().enumerate() {
                if isolation::normalize_capability(cap).is_none() {
                    self.report(
                        o,
                        &format!("spec.securityContext.{field}[{i}]"),
                        format!("unknown capability `{cap}`: give a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL"),
                    );
                }
            }
        }
        if let Some(profile) = &sc.seccomp_profile {
            if !matches!(profile.as_str(), "default" | "unconfined") && !is_absolute(profile) {
                self.report(
                    o,
                    "spec.securityContext.seccompProfile",
                    format!("seccompProfile `{profile}` is not `default`, `unconfined` or an absolute path of a JSON profile"),
                );
            }
        }
        for (i, group) in sc.group_add.iter().enumerate() {
            if group.contains(':') || !super::container::is_valid_user(group) {
                self.report(
                    o,
                    &format!("spec.securityContext.groupAdd[{i}]"),
                    format!("`{group}` is not a group name or gid"),
                );
            }
        }
        for name in sc.sysctls.keys() {
            let at = format!("spec.securityContext.sysctls.{name}");
            match isolation::sysctl_namespace(name) {
                Err(why) => self.report(o, &at, why),
                Ok(SysctlNamespace::Network) if spec.network.as_deref() == Some("host") => self.report(
                    o,
                    &at,
                    format!("sysctl `{name}` would change the host's network: not with `network: host`"),
                ),
                Ok(SysctlNamespace::Network)
                    if spec.network.as_deref().is_some_and(|n| n.starts_with("container:")) =>
                {
                    self.report(
                        o,
                        &at,
                        format!("sysctl `{name}` would change another container's network: set it there"),
                    )
                }
                Ok(SysctlNamespace::Ipc) if spec.ipc.as_deref().is_some_and(|m| m != "private") => self.report(
                    o,
                    &at,
                    format!(
                        "sysctl `{name}` would change a shared IPC namespace: not with `ipc: host` or `container:`"
                    ),
                ),
                Ok(_) => {}
            }
        }
        for (name, limit) in &sc.ulimits {
            let at = format!("spec.securityContext.ulimits.{name}");
            if isolation::rlimit_name(name).is_none() {
                let known: Vec<&str> = isolation::ULIMITS.iter().map(|(n, _)| *n).collect();
                self.report(
                    o,
                    &at,
                    format!("unknown ulimit `{name}`: expected one of {}", known.join(", ")),
                );
            } else if limit.soft > limit.hard {
                self.report(
                    o,
                    &at,
                    format!("soft limit {} is above the hard limit {}", limit.soft, limit.hard),
                );
            }
        }
        if let Some(adj) = sc.oom_score_adj {
            if !(-1000..=1000).contains(&adj) {
                self.report(
                    o,
                    "spec.securityContext.oomScoreAdj",
                    format!("oomScoreAdj must be between -1000 and 1000, got {adj}"),
                );
            }
        }
    }
}
