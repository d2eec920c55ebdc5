//! Storage flags: `-v`, `--mount`, `--tmpfs`, `--volumes-from`,
//! `--read-only`, `--shm-size`, read as the docker CLI (moby's linux mount
//! parser) reads them. Pure.

use std::collections::BTreeMap;

use super::{invalid, RunFlagsError};
use crate::cli::args::RunArgs;
use crate::manifest::{is_dns_label, ContainerSpec, Memory, Propagation, VolumeMount, VolumesFrom};

/// Local driver options by volume name (`volume-opt`).
pub(super) type VolumeOpts = BTreeMap<String, BTreeMap<String, String>>;

/// Fills `spec`'s mounts and storage settings from `args`; returns the
/// `volume-opt`s of `--mount`.
pub(super) fn apply(args: &RunArgs, spec: &mut ContainerSpec) -> Result<VolumeOpts, RunFlagsError> {
    for v in &args.volume {
        spec.volumes.push(parse_volume(v)?);
    }
    let mut volume_opts = VolumeOpts::new();
    for raw in &args.mount {
        let (m, opts) = parse_mount(raw)?;
        if !opts.is_empty() {
            let Some(name) = m.volume.clone() else {
                return Err(invalid("--mount", raw, "volume-opt needs a named volume (source=NAME)"));
            };
            if volume_opts.get(&name).is_some_and(|o| *o != opts) {
                return Err(invalid(
                    "--mount",
                    raw,
                    format!("volume `{name}` is given other volume-opts already"),
                ));
            }
            volume_opts.insert(name, opts);
        }
        spec.volumes.push(m);
    }
    for t in &args.tmpfs {
        spec.volumes.push(parse_tmpfs(t)?);
    }
    for f in &args.volumes_from {
        let (container, read_only) = match f.rsplit_once(':') {
            Some((name, "ro")) => (name, true),
            Some((name, "rw")) => (name, false),
            Some(_) => return Err(invalid("--volumes-from", f, "expected NAME[:ro|rw]")),
            None => (f.as_str(), false),
        };
        if !is_dns_label(container) {
            return Err(invalid("--volumes-from", f, "not a container name"));
        }
        spec.volumes_from.push(VolumesFrom {
            container: container.to_string(),
            read_only,
        });
    }
    spec.read_only_rootfs = args.read_only;
    if let Some(size) = &args.shm_size {
        let bytes = crate::manifest::quantity::parse_docker_size(size)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| invalid("--shm-size", size, "expected a size such as 64m (b, k, m, g)"))?;
        spec.shm_size = Some(Memory(bytes));
    }
    Ok(volume_opts)
}

/// A path inside the container: absolute, not `/`, no `..` (refused here
/// by flag; the daemon's validation says the same of manifests).
fn target(flag: &'static str, raw: &str, path: &str) -> Result<String, RunFlagsError> {
    if !path.starts_with('/') {
        return Err(invalid(
            flag,
            raw,
            format!("the path inside the container `{path}` must be absolute"),
        ));
    }
    if path.split('/').all(|p| p.is_empty() || p == ".") {
        return Err(invalid(flag, raw, "cannot mount over `/`"));
    }
    if path.split('/').any(|p| p == "..") {
        return Err(invalid(flag, raw, "a path with `..` is refused: give the path itself"));
    }
    Ok(path.to_string())
}

/// What a mount's source names: a host path (absolute) or a volume (a name).
fn source(flag: &'static str, raw: &str, src: &str, m: &mut VolumeMount) -> Result<(), RunFlagsError> {
    if src.starts_with('/') {
        if src.split('/').any(|p| p == "..") {
            return Err(invalid(
                flag,
                raw,
                "a host path with `..` is refused: give the path itself",
            ));
        }
        m.host_path = Some(src.to_string());
    } else if is_dns_label(src) {
        m.volume = Some(src.to_string());
    } else if src.starts_with('.') || src.contains('/') {
        return Err(invalid(
            flag,
            raw,
            format!("`{src}` is a relative host path: give an absolute one (e.g. \"$PWD/{src}\")"),
        ));
    } else {
        return Err(invalid(
            flag,
            raw,
            format!("`{src}` is not a volume name: 1 to 63 lower-case letters, digits and `-`"),
        ));
    }
    Ok(())
}

