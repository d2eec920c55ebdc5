//! Typed operations on the desired state, for the engine commands: the store
//! stays private to the engine, and rows are decoded in `records.rs` only.

use std::path::PathBuf;

use super::records::{self, Desired, Live};
use super::{Engine, Result};
use crate::manifest::{Kind, Object, Spec};
use crate::plan::ObjectKey;
use crate::runtime::{ExitRecord, Probe};
use crate::store::ApplyOutcome;
use crate::wire;

/// The containers among `objects` that use the image or volume `key`.
pub fn users_of<'a>(objects: impl IntoIterator<Item = &'a Object>, key: &ObjectKey) -> Vec<ObjectKey> {
    objects
        .into_iter()
        .filter(|o| {
            let Spec::Container(c) = &o.spec else { return false };
            match key.kind {
                Kind::Image => c.image == key.name,
                Kind::Volume => c.volumes.iter().any(|m| m.volume.as_deref() == Some(key.name.as_str())),
                Kind::Network => c.networks.iter().any(|n| n.name == key.name),
                Kind::Container => [&c.network, &c.pid, &c.ipc]
                    .iter()
                    .any(|m| m.as_deref().and_then(|m| m.strip_prefix("container:")) == Some(&key.name)),
            }
        })
        .map(|o| ObjectKey::new(o.kind(), o.name()))
        .collect()
}

/// What a container's process is doing, for `run` and `logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    Exited(ExitRecord),
    /// Not started, or gone without an exit record.
    Other,
}

impl Engine {
    /// Every desired object with its source.
    pub fn desired_all(&self) -> Result<Vec<Desired>> {
        let mut all: Vec<Desired> = self
            .store
            .desired()?
            .into_iter()
            .map(records::decode_desired)
            .collect::<Result<_>>()?;
        for d in &mut all {
            self.fill_context_digest(&mut d.object);
        }
        Ok(all)
    }

    /// Sets an Image's `build.contextDigest` to what its context holds now,
    /// so the spec hash follows the sources.
    pub(super) fn fill_context_digest(&self, object: &mut Object) {
        if let Spec::Image(spec) = &mut object.spec {
            if let Some(build) = &mut spec.build {
                build.context_digest = Some(self.context_digest(build));
            }
        }
    }

    /// The digest of an Image's build context and Dockerfile as they are
    /// now (re-reading only files whose stat moved since the last look), or
    /// `error: …` when the context cannot be read, so the build says why.
    fn context_digest(&self, build: &crate::manifest::ImageBuild) -> String {
        let dir = std::path::PathBuf::from(&build.context);
        let dockerfile = build.dockerfile.as_deref().unwrap_or("Dockerfile");
        let ignore = match crate::build::ignore::read_ignore(&dir, dockerfile) {
            Ok(rules) => rules,
            Err(e) => return format!("error: {e}"),
        };
        let mut contexts = super::lock(&self.contexts);
        let seen = contexts.entry(dir.clone()).or_default();
        match crate::build::context::context_digest(&dir, ignore, &mut seen.cache) {
            Ok((digest, changed)) => {
                if !changed.is_empty() {
                    seen.changed = changed;
                }
                // The Dockerfile may sit outside what the ignore rules keep.
                let text = std::fs::read(dir.join(dockerfile)).unwrap_or_default();
                format!(
                    "{digest}+{}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text))
                )
            }
            Err(e) => format!("error: {e}"),
        }
    }

    /// The paths of a build context that changed at the last look that
    /// found a change (for `diff`'s reason).
    pub fn context_changes(&self, context: &str) -> Vec<String> {
        super::lock(&self.contexts)
            .get(std::path::Path::new(context))
            .map(|s| s.changed.clone())
            .unwrap_or_default()
    }

    /// The desired objects alone, as `plan` takes them.
    pub fn desired_objects(&self) -> Result<Vec<Object>> {
        Ok(self.desired_all()?.into_iter().map(|d| d.object).collect())
    }

    pub(super) fn live_all(&self) -> Result<Vec<Live>> {
        self.store.live_all()?.into_iter().map(records::decode_live).collect()
    }

    pub(super) fn live(&self, kind: Kind, name: &str) -> Result<Option<Live>> {
        self.store.live_get(kind, name)?.map(records::decode_live).transpose()
    }

    /// The store itself, for rows reconcile gives no meaning to (revisions
    /// of applies, git sources): the command layer owns those.
    pub fn store(&self) -> &crate::store::Store {
        &self.store
    }

