//! `docker run`'s resource flags (issue 20): sizes in Docker's units
//! ([`parse_docker_size`]), Docker's "0 or -1 means unset" conventions, and
//! the rules between flags, each refused naming the flags. The daemon checks
//! the result again as a manifest's `resources:`.

use super::{invalid, RunFlagsError};
use crate::cli::args::{ResourceArgs, RunArgs, UpdateArgs};
use crate::manifest::quantity::{is_cpu_list, parse_docker_size};
use crate::manifest::{DeviceIops, DeviceRate, DeviceWeight, Memory, MemorySwap, Resources, RestartPolicy};
use crate::wire::UpdateRequest;

/// The resources the flags ask for; None when they ask for none.
pub(super) fn parse(args: &RunArgs) -> Result<Option<Resources>, RunFlagsError> {
    parse_flags(&args.memory, &args.cpus, &args.resources)
}

/// `berth update`'s flags: the same as run's, and `--restart`.
pub fn update_request(args: &UpdateArgs) -> Result<UpdateRequest, RunFlagsError> {
    let restart_policy = args
        .restart
        .as_deref()
        .map(|r| match r {
            "no" => Ok(RestartPolicy::Never),
            "always" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            // berth's `always` does not restart a container stopped by hand.
            "unless-stopped" => Ok(RestartPolicy::Always),
            _ => Err(invalid(
                "--restart",
                r,
                "expected no, always, on-failure or unless-stopped (berth has no retry count)",
            )),
        })
        .transpose()?;
    let resources = parse_flags(&args.memory, &args.cpus, &args.resources)?;
    if resources.is_none() && restart_policy.is_none() {
        return Err(invalid(
            "update",
            &args.names.join(" "),
            "nothing to change: give a resource flag (--memory, --cpus, --pids-limit …) or --restart",
        ));
    }
    Ok(UpdateRequest {
        resources: resources.unwrap_or_default(),
        restart_policy,
    })
}

