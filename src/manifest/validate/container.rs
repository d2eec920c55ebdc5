//! Container objects: image, command, networks and ports, mounts, limits, users.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn container(&mut self, o: &Object, spec: &ContainerSpec) {
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
        if spec.publish_all && spec.networks.is_empty() {
            self.report(
                o,
                "spec.publishAll",
                "publishing ports needs a bridge network: add `networks: [NAME]`",
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

        self.storage(o, spec);
        if let Some(resources) = &spec.resources {
            self.resources(o, resources);
        }
        self.isolation(o, spec);
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

        if let Some(u) = &spec.update {
            if u.health_timeout.is_some_and(|d| d.0.is_zero()) {
                self.report(o, "spec.update.healthTimeout", "`healthTimeout` must be more than 0s");
            }
            if u.order == crate::manifest::UpdateOrder::StartFirst {
                // Two containers at once cannot share one of these.
                let shared = match spec.network.as_deref() {
                    Some("host") => Some("`network: host` (both would bind the host's ports)".to_string()),
                    Some(m) if m.starts_with("container:") => Some(format!("`network: {m}`")),
                    _ => spec
                        .networks
                        .iter()
                        .find_map(|n| n.ipv4_address.as_ref().map(|a| format!("the fixed address {a}")))
                        .or_else(|| spec.mac_address.as_ref().map(|m| format!("the fixed MAC address {m}"))),
                };
                if let Some(shared) = shared {
                    self.report(
                        o,
                        "spec.update.order",
                        format!("start-first runs the old and new container side by side, which {shared} does not allow; use stop-first"),
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
        self.identity(o, spec);
    }

    pub(super) fn mount(&mut self, o: &Object, i: usize, m: &VolumeMount) {
        let at = format!("spec.volumes[{i}]");
        let sources: Vec<&str> = [
            ("volume", m.volume.is_some()),
            ("hostPath", m.host_path.is_some()),
            ("tmpfs", m.tmpfs.is_some()),
            ("anonymous", m.anonymous),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match sources.as_slice() {
            [] => self.report(
                o,
                &at,
                "a mount needs exactly one of `volume`, `hostPath`, `tmpfs` or `anonymous`, got none",
            ),
            [_] => {}
            many => {
                let listed: Vec<String> = many.iter().map(|s| format!("`{s}`")).collect();
                self.report(
                    o,
                    &at,
                    format!(
                        "a mount needs exactly one of `volume`, `hostPath`, `tmpfs` or `anonymous`, got {}",
                        listed.join(" and ")
                    ),
                );
            }
        }
        if let Some(volume) = &m.volume {
            if super::is_docker_name(volume) {
                self.reference(o, &format!("{at}.volume"), Kind::Volume, volume);
            } else {
                self.report(
                    o,
                    &format!("{at}.volume"),
                    format!(
                        "`{volume}` is not a volume name: 1 to 63 letters, digits, `_`, `.` and `-`, \
                         starting with a letter or digit (a host directory is `hostPath`, absolute)"
                    ),
                );
            }
        }
        if let Some(host) = &m.host_path {
            if !is_absolute(host) {
                self.report(
                    o,
                    &format!("{at}.hostPath"),
                    format!("`hostPath` must be an absolute path, got `{host}`"),
                );
            } else if has_dot_dot(host) {
                self.report(
                    o,
                    &format!("{at}.hostPath"),
                    format!("`hostPath` must not contain `..`, got `{host}`: give the directory's own path"),
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
            } else {
                self.mount_target(o, &format!("{at}.tmpfs"), tmpfs);
            }
            if m.path.is_some() {
                self.report(
                    o,
                    &format!("{at}.path"),
                    "`path` is not used with `tmpfs`: the `tmpfs` value is the mount path",
                );
            }
        }
        if m.volume.is_some() || m.host_path.is_some() || m.anonymous {
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
                Some(path) => self.mount_target(o, &format!("{at}.path"), path),
            }
        }
        if m.noexec && m.tmpfs.is_none() {
            self.report(o, &format!("{at}.noexec"), "`noexec` applies only to `tmpfs` mounts");
        }
        if m.nocopy && m.volume.is_none() && !m.anonymous {
            self.report(
                o,
                &format!("{at}.nocopy"),
                "`nocopy` applies only to `volume` and `anonymous` mounts (nothing is copied into the others)",
            );
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

    /// A mount's path inside the container: never `/` (it would hide the
    /// image) and without `..` (which would name another place than it
    /// says).
    fn mount_target(&mut self, o: &Object, field: &str, path: &str) {
        if path.split('/').all(|p| p.is_empty() || p == ".") {
            self.report(
                o,
                field,
                "a mount cannot be at `/`: the root is the image's (use `readOnlyRootfs` to protect it)",
            );
        } else if has_dot_dot(path) {
            self.report(
                o,
                field,
                format!("a mount path must not contain `..`, got `{path}`: give the path itself"),
            );
        }
    }

    /// `shmSize` and `volumesFrom`.
    pub(super) fn storage(&mut self, o: &Object, spec: &ContainerSpec) {
        if spec.shm_size.is_some_and(|s| s.0 == 0) {
            self.report(
                o,
                "spec.shmSize",
                "`shmSize` must be larger than 0 (leave it out for the default 64Mi)",
            );
        }
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, from) in spec.volumes_from.iter().enumerate() {
            let field = format!("spec.volumesFrom[{i}].container");
            if from.container == o.name() {
                self.report(o, &field, "a container cannot take the volumes of itself");
            } else {
                self.reference(o, &field, Kind::Container, &from.container);
            }
            if !seen.insert(from.container.as_str()) {
                self.report(
                    o,
                    &field,
                    format!("`{}` is listed twice in `volumesFrom`", from.container),
                );
            }
        }
    }

    pub(super) fn resources(&mut self, o: &Object, r: &Resources) {
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
        self.docker_resources(o, r);
    }

    /// The fields of `docker run`'s resource flags (issue 20), with Docker's
    /// bounds and its rules between them.
    fn docker_resources(&mut self, o: &Object, r: &Resources) {
        const AT: &str = "spec.resources";
        match (r.memory_swap, r.memory) {
            (Some(_), None) => self.report(
                o,
                &format!("{AT}.memorySwap"),
                "memorySwap limits memory plus swap and needs `memory` too: set spec.resources.memory",
            ),
            (Some(MemorySwap::Limit(swap)), Some(memory)) if swap < memory => self.report(
                o,
                &format!("{AT}.memorySwap"),
                format!("memorySwap ({swap}) counts memory plus swap and must be at least memory ({memory})"),
            ),
            _ => {}
        }
        if let Some(reservation) = r.memory_reservation {
            if reservation.0 < MIN_MEMORY {
                self.report(
                    o,
                    &format!("{AT}.memoryReservation"),
                    format!("memoryReservation must be at least 6Mi (Docker's minimum), got {reservation}"),
                );
            } else if let Some(memory) = r.memory.filter(|m| reservation > *m) {
                self.report(
                    o,
                    &format!("{AT}.memoryReservation"),
                    format!("memoryReservation ({reservation}) must be at most memory ({memory})"),
                );
            }
        }
        for (field, set) in [
            ("cpuPeriod", r.cpu_period.is_some()),
            ("cpuQuota", r.cpu_quota.is_some()),
        ] {
            if set && r.cpus.is_some() {
                self.report(
                    o,
                    &format!("{AT}.{field}"),
                    format!("{field} cannot be set with `cpus`, which sets the CFS period and quota itself: keep one"),
                );
            }
        }
        if let Some(period) = r.cpu_period.filter(|p| !CPU_PERIOD_US.contains(p)) {
            self.report(
                o,
                &format!("{AT}.cpuPeriod"),
                format!(
                    "cpuPeriod must be between {} and {} microseconds, got {period}",
                    CPU_PERIOD_US.start(),
                    CPU_PERIOD_US.end()
                ),
            );
        }
        if let Some(quota) = r.cpu_quota.filter(|q| *q < MIN_CPU_QUOTA_US) {
            self.report(
                o,
                &format!("{AT}.cpuQuota"),
                format!("cpuQuota must be at least {MIN_CPU_QUOTA_US} microseconds, got {quota}"),
            );
        }
        for (field, list) in [("cpusetCpus", &r.cpuset_cpus), ("cpusetMems", &r.cpuset_mems)] {
            if let Some(list) = list.as_deref().filter(|l| !crate::manifest::quantity::is_cpu_list(l)) {
                self.report(
                    o,
                    &format!("{AT}.{field}"),
                    format!("{field} {list:?} is not a list of numbers and ranges such as 0-2,4"),
                );
            }
        }
        if let Some(weight) = r.blkio_weight.filter(|w| !BLKIO_WEIGHT.contains(w)) {
            self.report(
                o,
                &format!("{AT}.blkioWeight"),
                format!(
                    "blkioWeight must be between {} and {}, got {weight}",
                    BLKIO_WEIGHT.start(),
                    BLKIO_WEIGHT.end()
                ),
            );
        }
        for (i, d) in r.blkio_weight_device.iter().enumerate() {
            let at = format!("{AT}.blkioWeightDevice[{i}]");
            self.device_path(o, &at, &d.path);
            if !BLKIO_WEIGHT.contains(&d.weight) {
                self.report(
                    o,
                    &format!("{at}.weight"),
                    format!(
                        "weight must be between {} and {}, got {}",
                        BLKIO_WEIGHT.start(),
                        BLKIO_WEIGHT.end(),
                        d.weight
                    ),
                );
            }
        }
        for (field, list) in [
            ("deviceReadBps", &r.device_read_bps),
            ("deviceWriteBps", &r.device_write_bps),
        ] {
            for (i, d) in list.iter().enumerate() {
                let at = format!("{AT}.{field}[{i}]");
                self.device_path(o, &at, &d.path);
                if d.rate.0 == 0 {
                    self.report(o, &format!("{at}.rate"), "rate must be at least 1 byte per second");
                }
            }
        }
        for (field, list) in [
            ("deviceReadIops", &r.device_read_iops),
            ("deviceWriteIops", &r.device_write_iops),
        ] {
            for (i, d) in list.iter().enumerate() {
                let at = format!("{AT}.{field}[{i}]");
                self.device_path(o, &at, &d.path);
                if d.rate == 0 {
                    self.report(o, &format!("{at}.rate"), "rate must be at least 1 operation per second");
                }
            }
        }
    }

    fn device_path(&mut self, o: &Object, at: &str, path: &str) {
        if !path.starts_with('/') {
            self.report(
                o,
                &format!("{at}.path"),
                format!("device {path:?} must be an absolute path to a block device, e.g. /dev/sda"),
            );
        }
    }
}

/// The CFS period range the kernel takes (Docker's bounds too).
const CPU_PERIOD_US: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;
/// The smallest CFS quota the kernel takes.
const MIN_CPU_QUOTA_US: u64 = 1_000;
/// blkio.weight's range on cgroup v1 (Docker's bounds).
const BLKIO_WEIGHT: std::ops::RangeInclusive<u16> = 10..=1000;

/// `1000` or `1000:1000`.
/// `name`, `uid`, `name:group`, `uid:gid` (names as passwd allows them:
/// letters, digits, `_`, `-`, `.`, not starting with `-`).
pub(super) fn is_valid_user(user: &str) -> bool {
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

/// Whether a path has a `..` part.
fn has_dot_dot(path: &str) -> bool {
    path.split('/').any(|p| p == "..")
}
