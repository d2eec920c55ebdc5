//! Checks on a parsed set of objects as a whole: names, duplicates, references,
//! `dependsOn` cycles, published ports, mounts, limits, and fields that berth
//! parses but does not honour yet (rejected, never silently ignored).
//!
//! Every check runs; all problems come back at once, each at the field it is
//! about when [`Positions`] know it, else at the object's origin.
//!
//! One file per kind (`image`, `container`, `network`, `volume`), `set` for
//! the checks across objects; this file holds the validator and what every
//! kind shares (names, labels, references, commands, environments).

use std::collections::{BTreeMap, HashMap, HashSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::positions::Positions;
use super::quantity::MemorySwap;
use super::suggest::did_you_mean;
use super::types::{
    ContainerSpec, ImageSpec, Kind, NetworkSpec, Object, PortMapping, Resources, Spec, VolumeMount, VolumeSpec,
};
use super::{printable, Diagnostic};

mod container;
mod identity;
mod image;
mod isolation;
mod network;
mod set;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_isolation;
mod volume;

pub use identity::{is_hostname, parse_mac, HOST_GATEWAY};
use image::check_reference;

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
        if !is_object_name(o.kind(), name) {
            let rule = match o.kind() {
                crate::manifest::Kind::Image => {
                    "use 1 to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit"
                }
                _ => "use 1 to 63 letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            };
            self.report(o, "metadata.name", format!("name `{name}` is not a valid name: {rule}"));
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
}

/// Docker's rule for container (and volume) names, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`,
/// bounded at 63 like a DNS label: docker-compose names its containers
/// `project_service_1`. Such a name is only a name (a run dir, a cgroup, a
/// store key); where it also becomes a DNS name, [`dns_label_of`] says which.
pub fn is_docker_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether `name` may name an object of `kind`: containers, volumes and
/// networks take Docker's names ([`is_docker_name`]: docker-compose makes
/// `proj_default`); images keep DNS labels, which is how a run's `image`
/// tells an Image object from a registry reference.
pub fn is_object_name(kind: crate::manifest::Kind, name: &str) -> bool {
    match kind {
        crate::manifest::Kind::Image => is_dns_label(name),
        _ => is_docker_name(name),
    }
}

pub use crate::dnsname::{dns_label_of, is_dns_label};

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
