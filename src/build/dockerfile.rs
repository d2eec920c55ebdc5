//! TEMPORARY stub (replaced by h-dockerfile's implementation at merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub escape: char,
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}
#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}
#[derive(Debug, Clone)]
pub struct Instruction {
    pub pos: Pos,
    pub text: String,
    pub kind: InstructionKind,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}
#[derive(Debug, Clone)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    pub expand: bool,
    pub strip_tabs: bool,
}
#[derive(Debug, Clone, Default)]
pub struct Healthcheck {
    pub test: Option<CommandForm>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}
#[derive(Debug, Clone, Default)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub heredocs: Vec<Heredoc>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
}
#[derive(Debug, Clone)]
pub enum InstructionKind {
    From {
        image: String,
        platform: Option<String>,
        alias: Option<String>,
    },
    Run {
        command: CommandForm,
        heredocs: Vec<Heredoc>,
        network: Option<String>,
    },
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Shell(Vec<String>),
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Maintainer(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Onbuild(String),
    Copy(CopyArgs),
    Add(CopyArgs),
}
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct DockerfileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}
impl Dockerfile {
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| {
            s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name_or_index))
                || s.index.to_string() == name_or_index
        })
    }
}
fn form(rest: &str) -> CommandForm {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => CommandForm::Exec(v),
        Err(_) => CommandForm::Shell(rest.to_string()),
    }
}
fn pairs(rest: &str) -> Vec<(String, String)> {
    if !rest.contains('=') {
        let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
        return vec![(k.to_string(), v.trim().to_string())];
    }
    rest.split_whitespace()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}
pub fn parse_instruction(text: &str, file: &str) -> Result<Instruction, DockerfileError> {
    one(text, file, 1)
}
fn one(text: &str, file: &str, line: usize) -> Result<Instruction, DockerfileError> {
    let err = |m: String| DockerfileError {
        file: file.into(),
        line,
        column: 1,
        message: m,
    };
    let (kw, rest) = text.trim().split_once(char::is_whitespace).unwrap_or((text.trim(), ""));
    let rest = rest.trim();
    let kw_up = kw.to_ascii_uppercase();
    let mut words: Vec<String> = rest.split_whitespace().map(String::from).collect();
    let mut flag = |name: &str| -> Option<String> {
        let p = format!("--{name}=");
        let i = words.iter().position(|w| w.starts_with(&p))?;
        Some(words.remove(i)[p.len()..].to_string())
    };
    let kind = match kw_up.as_str() {
        "FROM" => {
            let platform = flag("platform");
            let alias =
                (words.len() == 3 && words[1].eq_ignore_ascii_case("as")).then(|| words[2].to_ascii_lowercase());
            InstructionKind::From {
                image: words.first().cloned().unwrap_or_default(),
                platform,
                alias,
            }
        }
        "RUN" => InstructionKind::Run {
            command: form(rest),
            heredocs: vec![],
            network: None,
        },
        "CMD" => InstructionKind::Cmd(form(rest)),
        "ENTRYPOINT" => InstructionKind::Entrypoint(form(rest)),
        "SHELL" => InstructionKind::Shell(serde_json::from_str(rest).map_err(|e| err(e.to_string()))?),
        "ENV" => InstructionKind::Env(pairs(rest)),
        "LABEL" => InstructionKind::Label(pairs(rest)),
        "ARG" => InstructionKind::Arg(vec![match rest.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (rest.to_string(), None),
        }]),
        "MAINTAINER" => InstructionKind::Maintainer(rest.into()),
        "EXPOSE" => InstructionKind::Expose(words),
        "VOLUME" => InstructionKind::Volume(match serde_json::from_str(rest) {
            Ok(v) => v,
            Err(_) => words,
        }),
        "USER" => InstructionKind::User(rest.into()),
        "WORKDIR" => InstructionKind::Workdir(rest.into()),
        "STOPSIGNAL" => InstructionKind::StopSignal(rest.into()),
        "ONBUILD" => InstructionKind::Onbuild(rest.into()),
        "HEALTHCHECK" => {
            let interval = flag("interval");
            let timeout = flag("timeout");
            let retries = flag("retries");
            let rest = words.join(" ");
            let test = if rest.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(form(rest.trim_start_matches("CMD").trim()))
            };
            InstructionKind::Healthcheck(Healthcheck {
                test,
                interval,
                timeout,
                retries,
                ..Default::default()
            })
        }
        "COPY" | "ADD" => {
            let from = flag("from");
            let chown = flag("chown");
            let chmod = flag("chmod");
            if words.len() < 2 {
                return Err(err(format!("{kw_up} requires at least two arguments")));
            }
            let dest = words.pop().unwrap_or_default();
            let c = CopyArgs {
                sources: words,
                dest,
                from,
                chown,
                chmod,
                ..Default::default()
            };
            if kw_up == "COPY" {
                InstructionKind::Copy(c)
            } else {
                InstructionKind::Add(c)
            }
        }
        other => return Err(err(format!("unknown instruction: {other}"))),
    };
    Ok(Instruction {
        pos: Pos { line, column: 1 },
        text: format!("{kw_up} {rest}"),
        kind,
    })
}
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, DockerfileError> {
    let mut df = Dockerfile {
        escape: '\\',
        global_args: vec![],
        stages: vec![],
    };
    let mut buf = String::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if buf.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if buf.is_empty() {
            start = i + 1;
        }
        if let Some(s) = t.strip_suffix('\\') {
            buf.push_str(s);
            buf.push(' ');
            continue;
        }
        buf.push_str(t);
        let ins = one(&buf, file, start)?;
        buf.clear();
        match &ins.kind {
            InstructionKind::From { alias, .. } => {
                let index = df.stages.len();
                df.stages.push(Stage {
                    index,
                    name: alias.clone(),
                    from: ins,
                    instructions: vec![],
                });
            }
            _ => match df.stages.last_mut() {
                Some(s) => s.instructions.push(ins),
                None if matches!(ins.kind, InstructionKind::Arg(_)) => df.global_args.push(ins),
                None => {
                    return Err(DockerfileError {
                        file: file.into(),
                        line: start,
                        column: 1,
                        message: "no FROM".into(),
                    })
                }
            },
        }
    }
    Ok(df)
}
