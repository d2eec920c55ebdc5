//! Running a Dockerfile's stages, step by step, through the cache.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Sender;

use super::context::Context;
use super::dockerfile::{self, CommandForm, CopyArgs, Dockerfile, Instruction, InstructionKind};
use super::subst;
use super::{BuildError, BuildHost, BuildOptions, Result, RunOutcome, RunStep};
use crate::image::{HistoryEntry, ImageConfig, ImageHealthcheck, ImageRecord};
use crate::wire::{BuildEvent, Empty};

/// Build args every Dockerfile may use without declaring them; like
/// Docker, they reach `RUN` but are left out of the history and the cache
/// key (a proxy changes nothing a build makes).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Bumped when what a key covers changes, so old entries stop matching.
const KEY_VERSION: u32 = 1;

/// The default `SHELL`.
fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// The platform args BuildKit defines in the global scope.
fn platform_args() -> Vec<(String, String)> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let platform = format!("linux/{arch}");
    [
        ("TARGETPLATFORM", platform.as_str()),
        ("TARGETOS", "linux"),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", ""),
        ("BUILDPLATFORM", platform.as_str()),
        ("BUILDOS", "linux"),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One stage being built.
struct Stage {
    /// The image so far; `None` while a `FROM scratch` stage has no step.
    image: Option<ImageRecord>,
    config: ImageConfig,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
}

impl Stage {
    fn env_value(&self, name: &str) -> Option<String> {
        self.config.env.iter().rev().find_map(|e| {
            e.split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// What `$NAME` reads in this stage: ENV over ARG.
    fn lookup(&self, name: &str) -> Option<String> {
        self.env_value(name).or_else(|| self.args.get(name).cloned().flatten())
    }

    fn shell(&self) -> Vec<String> {
        if self.config.shell.is_empty() {
            default_shell()
        } else {
            self.config.shell.clone()
        }
    }

    fn set_env(&mut self, key: &str, value: &str) {
        self.config
            .env
            .retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        self.config.env.push(format!("{key}={value}"));
    }

    /// Build args with a value that a RUN sees as environment (ENV wins).
    fn run_args(&self) -> Vec<(String, String)> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .filter(|(k, _)| self.env_value(k).is_none())
            .collect()
    }
}

/// A build in progress.
struct Build<'a, H: BuildHost> {
    host: &'a H,
    opts: &'a BuildOptions,
    file: String,
    out: &'a Sender<BuildEvent>,
    context: Context,
    /// Build args given and not yet read by an ARG.
    unused_args: BTreeSet<String>,
    /// Global ARGs (before the first FROM), with their values.
    global_args: BTreeMap<String, Option<String>>,
    number: usize,
    total: usize,
    /// Finished stages' images, by index.
    done: HashMap<usize, ImageRecord>,
    /// Images this build made or took from the cache that are not its result.
    intermediates: BTreeSet<String>,
    /// Stage names (`AS name`), by index.
    stage_names: HashMap<usize, String>,
}

/// Builds `opts`: parses and checks everything first, then runs the stages
/// up to the target, and tags the result. Events go to `out` (waiting for
/// a slow reader). Returns the image id.
pub async fn build<H: BuildHost>(host: &H, opts: &BuildOptions, out: &Sender<BuildEvent>) -> Result<String> {
    let dockerfile_path = if opts.dockerfile.is_absolute() {
        opts.dockerfile.clone()
    } else {
        opts.context.join(&opts.dockerfile)
    };
    let file = opts.dockerfile.display().to_string();
    let text = std::fs::read_to_string(&dockerfile_path)
        .map_err(|e| BuildError::Invalid(format!("reading the Dockerfile {}: {e}", dockerfile_path.display())))?;
    let parsed = dockerfile::parse(&text, &file)?;
    if text.lines().next().is_some_and(|l| {
        let l = l.trim_start_matches('#').trim_start();
        l.to_ascii_lowercase().starts_with("syntax")
    }) {
        note(
            out,
            "the `syntax` directive is ignored: berth builds with its own frontend",
        )
        .await?;
    }
    for k in opts.build_args.keys() {
        if k.is_empty() || k.contains(['=', ' ', '\t', '\n']) {
            return Err(BuildError::Invalid(format!("--build-arg `{k}`: not a variable name")));
        }
    }
    let last = match &opts.target {
        Some(t) => {
            parsed
                .stage(t)
                .ok_or_else(|| BuildError::Invalid(format!("target stage `{t}` could not be found in {file}")))?
                .index
        }
        None => parsed
            .stages
            .len()
            .checked_sub(1)
            .ok_or_else(|| BuildError::Invalid(format!("{file}: no FROM instruction")))?,
    };
    check_stage_refs(&parsed, last, &file)?;
    let ignore_rules = super::ignore::read_ignore(&opts.context, &opts.dockerfile.to_string_lossy())
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    let context = Context::open(&opts.context, ignore_rules).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let total = parsed.stages[..=last]
        .iter()
        .map(|s| 1 + s.instructions.len())
        .sum::<usize>();
    let mut b = Build {
        host,
        opts,
        file,
        out,
        context,
        unused_args: opts
            .build_args
            .keys()
            .filter(|k| !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect(),
        global_args: BTreeMap::new(),
        number: 0,
        total,
        done: HashMap::new(),
        intermediates: BTreeSet::new(),
        stage_names: parsed
            .stages
            .iter()
            .filter_map(|s| s.name.clone().map(|n| (s.index, n)))
            .collect(),
    };
    for (k, v) in platform_args() {
        b.global_args.insert(k, Some(v));
    }
    for arg in &parsed.global_args {
        if let InstructionKind::Arg(decls) = &arg.kind {
            for (name, default) in decls {
                let globals = b.global_args.clone();
                let value = b.arg_value(name, default.as_deref(), &|n| globals.get(n).cloned().flatten(), arg)?;
                b.global_args.insert(name.clone(), value);
            }
        }
    }
    let mut result = None;
    for stage in &parsed.stages[..=last] {
        let image = b.stage(&parsed, stage).await?;
        b.done.insert(stage.index, image.clone());
        result = Some(image);
    }
    let Some(mut image) = result else {
        return Err(BuildError::Invalid(format!("{}: no stage to build", b.file)));
    };
    if !opts.labels.is_empty() {
        let mut config = image.config.clone();
        config.labels.extend(opts.labels.clone());
        let created_by = format!(
            "LABEL {}",
            opts.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        b.intermediates.insert(image.id.clone());
        image = b.config_step(&image, config, created_by).await?;
    }
    if !b.unused_args.is_empty() {
        let names: Vec<&str> = b.unused_args.iter().map(String::as_str).collect();
        note(
            out,
            &format!(
                "[Warning] One or more build-args [{}] were not consumed",
                names.join(" ")
            ),
        )
        .await?;
    }
    host.keep(&image).map_err(BuildError::Host)?;
    send(out, BuildEvent::Built { id: image.id.clone() }).await?;
    for tag in &opts.tags {
        host.tag(&image.id, tag).map_err(BuildError::Host)?;
        send(out, BuildEvent::Tagged { reference: tag.clone() }).await?;
    }
    for id in &b.intermediates {
        if *id != image.id {
            host.forget_intermediate(id);
        }
    }
    Ok(image.id)
}

/// Refuses, before anything runs, a `COPY --from` or `FROM` naming a stage
/// that comes later (or itself): Docker reads such a name as an image.
fn check_stage_refs(parsed: &Dockerfile, last: usize, file: &str) -> Result<()> {
    for stage in &parsed.stages[..=last] {
        for ins in &stage.instructions {
            if let InstructionKind::Copy(c) | InstructionKind::Add(c) = &ins.kind {
                if let Some(from) = &c.from {
                    if let Some(s) = parsed.stage(from) {
                        if s.index >= stage.index {
                            return Err(BuildError::Invalid(format!(
                                "{file}:{}:{}: COPY --from={from}: stage {} is not built before stage {}",
                                ins.pos.line, ins.pos.column, s.index, stage.index
                            )));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

async fn send(out: &Sender<BuildEvent>, event: BuildEvent) -> Result<()> {
    out.send(event).await.map_err(|_| BuildError::Gone)
}

async fn note(out: &Sender<BuildEvent>, message: &str) -> Result<()> {
    send(
        out,
        BuildEvent::Note {
            message: message.to_string(),
        },
    )
    .await
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Docker's duration syntax for HEALTHCHECK flags (`30s`, `1m30s`, `500ms`)
/// in nanoseconds.
fn duration_ns(text: &str) -> std::result::Result<u64, String> {
    let mut total: u128 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (e.g. 30s, 1m30s)"))?;
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("`{text}` is not a duration (e.g. 30s, 1m30s)")),
        };
        total += (value * scale) as u128;
        rest = tail;
    }
    u64::try_from(total).map_err(|_| format!("`{text}` is too long a duration"))
}

/// The argv a command form runs with `shell`.
fn argv_of(form: &CommandForm, shell: &[String]) -> Vec<String> {
    match form {
        CommandForm::Exec(argv) => argv.clone(),
        CommandForm::Shell(cmd) => {
            let mut argv = shell.to_vec();
            argv.push(cmd.clone());
            argv
        }
    }
}

impl<H: BuildHost> Build<'_, H> {
    fn fail(&self, ins: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            number: self.number,
            total: self.total,
            file: self.file.clone(),
            line: ins.pos.line,
            instruction: ins.text.clone(),
            message: message.into(),
        }
    }

    /// An ARG's value: the build arg given for it, else its default
    /// (expanded with what `lookup` reads), else none.
    fn arg_value(
        &mut self,
        name: &str,
        default: Option<&str>,
        lookup: &dyn Fn(&str) -> Option<String>,
        ins: &Instruction,
    ) -> Result<Option<String>> {
        self.unused_args.remove(name);
        if let Some(v) = self.opts.build_args.get(name) {
            return Ok(Some(v.clone()));
        }
        match default {
            Some(d) => {
                let e = subst::expand(d, lookup, '\\').map_err(|e| self.fail(ins, e.to_string()))?;
                Ok(Some(e.text))
            }
            None => Ok(None),
        }
    }

    /// Expands one word of `ins` in `stage`'s scope.
    fn expand(&self, stage: &Stage, ins: &Instruction, word: &str) -> Result<String> {
        subst::expand(word, &|n| stage.lookup(n), '\\')
            .map(|e| e.text)
            .map_err(|e| self.fail(ins, e.to_string()))
    }

    async fn announce(&mut self, ins: &Instruction) -> Result<()> {
        self.number += 1;
        send(
            self.out,
            BuildEvent::Step {
                number: self.number,
                total: self.total,
                instruction: ins.text.clone(),
            },
        )
        .await
    }

    /// Builds one stage; returns its image.
    async fn stage(&mut self, parsed: &Dockerfile, stage: &dockerfile::Stage) -> Result<ImageRecord> {
        let from = &stage.from;
        self.announce(from).await?;
        let InstructionKind::From { image, platform, .. } = &from.kind else {
            return Err(self.fail(from, "a stage must start with FROM"));
        };
        let globals = self.global_args.clone();
        let image_name = subst::expand(image, &|n| globals.get(n).cloned().flatten(), '\\')
            .map_err(|e| self.fail(from, e.to_string()))?
            .text;
        let platform = match platform {
            Some(p) => Some(
                subst::expand(p, &|n| globals.get(n).cloned().flatten(), '\\')
                    .map_err(|e| self.fail(from, e.to_string()))?
                    .text,
            ),
            None => self.opts.platform.clone(),
        };
        if let Some(p) = &platform {
            let host = platform_args()[0].1.clone();
            if *p != host {
                return Err(self.fail(from, format!("platform {p} cannot be built on this {host} host")));
            }
        }
        let base = if image_name.eq_ignore_ascii_case("scratch") {
            None
        } else if let Some(s) = parsed.stage(&image_name).filter(|s| s.index < stage.index) {
            let image = self.done.get(&s.index).cloned();
            Some(image.ok_or_else(|| self.fail(from, format!("stage {image_name} was not built")))?)
        } else {
            Some(
                self.host
                    .base_image(&image_name, platform.as_deref(), self.opts.pull)
                    .await
                    .map_err(|e| self.fail(from, e))?,
            )
        };
        if let Some(b) = &base {
            send(self.out, BuildEvent::StepDone { id: b.id.clone() }).await?;
        }
        let mut st = Stage {
            config: base.as_ref().map(|b| b.config.clone()).unwrap_or_default(),
            image: base,
            args: BTreeMap::new(),
        };
        // The base's ONBUILD triggers run first, and are not inherited.
        let triggers = std::mem::take(&mut st.config.on_build);
        for trigger in &triggers {
            let ins = dockerfile::parse_instruction(trigger, &format!("{} (ONBUILD of {image_name})", self.file))?;
            note(self.out, &format!("Executing ONBUILD trigger: {trigger}")).await?;
            self.instruction(&mut st, &ins).await?;
        }
        for ins in &stage.instructions {
            self.announce(ins).await?;
            self.instruction(&mut st, ins).await?;
        }
        match st.image {
            Some(image) if triggers.is_empty() || st.config == image.config => Ok(image),
            image => {
                // Only triggers ran on `scratch`, or none ran but the
                // config still holds them: an image of this stage's own.
                let config = st.config.clone();
                self.config_step_opt(image.as_ref(), config, "ONBUILD triggers ran".into())
                    .await
            }
        }
    }

    /// A step that changes only the config.
    async fn config_step(
        &mut self,
        parent: &ImageRecord,
        config: ImageConfig,
        created_by: String,
    ) -> Result<ImageRecord> {
        self.config_step_opt(Some(parent), config, created_by).await
    }

    async fn config_step_opt(
        &mut self,
        parent: Option<&ImageRecord>,
        config: ImageConfig,
        created_by: String,
    ) -> Result<ImageRecord> {
        let key = self.key(parent, &config, &format!("config {created_by}"), &[], None);
        if let Some(hit) = self.lookup(&key).await? {
            return Ok(hit);
        }
        let image = self
            .host
            .derive(
                parent,
                None,
                config,
                HistoryEntry {
                    created_by,
                    empty_layer: true,
                },
            )
            .map_err(BuildError::Host)?;
        self.remember(&key, &image).await?;
        Ok(image)
    }

    /// The cache key of a step on `parent` (its chain ID and config).
    fn key(
        &self,
        parent: Option<&ImageRecord>,
        config: &ImageConfig,
        instruction: &str,
        args: &[(String, String)],
        sources: Option<&str>,
    ) -> String {
        let material = serde_json::json!({
            "v": KEY_VERSION,
            "parentChain": parent.and_then(|p| p.chain_ids.last().cloned()).unwrap_or_default(),
            "parentLayers": parent.map(|p| p.chain_ids.len()).unwrap_or(0),
            "config": config,
            "instruction": instruction,
            "args": args,
            "sources": sources,
        });
        sha256_hex(material.to_string().as_bytes())
    }

    async fn lookup(&mut self, key: &str) -> Result<Option<ImageRecord>> {
        if self.opts.no_cache {
            return Ok(None);
        }
        let hit = self.host.cache_get(key).map_err(BuildError::Host)?;
        if let Some(image) = &hit {
            send(self.out, BuildEvent::Cached).await?;
            send(self.out, BuildEvent::StepDone { id: image.id.clone() }).await?;
            self.intermediates.insert(image.id.clone());
        }
        Ok(hit)
    }

    async fn remember(&mut self, key: &str, image: &ImageRecord) -> Result<()> {
        self.host.cache_put(key, image).map_err(BuildError::Host)?;
        self.intermediates.insert(image.id.clone());
        send(self.out, BuildEvent::StepDone { id: image.id.clone() }).await
    }

    /// Carries out one instruction on `st` (of the Dockerfile, or an
    /// ONBUILD trigger of the base).
    async fn instruction(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let mut config = st.config.clone();
        let created_by: String;
        match &ins.kind {
            InstructionKind::From { .. } => return Err(self.fail(ins, "FROM inside a stage")),
            InstructionKind::Arg(decls) => {
                for (name, default) in decls {
                    let globals = self.global_args.clone();
                    let scope = |n: &str| st.lookup(n).or_else(|| globals.get(n).cloned().flatten());
                    // `ARG NAME` without a default takes the global value.
                    let default = match default {
                        Some(d) => Some(d.clone()),
                        None => globals.get(name).cloned().flatten(),
                    };
                    let value = self.arg_value(name, default.as_deref(), &scope, ins)?;
                    st.args.insert(name.clone(), value);
                }
                // An ARG changes no image: later keys carry its value.
                return Ok(());
            }
            InstructionKind::Env(pairs) => {
                let mut texts = Vec::new();
                for (k, v) in pairs {
                    let value = self.expand(st, ins, v)?;
                    st.set_env(k, &value);
                    texts.push(format!("{k}={value}"));
                }
                config = st.config.clone();
                created_by = format!("ENV {}", texts.join(" "));
            }
            InstructionKind::Label(pairs) => {
                let mut texts = Vec::new();
                for (k, v) in pairs {
                    let key = self.expand(st, ins, k)?;
                    let value = self.expand(st, ins, v)?;
                    texts.push(format!("{key}={value}"));
                    config.labels.insert(key, value);
                }
                created_by = format!("LABEL {}", texts.join(" "));
            }
            InstructionKind::Maintainer(who) => {
                config.labels.insert("maintainer".into(), who.clone());
                created_by = format!("MAINTAINER {who}");
            }
            InstructionKind::Expose(ports) => {
                let mut seen = Vec::new();
                for p in ports {
                    let p = self.expand(st, ins, p)?;
                    let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(self.fail(ins, format!("EXPOSE {p}: protocol must be tcp, udp or sctp")));
                    }
                    let (lo, hi) = port.split_once('-').unwrap_or((port, port));
                    let (lo, hi): (u16, u16) = match (lo.parse(), hi.parse()) {
                        (Ok(l), Ok(h)) if l <= h && l > 0 => (l, h),
                        _ => return Err(self.fail(ins, format!("EXPOSE {p}: not a port or a range of ports"))),
                    };
                    for n in lo..=hi {
                        config.exposed_ports.insert(format!("{n}/{proto}"), Empty {});
                    }
                    seen.push(format!("{port}/{proto}"));
                }
                created_by = format!("EXPOSE map[{}]", seen.join(" "));
            }
            InstructionKind::Volume(paths) => {
                let mut all = Vec::new();
                for p in paths {
                    let p = self.expand(st, ins, p)?;
                    if p.is_empty() {
                        return Err(self.fail(ins, "VOLUME with an empty path"));
                    }
                    config.volumes.insert(p.clone(), Empty {});
                    all.push(p);
                }
                created_by = format!("VOLUME {:?}", all);
            }
            InstructionKind::User(user) => {
                let user = self.expand(st, ins, user)?;
                config.user = Some(user.clone());
                created_by = format!("USER {user}");
            }
            InstructionKind::Workdir(dir) => {
                let dir = self.expand(st, ins, dir)?;
                let dir = join_workdir(config.working_dir.as_deref(), &dir);
                config.working_dir = Some(dir.clone());
                created_by = format!("WORKDIR {dir}");
            }
            InstructionKind::StopSignal(sig) => {
                let sig = self.expand(st, ins, sig)?;
                config.stop_signal = Some(sig.clone());
                created_by = format!("STOPSIGNAL {sig}");
            }
            InstructionKind::Shell(argv) => {
                if argv.is_empty() {
                    return Err(self.fail(ins, "SHELL needs a JSON array, e.g. [\"/bin/bash\", \"-c\"]"));
                }
                config.shell = argv.clone();
                created_by = format!("SHELL {}", serde_json::to_string(argv).unwrap_or_default());
            }
            InstructionKind::Cmd(form) => {
                config.cmd = argv_of(form, &st.shell());
                created_by = format!("CMD {}", serde_json::to_string(&config.cmd).unwrap_or_default());
            }
            InstructionKind::Entrypoint(form) => {
                config.entrypoint = argv_of(form, &st.shell());
                // As Docker: a new ENTRYPOINT drops the CMD it inherited.
                if st.config.entrypoint != config.entrypoint {
                    config.cmd.clear();
                }
                created_by = format!(
                    "ENTRYPOINT {}",
                    serde_json::to_string(&config.entrypoint).unwrap_or_default()
                );
            }
            InstructionKind::Healthcheck(h) => {
                config.healthcheck = Some(self.healthcheck(st, ins, h)?);
                created_by = format!("HEALTHCHECK {}", ins.text.trim_start_matches("HEALTHCHECK").trim());
            }
            InstructionKind::Onbuild(trigger) => {
                // Checked now, so a bad trigger fails this build, not the next.
                dockerfile::parse_instruction(trigger, &self.file)?;
                config.on_build.push(trigger.clone());
                created_by = format!("ONBUILD {trigger}");
            }
            InstructionKind::Run {
                command,
                heredocs,
                network,
            } => {
                return self.run(st, ins, command, heredocs, network.as_deref()).await;
            }
            InstructionKind::Copy(args) => return self.copy(st, ins, args, false).await,
            InstructionKind::Add(args) => return self.copy(st, ins, args, true).await,
        }
        let image = self
            .config_step_opt(st.image.as_ref(), config.clone(), created_by)
            .await?;
        st.config = config;
        if let Some(old) = st.image.replace(image) {
            self.intermediates.insert(old.id);
        }
        Ok(())
    }

    fn healthcheck(&self, st: &Stage, ins: &Instruction, h: &dockerfile::Healthcheck) -> Result<ImageHealthcheck> {
        let Some(test) = &h.test else {
            return Ok(ImageHealthcheck {
                test: vec!["NONE".into()],
                ..Default::default()
            });
        };
        let test = match test {
            CommandForm::Exec(argv) => std::iter::once("CMD".to_string()).chain(argv.iter().cloned()).collect(),
            CommandForm::Shell(cmd) => vec!["CMD-SHELL".to_string(), cmd.clone()],
        };
        let dur = |flag: &str, v: &Option<String>| -> Result<u64> {
            match v {
                None => Ok(0),
                Some(v) => {
                    let v = self.expand(st, ins, v)?;
                    duration_ns(&v).map_err(|e| self.fail(ins, format!("--{flag}: {e}")))
                }
            }
        };
        let retries = match &h.retries {
            None => 0,
            Some(r) => r
                .parse()
                .map_err(|_| self.fail(ins, format!("--retries={r}: not a whole number")))?,
        };
        Ok(ImageHealthcheck {
            test,
            interval: dur("interval", &h.interval)?,
            timeout: dur("timeout", &h.timeout)?,
            start_period: dur("start-period", &h.start_period)?,
            retries,
        })
    }

    async fn run(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
        command: &CommandForm,
        heredocs: &[dockerfile::Heredoc],
        network: Option<&str>,
    ) -> Result<()> {
        let shell = st.shell();
        let argv = match command {
            CommandForm::Shell(cmd) if !heredocs.is_empty() => {
                let only_heredocs = cmd.split_whitespace().all(|w| {
                    w.starts_with("<<")
                        && heredocs.iter().any(|h| {
                            w.trim_start_matches("<<-")
                                .trim_start_matches("<<")
                                .trim_matches(['"', '\''])
                                == h.name
                        })
                });
                let script = if only_heredocs && heredocs.len() == 1 {
                    // `RUN <<EOF`: the heredoc is the script.
                    heredocs[0].content.clone()
                } else {
                    // The shell reads heredocs itself: hand it the whole text.
                    let mut s = cmd.clone();
                    for h in heredocs {
                        s.push('\n');
                        s.push_str(&h.content);
                        if !h.content.ends_with('\n') {
                            s.push('\n');
                        }
                        s.push_str(&h.name);
                    }
                    s
                };
                let mut argv = shell.clone();
                argv.push(script);
                argv
            }
            other => argv_of(other, &shell),
        };
        let mut args: Vec<(String, String)> = st.run_args();
        let keyed_args: Vec<(String, String)> = args
            .iter()
            .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect();
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(*p) {
                if !args.iter().any(|(k, _)| k == p) {
                    args.push((p.to_string(), v.clone()));
                }
            }
        }
        let command_text = argv.join(" ");
        let created_by = if keyed_args.is_empty() {
            format!("RUN {command_text}")
        } else {
            let shown: Vec<String> = keyed_args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("RUN |{} {} {command_text}", shown.len(), shown.join(" "))
        };
        let network = network
            .map(str::to_string)
            .or_else(|| self.opts.network.clone())
            .unwrap_or_else(|| "bridge".into());
        let key = self.key(
            st.image.as_ref(),
            &st.config,
            &format!("run {}", serde_json::to_string(&argv).unwrap_or_default()),
            &keyed_args,
            Some(&network),
        );
        let image = match self.lookup(&key).await? {
            Some(hit) => hit,
            None => {
                let Some(base) = st.image.clone() else {
                    return Err(self.fail(
                        ins,
                        "RUN in a stage FROM scratch with nothing in it: there is no shell to run",
                    ));
                };
                let step = RunStep {
                    argv: argv.clone(),
                    env: args,
                    user: st.config.user.clone(),
                    working_dir: st.config.working_dir.clone(),
                    network,
                };
                let outcome = self
                    .host
                    .run(
                        &base,
                        &step,
                        st.config.clone(),
                        HistoryEntry {
                            created_by,
                            empty_layer: false,
                        },
                        self.out,
                    )
                    .await
                    .map_err(|e| self.fail(ins, e))?;
                match outcome {
                    RunOutcome::Committed(image) => {
                        self.remember(&key, &image).await?;
                        *image
                    }
                    RunOutcome::Failed { code } => {
                        return Err(self.fail(
                            ins,
                            format!("the command '{command_text}' returned a non-zero code: {code}"),
                        ))
                    }
                }
            }
        };
        if let Some(old) = st.image.replace(image) {
            self.intermediates.insert(old.id);
        }
        Ok(())
    }

    async fn copy(&mut self, st: &mut Stage, ins: &Instruction, args: &CopyArgs, add: bool) -> Result<()> {
        let verb = if add { "ADD" } else { "COPY" };
        let dest = self.expand(st, ins, &args.dest)?;
        let chown = match &args.chown {
            Some(c) => Some(self.expand(st, ins, c)?),
            None => None,
        };
        let chmod = match &args.chmod {
            Some(m) => {
                let m = self.expand(st, ins, m)?;
                Some(
                    u32::from_str_radix(&m, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            self.fail(ins, format!("--chmod={m}: an octal mode such as 0644 is expected"))
                        })?,
                )
            }
            None => None,
        };
        let mut sources = Vec::new();
        for s in &args.sources {
            sources.push(self.expand(st, ins, s)?);
        }
        // Where the sources come from: the context, a stage, or an image.
        let from_image = match &args.from {
            None => None,
            Some(from) => {
                let from = self.expand(st, ins, from)?;
                let image = match from.parse::<usize>().ok().or_else(|| {
                    self.done
                        .keys()
                        .copied()
                        .find(|i| self.stage_names.get(i).is_some_and(|n| n.eq_ignore_ascii_case(&from)))
                }) {
                    Some(index) => self
                        .done
                        .get(&index)
                        .cloned()
                        .ok_or_else(|| self.fail(ins, format!("--from={from}: stage {index} is not built yet")))?,
                    None => self
                        .host
                        .base_image(&from, None, false)
                        .await
                        .map_err(|e| self.fail(ins, format!("--from={from}: {e}")))?,
                };
                Some(image)
            }
        };
        let plan = super::copy::CopyPlan {
            sources: sources.clone(),
            dest: dest.clone(),
            workdir: st.config.working_dir.clone().unwrap_or_else(|| "/".into()),
            chown,
            chmod,
            add,
            heredocs: Vec::new(),
        };
        let mut plan = plan;
        for h in &args.heredocs {
            // An unquoted delimiter's body is expanded, quotes kept (BuildKit).
            let content = if h.expand {
                subst::expand_raw(&h.content, &|n| st.lookup(n))
                    .map_err(|e| self.fail(ins, e.to_string()))?
                    .text
            } else {
                h.content.clone()
            };
            plan.heredocs.push((h.name.clone(), content));
        }
        let (source_hash, source_root) = match &from_image {
            None => {
                let mut rels = Vec::new();
                let mut urls = Vec::new();
                for s in &sources {
                    if add && (s.starts_with("http://") || s.starts_with("https://")) {
                        urls.push(s.clone());
                        continue;
                    }
                    rels.extend(self.context.resolve(s).map_err(|e| self.fail(ins, e.to_string()))?);
                }
                let hash = if rels.is_empty() {
                    String::new()
                } else {
                    self.context.hash(&rels).map_err(|e| self.fail(ins, e.to_string()))?
                };
                // A URL is fetched for every build, as Docker does without a
                // checksum: its content is part of the key.
                let mut material = hash;
                for url in &urls {
                    material.push_str(&format!(" {url}"));
                }
                (material, super::copy::SourceRoot::Context(self.opts.context.clone()))
            }
            Some(image) => (
                format!("image {}", image.id),
                super::copy::SourceRoot::Image(self.host.lower_dirs(image).map_err(|e| self.fail(ins, e))?),
            ),
        };
        let shown_sources = sources.join(" ");
        let mut flags = String::new();
        for (flag, value) in [("from", &args.from), ("chown", &args.chown), ("chmod", &args.chmod)] {
            if let Some(v) = value {
                flags.push_str(&format!("--{flag}={v} "));
            }
        }
        let created_by = format!("{verb} {flags}{shown_sources} {dest}");
        let key = self.key(
            st.image.as_ref(),
            &st.config,
            &format!("{verb} {}", serde_json::to_string(&plan).unwrap_or_default()),
            &[],
            Some(&source_hash),
        );
        let image = match self.lookup(&key).await? {
            Some(hit) => hit,
            None => {
                let lowers = match &st.image {
                    Some(image) => self.host.lower_dirs(image).map_err(|e| self.fail(ins, e))?,
                    None => Vec::new(),
                };
                let scratch = self.host.scratch_dir().map_err(BuildError::Host)?;
                let context = &self.context;
                let result = {
                    let plan = plan.clone();
                    let scratch = scratch.clone();
                    let ignore = matches!(source_root, super::copy::SourceRoot::Context(_)).then_some(context);
                    super::copy::copy_into_layer(&plan, &source_root, ignore, &lowers, &scratch).await
                };
                let made = match result {
                    Ok(upper) => self
                        .host
                        .derive(
                            st.image.as_ref(),
                            Some(&upper),
                            st.config.clone(),
                            HistoryEntry {
                                created_by,
                                empty_layer: false,
                            },
                        )
                        .map_err(BuildError::Host),
                    Err(e) => Err(self.fail(ins, e)),
                };
                let _ = crate::build::copy::remove_scratch(&scratch);
                let image = made?;
                self.remember(&key, &image).await?;
                image
            }
        };
        if let Some(old) = st.image.replace(image) {
            self.intermediates.insert(old.id);
        }
        Ok(())
    }
}

/// WORKDIR `dir` after `current`: absolute as is, relative under it.
fn join_workdir(current: Option<&str>, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", current.unwrap_or("/").trim_end_matches('/'))
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_docker_writes_them() {
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert!(duration_ns("10").is_err());
        assert!(duration_ns("").is_err());
        assert!(duration_ns("1x").is_err());
    }

    #[test]
    fn workdirs_join_and_clean() {
        assert_eq!(join_workdir(None, "app"), "/app");
        assert_eq!(join_workdir(Some("/a"), "b/../c"), "/a/c");
        assert_eq!(join_workdir(Some("/a"), "/x/"), "/x");
        assert_eq!(join_workdir(Some("/"), ".."), "/");
    }
}
