//! What Docker-shaped inspection (`commands::docker_inspect`) needs of one
//! object, gathered from the store and the host in one place, so that the
//! command layer shapes documents without reaching into the engine's
//! private state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::records::LiveInfo;
use super::seams::AnonymousVolumeInfo;
use super::{Engine, Result};
use crate::image::ImageRecord;
use crate::manifest::{ContainerSpec, Kind, NetworkSpec, Spec};
use crate::runtime::ExitRecord;
use crate::wire::ObjectView;

/// One address a container holds, with its network's gateway and prefix.
#[derive(Debug, Clone)]
pub struct Address {
    pub network: String,
    pub ip: String,
    pub gateway: String,
    pub prefix: u8,
}

#[derive(Debug, Clone)]
pub struct ContainerFacts {
    pub view: ObjectView,
    /// Its runtime id (its name unless renamed).
    pub id: String,
    pub spec: ContainerSpec,
    /// The image's labels under its own, as of its last start.
    pub labels: BTreeMap<String, String>,
    pub created_at: i64,
    /// When its init last started (unix ms), running or not.
    pub started_at: Option<i64>,
    pub last_exit: Option<ExitRecord>,
    pub image: Option<ImageRecord>,
    /// The OCI spec it was last started with.
    pub oci: Option<libcontainer::oci_spec::runtime::Spec>,
    pub addresses: Vec<Address>,
    /// Named volumes it mounts, with their directories.
    pub volume_dirs: BTreeMap<String, PathBuf>,
    pub anonymous: Vec<AnonymousVolumeInfo>,
    pub upper_dir: PathBuf,
    pub log_path: PathBuf,
    /// Made by `run --rm`.
    pub auto_remove: bool,
}

#[derive(Debug, Clone)]
pub struct NetworkFacts {
    pub name: String,
    pub spec: NetworkSpec,
    pub labels: BTreeMap<String, String>,
    pub created_at: Option<i64>,
    /// Its bridge, subnet and gateway once made.
    pub bridge: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    /// (container, address) of every member.
    pub members: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct VolumeFacts {
    pub name: String,
    pub dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub created_at: Option<i64>,
    /// Anonymous: the container it was made for and where it mounts it.
    pub anonymous_of: Option<(String, String)>,
}

/// What every container's facts are read from, read once.
struct Snapshot {
    desired: Vec<super::records::Desired>,
    live: Vec<super::records::Live>,
    /// Gateway and prefix of each made network.
    networks: BTreeMap<String, (String, u8)>,
    /// (network, address, owner).
    allocations: Vec<(String, std::net::Ipv4Addr, String)>,
    anonymous: Vec<AnonymousVolumeInfo>,
}

impl Engine {
    pub fn container_facts(self: &Arc<Self>, name: &str) -> Result<Option<ContainerFacts>> {
        let Some(view) = self.views(Some(Kind::Container), Some(name))?.into_iter().next() else {
            return Ok(None);
        };
        let snapshot = self.snapshot()?;
        Ok(self.facts_from(view, &snapshot, &mut BTreeMap::new()))
    }

    /// [`Engine::container_facts`] of every container, reading the store
    /// once for all of them (`ps` of many containers stays one pass).
    pub fn all_container_facts(self: &Arc<Self>) -> Result<Vec<ContainerFacts>> {
        let views = self.views(Some(Kind::Container), None)?;
        let snapshot = self.snapshot()?;
        let mut images = BTreeMap::new();
        Ok(views
            .into_iter()
            .filter_map(|v| self.facts_from(v, &snapshot, &mut images))
            .collect())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let live = self.live_all()?;
        let networks = live
            .iter()
            .filter_map(|l| {
                let n = l.network_info()?;
                Some((l.key.name.clone(), (n.gateway.to_string(), n.subnet.prefix)))
            })
            .collect();
        Ok(Snapshot {
            desired: self.desired_all()?,
            live,
            networks,
            allocations: self.store.alloc_all()?,
            anonymous: self.host.volumes.anonymous(),
        })
    }

