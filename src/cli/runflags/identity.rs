//! `run`/`create` flags of process and identity: working directory,
//! entrypoint, environment and label files, hostname and name resolution,
//! restart policy, network address, aliases and MAC, log rotation, and the
//! CLI-side flags (`--pull`, `--cidfile`, `-a`, `--sig-proxy`) checked here
//! so that a bad one is refused before anything is sent. Pure: files come
//! in through `read_file`, the caller's environment through `caller_env`.

use std::collections::BTreeMap;

use super::{invalid, RunFlagsError};
use crate::cli::args::IdentityArgs;
use crate::manifest::{ContainerSpec, DnsSpec, ExtraHost, LogSpec, Memory, RestartPolicy};

/// Reads a file the flags name (`--env-file`, `--label-file`).
pub type ReadFile<'a> = &'a dyn Fn(&str) -> std::io::Result<Vec<u8>>;

/// Sets what `args` ask for on `spec` and `labels`, over what the other
/// flags set: `-e` wins over `--env-file`, as in Docker.
pub fn apply(
    args: &IdentityArgs,
    spec: &mut ContainerSpec,
    labels: &mut BTreeMap<String, String>,
    caller_env: &dyn Fn(&str) -> Option<String>,
    read_file: ReadFile,
) -> Result<(), RunFlagsError> {
    if let Some(dir) = &args.workdir {
        if !dir.starts_with('/') {
            return Err(invalid(
                "--workdir",
                dir,
                "the working directory must be an absolute path",
            ));
        }
        spec.working_dir = Some(dir.clone());
    }
    if let Some(e) = &args.entrypoint {
        // As Docker: one program (no splitting); '' clears the image's.
        spec.entrypoint = Some(if e.is_empty() { Vec::new() } else { vec![e.clone()] });
    }
    let mut from_files = BTreeMap::new();
    for path in &args.env_file {
        for (_, key, value) in key_value_lines("--env-file", path, read_file)? {
            let value = match value {
                Some(v) => v,
                // `KEY` alone: from this shell, skipped when unset (as Docker).
                None => match caller_env(&key) {
                    Some(v) => v,
                    None => continue,
                },
            };
            from_files.insert(key, value);
        }
    }
    for (k, v) in from_files {
        spec.env.entry(k).or_insert(v);
    }
    for path in &args.label_file {
        for (_, key, value) in key_value_lines("--label-file", path, read_file)? {
            labels.insert(key, value.unwrap_or_default());
        }
    }
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() || has_control(l) {
            return Err(invalid("--label", l, "expected KEY=VALUE (or KEY), printable text"));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    for (flag, value, slot) in [
        ("--hostname", &args.hostname, &mut spec.hostname),
        ("--domainname", &args.domainname, &mut spec.domainname),
    ] {
        if let Some(v) = value {
            if !crate::manifest::is_hostname(v) {
                return Err(invalid(
                    flag,
                    v,
                    "expected a host name: letters, digits and `-`, labels separated by `.`",
                ));
            }
            *slot = Some(v.clone());
        }
    }
    for h in &args.add_host {
        spec.extra_hosts.push(parse_add_host(h)?);
    }
    if !args.dns.is_empty() || !args.dns_search.is_empty() || !args.dns_option.is_empty() {
        for s in &args.dns {
            if s.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid("--dns", s, "expected an IP address, as 192.0.2.53"));
            }
        }
        spec.dns = Some(DnsSpec {
            servers: args.dns.clone(),
            search: args.dns_search.clone(),
            options: args.dns_option.clone(),
        });
    }
    if let Some(r) = &args.restart {
        let (policy, max) = parse_restart(r).ok_or_else(|| {
            invalid(
                "--restart",
                r,
                "expected no, always, on-failure[:MAX-RETRIES] or unless-stopped",
            )
        })?;
        spec.restart_policy = policy;
        spec.restart_max_retries = max;
    }
    if args.ip.is_some() || !args.network_alias.is_empty() || args.mac_address.is_some() {
        let flag = if args.ip.is_some() {
            "--ip"
        } else if args.mac_address.is_some() {
            "--mac-address"
        } else {
            "--network-alias"
        };
        let Some(first) = spec.networks.first_mut() else {
            let value = args.ip.clone().or(args.mac_address.clone()).unwrap_or_default();
            return Err(invalid(
                flag,
                &value,
                "needs a bridge network: not with --network host, none or container:NAME",
            ));
        };
        if let Some(ip) = &args.ip {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(invalid("--ip", ip, "expected an IPv4 address in the network's subnet"));
            }
            first.ipv4_address = Some(ip.clone());
        }
        for alias in &args.network_alias {
            if !crate::manifest::is_dns_label(alias) {
                return Err(invalid(
                    "--network-alias",
                    alias,
                    "expected a DNS label: lower-case letters, digits and `-`",
                ));
            }
            first.aliases.push(alias.clone());
        }
        if let Some(mac) = &args.mac_address {
            crate::manifest::parse_mac(mac).map_err(|why| invalid("--mac-address", mac, why))?;
            spec.mac_address = Some(mac.clone());
        }
    }
    if !args.log_opt.is_empty() {
        let mut logs = LogSpec::default();
        for opt in &args.log_opt {
            match opt.split_once('=') {
                Some(("max-size", v)) => {
                    let bytes = crate::manifest::quantity::parse_docker_size(v).map_err(|_| {
                        invalid(
                            "--log-opt",
                            opt,
                            "max-size is a size such as 10m (b, k, m, g: binary units)",
                        )
                    })?;
                    logs.max_size = Some(Memory(bytes));
                }
                Some(("max-file", v)) => {
                    let n = v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| invalid("--log-opt", opt, "max-file is a count of at least 1"))?;
                    logs.max_files = Some(n);
                }
                _ => {
                    return Err(invalid(
                        "--log-opt",
                        opt,
                        "berth's log keeps max-size=SIZE and max-file=N; other options are not supported",
                    ))
                }
            }
        }
        spec.logs = Some(logs);
    }
    if let Some(p) = &args.pull {
        if !matches!(p.as_str(), "always" | "missing" | "never") {
            return Err(invalid("--pull", p, "expected always, missing or never"));
        }
    }
    for a in &args.attach {
        if !matches!(a.to_ascii_lowercase().as_str(), "stdin" | "stdout" | "stderr") {
            return Err(invalid("--attach", a, "expected stdin, stdout or stderr"));
        }
    }
    if args.publish_all {
        spec.publish_all = true;
    }
    Ok(())
}