fn propagation(text: &str) -> Option<Propagation> {
    Some(match text {
        "private" => Propagation::Private,
        "rprivate" => Propagation::Rprivate,
        "shared" => Propagation::Shared,
        "rshared" => Propagation::Rshared,
        "slave" => Propagation::Slave,
        "rslave" => Propagation::Rslave,
        _ => return None,
    })
}

/// Whether `-v`'s second part is a mode list rather than a path (moby's
/// `ValidMountMode`), as in `-v /data:ro`.
fn is_mode_list(text: &str) -> bool {
    text.split(',')
        .all(|o| matches!(o, "ro" | "rw" | "z" | "Z" | "nocopy") || propagation(o).is_some())
}

/// `-v`: `/path`, `/path:MODES`, `SRC:/path`, `SRC:/path:MODES`.
fn parse_volume(raw: &str) -> Result<VolumeMount, RunFlagsError> {
    const FLAG: &str = "-v";
    let parts: Vec<&str> = raw.split(':').collect();
    let (src, dst, modes) = match parts.as_slice() {
        [dst] => (None, *dst, None),
        [a, b] if a.starts_with('/') && is_mode_list(b) => (None, *a, Some(*b)),
        [src, dst] => (Some(*src), *dst, None),
        [src, dst, modes] => (Some(*src), *dst, Some(*modes)),
        _ => return Err(invalid(FLAG, raw, "expected [SOURCE:]/PATH[:OPTIONS]")),
    };
    let mut m = VolumeMount {
        path: Some(target(FLAG, raw, dst)?),
        ..Default::default()
    };
    match src {
        None | Some("") => m.anonymous = true,
        Some(src) => source(FLAG, raw, src, &mut m)?,
    }
    let mut rw_seen = false;
    for o in modes.into_iter().flat_map(|m| m.split(',')) {
        match o {
            "ro" | "rw" if rw_seen => return Err(invalid(FLAG, raw, "give one of ro and rw")),
            "ro" | "rw" => {
                rw_seen = true;
                m.read_only = o == "ro";
            }
            // SELinux relabelling: this host has no SELinux, so there is
            // nothing to relabel (documented in the README).
            "z" | "Z" => {}
            "nocopy" if m.host_path.is_none() => m.nocopy = true,
            "nocopy" => return Err(invalid(FLAG, raw, "nocopy applies to volumes, not host paths")),
            p => match propagation(p) {
                Some(p) if m.host_path.is_some() => m.propagation = Some(p),
                Some(_) => return Err(invalid(FLAG, raw, "a propagation applies to host paths, not volumes")),
                None => {
                    return Err(invalid(
                        FLAG,
                        raw,
                        format!("unknown option `{p}`: berth knows ro, rw, nocopy, z, Z and the propagations"),
                    ))
                }
            },
        }
    }
    Ok(m)
}

/// `true` unless `false`/`0`, as Docker's boolean mount keys (a bare key is true).
fn mount_bool(raw: &str, key: &str, value: Option<&str>) -> Result<bool, RunFlagsError> {
    match value {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(invalid("--mount", raw, format!("`{key}` takes true or false"))),
    }
}

