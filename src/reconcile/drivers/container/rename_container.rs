//! `berth rename`: a new name for an imperative container.

use super::*;

/// `berth rename`: gives an imperative container a new name, running or not.
/// Only the name moves (in one store transaction); the runtime id stays (see
/// `reconcile::ids`), then DNS records and peers' /etc/hosts follow.
pub async fn rename(engine: &Arc<Engine>, old: &str, new: &str) -> std::result::Result<(), VerbError> {
    let invalid = |m: String| VerbError::Driver(DriverError::Invalid(m));
    if !crate::manifest::is_docker_name(new) {
        return Err(invalid(format!(
            "`{new}` is not a valid container name: use 1 to 63 letters, digits, `_`, `.` and `-`, \
             starting with a letter or digit"
        )));
    }
    if old == new {
        return Err(VerbError::Conflict(format!("container {old} is already named {new}")));
    }
    // No pass and no other verb on either name while the rows move.
    let _pass = engine.pass_lock.lock().await;
    let (a, b) = (
        ObjectKey::new(Kind::Container, old),
        ObjectKey::new(Kind::Container, new),
    );
    let (first, second) = if a < b { (&a, &b) } else { (&b, &a) };
    let (l1, l2) = (engine.lock_for(first), engine.lock_for(second));
    let (_g1, _g2) = (l1.lock().await, l2.lock().await);

    let desired = engine.desired_all().map_err(DriverError::from)?;
    let Some(found) = desired.iter().find(|d| d.key() == a) else {
        return Err(VerbError::NotFound(old.into()));
    };
    if !found.source.starts_with("run:") {
        return Err(VerbError::Conflict(format!(
            "container {old} comes from {}: its name is the manifest's, rename it there",
            found.source
        )));
    }
    let taken =
        desired.iter().any(|d| d.key() == b) || engine.live(Kind::Container, new).map_err(DriverError::from)?.is_some();
    if taken {
        return Err(VerbError::Conflict(format!(
            "the name {new} is already in use by a container"
        )));
    }
    let users: Vec<String> = desired
        .iter()
        .filter_map(|d| {
            let Spec::Container(c) = &d.object.spec else {
                return None;
            };
            let shares = [&c.network, &c.pid, &c.ipc]
                .iter()
                .any(|m| m.as_deref().and_then(|m| m.strip_prefix("container:")) == Some(old));
            let depends = c.depends_on.iter().any(|dep| dep.name == old);
            (shares || depends).then(|| d.object.name().to_string())
        })
        .collect();
    if !users.is_empty() {
        return Err(VerbError::Conflict(format!(
            "container {old} is named by {}: rename would break them",
            users.join(", ")
        )));
    }
    let mut obj = found.object.clone();
    obj.metadata.name = new.to_string();
    let body = serde_json::to_string(&obj).map_err(|e| invalid(e.to_string()))?;
    // A container with nothing made yet has no id to keep.
    let id = match engine.live(Kind::Container, old).map_err(DriverError::from)? {
        Some(_) => engine.ids.id_of(old),
        None => new.to_string(),
    };
    engine
        .store
        .rename_container(old, new, &body, &id)
        .map_err(DriverError::from)?;
    engine.ids.forget(old);
    engine.ids.set(new, &id);
    engine.rekey(&a, &b);
    engine.event(&b, "Renamed", &format!("renamed from {old}"));
    if let Spec::Container(c) = &obj.spec {
        if !c.networks.is_empty() {
            network::refresh_hosts(engine).await;
        }
    }
    engine.changed();
    Ok(())
}
