//! `build`: a Dockerfile built by the daemon, its steps printed as Docker's
//! legacy builder prints them.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hyper::Method;

use crate::cli::args::{BuildArgs, Global};
use crate::cli::client;
use crate::cli::commands::images::short;
use crate::wire::{BuildEvent, BuildRequest, BuilderPruneResponse};

/// A context read from stdin, unpacked into a directory removed on drop.
struct StdinContext(PathBuf);

impl Drop for StdinContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unpacks a tar (plain or gzip) from stdin. The tar crate refuses entries
/// that would land outside the directory (`..`, absolute paths, through a
/// symlink it made).
fn unpack_stdin() -> anyhow::Result<StdinContext> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("berth-build-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let ctx = StdinContext(dir.clone());
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::new(stdin.lock());
    let gzip = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive
        .unpack(&dir)
        .map_err(|e| anyhow::anyhow!("reading the build context from stdin (a tar, plain or gzip): {e}"))?;
    Ok(ctx)
}

/// `KEY=VALUE` pairs; `KEY` alone takes its value from this environment
/// (and is left out when unset), as Docker's `--build-arg`.
fn parse_pairs(flag: &str, items: &[String], from_env: bool) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None if from_env => (item.as_str(), std::env::var(item).ok()),
            None => (item.as_str(), Some(String::new())),
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(format!("{flag} `{item}`: KEY=VALUE is expected"));
        }
        if let Some(v) = v {
            out.insert(k.to_string(), v);
        }
    }
    Ok(out)
}

