//! `network connect` / `disconnect`, as Docker has them, on containers made
//! by `berth run` or `berth create`. A manifest's container is refused: its
//! networks are declared in its manifest, and a change made here would be
//! undone (or fought) by the next apply of that file.

use std::sync::Arc;

use super::{CommandError, Result};
use crate::manifest::{self, ContainerSpec, Kind, NetworkAttachment, Object, Spec};
use crate::reconcile::records::Desired;
use crate::reconcile::Engine;
use crate::wire::{NetworkConnectRequest, NetworkDisconnectRequest, VerbResponse};

/// The container's desired object and source, if `network connect` may
/// change it.
fn imperative(engine: &Engine, name: &str, network: &str) -> Result<(Desired, ContainerSpec)> {
    super::check_name(Kind::Container, name)?;
    super::check_name(Kind::Network, network)?;
    let desired = engine.desired_all()?;
    let found = desired
        .into_iter()
        .find(|d| d.object.kind() == Kind::Container && d.object.name() == name)
        .ok_or_else(|| CommandError::NotFound(format!("container/{name}")))?;
    let Spec::Container(spec) = &found.object.spec else {
        return Err(CommandError::NotFound(format!("container/{name}")));
    };
    if !found.source.starts_with("run:") {
        let origin = &found.object.origin;
        return Err(CommandError::Invalid(format!(
            "container/{name} is declared in {}:{}: edit its spec.networks there (add or remove `{network}`) \
             and apply it; network connect and disconnect change only containers made by run or create",
            origin.file, origin.line
        )));
    }
    if let Some(mode) = &spec.network {
        return Err(CommandError::Invalid(format!(
            "container/{name} uses network mode `{mode}`: it cannot join or leave networks"
        )));
    }
    let spec = spec.clone();
    Ok((found, spec))
}

fn with_spec(obj: &Object, spec: ContainerSpec) -> Object {
    Object {
        spec: Spec::Container(spec),
        ..obj.clone()
    }
}

pub async fn connect(engine: &Arc<Engine>, req: &NetworkConnectRequest) -> Result<VerbResponse> {
    let (name, network) = (&req.container, &req.network);
    let (desired, mut spec) = imperative(engine, name, network)?;
    let stored = engine.desired_objects()?;
    if !stored.iter().any(|o| o.kind() == Kind::Network && o.name() == network) {
        return Err(CommandError::NotFound(format!("network/{network}")));
    }
    if spec.networks.iter().any(|n| n.name == *network) {
        return Err(CommandError::Conflict(format!(
            "container/{name} is already on network/{network}"
        )));
    }
    spec.networks.push(NetworkAttachment {
        name: network.clone(),
        aliases: req.aliases.clone(),
        ipv4_address: req.ipv4_address.clone(),
    });
    let obj = with_spec(&desired.object, spec);
    let exists = |kind: Kind, n: &str| stored.iter().any(|o| o.kind() == kind && o.name() == n);
    let problems = manifest::validate(std::slice::from_ref(&obj), &exists);
    if !problems.is_empty() {
        let msg: Vec<String> = problems.iter().map(|d| format!("{}: {}", d.field, d.message)).collect();
        return Err(CommandError::Invalid(msg.join("; ")));
    }
    engine.set_networks(&desired.source, &obj, false).await?;
    Ok(VerbResponse {
        container: name.clone(),
        verb: "connect".into(),
    })
}

pub async fn disconnect(engine: &Arc<Engine>, req: &NetworkDisconnectRequest) -> Result<VerbResponse> {
    let (name, network) = (&req.container, &req.network);
    let (desired, mut spec) = imperative(engine, name, network)?;
    let before = spec.networks.len();
    spec.networks.retain(|n| n.name != *network);
    if spec.networks.len() == before {
        return Err(CommandError::Conflict(format!(
            "container/{name} is not on network/{network}"
        )));
    }
    let obj = with_spec(&desired.object, spec);
    engine.set_networks(&desired.source, &obj, req.force).await?;
    Ok(VerbResponse {
        container: name.clone(),
        verb: "disconnect".into(),
    })
}