fn parse_flags(
    memory: &Option<String>,
    cpus: &Option<String>,
    r: &ResourceArgs,
) -> Result<Option<Resources>, RunFlagsError> {
    let size = |flag: &'static str, v: &Option<String>| -> Result<Option<Memory>, RunFlagsError> {
        match v.as_deref() {
            None => Ok(None),
            Some(t) => match parse_docker_size(t).map_err(|e| invalid(flag, t, e.0))? {
                // Docker's 0: no limit.
                0 => Ok(None),
                n => Ok(Some(Memory(n))),
            },
        }
    };
    let number = |flag: &'static str, v: &Option<String>| -> Result<Option<i64>, RunFlagsError> {
        v.as_deref()
            .map(|t| {
                t.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid(flag, t, "expected a whole number"))
            })
            .transpose()
    };
    let positive = |flag: &'static str, v: &Option<String>| -> Result<Option<u64>, RunFlagsError> {
        match number(flag, v)? {
            Some(n) if n < 0 => Err(invalid(flag, v.as_deref().unwrap_or(""), "must not be negative")),
            // Docker's 0: the kernel's default.
            Some(0) | None => Ok(None),
            Some(n) => Ok(Some(n as u64)),
        }
    };
    let memory = size("--memory", memory)?;
    let cpus = cpus
        .as_deref()
        .map(|c| {
            c.parse()
                .map_err(|e: crate::manifest::quantity::QuantityError| invalid("--cpus", c, e.0))
        })
        .transpose()?;
    let memory_swap = match r.memory_swap.as_deref().map(str::trim) {
        None => None,
        Some("-1") => Some(MemorySwap::Unlimited),
        Some(_) => size("--memory-swap", &r.memory_swap)?.map(MemorySwap::Limit),
    };
    match (memory_swap, memory) {
        (Some(_), None) => {
            return Err(invalid(
                "--memory-swap",
                r.memory_swap.as_deref().unwrap_or(""),
                "limits memory plus swap and needs --memory too",
            ))
        }
        (Some(MemorySwap::Limit(swap)), Some(m)) if swap < m => {
            return Err(invalid(
                "--memory-swap",
                r.memory_swap.as_deref().unwrap_or(""),
                format!("counts memory plus swap and must be at least --memory ({} bytes)", m.0),
            ))
        }
        _ => {}
    }
    let memory_reservation = size("--memory-reservation", &r.memory_reservation)?;
    if let (Some(reservation), Some(m)) = (memory_reservation, memory) {
        if reservation > m {
            return Err(invalid(
                "--memory-reservation",
                r.memory_reservation.as_deref().unwrap_or(""),
                format!("must be at most --memory ({} bytes)", m.0),
            ));
        }
    }
    let oom_kill_disable = match r.oom_kill_disable.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => return Err(invalid("--oom-kill-disable", other, "expected true or false")),
    };
    let cpu_period = positive("--cpu-period", &r.cpu_period)?;
    // Docker's -1 for the quota: none.
    let cpu_quota = match number("--cpu-quota", &r.cpu_quota)? {
        Some(-1) | Some(0) | None => None,
        Some(n) if n < 0 => {
            return Err(invalid(
                "--cpu-quota",
                r.cpu_quota.as_deref().unwrap_or(""),
                "expected a number of microseconds, or -1 for none",
            ))
        }
        Some(n) => Some(n as u64),
    };
    if cpus.is_some() && (cpu_period.is_some() || cpu_quota.is_some()) {
        let (flag, value) = match cpu_period {
            Some(_) => ("--cpu-period", &r.cpu_period),
            None => ("--cpu-quota", &r.cpu_quota),
        };
        return Err(invalid(
            flag,
            value.as_deref().unwrap_or(""),
            "conflicts with --cpus, which sets the CFS period and quota itself: give one or the other",
        ));
    }
    let cpuset = |flag: &'static str, v: &Option<String>| -> Result<Option<String>, RunFlagsError> {
        match v.as_deref() {
            Some(list) if !is_cpu_list(list) => Err(invalid(flag, list, "expected numbers and ranges such as 0-2,4")),
            other => Ok(other.map(str::to_string)),
        }
    };
    let pids = match number("--pids-limit", &r.pids_limit)? {
        // Docker's 0 and -1: unlimited.
        Some(n) if n <= 0 => None,
        Some(n) => Some(
            u32::try_from(n).map_err(|_| invalid("--pids-limit", &n.to_string(), format!("at most {}", u32::MAX)))?,
        ),
        None => None,
    };
    let weight = |flag: &'static str, text: &str| -> Result<u16, RunFlagsError> {
        text.trim()
            .parse::<u16>()
            .ok()
            .filter(|w| (10..=1000).contains(w))
            .ok_or_else(|| invalid(flag, text, "expected a weight between 10 and 1000"))
    };
    let blkio_weight = match r.blkio_weight.as_deref() {
        None => None,
        Some("0") => None,
        Some(w) => Some(weight("--blkio-weight", w)?),
    };
    let blkio_weight_device = r
        .blkio_weight_device
        .iter()
        .map(|t| {
            let (path, w) = device_and_value("--blkio-weight-device", t, "DEVICE:WEIGHT")?;
            Ok(DeviceWeight {
                path,
                weight: weight("--blkio-weight-device", w)?,
            })
        })
        .collect::<Result<Vec<_>, RunFlagsError>>()?;
    let bps = |flag: &'static str, list: &[String]| {
        list.iter()
            .map(|t| {
                let (path, rate) = device_and_value(flag, t, "DEVICE:RATE (e.g. /dev/sda:1mb)")?;
                let rate = parse_docker_size(rate).map_err(|e| invalid(flag, t, e.0))?;
                Ok(DeviceRate {
                    path,
                    rate: Memory(rate),
                })
            })
            .collect::<Result<Vec<_>, RunFlagsError>>()
    };
    let iops = |flag: &'static str, list: &[String]| {
        list.iter()
            .map(|t| {
                let (path, rate) = device_and_value(flag, t, "DEVICE:N (e.g. /dev/sda:1000)")?;
                let rate = rate
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| invalid(flag, t, "expected a whole number of operations per second"))?;
                Ok(DeviceIops { path, rate })
            })
            .collect::<Result<Vec<_>, RunFlagsError>>()
    };
    let resources = Resources {
        cpus,
        memory,
        pids,
        cpu_shares: positive("--cpu-shares", &r.cpu_shares)?,
        memory_swap,
        memory_reservation,
        oom_kill_disable,
        cpu_period,
        cpu_quota,
        cpuset_cpus: cpuset("--cpuset-cpus", &r.cpuset_cpus)?,
        cpuset_mems: cpuset("--cpuset-mems", &r.cpuset_mems)?,
        blkio_weight,
        blkio_weight_device,
        device_read_bps: bps("--device-read-bps", &r.device_read_bps)?,
        device_write_bps: bps("--device-write-bps", &r.device_write_bps)?,
        device_read_iops: iops("--device-read-iops", &r.device_read_iops)?,
        device_write_iops: iops("--device-write-iops", &r.device_write_iops)?,
    };
    Ok((resources != Resources::default()).then_some(resources))
}