/// `--restart`: Docker's `no`, `always`, `on-failure[:N]`, `unless-stopped`.
pub fn parse_restart(text: &str) -> Option<(RestartPolicy, Option<u32>)> {
    match text.split_once(':') {
        Some(("on-failure", n)) => Some((RestartPolicy::OnFailure, Some(n.parse().ok()?))),
        Some(_) => None,
        None => Some(match text {
            "no" => (RestartPolicy::Never, None),
            "always" => (RestartPolicy::Always, None),
            "on-failure" => (RestartPolicy::OnFailure, None),
            "unless-stopped" => (RestartPolicy::UnlessStopped, None),
            _ => return None,
        }),
    }
}

/// `--add-host NAME:IP` (or `NAME=IP`); IP may be `host-gateway`.
fn parse_add_host(text: &str) -> Result<ExtraHost, RunFlagsError> {
    let (host, ip) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| invalid("--add-host", text, "expected NAME:IP"))?;
    // `[fd00::1]` as Docker writes an IPv6 address after the colon.
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if !crate::manifest::is_hostname(host) {
        return Err(invalid(
            "--add-host",
            text,
            format!(
                "`{}` is not a host name: letters, digits, `-` and `.`",
                host.escape_debug()
            ),
        ));
    }
    if ip != crate::manifest::HOST_GATEWAY && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(invalid(
            "--add-host",
            text,
            format!("`{ip}` is not an IP address (nor host-gateway)"),
        ));
    }
    Ok(ExtraHost {
        host: host.to_string(),
        ip: ip.to_string(),
    })
}

fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