    /// Stores `objects` as the whole set of `source` in one transaction (see
    /// [`crate::store::Store::apply`] for `prune` and `hold`), and records a
    /// `Kept` event for each object held back.
    pub fn store_set(
        &self,
        source: &str,
        objects: &[Object],
        prune: bool,
        hold: &dyn Fn(Kind, &str) -> Option<String>,
    ) -> Result<ApplyOutcome> {
        let rows: Vec<_> = objects.iter().map(records::encode_desired).collect();
        let outcome = self.store.apply(source, &rows, prune, hold)?;
        for (kind, name) in &outcome.held {
            let why = hold(*kind, name).unwrap_or_default();
            self.event(
                &ObjectKey::new(*kind, name.clone()),
                "Kept",
                &format!("{source} no longer defines it, but {why}; deleted once nothing uses it"),
            );
        }
        Ok(outcome)
    }

    /// Removes objects from the desired state; returns those that existed.
    pub fn delete_desired(&self, keys: &[ObjectKey]) -> Result<Vec<ObjectKey>> {
        let rows: Vec<(Kind, String)> = keys.iter().map(|k| (k.kind, k.name.clone())).collect();
        Ok(self
            .store
            .delete_objects(&rows)?
            .into_iter()
            .map(|(k, n)| ObjectKey::new(k, n))
            .collect())
    }

    /// Records (or clears) the error of a source whose last version did not load.
    pub fn set_source_error(&self, source: &str, error: Option<&str>) -> Result<()> {
        Ok(self.store.set_source_error(source, error)?)
    }

    pub fn source_errors(&self) -> Result<Vec<(String, String)>> {
        Ok(self.store.source_errors()?)
    }

    /// Forgets a source that is gone (after its objects were dealt with).
    pub fn forget_source(&self, source: &str) -> Result<()> {
        Ok(self.store.forget_source(source)?)
    }

    /// Every source with objects or an error.
    pub fn sources(&self) -> Result<Vec<String>> {
        Ok(self.store.sources()?)
    }

    /// Events after `after`, optionally of one object, oldest first.
    pub fn events(&self, after: i64, object: Option<&ObjectKey>, limit: usize) -> Result<Vec<wire::Event>> {
        let rows = self
            .store
            .events(after, object.map(|k| (k.kind, k.name.as_str())), limit)?;
        Ok(rows
            .into_iter()
            .map(|e| wire::Event {
                id: e.id,
                time: e.time,
                kind: e.kind,
                name: e.name,
                reason: e.reason,
                message: e.message,
            })
            .collect())
    }

    /// Fails, saying why, when a process on the host holds `port` (berth's
    /// own published ports hold no socket: they are DNAT rules).
    pub fn host_port_free(
        &self,
        ip: Option<std::net::Ipv4Addr>,
        port: u16,
        udp: bool,
    ) -> std::result::Result<(), String> {
        let proto = if udp {
            crate::network::Proto::Udp
        } else {
            crate::network::Proto::Tcp
        };
        self.host
            .networks
            .check_port_free(ip, port, proto)
            .map_err(|e| e.to_string())
    }

    /// Whether a container is known: made by berth, or with logs left.
    pub fn container_known(&self, name: &str) -> Result<bool> {
        Ok(self.store.live_get(Kind::Container, name)?.is_some() || self.log_file(name).exists())
    }

    /// A regular file of a running container (`/etc/passwd`), read inside
    /// its root; None when it is not running or has no such file.
    pub fn container_file(&self, name: &str, path: &str) -> Option<String> {
        let pid = self.running_init(name)?;
        self.host.containers.read_file(pid, std::path::Path::new(path)).ok()
    }

    /// Whether the container runs with a tty, and with an open stdin.
    pub fn container_stdio(&self, name: &str) -> Option<(bool, bool)> {
        let live = self.live(Kind::Container, name).ok()??;
        live.container_spec().map(|c| (c.tty, c.stdin))
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.host.containers.log_file(name)
    }

    /// A reader of a container's log (see
    /// [`super::seams::ContainerHost::open_log`]).
    pub async fn open_log(&self, name: &str, tail: Option<usize>) -> std::io::Result<Box<dyn super::seams::LogSource>> {
        let host = self.host.containers.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || host.open_log(&name, tail))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Counters of a running container (None when it does not run).
    pub fn container_stats(&self, name: &str) -> Option<crate::runtime::stats::Sample> {
        match self.host.containers.probe(name) {
            Probe::Running(run) => self.host.containers.stats(name, run.init_pid),
            _ => None,
        }
    }

    /// The init pid of a running container.
    pub fn running_init(&self, name: &str) -> Option<i32> {
        match self.host.containers.probe(name) {
            Probe::Running(run) => Some(run.init_pid),
            _ => None,
        }
    }

