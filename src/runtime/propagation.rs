//! Bind mount propagation (`rprivate`, `rslave`, `rshared`, …) as the OCI
//! spec's mount options ask for it.
//!
//! libcontainer 0.7 parses these options and then drops them: it attaches a
//! bind with `open_tree(OPEN_TREE_CLONE)` + `move_mount`, and its
//! `mount_setattr` passes `propagation: 0` (rootfs/mount.rs,
//! `mount_into_container`). The clone keeps the propagation of its source,
//! so a bind of a shared host mount was a slave whatever the manifest said.
//! The shim therefore applies them itself, as runc does after each mount
//! (`mount("", dest, "", flag)`): between libcontainer's create and start,
//! from inside the init's mount namespace, while the init waits to exec and
//! nothing of the image runs yet.

use std::fs::File;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, CloneFlags};

/// The propagation flag an OCI mount option names, if it names one.
pub fn flag(option: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match option {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

/// The bind mounts of an OCI spec that ask for a propagation: destination
/// (inside the container) and flag; the last option given wins, as in runc.
pub fn wanted(spec: &serde_json::Value) -> Vec<(String, MsFlags)> {
    let Some(mounts) = spec["mounts"].as_array() else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|m| m["type"] == "bind")
        .filter_map(|m| {
            let dest = m["destination"].as_str()?;
            let flag = m["options"].as_array()?.iter().rev().find_map(|o| flag(o.as_str()?))?;
            Some((dest.to_string(), flag))
        })
        .collect()
}

/// Sets each mount's propagation inside the mount namespace of `init_pid`.
/// The caller must be single-threaded (setns of a mount namespace needs a
/// process that shares its filesystem context with no other thread); it is
/// back in its own namespace, with its working directory, on return.
pub fn apply(init_pid: i32, mounts: &[(String, MsFlags)]) -> Result<(), String> {
    if mounts.is_empty() {
        return Ok(());
    }
    let target = File::open(format!("/proc/{init_pid}/ns/mnt")).map_err(|e| format!("open its mount ns: {e}"))?;
    let own = File::open("/proc/self/ns/mnt").map_err(|e| format!("open own mount ns: {e}"))?;
    let cwd = File::open(".").map_err(|e| format!("open the working directory: {e}"))?;
    // Joining sets root and cwd to the namespace's root: the container's
    // root after pivot_root, so destinations resolve inside it.
    setns(&target, CloneFlags::CLONE_NEWNS).map_err(|e| format!("setns into its mount ns: {e}"))?;
    let mut result = Ok(());
    for (dest, flags) in mounts {
        if let Err(e) = mount(None::<&str>, dest.as_str(), None::<&str>, *flags, None::<&str>) {
            result = Err(format!("set the propagation of {dest}: {e}"));
            break;
        }
    }
    if let Err(e) = setns(&own, CloneFlags::CLONE_NEWNS) {
        // Staying in the container's namespace would be worse than failing.
        eprintln!("berth-shim: cannot return to its own mount namespace: {e}");
        std::process::exit(1);
    }
    if let Err(e) = nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&cwd)) {
        eprintln!("berth-shim: cannot return to its working directory: {e}");
        std::process::exit(1);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_propagation_option_of_each_bind_is_wanted() {
        let spec = serde_json::json!({"mounts": [
            {"destination": "/proc", "type": "proc", "options": ["rprivate"]},
            {"destination": "/a", "type": "bind", "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/b", "type": "bind", "options": ["rbind", "shared", "rslave"]},
            {"destination": "/c", "type": "bind", "options": ["rbind"]},
        ]});
        assert_eq!(
            wanted(&spec),
            [
                ("/a".to_string(), MsFlags::MS_PRIVATE | MsFlags::MS_REC),
                ("/b".to_string(), MsFlags::MS_SLAVE | MsFlags::MS_REC),
            ]
        );
        assert_eq!(flag("rw"), None);
    }
}