/// `DEVICE:VALUE`, the device an absolute path (Docker's form).
fn device_and_value<'a>(flag: &'static str, text: &'a str, form: &str) -> Result<(String, &'a str), RunFlagsError> {
    match text.rsplit_once(':') {
        Some((path, value)) if path.starts_with('/') && !value.is_empty() => Ok((path.to_string(), value)),
        _ => Err(invalid(
            flag,
            text,
            format!("expected {form}, the device an absolute path"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_args;
    use super::*;

    fn resources(argv: &[&str]) -> Result<Option<Resources>, RunFlagsError> {
        let mut full = argv.to_vec();
        full.push("busybox");
        parse(&run_args(&full))
    }

    fn refusal(argv: &[&str]) -> String {
        resources(argv).unwrap_err().to_string()
    }

    #[test]
    fn sizes_take_docker_units_and_kubernetes_ones() {
        let r = resources(&["--memory=100m"]).unwrap().unwrap();
        assert_eq!(r.memory, Some(Memory(104_857_600)));
        let r = resources(&["-m", "100Mi"]).unwrap().unwrap();
        assert_eq!(r.memory, Some(Memory(104_857_600)));
        let r = resources(&["-m", "1g", "--memory-swap", "2g", "--memory-reservation", "512m"])
            .unwrap()
            .unwrap();
        assert_eq!(r.memory_swap, Some(MemorySwap::Limit(Memory(2 << 30))));
        assert_eq!(r.memory_reservation, Some(Memory(512 << 20)));
        let r = resources(&["-m", "64m", "--memory-swap", "-1"]).unwrap().unwrap();
        assert_eq!(r.memory_swap, Some(MemorySwap::Unlimited));
        assert_eq!(resources(&["-m", "0"]).unwrap(), None);
        assert_eq!(resources(&[]).unwrap(), None);
    }

    #[test]
    fn cpu_and_pid_flags_take_docker_s_forms() {
        let r = resources(&[
            "-c",
            "512",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "--cpuset-cpus",
            "0-1",
            "--cpuset-mems",
            "0",
            "--pids-limit",
            "64",
            "--oom-kill-disable",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_period, r.cpu_quota, r.pids, r.oom_kill_disable),
            (Some(512), Some(50_000), Some(25_000), Some(64), true)
        );
        assert_eq!(
            (r.cpuset_cpus.as_deref(), r.cpuset_mems.as_deref()),
            (Some("0-1"), Some("0"))
        );
        assert_eq!(resources(&["--pids-limit", "-1", "--cpu-quota", "-1"]).unwrap(), None);
        assert_eq!(resources(&["--oom-kill-disable=false"]).unwrap(), None);
    }

    #[test]
    fn io_flags_take_a_device_and_a_value() {
        let r = resources(&[
            "--blkio-weight",
            "500",
            "--blkio-weight-device",
            "/dev/vda:200",
            "--device-read-bps",
            "/dev/vda:1mb",
            "--device-write-bps",
            "/dev/vda:10k",
            "--device-read-iops",
            "/dev/vda:100",
            "--device-write-iops",
            "/dev/vda:200",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(r.blkio_weight, Some(500));
        assert_eq!(
            r.blkio_weight_device,
            [DeviceWeight {
                path: "/dev/vda".into(),
                weight: 200
            }]
        );
        assert_eq!(
            r.device_read_bps,
            [DeviceRate {
                path: "/dev/vda".into(),
                rate: Memory(1 << 20)
            }]
        );
        assert_eq!(r.device_write_bps[0].rate, Memory(10 << 10));
        assert_eq!(
            r.device_read_iops,
            [DeviceIops {
                path: "/dev/vda".into(),
                rate: 100
            }]
        );
        assert_eq!(r.device_write_iops[0].rate, 200);
    }

    fn update(argv: &[&str]) -> Result<UpdateRequest, RunFlagsError> {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            update: UpdateArgs,
        }
        let args = Cli::try_parse_from(std::iter::once("update").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .update;
        update_request(&args)
    }

    #[test]
    fn update_takes_run_s_resource_flags_and_a_restart_policy() {
        let req = update(&[
            "--memory",
            "96m",
            "--pids-limit",
            "20",
            "--restart",
            "on-failure",
            "web",
        ])
        .unwrap();
        assert_eq!(req.resources.memory, Some(Memory(96 << 20)));
        assert_eq!(req.resources.pids, Some(20));
        assert_eq!(req.restart_policy, Some(RestartPolicy::OnFailure));
        let req = update(&["--cpus", "0.5", "web"]).unwrap();
        assert_eq!(req.restart_policy, None);
        let e = update(&["--restart", "on-failure:3", "web"]).unwrap_err().to_string();
        assert!(e.starts_with("--restart \"on-failure:3\""), "{e}");
        let e = update(&["web"]).unwrap_err().to_string();
        assert!(e.contains("nothing to change"), "{e}");
        let e = update(&["--memory", "lots", "web"]).unwrap_err().to_string();
        assert!(e.starts_with("--memory \"lots\""), "{e}");
    }

    #[test]
    fn every_bad_value_is_refused_naming_its_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--memory", "100x"], "--memory \"100x\""),
            (
                &["--memory-swap", "200m"],
                "--memory-swap \"200m\": limits memory plus swap and needs --memory",
            ),
            (
                &["-m", "100m", "--memory-swap", "50m"],
                "--memory-swap \"50m\": counts memory plus swap",
            ),
            (
                &["-m", "100m", "--memory-reservation", "200m"],
                "--memory-reservation \"200m\": must be at most --memory",
            ),
            (&["--memory-reservation", "lots"], "--memory-reservation \"lots\""),
            (&["--oom-kill-disable=maybe"], "--oom-kill-disable \"maybe\""),
            (&["--cpu-shares", "many"], "--cpu-shares \"many\""),
            (&["--cpu-period", "-5"], "--cpu-period \"-5\": must not be negative"),
            (&["--cpu-quota", "-7"], "--cpu-quota \"-7\""),
            (
                &["--cpus", "1", "--cpu-period", "50000"],
                "--cpu-period \"50000\": conflicts with --cpus",
            ),
            (
                &["--cpus", "1", "--cpu-quota", "50000"],
                "--cpu-quota \"50000\": conflicts with --cpus",
            ),
            (&["--cpuset-cpus", "1-0"], "--cpuset-cpus \"1-0\""),
            (&["--cpuset-mems", "x"], "--cpuset-mems \"x\""),
            (&["--pids-limit", "ten"], "--pids-limit \"ten\""),
            (&["--pids-limit", "99999999999"], "--pids-limit \"99999999999\""),
            (
                &["--blkio-weight", "5"],
                "--blkio-weight \"5\": expected a weight between 10 and 1000",
            ),
            (&["--blkio-weight", "1001"], "--blkio-weight \"1001\""),
            (
                &["--blkio-weight-device", "/dev/vda"],
                "--blkio-weight-device \"/dev/vda\": expected DEVICE:WEIGHT",
            ),
            (
                &["--blkio-weight-device", "/dev/vda:5000"],
                "--blkio-weight-device \"5000\"",
            ),
            (
                &["--device-read-bps", "vda:1mb"],
                "--device-read-bps \"vda:1mb\": expected DEVICE:RATE",
            ),
            (
                &["--device-write-bps", "/dev/vda:fast"],
                "--device-write-bps \"/dev/vda:fast\": malformed size",
            ),
            (
                &["--device-read-iops", "/dev/vda:1k"],
                "--device-read-iops \"/dev/vda:1k\"",
            ),
            (
                &["--device-write-iops", "/dev/vda:"],
                "--device-write-iops \"/dev/vda:\"",
            ),
        ];
        for (argv, expected) in cases {
            let e = refusal(argv);
            assert!(e.starts_with(expected), "{argv:?}: {e}");
        }
    }
}