pub async fn build(g: &Global, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let (build_args, labels) = match (
        parse_pairs("--build-arg", &args.build_args, true),
        parse_pairs("--label", &args.labels, false),
    ) {
        (Ok(a), Ok(l)) => (a, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("berth: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let stdin_context;
    let context: PathBuf = if args.context == "-" {
        stdin_context = unpack_stdin()?;
        stdin_context.0.clone()
    } else {
        match std::fs::canonicalize(&args.context) {
            Ok(p) if p.is_dir() => p,
            Ok(_) => {
                eprintln!("berth: build context {}: not a directory", args.context);
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                eprintln!("berth: build context {}: {e}", args.context);
                return Ok(ExitCode::from(1));
            }
        }
    };
    let dockerfile = match &args.file {
        None => None,
        Some(f) => match std::path::absolute(Path::new(f)) {
            Ok(p) => Some(p.display().to_string()),
            Err(e) => {
                eprintln!("berth: -f {f}: {e}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let req = BuildRequest {
        context: context.display().to_string(),
        dockerfile,
        tags: args.tags.clone(),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        labels,
        network: args.network.clone(),
        platform: args.platform.clone(),
    };
    let body = serde_json::to_vec(&req)?;
    let quiet = args.quiet;
    let mut built: Option<String> = None;
    let mut failed: Option<String> = None;
    let mut stdout = std::io::stdout();
    let mut live = (!quiet && std::io::IsTerminal::is_terminal(&stdout)).then(LiveView::new);
    let result = client(g, true)
        .stream(
            Method::POST,
            "/v1/build",
            Some(body),
            |event: BuildEvent| {
                if let Some(view) = &mut live {
                    if let BuildEvent::Error { message } = &event {
                        failed = Some(message.clone());
                    }
                    if let Some(id) = view.event(event, &mut stdout) {
                        built = Some(id);
                    }
                    return;
                }
                if quiet {
                    match event {
                        BuildEvent::Built { id } => built = Some(id),
                        BuildEvent::Error { message } => failed = Some(message),
                        _ => {}
                    }
                    return;
                }
                let _ = match event {
                    BuildEvent::Step {
                        number,
                        total,
                        instruction,
                    } => writeln!(stdout, "Step {number}/{total} : {instruction}"),
                    BuildEvent::Cached => writeln!(stdout, " ---> Using cache"),
                    BuildEvent::Output { stream, text } => {
                        if stream == "stderr" {
                            let _ = stdout.flush();
                            let mut e = std::io::stderr();
                            e.write_all(text.as_bytes()).and_then(|()| e.flush())
                        } else {
                            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
                        }
                    }
                    BuildEvent::Note { message } => writeln!(stdout, "{message}"),
                    BuildEvent::StepDone { id } => writeln!(stdout, " ---> {}", short(&id)),
                    BuildEvent::Built { id } => {
                        let line = writeln!(stdout, "Successfully built {}", short(&id));
                        built = Some(id);
                        line
                    }
                    BuildEvent::Tagged { reference } => writeln!(stdout, "Successfully tagged {reference}"),
                    BuildEvent::Error { message } => {
                        failed = Some(message);
                        Ok(())
                    }
                };
            },
            || {},
        )
        .await;
    let _ = stdout.flush();
    if let Err(e) = result {
        eprintln!("berth: {e}");
        return Ok(ExitCode::from(1));
    }
    if let Some(message) = failed {
        eprintln!("berth: build failed: {message}");
        return Ok(ExitCode::from(1));
    }
    let Some(id) = built else {
        eprintln!("berth: the daemon ended the build without saying how it went");
        return Ok(ExitCode::from(1));
    };
    if quiet {
        println!("{id}");
    }
    if let Some(file) = &args.iidfile {
        std::fs::write(file, &id)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn prune(g: &Global) -> anyhow::Result<ExitCode> {
    let answer: BuilderPruneResponse = client(g, true).post_empty("/v1/builder/prune").await?;
    println!(
        "Deleted build cache objects: {}\nTotal reclaimed space: {}",
        answer.entries,
        crate::cli::output::bytes(answer.reclaimed_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// The compact view of a build on a terminal: each step on one line, with
/// the last few lines of its output under it while it runs, folded away
/// when it ends (`CACHED` or its time); a failing step's whole output is
/// printed before the error.
struct LiveView {
    window: std::collections::VecDeque<String>,
    /// Lines of the window on the screen now.
    drawn: usize,
    partial: String,
    /// The running step's whole output (printed in full if it fails).
    output: String,
    started: std::time::Instant,
    cached: bool,
    id: Option<String>,
    in_step: bool,
    width: usize,
}

/// How many lines of a running step's output stay on the screen.
const WINDOW_LINES: usize = 6;

impl LiveView {
    fn new() -> LiveView {
        LiveView {
            window: std::collections::VecDeque::new(),
            drawn: 0,
            partial: String::new(),
            output: String::new(),
            started: std::time::Instant::now(),
            cached: false,
            id: None,
            in_step: false,
            width: terminal_width(),
        }
    }

    fn clear(&mut self, out: &mut impl Write) {
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[0J", self.drawn);
            self.drawn = 0;
        }
    }

    fn redraw(&mut self, out: &mut impl Write) {
        self.clear(out);
        for line in &self.window {
            let shown: String = line.chars().take(self.width.saturating_sub(6)).collect();
            let _ = writeln!(out, "\x1b[2m  │ {shown}\x1b[0m");
        }
        self.drawn = self.window.len();
        let _ = out.flush();
    }

    /// Folds the running step's output away and says how it ended.
    fn finish_step(&mut self, out: &mut impl Write) {
        if !self.in_step {
            return;
        }
        self.clear(out);
        let how = match (&self.id, self.cached) {
            (_, true) => "CACHED".to_string(),
            (Some(id), false) => format!("{} {:.1}s", short(id), self.started.elapsed().as_secs_f64()),
            (None, false) => format!("{:.1}s", self.started.elapsed().as_secs_f64()),
        };
        let _ = writeln!(out, "\x1b[2m ---> {how}\x1b[0m");
        self.in_step = false;
    }

    fn event(&mut self, event: BuildEvent, out: &mut impl Write) -> Option<String> {
        match event {
            BuildEvent::Step {
                number,
                total,
                instruction,
            } => {
                self.finish_step(out);
                let _ = writeln!(out, "\x1b[1m[{number}/{total}]\x1b[0m {instruction}");
                *self = LiveView {
                    in_step: true,
                    width: self.width,
                    ..LiveView::new()
                };
            }
            BuildEvent::Cached => self.cached = true,
            BuildEvent::Output { text, .. } => {
                self.output.push_str(&text);
                self.partial.push_str(&text);
                while let Some(end) = self.partial.find('\n') {
                    let line: String = self.partial.drain(..=end).collect();
                    self.window.push_back(line.trim_end_matches(['\n', '\r']).to_string());
                    if self.window.len() > WINDOW_LINES {
                        self.window.pop_front();
                    }
                }
                self.redraw(out);
            }
            BuildEvent::Note { message } => {
                self.clear(out);
                let _ = writeln!(out, "{message}");
                self.redraw(out);
            }
            BuildEvent::StepDone { id } => self.id = Some(id),
            BuildEvent::Built { id } => {
                self.finish_step(out);
                let _ = writeln!(out, "Successfully built {}", short(&id));
                return Some(id);
            }
            BuildEvent::Tagged { reference } => {
                let _ = writeln!(out, "Successfully tagged {reference}");
            }
            BuildEvent::Error { .. } => {
                // The failing step's whole output, then the error (by the caller).
                self.clear(out);
                let _ = out.write_all(self.output.as_bytes());
                if !self.output.is_empty() && !self.output.ends_with('\n') {
                    let _ = writeln!(out);
                }
            }
        }
        let _ = out.flush();
        None
    }
}

/// Columns of the terminal on stdout (80 when it does not say).
fn terminal_width() -> usize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `size`, which outlives the call.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        size.ws_col as usize
    } else {
        80
    }
}