/// The `KEY=VALUE` / `KEY` lines of a Docker env or label file, with their
/// line numbers; blank lines and `#` comments are skipped. A file that is
/// missing, not UTF-8, or holds control characters is refused, naming the
/// file and the line.
fn key_value_lines(
    flag: &'static str,
    path: &str,
    read_file: ReadFile,
) -> Result<Vec<(usize, String, Option<String>)>, RunFlagsError> {
    let bytes = read_file(path).map_err(|e| invalid(flag, path, format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        invalid(flag, path, format!("line {line} is not UTF-8 text"))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if has_control(trimmed) {
            return Err(invalid(flag, path, format!("line {} holds control characters", i + 1)));
        }
        let (key, value) = match trimmed.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (trimmed, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(invalid(
                flag,
                path,
                format!("line {}: `{key}` is not a name (no spaces, not empty)", i + 1),
            ));
        }
        out.push((i + 1, key.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_args;
    use super::super::{parse_with, RunFlags};
    use super::*;

    fn flags(argv: &[&str], files: &[(&str, &[u8])]) -> Result<RunFlags, RunFlagsError> {
        let files: Vec<(String, Vec<u8>)> = files.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect();
        let read = move |p: &str| {
            files
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        };
        let env = |k: &str| (k == "FROM_SHELL").then(|| "shell".to_string());
        parse_with(&run_args(argv), &env, &read)
    }

    fn err(argv: &[&str], files: &[(&str, &[u8])]) -> String {
        flags(argv, files).unwrap_err().to_string()
    }

    #[test]
    fn workdir_and_entrypoint_replace_the_images() {
        let s = flags(&["-w", "/srv", "--entrypoint", "/bin/echo", "busybox", "hi"], &[])
            .unwrap()
            .spec;
        assert_eq!(s.working_dir.as_deref(), Some("/srv"));
        assert_eq!(s.entrypoint, Some(vec!["/bin/echo".to_string()]));
        assert_eq!(s.command, ["hi"]);
        let s = flags(&["--entrypoint", "", "busybox", "echo"], &[]).unwrap().spec;
        assert_eq!(s.entrypoint, Some(vec![]));
        assert!(err(&["-w", "srv", "busybox"], &[]).starts_with("--workdir \"srv\""));
    }

    #[test]
    fn env_files_come_first_and_keys_alone_come_from_the_shell() {
        let file: &[u8] = b"# comment\n\nA=file\nB=file=with=equals\nFROM_SHELL\nUNSET_HERE\n";
        let s = flags(
            &[
                "--env-file",
                "/e",
                "-e",
                "A=flag",
                "-e",
                "FROM_SHELL",
                "-e",
                "UNSET_TOO",
                "busybox",
            ],
            &[("/e", file)],
        )
        .unwrap()
        .spec;
        assert_eq!(s.env["A"], "flag");
        assert_eq!(s.env["B"], "file=with=equals");
        assert_eq!(s.env["FROM_SHELL"], "shell");
        assert!(!s.env.contains_key("UNSET_HERE"));
        assert!(!s.env.contains_key("UNSET_TOO"));
    }

    #[test]
    fn env_and_label_files_that_are_missing_or_junk_are_refused_by_file_and_line() {
        let e = err(&["--env-file", "/missing", "busybox"], &[]);
        assert!(e.starts_with("--env-file \"/missing\": cannot read it"), "{e}");
        let e = err(
            &["--label-file", "/l", "busybox"],
            &[("/l", b"a=1\n\xff\xfe\x00junk\n")],
        );
        assert!(e.contains("line 2 is not UTF-8"), "{e}");
        let e = err(&["--label-file", "/l", "busybox"], &[("/l", b"a=1\nb=\x1b[31m\n")]);
        assert!(e.contains("line 2 holds control characters"), "{e}");
        let e = err(&["--env-file", "/e", "busybox"], &[("/e", b"BAD KEY=1\n")]);
        assert!(e.contains("line 1: `BAD KEY` is not a name"), "{e}");
    }

    #[test]
    fn labels_come_from_flags_over_files() {
        let f = flags(
            &["--label-file", "/l", "-l", "a=flag", "--label", "solo", "busybox"],
            &[("/l", b"a=file\nb=file\nbare\n")],
        )
        .unwrap();
        let want: BTreeMap<String, String> = [("a", "flag"), ("b", "file"), ("bare", ""), ("solo", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(f.labels, want);
    }

    #[test]
    fn names_hosts_and_resolver_settings_land_in_the_spec() {
        let s = flags(
            &[
                "--hostname",
                "web",
                "--domainname",
                "example.org",
                "--add-host",
                "db:10.1.2.3",
                "--add-host",
                "gw:host-gateway",
                "--add-host",
                "six=[fd00::1]",
                "--dns",
                "192.0.2.53",
                "--dns-search",
                "a.test",
                "--dns-opt",
                "ndots:1",
                "busybox",
            ],
            &[],
        )
        .unwrap()
        .spec;
        assert_eq!(s.hostname.as_deref(), Some("web"));
        assert_eq!(s.domainname.as_deref(), Some("example.org"));
        let hosts: Vec<(&str, &str)> = s.extra_hosts.iter().map(|h| (h.host.as_str(), h.ip.as_str())).collect();
        assert_eq!(hosts, [("db", "10.1.2.3"), ("gw", "host-gateway"), ("six", "fd00::1")]);
        let dns = s.dns.unwrap();
        assert_eq!(
            (dns.servers, dns.search, dns.options),
            (
                vec!["192.0.2.53".to_string()],
                vec!["a.test".to_string()],
                vec!["ndots:1".to_string()]
            )
        );
    }

    #[test]
    fn bad_hosts_and_servers_are_refused_by_flag() {
        let e = err(&["--add-host", "db\nevil:10.1.2.3", "busybox"], &[]);
        assert!(e.starts_with("--add-host") && e.contains("is not a host name"), "{e}");
        let e = err(&["--add-host", "db:10.1.2", "busybox"], &[]);
        assert!(e.contains("`10.1.2` is not an IP address"), "{e}");
        assert!(err(&["--add-host", "db", "busybox"], &[]).contains("expected NAME:IP"));
        assert!(err(&["--dns", "dns.google", "busybox"], &[]).starts_with("--dns \"dns.google\""));
        assert!(err(&["--hostname", "a b", "busybox"], &[]).starts_with("--hostname"));
    }

    #[test]
    fn restart_takes_dockers_policies() {
        assert_eq!(parse_restart("no"), Some((RestartPolicy::Never, None)));
        assert_eq!(parse_restart("always"), Some((RestartPolicy::Always, None)));
        assert_eq!(
            parse_restart("unless-stopped"),
            Some((RestartPolicy::UnlessStopped, None))
        );
        assert_eq!(parse_restart("on-failure"), Some((RestartPolicy::OnFailure, None)));
        assert_eq!(parse_restart("on-failure:2"), Some((RestartPolicy::OnFailure, Some(2))));
        for bad in ["on-failure:", "on-failure:-1", "always:2", "sometimes"] {
            assert_eq!(parse_restart(bad), None, "{bad}");
        }
        let s = flags(&["--restart", "on-failure:3", "busybox"], &[]).unwrap().spec;
        assert_eq!(
            (s.restart_policy, s.restart_max_retries),
            (RestartPolicy::OnFailure, Some(3))
        );
        assert!(err(&["--restart", "sometimes", "busybox"], &[]).starts_with("--restart"));
    }

    #[test]
    fn address_aliases_and_mac_go_to_the_first_network_and_net_is_network() {
        let s = flags(
            &[
                "--net",
                "front",
                "--ip",
                "10.89.7.9",
                "--network-alias",
                "www",
                "--mac-address",
                "02:42:ac:11:00:09",
                "busybox",
            ],
            &[],
        )
        .unwrap()
        .spec;
        assert_eq!(s.networks[0].name, "front");
        assert_eq!(s.networks[0].ipv4_address.as_deref(), Some("10.89.7.9"));
        assert_eq!(s.networks[0].aliases, ["www"]);
        assert_eq!(s.mac_address.as_deref(), Some("02:42:ac:11:00:09"));
        let e = err(&["--net", "host", "--ip", "10.0.0.2", "busybox"], &[]);
        assert!(e.starts_with("--ip") && e.contains("needs a bridge network"), "{e}");
        assert!(err(&["--ip", "10.0.0", "busybox"], &[]).starts_with("--ip"));
        assert!(err(&["--mac-address", "01:00:5e:00:00:01", "busybox"], &[]).contains("multicast"));
        assert!(err(&["--network-alias", "Bad_Alias", "busybox"], &[]).starts_with("--network-alias"));
    }

    #[test]
    fn log_options_take_dockers_units_and_refuse_the_rest() {
        let s = flags(
            &["--log-opt", "max-size=10m", "--log-opt", "max-file=3", "busybox"],
            &[],
        )
        .unwrap()
        .spec;
        let logs = s.logs.unwrap();
        assert_eq!((logs.max_size, logs.max_files), (Some(Memory(10 << 20)), Some(3)));
        assert!(err(&["--log-opt", "compress=true", "busybox"], &[]).contains("not supported"));
        assert!(err(&["--log-opt", "max-file=0", "busybox"], &[]).contains("at least 1"));
    }

    #[test]
    fn cli_side_flags_are_checked_here() {
        assert!(err(&["--pull", "sometimes", "busybox"], &[]).starts_with("--pull"));
        assert!(err(&["-a", "stdwhat", "busybox"], &[]).starts_with("--attach"));
        let args = run_args(&[
            "--sig-proxy=false",
            "-a",
            "stdout",
            "--cidfile",
            "/tmp/c",
            "--pull",
            "never",
            "busybox",
        ]);
        assert_eq!(args.identity.sig_proxy, Some(false));
        assert_eq!(args.identity.attach, ["stdout"]);
        assert!(flags(&["--sig-proxy", "-a", "STDERR", "busybox"], &[]).is_ok());
        assert!(flags(&["-P", "busybox"], &[]).unwrap().spec.publish_all);
    }
}
