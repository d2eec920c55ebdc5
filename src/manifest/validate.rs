//! Checks on a parsed set of objects as a whole: names, duplicates, references,
//! `dependsOn` cycles, published ports, mounts, limits, and fields that berth
//! parses but does not honour yet (rejected, never silently ignored).
//!
//! Every check runs; all problems come back at once, each at the field it is
//! about when [`Positions`] know it, else at the object's origin.

use std::collections::{BTreeMap, HashMap, HashSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::positions::Positions;
use super::suggest::did_you_mean;
use super::types::{
    ContainerSpec, ImageSpec, Kind, NetworkSpec, Object, PortMapping, Resources, Spec, VolumeMount, VolumeSpec,
};
use super::{printable, Diagnostic};

/// Docker's minimum memory limit.
pub const MIN_MEMORY: u64 = 6 << 20;
/// The range of `resources.cpuShares` (the kernel's cpu.shares bounds).
pub const CPU_SHARES: std::ops::RangeInclusive<u64> = 2..=262_144;

/// [`super::validate`] with positions from [`super::parse_with_positions`].
pub fn validate_with_positions(
    objects: &[Object],
    positions: &Positions,
    exists: &dyn Fn(Kind, &str) -> bool,
) -> Vec<Diagnostic> {
    let mut v = Validator {
        objects,
        positions,
        exists,
        defined: objects.iter().map(|o| (o.kind(), o.name())).collect(),
        out: Vec::new(),
    };
    for object in objects {
        v.object(object);
    }
    v.duplicates();
    v.cycles();
    v.ports();

    // Group by file in the order files were given, then by position.
    let mut file_order: HashMap<&str, usize> = HashMap::new();
    for o in objects {
        let next = file_order.len();
        file_order.entry(o.origin.file.as_str()).or_insert(next);
    }
    let mut out = v.out;
    out.sort_by_key(|d| (file_order.get(d.file.as_str()).copied(), d.line, d.column));
    out
}

struct Validator<'a> {
    objects: &'a [Object],
    positions: &'a Positions,
    exists: &'a dyn Fn(Kind, &str) -> bool,
    defined: HashSet<(Kind, &'a str)>,
    out: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    fn report(&mut self, object: &Object, field: &str, message: impl Into<String>) {
        let (line, column) = self.positions.locate(&object.origin, field);
        self.out.push(Diagnostic {
            file: object.origin.file.clone(),
            line,
            column,
            field: printable(field),
            message: printable(&message.into()),
            snippet: printable(&self.positions.snippet(&object.origin.file, line)),
        });
    }

    fn object(&mut self, o: &'a Object) {
        self.metadata(o);
        match &o.spec {
            Spec::Image(spec) => self.image(o, spec),
            Spec::Container(spec) => self.container(o, spec),
            Spec::Network(spec) => self.network(o, spec),
            Spec::Volume(spec) => self.volume(o, spec),
        }
    }

    fn metadata(&mut self, o: &Object) {
        let name = o.name();
        if !is_dns_label(name) {
            self.report(
                o,
                "metadata.name",
                format!(
                    "name `{name}` is not a DNS label: use 1 to 63 lower-case letters, digits and `-`, \
                     starting and ending with a letter or digit"
                ),
            );
        }
        for key in o.metadata.labels.keys() {
            if let Err(why) = check_label_key(key) {
                self.report(
                    o,
                    &format!("metadata.labels.{key}"),
                    format!("label key `{key}` is not valid: {why}"),
                );
            }
        }
    }

    /// Whether `name` names an object of `kind` in the set or on the daemon.
    fn resolves(&self, kind: Kind, name: &str) -> bool {
        self.defined.contains(&(kind, name)) || (self.exists)(kind, name)
    }

    /// Whether the Container `name` is in the set without a healthcheck.
    /// The spec of the Image `name` in the set (the first, if defined twice).
    fn image_in_set(&self, name: &str) -> Option<&'a ImageSpec> {
        self.objects.iter().find_map(|x| match &x.spec {
            Spec::Image(spec) if x.name() == name => Some(spec),
            _ => None,
        })
    }

    fn reference(&mut self, o: &Object, field: &str, kind: Kind, name: &str) {
        if self.resolves(kind, name) {
            return;
        }
        let same_kind = self.objects.iter().filter(|x| x.kind() == kind).map(|x| x.name());
        let hint = match did_you_mean(name, same_kind) {
            Some(close) => format!("; did you mean `{close}`?"),
            None => String::new(),
        };
        self.report(
            o,
            field,
            format!("references {kind} `{name}`, which is not defined{hint}"),
        );
    }

    fn image(&mut self, o: &Object, spec: &ImageSpec) {
        let sources: Vec<&str> = [
            ("import", spec.import.is_some()),
            ("ref", spec.reference.is_some()),
            ("archive", spec.archive.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if sources.len() > 1 {
            let listed: Vec<String> = sources.iter().map(|s| format!("`{s}`")).collect();
            self.report(
                o,
                "spec",
                format!("an Image takes exactly one source, got {}", listed.join(" and ")),
            );
        }
        if let Some(reference) = &spec.reference {
            if let Err(why) = check_reference(reference) {
                self.report(
                    o,
                    "spec.ref",
                    format!("`{reference}` is not a registry reference: {why}"),
                );
            }
        } else if spec.pull_policy.is_some() || spec.platform.is_some() {
            let field = if spec.pull_policy.is_some() {
                "spec.pullPolicy"
            } else {
                "spec.platform"
            };
            self.report(
                o,
                field,
                "`pullPolicy` and `platform` apply only to an Image with `ref`",
            );
        }
        if let Some(platform) = &spec.platform {
            let parts: Vec<&str> = platform.split('/').collect();
            if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
                self.report(
                    o,
                    "spec.platform",
                    format!("platform `{platform}` is not os/arch or os/arch/variant (e.g. linux/amd64)"),
                );
            }
        }
        if let Some(path) = &spec.archive {
            if !is_absolute(path) {
                self.report(
                    o,
                    "spec.archive",
                    format!("`archive` must be an absolute path, got `{path}`"),
                );
            }
        }
        match &spec.import {
            None if spec.reference.is_none() && spec.archive.is_none() => self.report(
                o,
                "spec",
                "an Image needs a source: `ref` (a registry reference to pull), `archive` (a docker save or OCI archive) or `import` (a root filesystem tar), paths absolute on the daemon's host",
            ),
            Some(path) if !is_absolute(path) => self.report(
                o,
                "spec.import",
                format!("`import` must be an absolute path, got `{path}`"),
            ),
            _ => {}
        }
        if spec.digest.is_some() && spec.import.is_none() {
            // A pulled image is pinned by `ref: repo@sha256:…`; an archive
            // names its own digests.
            self.report(
                o,
                "spec.digest",
                "`digest` checks an `import` tar: pin a registry image with `ref: REPO@sha256:…`",
            );
        }
        if let Some(digest) = &spec.digest {
            if !is_sha256_digest(digest) {
                self.report(
                    o,
                    "spec.digest",
                    format!("digest `{digest}` is malformed: expected `sha256:` and 64 lower-case hex digits"),
                );
            }
        }
        self.command(o, "spec.cmd", &spec.cmd);
        self.env(o, "spec.env", &spec.env);
    }

    fn network(&mut self, o: &Object, spec: &NetworkSpec) {
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

    fn volume(&mut self, o: &Object, spec: &VolumeSpec) {
        if let Some(driver) = &spec.driver {
            if driver != "local" {
                self.report(
                    o,
                    "spec.driver",
                    format!("volume driver `{driver}` is not supported: the only driver is `local`"),
                );
            }
        }
    }

    fn command(&mut self, o: &Object, field: &str, command: &[String]) {
        if command.first().is_some_and(|c| c.is_empty()) {
            self.report(o, &format!("{field}[0]"), "the program to run must not be empty");
        }
        for (i, arg) in command.iter().enumerate() {
            if arg.contains('\0') {
                self.report(o, &format!("{field}[{i}]"), "arguments must not contain NUL characters");
            }
        }
    }

    fn env(&mut self, o: &Object, field: &str, env: &BTreeMap<String, String>) {
        for (key, value) in env {
            let at = format!("{field}.{key}");
            if key.is_empty() {
                self.report(o, &at, "environment variable names must not be empty");
            } else if key.contains('=') {
                self.report(
                    o,
                    &at,
                    format!("environment variable name `{key}` must not contain `=`"),
                );
            }
            if key.contains('\0') || value.contains('\0') {
                self.report(o, &at, "environment variables must not contain NUL characters");
            }
        }
    }

    fn container(&mut self, o: &Object, spec: &ContainerSpec) {
        let image = spec.image.as_str();
        if image.is_empty() {
            self.report(o, "spec.image", "`image` must name an Image");
        } else if !self.resolves(Kind::Image, image) {
            if image.contains(['/', ':', '.', '@']) {
                if let Err(why) = check_reference(image) {
                    self.report(o, "spec.image", format!("`{image}` is not a registry reference: {why}"));
                }
            } else {
                self.reference(o, "spec.image", Kind::Image, image);
            }
        }
        if let Some(entrypoint) = &spec.entrypoint {
            self.command(o, "spec.entrypoint", entrypoint);
        }

        self.command(o, "spec.command", &spec.command);
        let no_entrypoint = spec.entrypoint.as_ref().is_none_or(|e| e.is_empty());
        // Written but empty (the field has a place of its own, not its
        // parent's): Docker refuses an empty Cmd at create; here it would
        // only fail at start and leave a Failed object.
        let written = self.positions.locate(&o.origin, "spec.command") != self.positions.locate(&o.origin, "spec");
        if spec.command.is_empty() && no_entrypoint && written {
            self.report(
                o,
                "spec.command",
                "`command: []` runs nothing: name a program, or leave `command` out to run the image's cmd",
            );
        } else if spec.command.is_empty()
            && no_entrypoint
            && self
                .image_in_set(image)
                .is_some_and(|i| i.cmd.is_empty() && i.import.is_some())
        {
            // The runtime would only find out at start (reconcile's translate).
            // Images known only to the daemon are not seen here, so not checked;
            // nor are pulled or loaded ones, whose config may hold a Cmd.
            self.report(
                o,
                "spec.command",
                format!("no command: set spec.command, or cmd on image/{image}"),
            );
        }
        self.env(o, "spec.env", &spec.env);
        if let Some(dir) = &spec.working_dir {
            if !is_absolute(dir) {
                self.report(
                    o,
                    "spec.workingDir",
                    format!("`workingDir` must be an absolute path, got `{dir}`"),
                );
            }
        }
        if let Some(user) = &spec.user {
            if !is_valid_user(user) {
                self.report(
                    o,
                    "spec.user",
                    format!("user `{user}` is not `user`, `uid`, `user:group` or `uid:gid`"),
                );
            }
        }

        for (i, net) in spec.networks.iter().enumerate() {
            self.reference(o, &format!("spec.networks[{i}]"), Kind::Network, &net.name);
            for (j, alias) in net.aliases.iter().enumerate() {
                if !is_dns_label(alias) {
                    self.report(
                        o,
                        &format!("spec.networks[{i}].aliases[{j}]"),
                        format!("alias `{alias}` is not a DNS label"),
                    );
                }
            }
            if let Some(ip) = &net.ipv4_address {
                if ip.parse::<std::net::Ipv4Addr>().is_err() {
                    self.report(
                        o,
                        &format!("spec.networks[{i}].ipv4Address"),
                        format!("`{ip}` is not an IPv4 address"),
                    );
                }
            }
        }
        match spec.network.as_deref() {
            None | Some("none") | Some("host") => {}
            Some(other) => match other.strip_prefix("container:") {
                Some(peer) if peer == o.name() => {
                    self.report(o, "spec.network", "a container cannot share its own network namespace")
                }
                Some(peer) => self.reference(o, "spec.network", Kind::Container, peer),
                None => self.report(
                    o,
                    "spec.network",
                    format!("unknown network mode `{other}`: expected `none`, `host` or `container:NAME`"),
                ),
            },
        }
        if spec.network.is_some() && !spec.networks.is_empty() {
            self.report(
                o,
                "spec.network",
                "`network` and `networks` exclude each other: a mode, or the networks to join",
            );
        }
        if !spec.ports.is_empty() && spec.networks.is_empty() {
            self.report(
                o,
                "spec.ports",
                "publishing ports needs a bridge network: add `networks: [NAME]`",
            );
        }
        // Published ports are DNAT'd to the container's bridge address; on
        // macvlan networks alone there is none (the container has its own
        // address on the parent's LAN: reach it there).
        let macvlan = |name: &str| {
            self.objects.iter().any(|other| {
                other.name() == name
                    && matches!(&other.spec, Spec::Network(n) if n.driver.as_deref() == Some("macvlan"))
            })
        };
        if !spec.ports.is_empty() && !spec.networks.is_empty() && spec.networks.iter().all(|n| macvlan(&n.name)) {
            self.report(
                o,
                "spec.ports",
                "publishing ports needs a bridge network: on a macvlan network the container has its own address on the parent's LAN; reach it there, or add a bridge network",
            );
        }
        for (i, port) in spec.ports.iter().enumerate() {
            if let Some(first) = spec.ports[..i].iter().position(|p| p.clashes_with(port)) {
                self.report(
                    o,
                    &format!("spec.ports[{i}].host"),
                    format!(
                        "host port {} is already published by spec.ports[{first}]",
                        port.host_label()
                    ),
                );
            }
            if let Some(text) = &port.host_ip {
                if text.parse::<std::net::Ipv4Addr>().is_err() {
                    self.report(
                        o,
                        &format!("spec.ports[{i}].hostIp"),
                        format!("`{text}` is not an IPv4 address (as 127.0.0.1)"),
                    );
                }
            }
        }
        for (i, port) in spec.ports.iter().enumerate() {
            if port.host == 0 {
                self.report(o, &format!("spec.ports[{i}].host"), "port numbers start at 1");
            }
            if port.container == 0 {
                self.report(o, &format!("spec.ports[{i}].container"), "port numbers start at 1");
            }
            if let Some(p) = &port.protocol {
                if p != "tcp" && p != "udp" {
                    self.report(
                        o,
                        &format!("spec.ports[{i}].protocol"),
                        format!("unknown protocol `{p}`: expected `tcp` or `udp`"),
                    );
                }
            }
        }

        let mut targets: HashMap<&str, usize> = HashMap::new();
        for (i, mount) in spec.volumes.iter().enumerate() {
            self.mount(o, i, mount);
            if let Some(target) = mount.tmpfs.as_deref().or(mount.path.as_deref()) {
                let target = target.trim_end_matches('/');
                if let Some(first) = targets.insert(target, i) {
                    self.report(
                        o,
                        &format!("spec.volumes[{i}]"),
                        format!("two mounts at `{target}`: volumes[{first}] and volumes[{i}]"),
                    );
                }
            }
        }

        if let Some(resources) = &spec.resources {
            self.resources(o, resources);
        }
        if let Some(logs) = &spec.logs {
            if logs.max_size.is_some_and(|m| m.0 < 4096) {
                self.report(o, "spec.logs.maxSize", "`maxSize` must be at least 4Ki");
            }
            if logs.max_files == Some(0) {
                self.report(o, "spec.logs.maxFiles", "`maxFiles` must be at least 1");
            }
        }
        if let Some(h) = &spec.healthcheck {
            if h.exec.is_empty() {
                self.report(o, "spec.healthcheck.exec", "a healthcheck needs a command");
            }
            for (field, d) in [("interval", h.interval), ("timeout", h.timeout)] {
                if d.is_some_and(|d| d.0.is_zero()) {
                    self.report(
                        o,
                        &format!("spec.healthcheck.{field}"),
                        format!("`{field}` must be more than 0s"),
                    );
                }
            }
        }

        let mut seen: HashSet<&str> = HashSet::new();
        for (i, dep) in spec.depends_on.iter().enumerate() {
            let at = format!("spec.dependsOn[{i}]");
            // Self-dependencies are reported as cycles.
            if dep.name != o.name() {
                self.reference(o, &format!("{at}.name"), Kind::Container, &dep.name);
            }
            if !seen.insert(dep.name.as_str()) {
                self.report(
                    o,
                    &format!("{at}.name"),
                    format!("`{}` is listed twice in `dependsOn`", dep.name),
                );
            }
            // `condition: healthy` on a container without a `healthcheck`
            // is fine here: its image may have a HEALTHCHECK, which only
            // the start finds out (validation does no I/O). A dependency
            // with neither is reported by reconcile, on the dependant.
        }
    }

    fn mount(&mut self, o: &Object, i: usize, m: &VolumeMount) {
        let at = format!("spec.volumes[{i}]");
        let sources: Vec<&str> = [
            ("volume", m.volume.is_some()),
            ("hostPath", m.host_path.is_some()),
            ("tmpfs", m.tmpfs.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match sources.as_slice() {
            [] => self.report(
                o,
                &at,
                "a mount needs exactly one of `volume`, `hostPath` or `tmpfs`, got none",
            ),
            [_] => {}
            many => {
                let listed: Vec<String> = many.iter().map(|s| format!("`{s}`")).collect();
                self.report(
                    o,
                    &at,
                    format!(
                        "a mount needs exactly one of `volume`, `hostPath` or `tmpfs`, got {}",
                        listed.join(" and ")
                    ),
                );
            }
        }
        if let Some(volume) = &m.volume {
            self.reference(o, &format!("{at}.volume"), Kind::Volume, volume);
        }
        if let Some(host) = &m.host_path {
            if !is_absolute(host) {
                self.report(
                    o,
                    &format!("{at}.hostPath"),
                    format!("`hostPath` must be an absolute path, got `{host}`"),
                );
            }
        }
        if let Some(tmpfs) = &m.tmpfs {
            if !is_absolute(tmpfs) {
                self.report(
                    o,
                    &format!("{at}.tmpfs"),
                    format!("`tmpfs` is the mount path inside the container and must be absolute, got `{tmpfs}`"),
                );
            }
            if m.path.is_some() {
                self.report(
                    o,
                    &format!("{at}.path"),
                    "`path` is not used with `tmpfs`: the `tmpfs` value is the mount path",
                );
            }
        }
        if m.volume.is_some() || m.host_path.is_some() {
            match &m.path {
                None => self.report(
                    o,
                    &at,
                    "missing `path`: the absolute path inside the container to mount at",
                ),
                Some(path) if !is_absolute(path) => self.report(
                    o,
                    &format!("{at}.path"),
                    format!("`path` must be an absolute path inside the container, got `{path}`"),
                ),
                Some(_) => {}
            }
        }
        if let Some(mode) = &m.mode {
            if m.tmpfs.is_none() {
                self.report(o, &format!("{at}.mode"), "`mode` applies only to `tmpfs` mounts");
            } else if crate::manifest::types::parse_mode(mode).is_none() {
                self.report(
                    o,
                    &format!("{at}.mode"),
                    format!("`mode` must be octal permission bits such as \"1777\" or \"0700\", got `{mode}`"),
                );
            }
        }
        if m.propagation.is_some() && m.host_path.is_none() {
            self.report(
                o,
                &format!("{at}.propagation"),
                "`propagation` applies only to `hostPath` bind mounts",
            );
        }
        match m.size {
            Some(_) if m.tmpfs.is_none() => {
                self.report(o, &format!("{at}.size"), "`size` applies only to `tmpfs` mounts")
            }
            Some(size) if size.0 == 0 => self.report(
                o,
                &format!("{at}.size"),
                "a tmpfs `size` must be larger than 0 (leave it out for the kernel default)",
            ),
            _ => {}
        }
    }

    fn resources(&mut self, o: &Object, r: &Resources) {
        if let Some(shares) = r.cpu_shares {
            if !CPU_SHARES.contains(&shares) {
                self.report(
                    o,
                    "spec.resources.cpuShares",
                    format!(
                        "cpuShares must be between {} and {}, got {shares}",
                        CPU_SHARES.start(),
                        CPU_SHARES.end()
                    ),
                );
            }
        }
        if r.pids == Some(0) {
            self.report(o, "spec.resources.pids", "pids must be at least 1");
        }
        if let Some(memory) = r.memory {
            if memory.0 < MIN_MEMORY {
                self.report(
                    o,
                    "spec.resources.memory",
                    format!("memory must be at least 6Mi (Docker's minimum), got {memory}"),
                );
            }
        }
    }

    /// The same (kind, name) twice.
    fn duplicates(&mut self) {
        let mut first: HashMap<(Kind, &str), &Object> = HashMap::new();
        for o in self.objects {
            match first.get(&(o.kind(), o.name())) {
                None => {
                    first.insert((o.kind(), o.name()), o);
                }
                Some(earlier) => {
                    let e = &earlier.origin;
                    self.report(
                        o,
                        "metadata.name",
                        format!(
                            "{} `{}` is defined twice: here and at {}:{}:{}",
                            o.kind(),
                            o.name(),
                            e.file,
                            e.line,
                            e.column
                        ),
                    );
                }
            }
        }
    }

    /// `dependsOn` cycles among the containers of the set, each reported once.
    fn cycles(&mut self) {
        let mut graph: DiGraph<&Object, usize> = DiGraph::new();
        let mut index: HashMap<&str, NodeIndex> = HashMap::new();
        for o in self.objects {
            if let Spec::Container(_) = o.spec {
                index.entry(o.name()).or_insert_with(|| graph.add_node(o));
            }
        }
        for &from in index.values() {
            let Spec::Container(spec) = &graph[from].spec else {
                continue;
            };
            for (i, dep) in spec.depends_on.iter().enumerate() {
                if let Some(&to) = index.get(dep.name.as_str()) {
                    graph.update_edge(from, to, i);
                }
            }
        }
        let mut found: Vec<(&Object, String, usize)> = Vec::new();
        for scc in tarjan_scc(&graph) {
            let cyclic = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
            if !cyclic {
                continue;
            }
            // Start at the smallest name so the report does not depend on order.
            let Some(&start) = scc.iter().min_by_key(|n| graph[**n].name()) else {
                continue;
            };
            let members: HashSet<NodeIndex> = scc.iter().copied().collect();
            let path = shortest_cycle(&graph, start, &members);
            let names: Vec<&str> = path.iter().map(|n| graph[*n].name()).collect();
            let edge = path
                .get(1)
                .and_then(|next| graph.find_edge(start, *next))
                .map(|e| graph[e])
                .unwrap_or(0);
            found.push((graph[start], names.join(" -> "), edge));
        }
        for (o, cycle, edge) in found {
            self.report(
                o,
                &format!("spec.dependsOn[{edge}].name"),
                format!("dependsOn cycle: {cycle}"),
            );
        }
    }

    /// Two published ports on the same host port and protocol.
    fn ports(&mut self) {
        let mut taken: Vec<(&PortMapping, &Object)> = Vec::new();
        let mut clashes = Vec::new();
        for o in self.objects {
            let Spec::Container(spec) = &o.spec else { continue };
            for (i, port) in spec.ports.iter().enumerate() {
                match taken.iter().find(|(p, _)| p.clashes_with(port)) {
                    None => taken.push((port, o)),
                    Some(&(_, first)) => clashes.push((o, i, first, port.host_label())),
                }
            }
        }
        for (o, i, first, label) in clashes {
            let message = if std::ptr::eq(o, first) {
                format!("host port {label} is published twice by Container `{}`", o.name())
            } else {
                format!(
                    "host port {label} is published by both Container `{}` ({}:{}) and Container `{}`",
                    first.name(),
                    first.origin.file,
                    first.origin.line,
                    o.name()
                )
            };
            self.report(o, &format!("spec.ports[{i}].host"), message);
        }
    }
}

/// The shortest path from `start` back to itself inside one strongly connected
/// component, as the list of nodes `start, …, start`.
fn shortest_cycle(graph: &DiGraph<&Object, usize>, start: NodeIndex, members: &HashSet<NodeIndex>) -> Vec<NodeIndex> {
    let mut previous: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|m| members.contains(m)).collect();
        next.sort_by_key(|m| graph[*m].name());
        for m in next {
            if m == start {
                // Walk back from `n` to `start`, then close the loop.
                let mut path = vec![n];
                let mut at = n;
                while at != start {
                    match previous.get(&at) {
                        Some(&p) => at = p,
                        None => break,
                    }
                    path.push(at);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}

/// RFC 1123 label: 1–63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric.
pub fn is_dns_label(name: &str) -> bool {
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && ok_char(b[0])
        && ok_char(b[b.len() - 1])
        && b.iter().all(|&c| ok_char(c) || c == b'-')
}

/// Kubernetes' label key rules: an optional DNS-subdomain prefix and `/`, then
/// a name of 1–63 alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_dns_label) {
            return Err(format!(
                "the prefix `{prefix}` must be a DNS subdomain such as `example.com`"
            ));
        }
    }
    let b = name.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    if b.is_empty()
        || b.len() > 63
        || !edge(b[0])
        || !edge(b[b.len() - 1])
        || !b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(
            "the name must be 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
                .to_owned(),
        );
    }
    Ok(())
}

fn is_absolute(path: &str) -> bool {
    path.starts_with('/')
}

fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
}

/// `1000` or `1000:1000`.
/// `name`, `uid`, `name:group`, `uid:gid` (names as passwd allows them:
/// letters, digits, `_`, `-`, `.`, not starting with `-`).
fn is_valid_user(user: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.len() <= 32
            && !s.starts_with('-')
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            && (s.parse::<u32>().is_ok() || !s.bytes().all(|c| c.is_ascii_digit()))
    };
    match user.split_once(':') {
        Some((uid, gid)) => part(uid) && part(gid),
        None => part(user),
    }
}

