//! `run`: a command in a new container, as `docker run`.

use std::process::ExitCode;

use hyper::Method;

use super::logs::{flush_stdout, print_log};
use crate::cli::args::{Global, IdentityArgs, RunArgs};
use crate::cli::client;
use crate::cli::runflags;
use crate::client::ClientError;
use crate::wire::{RunEvent, RunRequest};

/// `create`, as `docker create`: prints the name; `start` starts it.
pub async fn create(g: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut args = args;
    // Flags are checked before anything is pulled or made.
    if let Err(code) = request(&args) {
        return Ok(code);
    }
    let cidfile = match CidFile::claim(args.identity.cidfile.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Err(code) = ensure_image(g, &mut args.image, &args.identity).await {
        return Ok(code);
    }
    let req = match request(&args) {
        Ok(req) => req,
        Err(code) => return Ok(code),
    };
    match client(g, true)
        .post::<_, crate::wire::VerbResponse>("/v1/create", &req)
        .await
    {
        Ok(r) => {
            cidfile.write(&r.container);
            println!("{}", r.container);
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Api { message, .. }) => {
            eprintln!("berth: {message}");
            Ok(ExitCode::from(125))
        }
        Err(e) => Err(e.into()),
    }
}

/// As `docker run`: `image` names an Image object if one is defined;
/// otherwise it is a registry reference, a bare name meaning `NAME:latest`
/// (`busybox` is docker.io/library/busybox:latest, as an `import` or `pull`
/// of `busybox` records it). A reference not in the store is pulled first,
/// with its progress. Err is the exit code after the error is printed.
async fn ensure_image(g: &Global, image: &mut String, flags: &IdentityArgs) -> Result<(), ExitCode> {
    if !crate::image::record::looks_like_reference(image) {
        let path = format!("/v1/objects/image/{}", crate::client::segment(image));
        match client(g, true).get::<serde_json::Value>(&path).await {
            Ok(_) => return Ok(()),
            // A name no Image object can have (`my_app`) is a reference too.
            Err(ClientError::Api {
                kind: crate::wire::ErrorKind::NotFound | crate::wire::ErrorKind::Invalid,
                ..
            }) => {
                image.push_str(":latest");
            }
            // The run request reports an unreachable daemon itself.
            Err(_) => return Ok(()),
        }
    }
    // `--pull`: missing (the default) pulls what is not here, always pulls
    // again, never refuses what is not here.
    let pull = match flags.pull.as_deref() {
        Some("always") => true,
        Some("never") => {
            if !super::images::is_pulled(g, image).await {
                eprintln!("berth: image {image} is not here and --pull never forbids pulling it: pull it first");
                return Err(ExitCode::from(125));
            }
            false
        }
        _ => !super::images::is_pulled(g, image).await,
    };
    if pull {
        if let Err(message) = super::images::pull_image(g, image, flags.platform.clone()).await {
            eprintln!("berth: {message}");
            return Err(ExitCode::from(125));
        }
    }
    Ok(())
}

/// The request for `args`, or the exit code after a bad flag was reported
/// (125, as `docker run` exits on its own errors).
fn request(args: &RunArgs) -> Result<RunRequest, ExitCode> {
    let flags =
        runflags::parse_with(args, &|key| std::env::var(key).ok(), &|path| std::fs::read(path)).map_err(|e| {
            eprintln!("berth: {e}");
            ExitCode::from(125)
        })?;
    Ok(RunRequest {
        name: args.name.clone(),
        spec: flags.spec,
        labels: flags.labels,
        rm: args.rm,
        detach: true,
        attach: false,
        detach_keys: None,
        volume_opts: flags.volume_opts,
    })
}

/// As `docker run`, the exit code is the container's, 127 or 126 when its
/// command is missing or not executable, or 125 when berth could not run it
/// (no such image, a name in use).
pub async fn run(g: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    // In the foreground the container is started detached, then attached
    // to, as Docker does: with a tty its pty, with -i its stdin and output,
    // otherwise its output alone. The attach is the byte-exact path (the
    // log is line-oriented text), and the shim holds the init until it is
    // there, so no output is missed; `-d -t` leaves it running.
    let attach = !args.detach;
    let tty = args.tty;
    let detach_keys = args.detach_keys.clone();
    let mut args = args;
    if let Err(code) = request(&args) {
        return Ok(code);
    }
    let cidfile = match CidFile::claim(args.identity.cidfile.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Err(code) = ensure_image(g, &mut args.image, &args.identity).await {
        return Ok(code);
    }
    // `-a`: only the streams named (all without it); stdin only with -i.
    let only = &args.identity.attach;
    let named = |s: &str| only.is_empty() || only.iter().any(|a| a.eq_ignore_ascii_case(s));
    let streams = super::exec::Streams {
        stdout: named("stdout"),
        stderr: named("stderr"),
        sig_proxy: args.identity.sig_proxy.unwrap_or(true),
    };
    let interactive = args.interactive && named("stdin");
    let req = match request(&args) {
        Ok(req) => RunRequest {
            attach,
            detach_keys: detach_keys.clone(),
            ..req
        },
        Err(code) => return Ok(code),
    };
    let mut started = None;
    let body = serde_json::to_vec(&req)?;
    let mut code = None;
    let mut error = None;
    let api = client(g, true);
    let result = api
        .stream(
            Method::POST,
            "/v1/run",
            Some(body),
            |ev: RunEvent| match ev {
                RunEvent::Started { name } => {
                    cidfile.write(&name);
                    if attach {
                        started = Some(name);
                    } else {
                        println!("{name}");
                    }
                }
                // From a daemon that streams the log of a foreground run.
                RunEvent::Log(line) => print_log(&line, false),
                RunEvent::Exited { code: c, oom_killed } => {
                    if oom_killed {
                        eprintln!("berth: container was OOM-killed");
                    }
                    code = Some(c);
                }
                RunEvent::Error { message, exit_code } => error = Some((message, exit_code.unwrap_or(125))),
            },
            flush_stdout,
        )
        .await;
    match result {
        Ok(()) => {}
        Err(ClientError::Api { message, .. }) => {
            eprintln!("berth: {message}");
            return Ok(ExitCode::from(125));
        }
        Err(e) => return Err(e.into()),
    }
    if let Some((e, code)) = error {
        eprintln!("berth: {e}");
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    if let Some(name) = started {
        return super::exec::attach_with(g, &name, tty, interactive, detach_keys, streams).await;
    }
    Ok(match code {
        Some(c) => ExitCode::from(c.clamp(0, 255) as u8),
        None if !attach => ExitCode::SUCCESS,
        None => ExitCode::from(125),
    })
}

/// `--cidfile`: made (empty) before the container, so that a second run
/// with the same file is refused before it makes anything, as Docker does;
/// the container's name is written once it exists. A run that fails leaves
/// no file behind.
struct CidFile(Option<std::path::PathBuf>, std::cell::Cell<bool>);

impl CidFile {
    fn claim(path: Option<&str>) -> Result<CidFile, ExitCode> {
        let Some(path) = path else {
            return Ok(CidFile(None, std::cell::Cell::new(false)));
        };
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(_) => Ok(CidFile(Some(path.into()), std::cell::Cell::new(false))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                eprintln!(
                    "berth: --cidfile {path}: the file exists; make sure the container it names is gone, \
                     then delete the file"
                );
                Err(ExitCode::from(125))
            }
            Err(e) => {
                eprintln!("berth: --cidfile {path}: cannot create it: {e}");
                Err(ExitCode::from(125))
            }
        }
    }

    fn write(&self, name: &str) {
        if let Some(path) = &self.0 {
            match std::fs::write(path, name) {
                Ok(()) => self.1.set(true),
                Err(e) => eprintln!("berth: --cidfile {}: cannot write it: {e}", path.display()),
            }
        }
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let (Some(path), false) = (&self.0, self.1.get()) {
            let _ = std::fs::remove_file(path);
        }
    }
}