/// `--mount`'s fields: split at commas outside double quotes, the quotes
/// dropped, as Docker reads it (a CSV line): `"volume-opt=o=size=1m,uid=1"`.
fn csv_fields(raw: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in raw.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

/// `--mount type=bind|volume|tmpfs,KEY=VALUE,…` with Docker's keys; the
/// mount and its `volume-opt`s.
fn parse_mount(raw: &str) -> Result<(VolumeMount, BTreeMap<String, String>), RunFlagsError> {
    const FLAG: &str = "--mount";
    let mut typ = "volume";
    let (mut src, mut dst) = (None, None);
    let (mut read_only, mut nocopy) = (false, false);
    let (mut prop, mut size, mut mode) = (None, None, None);
    let fields = csv_fields(raw);
    let mut opts = BTreeMap::new();
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field.as_str(), None),
        };
        fn need<'a>(raw: &str, key: &str, v: Option<&'a str>) -> Result<&'a str, RunFlagsError> {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| invalid("--mount", raw, format!("`{key}` needs a value")))
        }
        let need = |v| need(raw, key, v);
        match key {
            "type" => typ = need(value)?,
            "source" | "src" => src = Some(need(value)?),
            "target" | "destination" | "dst" => dst = Some(need(value)?),
            "readonly" | "ro" => read_only = mount_bool(raw, key, value)?,
            "volume-nocopy" => nocopy = mount_bool(raw, key, value)?,
            "bind-propagation" => {
                prop = Some(
                    propagation(need(value)?)
                        .ok_or_else(|| invalid(FLAG, raw, "bind-propagation is one of the six of mount(8)"))?,
                )
            }
            "tmpfs-size" => {
                let v = need(value)?;
                size = Some(
                    crate::manifest::quantity::parse_docker_size(v)
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| invalid(FLAG, raw, "tmpfs-size is a size such as 64m"))?,
                )
            }
            "tmpfs-mode" => {
                let v = need(value)?;
                crate::manifest::parse_mode(v)
                    .ok_or_else(|| invalid(FLAG, raw, "tmpfs-mode is octal bits such as 1770"))?;
                mode = Some(v.to_string());
            }
            "volume-opt" => {
                let (k, v) = need(value)?
                    .split_once('=')
                    .ok_or_else(|| invalid(FLAG, raw, "volume-opt is KEY=VALUE (type, device, o)"))?;
                opts.insert(k.to_string(), v.to_string());
            }
            // Docker Desktop's file sharing hints; nothing to do on Linux.
            "consistency" => {}
            "volume-driver" if value == Some("local") => {}
            _ => return Err(invalid(FLAG, raw, format!("berth does not take `{key}`"))),
        }
    }
    let dst = dst.ok_or_else(|| invalid(FLAG, raw, "missing target=/path"))?;
    let mut m = VolumeMount {
        read_only,
        ..Default::default()
    };
    let only = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(invalid(FLAG, raw, format!("{what} does not apply to type={typ}")))
        }
    };
    only(prop.is_none() || typ == "bind", "bind-propagation")?;
    only(!nocopy || typ == "volume", "volume-nocopy")?;
    only(
        (size.is_none() && mode.is_none()) || typ == "tmpfs",
        "tmpfs-size/tmpfs-mode",
    )?;
    only(opts.is_empty() || typ == "volume", "volume-opt")?;
    match typ {
        "bind" => {
            let src = src.ok_or_else(|| invalid(FLAG, raw, "a bind needs source=/host/path"))?;
            if !src.starts_with('/') {
                return Err(invalid(
                    FLAG,
                    raw,
                    format!("`{src}` is a relative host path: give an absolute one"),
                ));
            }
            source(FLAG, raw, src, &mut m)?;
            m.path = Some(target(FLAG, raw, dst)?);
            m.propagation = prop;
        }
        "volume" => {
            match src {
                None => m.anonymous = true,
                Some(src) if src.starts_with('/') => {
                    return Err(invalid(FLAG, raw, "a host path is type=bind, not type=volume"))
                }
                Some(src) => source(FLAG, raw, src, &mut m)?,
            }
            m.path = Some(target(FLAG, raw, dst)?);
            m.nocopy = nocopy;
        }
        "tmpfs" => {
            if src.is_some() {
                return Err(invalid(FLAG, raw, "a tmpfs has no source"));
            }
            m.tmpfs = Some(target(FLAG, raw, dst)?);
            m.size = size.map(Memory);
            m.mode = mode;
        }
        other => {
            return Err(invalid(
                FLAG,
                raw,
                format!("type `{other}` is not one of bind, volume, tmpfs"),
            ))
        }
    }
    Ok((m, opts))
}