    fn facts_from(
        &self,
        view: ObjectView,
        snap: &Snapshot,
        images: &mut BTreeMap<String, Option<ImageRecord>>,
    ) -> Option<ContainerFacts> {
        let name = view.name.clone();
        let name = name.as_str();
        let live = snap
            .live
            .iter()
            .find(|l| l.key.kind == Kind::Container && l.key.name == name);
        let desired = snap
            .desired
            .iter()
            .find(|d| d.object.kind() == Kind::Container && d.object.name() == name);
        let spec = match (desired.map(|d| &d.object.spec), live.map(|l| &l.spec)) {
            (Some(Spec::Container(s)), _) | (None, Some(Spec::Container(s))) => s.clone(),
            _ => return None,
        };
        let info = live.and_then(|l| l.container_info().cloned()).unwrap_or_default();
        let mut labels = info.labels.clone();
        if let Some(d) = desired {
            labels.extend(d.object.metadata.labels.clone());
        }
        let auto_remove = labels.contains_key(super::AUTOREMOVE_LABEL);
        let image_name = info.image_id.clone().unwrap_or_else(|| spec.image.clone());
        let image = images
            .entry(image_name.clone())
            .or_insert_with(|| self.image_host().image(&image_name))
            .clone();
        let mut addresses: Vec<Address> = snap
            .allocations
            .iter()
            .filter(|(_, _, owner)| owner == name)
            .map(|(network, ip, _)| {
                let (gateway, prefix) = snap.networks.get(network).cloned().unwrap_or_default();
                Address {
                    network: network.clone(),
                    ip: ip.to_string(),
                    gateway,
                    prefix,
                }
            })
            .collect();
        // In the order it joined them: eth0 first.
        addresses.sort_by_key(|a| spec.networks.iter().position(|n| n.name == a.network));
        let volume_dirs = spec
            .volumes
            .iter()
            .filter_map(|v| v.volume.clone())
            .map(|v| {
                let dir = self.host.volumes.path(&v);
                (v, dir)
            })
            .collect();
        let anonymous = snap.anonymous.iter().filter(|a| a.container == name).cloned().collect();
        Some(ContainerFacts {
            id: self.runtime_id(name),
            created_at: live.map(|l| l.created_at).or(view.created_at).unwrap_or(0),
            started_at: view.started_at.or(info.started_at),
            last_exit: info.last_exit.clone(),
            oci: self.container_oci_spec(name),
            upper_dir: self.host.containers.upper_dir(name),
            log_path: self.log_file(name),
            view,
            spec,
            labels,
            image,
            addresses,
            volume_dirs,
            anonymous,
            auto_remove,
        })
    }

    pub fn network_facts(&self, name: &str) -> Result<Option<NetworkFacts>> {
        let live = self.live(Kind::Network, name)?;
        let desired = self
            .desired_all()?
            .into_iter()
            .find(|d| d.object.kind() == Kind::Network && d.object.name() == name);
        let spec = match (desired.as_ref().map(|d| &d.object.spec), live.as_ref().map(|l| &l.spec)) {
            (Some(Spec::Network(s)), _) | (None, Some(Spec::Network(s))) => s.clone(),
            _ => return Ok(None),
        };
        let info = live.as_ref().and_then(|l| match &l.info {
            LiveInfo::Network(n) => Some(n.clone()),
            _ => None,
        });
        let members = self
            .store
            .alloc_all()?
            .into_iter()
            .filter(|(network, _, _)| network == name)
            .map(|(_, ip, owner)| (owner, ip.to_string()))
            .collect();
        Ok(Some(NetworkFacts {
            name: name.to_string(),
            labels: desired.map(|d| d.object.metadata.labels).unwrap_or_default(),
            created_at: live.as_ref().map(|l| l.created_at),
            bridge: info.as_ref().map(|i| i.bridge.clone()),
            subnet: info.as_ref().map(|i| i.subnet.to_string()).or(spec.subnet.clone()),
            gateway: info.as_ref().map(|i| i.gateway.to_string()).or(spec.gateway.clone()),
            ip_range: info
                .as_ref()
                .and_then(|i| i.ip_range.map(|r| r.to_string()))
                .or(spec.ip_range.clone()),
            spec,
            members,
        }))
    }

    pub fn volume_facts(&self, name: &str) -> Result<Option<VolumeFacts>> {
        if let Some(a) = self.host.volumes.anonymous().into_iter().find(|a| a.id == name) {
            return Ok(Some(VolumeFacts {
                name: name.to_string(),
                dir: self.host.volumes.path(name),
                labels: BTreeMap::new(),
                created_at: None,
                anonymous_of: Some((a.container, a.path)),
            }));
        }
        let live = self.live(Kind::Volume, name)?;
        let desired = self
            .desired_all()?
            .into_iter()
            .find(|d| d.object.kind() == Kind::Volume && d.object.name() == name);
        if live.is_none() && desired.is_none() {
            return Ok(None);
        }
        let dir = match live.as_ref().map(|l| &l.info) {
            Some(LiveInfo::Volume(v)) => v.path.clone(),
            _ => self.host.volumes.path(name),
        };
        Ok(Some(VolumeFacts {
            name: name.to_string(),
            dir,
            labels: desired.map(|d| d.object.metadata.labels).unwrap_or_default(),
            created_at: live.as_ref().map(|l| l.created_at),
            anonymous_of: None,
        }))
    }

    /// The image id of Image object `name` once it is made.
    pub fn image_object_id(&self, name: &str) -> Result<Option<String>> {
        Ok(self.live(Kind::Image, name)?.and_then(|l| match l.info {
            LiveInfo::Image(i) => i.id,
            _ => None,
        }))
    }
}