    /// Copies between a running container and the host (blocking).
    pub fn copy(
        &self,
        init_pid: i32,
        into_container: bool,
        container_path: &std::path::Path,
        host_path: &std::path::Path,
    ) -> std::io::Result<u64> {
        self.host
            .containers
            .copy(init_pid, into_container, container_path, host_path)
    }

    /// The processes of a container.
    pub fn container_processes(&self, name: &str) -> Vec<crate::runtime::stats::ProcessInfo> {
        self.host.containers.processes(name)
    }

    /// The OCI spec a container runs with, while its bundle exists.
    pub fn container_oci_spec(&self, name: &str) -> Option<libcontainer::oci_spec::runtime::Spec> {
        self.host.containers.oci_spec(name)
    }

    /// Whether the container's processes are frozen (paused).
    pub fn container_frozen(&self, name: &str) -> bool {
        self.host.containers.is_frozen(name)
    }

    /// Starts a process in a running container (`berth exec`).
    pub fn exec(
        &self,
        name: &str,
        process: crate::runtime::exec::ExecSpec,
        attach: bool,
        stdin: bool,
    ) -> crate::runtime::Result<crate::runtime::exec::ExecProcess> {
        self.host.containers.exec(name, process, attach, stdin)
    }

    /// Connects to a running container's stdio (see
    /// [`super::seams::ContainerHost::attach`]).
    pub async fn attach_streams(&self, name: &str, tty: bool) -> std::io::Result<Option<super::seams::AttachStreams>> {
        let host = self.host.containers.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || host.attach(&name, tty))
            .await
            .map_err(std::io::Error::other)?
    }

    pub fn container_state(&self, name: &str) -> ContainerState {
        match self.host.containers.probe(name) {
            Probe::Running(_) | Probe::Starting => ContainerState::Running,
            Probe::Exited(e) => ContainerState::Exited(e),
            _ => ContainerState::Other,
        }
    }

    /// Held objects that nothing uses any more are deleted (see `store_set`).
    pub(super) fn release_held(&self, desired: &[Desired]) -> Result<bool> {
        let released: Vec<ObjectKey> = desired
            .iter()
            .filter(|d| d.held.is_some())
            .map(Desired::key)
            .filter(|key| users_of(desired.iter().map(|d| &d.object), key).is_empty())
            .collect();
        if released.is_empty() {
            return Ok(false);
        }
        for key in self.delete_desired(&released)? {
            self.event(&key, "Released", "nothing uses it any more; deleting it");
        }
        Ok(true)
    }
}

impl Engine {
    /// Gives container `name` a runtime id of its own before anything of it
    /// is made, when a renamed container still runs under the id `name`.
    pub(super) fn ensure_id(&self, name: &str) -> Result<()> {
        if !self.ids.needs_own_id(name) {
            return Ok(());
        }
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id();
        let id = format!("{name}-{salt:08x}");
        self.store.container_id_set(name, &id)?;
        self.ids.set(name, &id);
        Ok(())
    }

    /// Forgets a removed container's runtime id (its name is free again)
    /// and its recorded health.
    pub(super) fn forget_id(&self, name: &str) -> Result<()> {
        self.store.health_delete(name)?;
        self.store.container_id_forget(name)?;
        self.ids.forget(name);
        Ok(())
    }

    /// The runtime id of container `name` (its name, unless renamed).
    pub fn runtime_id(&self, name: &str) -> String {
        self.ids.id_of(name)
    }

    /// The name of the container with runtime id `id` now: what a client
    /// that stays with one container across a `rename` looks it up by.
    pub fn name_of_id(&self, id: &str) -> String {
        self.ids.name_of(id)
    }

    /// Moves what the engine keeps in memory about a renamed container.
    pub(super) fn rekey(&self, old: &ObjectKey, new: &ObjectKey) {
        // One guard per map: a guard taken in an `if let` head lives through
        // its body (edition 2021), so locking again there would deadlock.
        fn move_key<V>(
            map: &std::sync::Mutex<std::collections::HashMap<ObjectKey, V>>,
            old: &ObjectKey,
            new: &ObjectKey,
        ) {
            let mut map = super::lock(map);
            if let Some(v) = map.remove(old) {
                map.insert(new.clone(), v);
            }
        }
        move_key(&self.pending, old, new);
        move_key(&self.outcomes, old, new);
        move_key(&self.retries, old, new);
        let mut attached = super::lock(&self.attached);
        if attached.remove(&old.name) {
            attached.insert(new.name.clone());
        }
    }
}