/// `--tmpfs /path[:size=…,mode=…,ro|rw,exec|noexec,nosuid,nodev]`: noexec
/// unless `exec`, as Docker's (berth's tmpfs mounts are always nosuid and
/// nodev).
fn parse_tmpfs(raw: &str) -> Result<VolumeMount, RunFlagsError> {
    const FLAG: &str = "--tmpfs";
    let (path, opts) = raw.split_once(':').unwrap_or((raw, ""));
    let mut m = VolumeMount {
        tmpfs: Some(target(FLAG, raw, path)?),
        noexec: true,
        ..Default::default()
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => {
                m.size = Some(Memory(
                    crate::manifest::quantity::parse_docker_size(v)
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| invalid(FLAG, raw, "size is a size such as 64m (b, k, m, g)"))?,
                ))
            }
            Some(("mode", v)) => {
                crate::manifest::parse_mode(v).ok_or_else(|| invalid(FLAG, raw, "mode is octal bits such as 1777"))?;
                m.mode = Some(v.to_string());
            }
            None if o == "ro" => m.read_only = true,
            None if o == "exec" => m.noexec = false,
            None if matches!(o, "rw" | "noexec" | "nosuid" | "nodev") => {}
            _ => {
                return Err(invalid(
                    FLAG,
                    raw,
                    format!(
                    "berth does not take tmpfs option `{o}`: it knows size, mode, ro, rw, exec, noexec, nosuid, nodev"
                ),
                ))
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_args;
    use super::*;

    fn spec_of(argv: &[&str]) -> Result<ContainerSpec, RunFlagsError> {
        super::super::parse(&run_args(argv), &|_| None).map(|f| f.spec)
    }

    fn mounts(argv: &[&str]) -> Vec<VolumeMount> {
        let mut full = argv.to_vec();
        full.push("busybox");
        spec_of(&full).unwrap_or_else(|e| panic!("{argv:?}: {e}")).volumes
    }

    fn refused(argv: &[&str]) -> String {
        let mut full = argv.to_vec();
        full.push("busybox");
        match spec_of(&full) {
            Err(e) => e.to_string(),
            Ok(spec) => panic!("{argv:?} was taken: {:?}", spec.volumes),
        }
    }

    #[test]
    fn every_volume_form_of_docker() {
        let v = mounts(&[
            "-v",
            "data:/data",
            "-v",
            "cache:/cache:ro,nocopy",
            "-v",
            "/srv/www:/www:ro,z",
            "-v",
            "/srv/x:/x:rw,Z,rshared",
            "-v",
            "/anon",
            "-v",
            "/anon-ro:ro",
        ]);
        let want = [
            VolumeMount {
                volume: Some("data".into()),
                path: Some("/data".into()),
                ..Default::default()
            },
            VolumeMount {
                volume: Some("cache".into()),
                path: Some("/cache".into()),
                read_only: true,
                nocopy: true,
                ..Default::default()
            },
            VolumeMount {
                host_path: Some("/srv/www".into()),
                path: Some("/www".into()),
                read_only: true,
                ..Default::default()
            },
            VolumeMount {
                host_path: Some("/srv/x".into()),
                path: Some("/x".into()),
                propagation: Some(Propagation::Rshared),
                ..Default::default()
            },
            VolumeMount {
                anonymous: true,
                path: Some("/anon".into()),
                ..Default::default()
            },
            VolumeMount {
                anonymous: true,
                path: Some("/anon-ro".into()),
                read_only: true,
                ..Default::default()
            },
        ];
        assert_eq!(v, want);
    }

    #[test]
    fn hostile_volume_forms_are_refused_by_flag() {
        for (argv, why) in [
            (["-v", "../x:/y"], "relative host path"),
            (["-v", "x/y:/y"], "relative host path"),
            (["-v", "./x:/y"], "relative host path"),
            (["-v", "data:/"], "cannot mount over `/`"),
            (["-v", "/srv:/a/../etc"], "`..`"),
            (["-v", "/srv/../etc:/y"], "`..`"),
            (["-v", "data:rel"], "must be absolute"),
            (["-v", "Data_1:/d"], "not a volume name"),
            (["-v", "/srv:/d:nocopy"], "nocopy applies to volumes"),
            (["-v", "data:/d:rshared"], "propagation applies to host paths"),
            (["-v", "data:/d:exec"], "unknown option `exec`"),
            (["-v", "data:/d:ro,rw"], "one of ro and rw"),
            (["-v", "a:b:c:d"], "expected"),
        ] {
            let e = refused(&argv);
            assert!(e.starts_with(&format!("-v {:?}", argv[1])), "{e}");
            assert!(e.contains(why), "{argv:?}: {e}");
        }
    }

    #[test]
    fn mount_takes_dockers_keys() {
        let v = mounts(&[
            "--mount",
            "type=bind,source=/srv,target=/s,readonly,bind-propagation=rslave",
            "--mount",
            "type=volume,src=data,dst=/d,volume-nocopy",
            "--mount",
            "target=/anon",
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770,ro=false",
        ]);
        assert_eq!(
            v,
            [
                VolumeMount {
                    host_path: Some("/srv".into()),
                    path: Some("/s".into()),
                    read_only: true,
                    propagation: Some(Propagation::Rslave),
                    ..Default::default()
                },
                VolumeMount {
                    volume: Some("data".into()),
                    path: Some("/d".into()),
                    nocopy: true,
                    ..Default::default()
                },
                VolumeMount {
                    anonymous: true,
                    path: Some("/anon".into()),
                    ..Default::default()
                },
                VolumeMount {
                    tmpfs: Some("/t".into()),
                    size: Some(Memory(64 << 20)),
                    mode: Some("1770".into()),
                    ..Default::default()
                },
            ]
        );
    }

    #[test]
    fn mount_volume_opts_go_to_the_volume_made_on_first_use() {
        let flags = super::super::parse(
            &run_args(&[
                "--mount",
                "type=volume,src=fast,dst=/f,volume-opt=type=tmpfs,volume-opt=device=tmpfs,\"volume-opt=o=size=1m,uid=1\"",
                "busybox",
            ]),
            &|_| None,
        )
        .unwrap();
        let opts = &flags.volume_opts["fast"];
        assert_eq!(opts["type"], "tmpfs");
        assert_eq!(opts["o"], "size=1m,uid=1");
        assert_eq!(flags.spec.volumes[0].volume.as_deref(), Some("fast"));
    }

    #[test]
    fn mount_refuses_what_berth_cannot_honour() {
        for (arg, why) in [
            ("type=bind,source=rel,target=/x", "relative host path"),
            ("type=volume,source=/srv,target=/x", "type=bind"),
            ("type=nfs,target=/x", "type `nfs`"),
            ("type=tmpfs,source=x,target=/x", "no source"),
            ("type=volume,target=/x,tmpfs-size=1m", "does not apply"),
            ("type=volume,target=/x,volume-opt=type=tmpfs", "needs a named volume"),
            (
                "type=bind,source=/srv,target=/x,volume-opt=type=tmpfs",
                "volume-opt does not apply",
            ),
            ("type=volume,source=v,target=/x,volume-opt=tmpfs", "KEY=VALUE"),
            (
                "type=volume,source=v,target=/x,bind-nonrecursive",
                "does not take `bind-nonrecursive`",
            ),
            ("type=volume,source=v", "missing target"),
            ("type=bind,source=/srv,target=/", "over `/`"),
            ("type=tmpfs,target=/t,tmpfs-size=lots", "tmpfs-size"),
            ("type=volume,target=/x,readonly=maybe", "true or false"),
        ] {
            let e = refused(&["--mount", arg]);
            assert!(e.starts_with("--mount"), "{e}");
            assert!(e.contains(why), "{arg}: {e}");
        }
    }

    #[test]
    fn tmpfs_read_only_shm_and_volumes_from() {
        let spec = spec_of(&[
            "--tmpfs",
            "/run:rw,size=1m,mode=0700,nosuid,exec",
            "--tmpfs",
            "/scratch",
            "--read-only",
            "--shm-size",
            "256m",
            "--volumes-from",
            "store",
            "--volumes-from",
            "other:ro",
            "busybox",
        ])
        .unwrap();
        assert_eq!(
            spec.volumes,
            [
                VolumeMount {
                    tmpfs: Some("/run".into()),
                    size: Some(Memory(1 << 20)),
                    mode: Some("0700".into()),
                    ..Default::default()
                },
                VolumeMount {
                    tmpfs: Some("/scratch".into()),
                    noexec: true,
                    ..Default::default()
                },
            ]
        );
        assert!(spec.read_only_rootfs);
        assert_eq!(spec.shm_size, Some(Memory(268_435_456)));
        assert_eq!(
            spec.volumes_from,
            [
                VolumesFrom {
                    container: "store".into(),
                    read_only: false
                },
                VolumesFrom {
                    container: "other".into(),
                    read_only: true
                },
            ]
        );
        for (argv, why) in [
            (["--tmpfs", "/t:suid"], "`suid`"),
            (["--tmpfs", "/t:size=50%"], "size"),
            (["--tmpfs", "rel"], "absolute"),
            (["--shm-size", "0"], "size"),
            (["--shm-size", "64Mi5"], "size"),
            (["--volumes-from", "store:rx"], "NAME[:ro|rw]"),
            (["--volumes-from", "a/b"], "not a container name"),
        ] {
            let e = refused(&argv);
            assert!(e.starts_with(argv[0]) && e.contains(why), "{argv:?}: {e}");
        }
    }
}