/// `a.b.c.d/n` as (network address, prefix), with room for a gateway and a host.
fn parse_subnet(text: &str) -> Result<(u32, u8), String> {
    let (net, prefix) = parse_range(text)?;
    if !(1..=30).contains(&prefix) {
        return Err("the prefix must be 1 to 30 (room for a gateway and a host)".into());
    }
    Ok((net, prefix))
}

/// `a.b.c.d/n` as (network address, prefix), any prefix up to 32.
fn parse_range(text: &str) -> Result<(u32, u8), String> {
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

/// Whether `reference` parses as a registry reference; why not otherwise.
fn check_reference(reference: &str) -> Result<(), String> {
    let parsed = super::parse_reference(reference).map_err(|e| e.to_string())?;
    if parsed.repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lower-case".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::{find, render};
    use crate::manifest::{load, parse_with_positions, validate, Source};

    /// An Image `shop` (with a `cmd`) and a Volume `data`, after the documents under test.
    const COMMON: &str = "---\napiVersion: berth/v1\nkind: Image\nmetadata: {name: shop}\nspec: {import: /srv/shop.tar, cmd: [sh]}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {name: data}\n";

    fn check_with(text: &str, exists: &dyn Fn(Kind, &str) -> bool) -> Vec<Diagnostic> {
        let sources = [Source {
            file: "m.yaml".into(),
            text: format!("{text}{COMMON}"),
        }];
        let (objects, positions) = parse_with_positions(&sources).unwrap_or_else(|d| panic!("{}", render(&d)));
        validate_with_positions(&objects, &positions, exists)
    }

    fn check(text: &str) -> Vec<Diagnostic> {
        check_with(text, &|_, _| false)
    }

    fn container(name: &str, spec: &str) -> String {
        format!("apiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: shop\n{spec}")
    }

    #[test]
    fn a_supported_stack_has_no_problems() {
        let text = format!(
            "{}---\n{}",
            container(
                "web",
                "  command: [httpd, -f]\n  env: {MODE: prod}\n  user: \"1000:1000\"\n  network: none\n  volumes:\n    - {volume: data, path: /data}\n    - {hostPath: /srv/static, path: /static, readOnly: true}\n    - {tmpfs: /tmp, size: 64Mi}\n  resources: {cpus: 0.5, memory: 100Mi, pids: 200, cpuShares: 512}\n  dependsOn: [{name: db}]\n",
            ),
            container("db", "  dependsOn: [{name: init, condition: completed}]\n"),
        );
        let text = format!("{text}---\n{}", container("init", ""));
        let d = check(&text);
        assert!(d.is_empty(), "{}", render(&d));
    }

    #[test]
    fn names_must_be_dns_labels_and_label_keys_sane() {
        let long = "a".repeat(64);
        let d = check(&format!(
            "apiVersion: berth/v1\nkind: Volume\nmetadata: {{name: Web_1}}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {{name: {long}}}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata:\n  name: ok\n  labels: {{app.kubernetes.io/name: x, -bad: y, good_key.1: z, /x: w}}\n"
        ));
        let e = find(&d, "name `Web_1` is not a DNS label");
        assert_eq!((e.line, e.column, e.field.as_str()), (3, 18, "metadata.name"));
        assert_eq!(e.snippet, "metadata: {name: Web_1}");
        find(&d, &format!("name `{long}` is not a DNS label"));
        let e = find(&d, "label key `-bad` is not valid");
        assert_eq!((e.line, e.field.as_str()), (13, "metadata.labels.-bad"));
        find(&d, "label key `/x` is not valid: the prefix");
        assert_eq!(d.len(), 4, "{}", render(&d));
    }

    #[test]
    fn duplicate_names_are_reported_with_both_places() {
        let d = check("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: data}\n");
        let e = find(&d, "Volume `data` is defined twice: here and at m.yaml:1:1");
        assert_eq!((e.line, e.field.as_str()), (9 + 3, "metadata.name"));
        // The same name in another kind is another object.
        let d = check("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: shop}\n");
        assert!(d.is_empty(), "{}", render(&d));
    }

    #[test]
    fn references_to_undefined_objects_are_reported() {
        let text = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: shpo\n  volumes:\n    - {volume: cache, path: /cache}\n  dependsOn:\n    - {name: db}\n";
        let d = check(text);
        let e = find(
            &d,
            "references Image `shpo`, which is not defined; did you mean `shop`?",
        );
        assert_eq!((e.line, e.column, e.field.as_str()), (5, 10, "spec.image"));
        let e = find(&d, "references Volume `cache`, which is not defined");
        assert_eq!((e.line, e.field.as_str()), (7, "spec.volumes[0].volume"));
        let e = find(&d, "references Container `db`, which is not defined");
        assert_eq!((e.line, e.field.as_str()), (9, "spec.dependsOn[0].name"));
        assert_eq!(d.len(), 3, "{}", render(&d));

        // Objects the daemon already knows satisfy references.
        let known = |kind: Kind, name: &str| {
            matches!(
                (kind, name),
                (Kind::Image, "shpo") | (Kind::Volume, "cache") | (Kind::Container, "db")
            )
        };
        let d = check_with(text, &known);
        assert!(d.is_empty(), "{}", render(&d));
    }

    #[test]
    fn registry_references_are_accepted_and_bad_ones_named() {
        let d = check("apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: docker.io/library/busybox:1.36, command: [sh]}\n");
        assert!(d.is_empty(), "{}", render(&d));
        let d = check("apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: \"localhost:5000/Shop:1\", command: [sh]}\n");
        let e = find(&d, "is not a registry reference: invalid reference format");
        assert_eq!((e.line, e.field.as_str()), (4, "spec.image"));
        let d = check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {ref: \"localhost:5000/x:1\", pullPolicy: Always, platform: linux/arm64}\n");
        assert!(d.is_empty(), "{}", render(&d));
        let d =
            check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {ref: \"x:\", platform: amd64}\n");
        find(&d, "`x:` is not a registry reference");
        find(&d, "platform `amd64` is not os/arch");
        let d = check(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {import: /x.tar, pullPolicy: Never}\n",
        );
        find(&d, "apply only to an Image with `ref`");
    }

    #[test]
    fn depends_on_cycles_are_named() {
        let text = [
            container("b", "  dependsOn: [{name: c}]\n"),
            container("a", "  dependsOn: [{name: x}, {name: b}]\n"),
            container("c", "  dependsOn: [{name: a}]\n"),
            container("x", ""),
            container("solo", "  dependsOn: [{name: solo}]\n"),
        ]
        .join("---\n");
        let d = check(&text);
        let e = find(&d, "dependsOn cycle: a -> b -> c -> a");
        // Reported on `a`'s entry that leads into the cycle.
        assert_eq!((e.line, e.field.as_str()), (13, "spec.dependsOn[1].name"));
        let e = find(&d, "dependsOn cycle: solo -> solo");
        assert_eq!((e.line, e.field.as_str()), (33, "spec.dependsOn[0].name"));
        assert_eq!(d.len(), 2, "{}", render(&d));
    }

    #[test]
    fn two_containers_publishing_the_same_host_port_are_named() {
        let text = [
            container("a", "  ports: [{host: 8080, container: 80}]\n"),
            container(
                "b",
                "  ports: [{host: 8080, container: 8080}, {host: 8080, container: 81, protocol: udp}]\n",
            ),
        ]
        .join("---\n");
        let d = check(&text);
        let e = find(
            &d,
            "host port 8080/tcp is published by both Container `a` (m.yaml:1) and Container `b`",
        );
        assert_eq!((e.line, e.field.as_str()), (13, "spec.ports[0].host"));
        // udp is another port; ports themselves are not supported yet.
        assert_eq!(
            d.iter().filter(|d| d.message.contains("8080/")).count(),
            1,
            "{}",
            render(&d)
        );
    }

    #[test]
    fn a_host_ip_is_an_ipv4_address_and_only_the_same_address_clashes() {
        let text = [
            container("a", "  ports: [{hostIp: 127.0.0.1, host: 8080, container: 80}]\n"),
            container("b", "  ports: [{hostIp: 127.0.0.2, host: 8080, container: 80}]\n"),
            container("c", "  ports: [{hostIp: 127.0.0.1, host: 8080, container: 81}]\n"),
            container(
                "d",
                "  ports: [{host: 8080, container: 80}, {hostIp: ::1, host: 9090, container: 80}]\n",
            ),
        ]
        .join("---\n");
        let d = check(&text);
        let e = find(
            &d,
            "host port 127.0.0.1:8080/tcp is published by both Container `a` (m.yaml:1) and Container `c`",
        );
        assert_eq!(e.field, "spec.ports[0].host");
        // Every address clashes with any one address.
        find(&d, "host port 8080/tcp is published by both Container `a`");
        let e = find(&d, "`::1` is not an IPv4 address");
        assert_eq!((e.line, e.field.as_str()), (27, "spec.ports[1].hostIp"));
        // 127.0.0.2 is another address: `b` clashes with no one.
        assert!(!d.iter().any(|d| d.message.contains("Container `b`")), "{}", render(&d));
    }

    #[test]
    fn volume_mounts_need_one_source_and_absolute_paths() {
        let d = check(&container(
            "web",
            "  volumes:\n    - {volume: data, hostPath: /srv, path: /a}\n    - {path: /b}\n    - {volume: data}\n    - {hostPath: srv, path: c}\n    - {tmpfs: tmp, size: 1Mi, path: /t}\n    - {volume: data, path: /e, size: 1Mi}\n",
        ));
        let e = find(&d, "got `volume` and `hostPath`");
        assert_eq!((e.line, e.field.as_str()), (7, "spec.volumes[0]"));
        let e = find(
            &d,
            "a mount needs exactly one of `volume`, `hostPath` or `tmpfs`, got none",
        );
        assert_eq!(e.line, 8);
        let e = find(&d, "missing `path`");
        assert_eq!((e.line, e.field.as_str()), (9, "spec.volumes[2]"));
        let e = find(&d, "`hostPath` must be an absolute path, got `srv`");
        assert_eq!((e.line, e.field.as_str()), (10, "spec.volumes[3].hostPath"));
        find(&d, "`path` must be an absolute path inside the container, got `c`");
        let e = find(
            &d,
            "`tmpfs` is the mount path inside the container and must be absolute",
        );
        assert_eq!(e.line, 11);
        find(&d, "`path` is not used with `tmpfs`");
        let e = find(&d, "`size` applies only to `tmpfs` mounts");
        assert_eq!((e.line, e.field.as_str()), (12, "spec.volumes[5].size"));
    }

    #[test]
    fn tmpfs_modes_are_octal_and_propagation_is_for_binds() {
        let d = check(&container(
            "web",
            "  volumes:\n    - {tmpfs: /a, mode: \"0700\"}\n    - {tmpfs: /b, mode: \"rwx\"}\n    - {tmpfs: /c, mode: \"17777\"}\n    - {volume: data, path: /d, mode: \"0755\"}\n    - {volume: data, path: /e, propagation: rslave}\n    - {hostPath: /srv, path: /f, propagation: rshared}\n",
        ));
        let e = find(&d, "got `rwx`");
        assert_eq!((e.line, e.field.as_str()), (8, "spec.volumes[1].mode"));
        assert!(e.message.contains("octal permission bits"), "{}", e.message);
        let e = find(&d, "got `17777`");
        assert_eq!((e.line, e.field.as_str()), (9, "spec.volumes[2].mode"));
        let e = find(&d, "`mode` applies only to `tmpfs` mounts");
        assert_eq!((e.line, e.field.as_str()), (10, "spec.volumes[3].mode"));
        let e = find(&d, "`propagation` applies only to `hostPath` bind mounts");
        assert_eq!((e.line, e.field.as_str()), (11, "spec.volumes[4].propagation"));
        assert_eq!(d.len(), 4, "{}", render(&d));
        assert_eq!(crate::manifest::types::parse_mode("1777"), Some(0o1777));
        assert_eq!(crate::manifest::types::parse_mode("8"), None);
    }

    #[test]
    fn users_are_names_or_numbers() {
        for ok in [
            "1000",
            "\"0:0\"",
            "\"65534:100\"",
            "nobody",
            "\"app:staff\"",
            "www-data",
        ] {
            let d = check(&container("web", &format!("  user: {ok}\n")));
            assert!(d.is_empty(), "{ok}: {}", render(&d));
        }
        for bad in ["\"\"", "\"a b\"", "\"1000:\"", "\"-x\"", "99999999999"] {
            let d = check(&container("web", &format!("  user: {bad}\n")));
            let e = find(&d, "is not `user`, `uid`, `user:group` or `uid:gid`");
            assert_eq!((e.line, e.field.as_str()), (6, "spec.user"), "{bad}");
        }
    }

    #[test]
    fn fields_berth_does_not_honour_yet_are_rejected() {
        let text = format!(
            "{}---\napiVersion: berth/v1\nkind: Network\nmetadata: {{name: backend}}\nspec: {{driver: bridge}}\n---\napiVersion: berth/v1\nkind: Image\nmetadata: {{name: pulled}}\nspec: {{ref: busybox, archive: /x.tar}}\n",
            container(
                "web",
                "  networks: [backend]\n  network: host\n  ports: [{host: 80, container: 80}]\n  healthcheck: {exec: []}\n  dependsOn: [{name: db, condition: healthy}]\n---\n",
            ) + &container("db", ""),
        );
        let d = check(&text);
        for (needle, line, field) in [
            ("`network` and `networks` exclude each other", 7, "spec.network"),
            ("a healthcheck needs a command", 9, "spec.healthcheck.exec"),
        ] {
            let e = find(&d, needle);
            assert_eq!((e.line, e.field.as_str()), (line, field), "{needle}");
        }
        find(&d, "an Image takes exactly one source, got `ref` and `archive`");
        // The image may have a HEALTHCHECK: only reconcile can tell.
        assert!(!d.iter().any(|e| e.field.starts_with("spec.dependsOn")), "{d:?}");
        let d = check(&container("web", "  network: bridge\n"));
        find(
            &d,
            "unknown network mode `bridge`: expected `none`, `host` or `container:NAME`",
        );
        let d = check(&container(
            "web",
            "  network: container:web\n  ports: [{host: 80, container: 80}]\n",
        ));
        find(&d, "a container cannot share its own network namespace");
        find(&d, "publishing ports needs a bridge network");
        let d = check(&format!(
            "apiVersion: berth/v1\nkind: Network\nmetadata: {{name: lan}}\nspec: {{driver: macvlan, parent: eth0, subnet: 192.168.77.0/24}}\n---\n{}",
            container("web", "  networks: [lan]\n  ports: [{host: 80, container: 80}]\n")
        ));
        let e = find(&d, "on a macvlan network the container has its own address");
        assert_eq!(e.field, "spec.ports");
    }

    #[test]
    fn a_digest_is_refused_beside_a_ref_or_an_archive() {
        let hex = "a".repeat(64);
        for source in ["ref: busybox", "archive: /x.tar"] {
            let d = check(&format!(
                "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: img}}\nspec:\n  {source}\n  digest: sha256:{hex}\n"
            ));
            let e = find(&d, "`digest` checks an `import` tar");
            assert_eq!((e.line, e.field.as_str()), (6, "spec.digest"));
        }
        let d = check(&format!(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: img}}\nspec:\n  import: /x.tar\n  digest: sha256:{hex}\n"
        ));
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn network_specs_are_checked_field_by_field() {
        let net = |spec: &str| format!("apiVersion: berth/v1\nkind: Network\nmetadata: {{name: n}}\nspec: {spec}\n");
        assert!(check(&net(
            "{subnet: 10.89.0.0/24, gateway: 10.89.0.1, ipRange: 10.89.0.128/25, internal: true, mtu: 1400}"
        ))
        .is_empty());
        for (spec, needle) in [
            (
                "{subnet: 10.89.0.1/24}",
                "host bits are set; did you mean 10.89.0.0/24?",
            ),
            ("{subnet: 10.89.0.0/31}", "the prefix must be 1 to 30"),
            // A /0 once overflowed the mask's shift and panicked validation.
            ("{subnet: 0.0.0.0/0}", "the prefix must be 1 to 30"),
            (
                "{subnet: 10.89.0.0/24, ipRange: 0.0.0.0/0}",
                "ipRange 0.0.0.0/0 is not inside subnet",
            ),
            ("{subnet: 10.0.0.0/0}", "host bits are set; did you mean 0.0.0.0/0?"),
            (
                "{subnet: 10.89.0.0/24, gateway: 10.90.0.1}",
                "not a host address of subnet 10.89.0.0/24",
            ),
            ("{gateway: 10.90.0.1}", "a gateway needs a `subnet`"),
            ("{driver: macvlan}", "a macvlan network needs `parent`"),
            ("{driver: macvlan, parent: eth0}", "a macvlan network needs `subnet`"),
            ("{parent: eth0}", "`parent` is for `driver: macvlan`"),
            ("{mtu: 10}", "mtu 10 is out of range"),
            ("{ipRange: 10.89.0.0/28}", "an ipRange needs a `subnet`"),
            (
                "{subnet: 10.89.0.0/24, ipRange: 10.89.1.0/28}",
                "ipRange 10.89.1.0/28 is not inside subnet 10.89.0.0/24",
            ),
            (
                "{subnet: 10.89.0.0/24, ipRange: 10.89.0.0/16}",
                "ipRange 10.89.0.0/16 is not inside subnet 10.89.0.0/24",
            ),
            (
                "{subnet: 10.89.0.0/24, ipRange: 10.89.0.3/28}",
                "did you mean 10.89.0.0/28?",
            ),
            (
                "{subnet: 10.89.0.0/24, subnet6: 'fd00:1::/64'}",
                "IPv6 is not supported yet",
            ),
        ] {
            let d = check(&net(spec));
            find(&d, needle);
        }
        let d = check(&net("\n  subnet: 10.89.0.0/24\n  subnet6: fd00:1::/64"));
        let e = find(&d, "IPv6 is not supported yet");
        assert_eq!((e.line, e.field.as_str()), (6, "spec.subnet6"));
    }

    #[test]
    fn images_need_an_absolute_import_and_a_well_formed_digest() {
        let d = check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec:\n  import: rootfs.tar\n  digest: sha256:ABC\n");
        let e = find(&d, "`import` must be an absolute path, got `rootfs.tar`");
        assert_eq!((e.line, e.field.as_str()), (5, "spec.import"));
        let e = find(&d, "digest `sha256:ABC` is malformed");
        assert_eq!((e.line, e.field.as_str()), (6, "spec.digest"));
        let d = check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {}\n");
        find(&d, "an Image needs a source");
    }

    #[test]
    fn volume_drivers_other_than_local_are_refused() {
        let d = check("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\nspec: {driver: nfs}\n");
        let e = find(&d, "volume driver `nfs` is not supported");
        assert_eq!((e.line, e.field.as_str()), (4, "spec.driver"));
    }

    #[test]
    fn resource_limits_must_be_in_range() {
        let d = check(&container(
            "web",
            "  resources:\n    cpuShares: 1\n    pids: 0\n    memory: 4Mi\n",
        ));
        let e = find(&d, "cpuShares must be between 2 and 262144, got 1");
        assert_eq!((e.line, e.field.as_str()), (7, "spec.resources.cpuShares"));
        let e = find(&d, "pids must be at least 1");
        assert_eq!(e.line, 8);
        let e = find(&d, "memory must be at least 6Mi (Docker's minimum), got 4Mi");
        assert_eq!(e.line, 9);
        let d = check(&container("web", "  resources: {cpuShares: 262145}\n"));
        find(&d, "got 262145");
    }

    #[test]
    fn commands_and_environments_must_be_usable() {
        let d = check(&container(
            "web",
            "  command: [\"\", x]\n  env: {\"A=B\": x, \"\": y}\n",
        ));
        let e = find(&d, "the program to run must not be empty");
        assert_eq!((e.line, e.field.as_str()), (6, "spec.command[0]"));
        let e = find(&d, "environment variable name `A=B` must not contain `=`");
        assert_eq!((e.line, e.field.as_str()), (7, "spec.env.A=B"));
        find(&d, "environment variable names must not be empty");
    }

    #[test]
    fn a_container_with_no_command_whose_image_in_the_set_has_no_cmd_is_reported() {
        let bare = "---\napiVersion: berth/v1\nkind: Image\nmetadata: {name: bare}\nspec: {import: /srv/bare.tar}\n";
        let on_bare = |name: &str, spec: &str| {
            format!("apiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: bare\n{spec}")
        };
        let text = [on_bare("absent", ""), on_bare("empty", "  command: []\n")].join("---\n") + bare;
        let d = check(&text);
        let got: Vec<(usize, usize, &str, &str)> = d
            .iter()
            .map(|d| (d.line, d.column, d.field.as_str(), d.message.as_str()))
            .collect();
        let message = "no command: set spec.command, or cmd on image/bare";
        let empty = "`command: []` runs nothing: name a program, or leave `command` out to run the image's cmd";
        // Absent: at `spec`, the nearest field that is written; empty: at `command`.
        assert_eq!(
            got,
            [(4, 1, "spec.command", message), (12, 3, "spec.command", empty)],
            "{}",
            render(&d)
        );

        // A command, or a `cmd` on the image, is enough.
        let d = check(&(on_bare("web", "  command: [httpd]\n") + bare));
        assert!(d.is_empty(), "{}", render(&d));
    }

    #[test]
    fn an_empty_command_is_refused_unless_an_entrypoint_runs() {
        let d = check(&container("web", "  command: []\n"));
        let got: Vec<(usize, &str)> = d.iter().map(|d| (d.line, d.field.as_str())).collect();
        assert_eq!(got, [(6, "spec.command")], "{}", render(&d));
        assert!(d[0].message.contains("runs nothing"), "{}", render(&d));
        // Flow style: the field is on the same line as `spec`, apart from it.
        let text =
            "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: elsewhere, command: []}\n";
        let d = check_with(text, &|kind, name| kind == Kind::Image && name == "elsewhere");
        assert_eq!(d.len(), 1, "{}", render(&d));
        // An entrypoint with no arguments is a program to run.
        let d = check(&container("web", "  entrypoint: [httpd]\n  command: []\n"));
        assert!(d.is_empty(), "{}", render(&d));
    }

    #[test]
    fn a_container_on_an_image_only_the_daemon_knows_needs_no_command_here() {
        let text = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: elsewhere}\n";
        let d = check_with(text, &|kind, name| kind == Kind::Image && name == "elsewhere");
        assert!(d.is_empty(), "{}", render(&d));
    }

    #[test]
    fn all_problems_are_reported_at_once_in_source_order() {
        let text = [
            container("Web", "  user: \"r t\"\n  dependsOn: [{name: ghost}]\n"),
            container("db", "  resources: {pids: 0}\n  volumes: [{tmpfs: /t, path: /t}]\n"),
        ]
        .join("---\n");
        let d = check(&text);
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, [3, 6, 7, 14, 15], "{}", render(&d));
    }

    #[test]
    fn without_positions_problems_are_located_at_the_object_origin() {
        let sources = [Source {
            file: "m.yaml".into(),
            text: format!("{}{COMMON}", container("web", "  user: \"no body\"\n")),
        }];
        let objects = crate::manifest::parse(&sources).unwrap();
        let d = validate(&objects, &|_, _| false);
        let e = find(&d, "user `no body`");
        assert_eq!(
            (e.file.as_str(), e.line, e.column, e.field.as_str()),
            ("m.yaml", 1, 1, "spec.user")
        );

        // `load` keeps positions, and reports parse problems before validating.
        let d = load(&sources, &|_, _| false).unwrap_err();
        assert_eq!(find(&d, "user `no body`").line, 6);
        assert_eq!(d[0].snippet, "  user: \"no body\"");
        let bad = [Source {
            file: "m.yaml".into(),
            text: "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: Bad}\nspec: {drivr: x}\n".into(),
        }];
        let d = load(&bad, &|_, _| false).unwrap_err();
        assert_eq!(d.len(), 1, "{}", render(&d));
        find(&d, "unknown field `drivr`, did you mean `driver`?");
    }
}
