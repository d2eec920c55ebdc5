//! The Dockerfile language: parser directives, comments, line continuations,
//! shell and exec forms, heredocs, and each instruction's arguments and flags,
//! with the position of every instruction for error messages.
//!
//! The rules are BuildKit's (`frontend/dockerfile/parser/parser.go`,
//! `line_parsers.go`, `instructions/parse.go`, `instructions/bflag.go`), which
//! Docker's legacy builder shares:
//!
//! - directives (`# escape=`, `# syntax=`, `# check=`) only before anything
//!   else; one of each; a `#!` first line is skipped;
//! - a line ending in the escape character (then only blanks) continues on the
//!   next; comment lines and blank lines inside a continuation are dropped;
//!   continuation lines keep their leading blanks;
//! - `RUN`, `CMD`, `ENTRYPOINT`, `SHELL` take a JSON array (exec form) or, if
//!   the text is not a valid JSON array, the text itself (shell form); an
//!   array holding something other than strings is an error;
//! - `RUN`, `COPY`, `ADD` (also under `ONBUILD`) read heredocs (`<<EOF`,
//!   `<<-EOF`, `<<"EOF"`) from the following lines.
//!
//! berth's parser was written rather than taken from `parse-dockerfile`
//! (0.1.9): that crate finds a `RUN` heredoc only when `<<` starts the
//! command and only one of them (`RUN cat <<EOF > f` makes its body lines
//! instructions), does not keep the heredoc's name, and leaves flags and
//! `ENV`/`LABEL`/`ARG` arguments unparsed, so wrapping it would have meant
//! re-parsing most of what it returns.
//!
//! Nothing here expands variables: words are kept as written (quotes and
//! `$` included) and the builder passes them through [`super::subst`] in the
//! instructions where Docker does, with the escape character of
//! [`Dockerfile::escape`].

use std::collections::BTreeMap;
use std::fmt;

use super::subst;

/// Where an instruction starts: 1-based line and column of its keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character: `\` unless `# escape=` said `` ` ``.
    pub escape: char,
    /// The `# syntax=` directive, if any: berth uses its own frontend and
    /// says so.
    pub syntax: Option<String>,
    /// `ARG`s before the first `FROM`, usable in `FROM` lines.
    pub global_args: Vec<Instruction>,
    /// One per `FROM`, in order.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The stage named `name_or_index` (`AS` names compare case-blind, as
    /// Docker lower-cases them), or the one at that index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_ascii_lowercase();
        if let Some(stage) = self.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
            return Some(stage);
        }
        name_or_index.parse::<usize>().ok().and_then(|i| self.stages.get(i))
    }
}

/// One build stage: its `FROM` and what follows up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lower-cased as Docker does.
    pub name: Option<String>,
    /// The `FROM` instruction (its kind is [`InstructionKind::From`]).
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub pos: Pos,
    /// As Docker prints it after `Step 3/7 : `: the keyword upper-case, the
    /// rest as written with continuations joined (heredoc bodies left out).
    pub text: String,
    pub kind: InstructionKind,
}

/// Exec form (a JSON array) or shell form (the text as written, to be run by
/// the `SHELL`; never expanded by the builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}

/// A heredoc read from the lines after its instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed (`<<"EOF"` → `EOF`).
    pub name: String,
    /// The body, each line with its newline; leading tabs already removed
    /// when `strip_tabs`.
    pub content: String,
    /// The delimiter was unquoted, so `$VAR`s in the body are expanded.
    pub expand: bool,
    /// Written `<<-`.
    pub strip_tabs: bool,
}

/// `HEALTHCHECK`: flag values as written (durations are checked by the builder).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// None for `HEALTHCHECK NONE`.
    pub test: Option<CommandForm>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

/// The arguments of `COPY` and `ADD`. Paths and flag values are as written
/// (to be expanded); heredoc sources are in `heredocs`, not in `sources`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub heredocs: Vec<Heredoc>,
    /// `ADD --checksum=`.
    pub checksum: Option<String>,
    /// `ADD --keep-git-dir`.
    pub keep_git_dir: bool,
}

/// What an instruction says. Words are as written: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Names and values as written (values still quoted): expand both.
    Env(Vec<(String, String)>),
    /// Names as written; a default only when `=` was given.
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Maintainer(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger as written (with its heredoc lines, if any): checked here,
    /// parsed again with [`parse_instruction`] when an image built on this
    /// one runs it.
    Onbuild(String),
    Copy(CopyArgs),
    Add(CopyArgs),
}

/// A Dockerfile that cannot be used, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct DockerfileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses a whole Dockerfile. `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, DockerfileError> {
    let err = |pos: Pos, message: String| DockerfileError {
        file: file.to_string(),
        line: pos.line,
        column: pos.column,
        message,
    };
    let mut reader = Reader::new(text);
    let directives = reader.directives().map_err(|(pos, m)| err(pos, m))?;
    let escape = directives.escape;

    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    while let Some(logical) = reader.logical(escape) {
        let instruction = instruction(&logical, escape, &mut reader, false).map_err(|m| err(logical.pos, m))?;
        match (&instruction.kind, stages.last_mut()) {
            (InstructionKind::From { alias, .. }, _) => {
                let name = alias.as_ref().map(|a| a.to_ascii_lowercase());
                if let Some(name) = &name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                        return Err(err(logical.pos, format!("duplicate stage name {}", quote(name))));
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    from: instruction,
                    instructions: Vec::new(),
                });
            }
            (InstructionKind::Arg(_), None) => global_args.push(instruction),
            (_, None) => {
                return Err(err(
                    logical.pos,
                    format!(
                        "no build stage in current context: {} comes before the first FROM (only ARG may)",
                        keyword_of(&instruction.text)
                    ),
                ))
            }
            (_, Some(stage)) => stage.instructions.push(instruction),
        }
    }
    if stages.is_empty() {
        let pos = global_args
            .first()
            .map_or(Pos { line: 1, column: 1 }, |a: &Instruction| a.pos);
        let message = if global_args.is_empty() {
            "file with no instructions".to_string()
        } else {
            "no build stage in current context: there is no FROM".to_string()
        };
        return Err(err(pos, message));
    }
    Ok(Dockerfile {
        escape,
        syntax: directives.syntax,
        global_args,
        stages,
    })
}

/// Parses one instruction (an `ONBUILD` trigger), with its heredoc lines if
/// it has some, using the default escape character as Docker does.
pub fn parse_instruction(text: &str, file: &str) -> Result<Instruction, DockerfileError> {
    let err = |pos: Pos, message: String| DockerfileError {
        file: file.to_string(),
        line: pos.line,
        column: pos.column,
        message,
    };
    let mut reader = Reader::new(text);
    let Some(logical) = reader.logical('\\') else {
        return Err(err(
            Pos { line: 1, column: 1 },
            "expected an instruction, found nothing".to_string(),
        ));
    };
    let instruction = instruction(&logical, '\\', &mut reader, false).map_err(|m| err(logical.pos, m))?;
    if let Some(extra) = reader.logical('\\') {
        return Err(err(extra.pos, "expected one instruction, found more".to_string()));
    }
    Ok(instruction)
}

/// A word from the file, shortened and escaped for a message (a 10 MB
/// unknown keyword, or one with terminal escapes, stays harmless).
fn quote(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}

fn keyword_of(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

struct Directives {
    escape: char,
    syntax: Option<String>,
}

/// An instruction's text with continuations joined, and where it starts.
struct Logical {
    pos: Pos,
    text: String,
}

/// The file as lines, with the line number of the next one.
struct Reader<'a> {
    lines: std::iter::Peekable<std::str::SplitInclusive<'a, char>>,
    /// 1-based number of the line `lines` yields next.
    next_no: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Reader {
            lines: text.split_inclusive('\n').peekable(),
            next_no: 1,
        }
    }

    /// The next line with its ending (for heredoc bodies) and its number.
    fn raw(&mut self) -> Option<(usize, &'a str)> {
        let line = self.lines.next()?;
        let no = self.next_no;
        self.next_no += 1;
        Some((no, line))
    }

    fn directives(&mut self) -> Result<Directives, (Pos, String)> {
        let mut out = Directives {
            escape: '\\',
            syntax: None,
        };
        let mut seen: Vec<String> = Vec::new();
        while let Some(&line) = self.lines.peek() {
            let no = self.next_no;
            let trimmed = strip_eol(line).trim_start();
            if no == 1 && trimmed.starts_with("#!") {
                self.raw();
                continue;
            }
            let Some((name, value)) = directive(trimmed) else { break };
            let name = name.to_ascii_lowercase();
            if !matches!(name.as_str(), "escape" | "syntax" | "check") {
                break;
            }
            let pos = Pos {
                line: no,
                column: 1 + strip_eol(line).len() - trimmed.len(),
            };
            if seen.contains(&name) {
                return Err((pos, format!("only one {name} parser directive can be used")));
            }
            match name.as_str() {
                "escape" => match value {
                    "\\" => out.escape = '\\',
                    "`" => out.escape = '`',
                    other => {
                        return Err((
                            pos,
                            format!("invalid escape token {} does not match ` or \\", quote(other)),
                        ))
                    }
                },
                "syntax" => out.syntax = Some(value.to_string()),
                // `check` configures BuildKit's linter, which berth does not run.
                _ => {}
            }
            seen.push(name);
            self.raw();
        }
        Ok(out)
    }

    /// The next instruction's joined text, skipping comments and blank lines.
    fn logical(&mut self, escape: char) -> Option<Logical> {
        loop {
            let (no, line) = self.raw()?;
            let line = strip_eol(line);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let pos = Pos {
                line: no,
                column: 1 + line[..line.len() - trimmed.len()].chars().count(),
            };
            let (first, mut continued) = trim_continuation(trimmed, escape);
            let mut text = first.to_string();
            while continued {
                let Some((_, next)) = self.raw() else { break };
                let next = strip_eol(next);
                let next_trimmed = next.trim_start();
                // Comments and blank lines inside a continuation are dropped
                // (a blank one is deprecated in Docker, but still accepted).
                if next_trimmed.is_empty() || next_trimmed.starts_with('#') {
                    continue;
                }
                let (part, more) = trim_continuation(next, escape);
                text.push_str(part);
                continued = more;
            }
            if text.trim().is_empty() {
                continue;
            }
            return Some(Logical { pos, text });
        }
    }

    /// Reads one heredoc's body up to its terminator line.
    fn heredoc(&mut self, head: &HeredocHead) -> Result<Heredoc, String> {
        let mut content = String::new();
        loop {
            let Some((_, line)) = self.raw() else {
                return Err(format!(
                    "unterminated heredoc {}: the file ends before its terminator line",
                    quote(&head.name)
                ));
            };
            let bare = line.trim_end_matches(['\r', '\n']);
            let candidate = if head.strip_tabs {
                bare.trim_start_matches('\t')
            } else {
                bare
            };
            if candidate == head.name {
                break;
            }
            if head.strip_tabs {
                content.push_str(line.trim_start_matches('\t'));
            } else {
                content.push_str(line);
            }
        }
        Ok(Heredoc {
            name: head.name.clone(),
            content,
            expand: head.expand,
            strip_tabs: head.strip_tabs,
        })
    }
}

fn strip_eol(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

/// `# name = value` (BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`).
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[name_len..].trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((name, value))
}

/// Removes a line-continuation escape (the escape, then only blanks, at the
/// end, not itself escaped): `(text, continued)`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, false);
    };
    if before.ends_with(escape) {
        return (line, false);
    }
    (before, true)
}

/// `<<EOF` / `<<-"EOF"` / `3<<EOF` as one word.
struct HeredocHead {
    name: String,
    expand: bool,
    strip_tabs: bool,
}

/// BuildKit's `ParseHeredoc`: `^(\d*)<<(-?)([^<]*)$` whose rest is one word.
fn heredoc_head(word: &str) -> Result<Option<HeredocHead>, String> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let Some((name, raw)) = subst::heredoc_word(rest).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Ok(Some(HeredocHead {
        expand: quotes(&name) == quotes(&raw),
        name,
        strip_tabs,
    }))
}

/// BuildKit's `extractBuilderFlags`: leading `--name[=value]` words (quotes
/// removed, `\` escapes), up to the first other word or a lone `--`.
fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut chars = line.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                if !line[i..].starts_with("--") {
                    return (line[i..].to_string(), words);
                }
                phase = Phase::Word;
                word.push(ch);
            }
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (line[i..].to_string(), words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                } else if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                } else if ch == '\\' {
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                } else if ch == '\\' {
                    match chars.next() {
                        Some((_, next)) => word.push(next),
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (String::new(), words)
}

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Str,
    Bool,
}

/// Checks `--flags` against what `keyword` accepts: the values by name
/// (`"true"`/`"false"` for booleans).
fn parse_flags(
    keyword: &str,
    words: &[String],
    allowed: &[(&str, FlagType)],
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for word in words {
        let arg = word.strip_prefix("--").unwrap_or(word);
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let Some(&(_, ty)) = allowed.iter().find(|(n, _)| *n == name) else {
            let names: Vec<String> = allowed.iter().map(|(n, _)| format!("--{n}")).collect();
            let hint = match (names.is_empty(), did_you_mean(name, allowed.iter().map(|(n, _)| *n))) {
                (_, Some(s)) => format!(", did you mean --{s}?"),
                (true, None) => format!(" ({keyword} takes no flags)"),
                (false, None) => format!(" ({keyword} accepts {})", names.join(", ")),
            };
            let unsupported = matches!((keyword, name), ("RUN", "mount" | "security" | "device"))
                || matches!((keyword, name), ("COPY" | "ADD", "parents" | "exclude"));
            if unsupported {
                return Err(format!("{keyword} --{name} is not supported by berth"));
            }
            return Err(format!("unknown flag: {}{hint}", quote(name)));
        };
        if out.contains_key(name) {
            return Err(format!("duplicate flag specified: --{name}"));
        }
        let value = match (ty, value) {
            (FlagType::Str, Some(v)) => v.to_string(),
            (FlagType::Str, None) => return Err(format!("missing a value on flag: --{name}")),
            (FlagType::Bool, None) => "true".to_string(),
            (FlagType::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" | "" => "true".to_string(),
                "false" => "false".to_string(),
                _ => return Err(format!("expecting boolean value for flag --{name}, not: {}", quote(v))),
            },
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// The closest of `candidates` to `word`, if it is close (edit distance ≤ 2).
fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let w: Vec<char> = word.to_ascii_lowercase().chars().take(64).collect();
    let distance = |c: &str| {
        let c: Vec<char> = c.chars().collect();
        let mut prev: Vec<usize> = (0..=c.len()).collect();
        for (i, a) in w.iter().enumerate() {
            let mut cur = vec![i + 1; c.len() + 1];
            for (j, b) in c.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(a != b)).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[c.len()]
    };
    candidates
        .map(|c| (distance(c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// BuildKit's `parseJSON`: Some(words) for a JSON array of strings, None for
/// text that is not a JSON array (shell form), an error for an array holding
/// something else.
fn json_array(rest: &str) -> Result<Option<Vec<String>>, String> {
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err("when using JSON array syntax, arrays must be comprised of strings only".to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn command_form(rest: &str) -> Result<CommandForm, String> {
    Ok(match json_array(rest)? {
        Some(words) => CommandForm::Exec(words),
        None => CommandForm::Shell(rest.to_string()),
    })
}

/// BuildKit's `parseWords`: words split on unquoted blanks, with quotes and
/// escapes kept for the later expansion.
fn quoted_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
            if ch == escape && q != '\'' {
                // An escape at the very end is dropped.
                let Some(next) = chars.next() else { break };
                word.push(ch);
                word.push(next);
                continue;
            }
            word.push(ch);
            continue;
        }
        if !in_word {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        if ch.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            blank_ok = false;
            in_word = false;
            continue;
        }
        if ch == '\'' || ch == '"' {
            quote = Some(ch);
            blank_ok = true;
        }
        if ch == escape {
            let Some(next) = chars.next() else { continue };
            word.push(ch);
            word.push(next);
            continue;
        }
        word.push(ch);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// BuildKit's `parseNameVal` for ENV and LABEL: `key value` (old form, the
/// value is the rest of the line) or `key=value …`.
fn name_values(keyword: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = quoted_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, [' ', '\t']);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(str::trim_start).unwrap_or_default();
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments"));
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "syntax error - can't find = in {}: must be of the form: name=value",
                quote(&word)
            )),
        })
        .collect()
}

fn split_ws(rest: &str) -> Vec<String> {
    rest.split_whitespace().map(str::to_string).collect()
}

/// Builds one instruction from its joined line, reading its heredocs from
/// `reader` when it has some. `onbuild` is set for an ONBUILD's trigger.
fn instruction(logical: &Logical, escape: char, reader: &mut Reader, onbuild: bool) -> Result<Instruction, String> {
    let line = logical.text.trim();
    let (word, after) = match line.find(|c: char| c.is_whitespace()) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    };
    let keyword = word.to_ascii_uppercase();
    let text = if after.is_empty() {
        keyword.clone()
    } else {
        format!("{keyword} {}", line[word.len()..].trim())
    };
    let (rest, flag_words) = extract_flags(after);
    let rest = rest.trim();
    let flags = |allowed: &[(&str, FlagType)]| parse_flags(&keyword, &flag_words, allowed);
    let at_least_one = || format!("{keyword} requires at least one argument");
    let exactly_one = || format!("{keyword} requires exactly one argument");

    let kind = match keyword.as_str() {
        "FROM" => {
            let mut f = flags(&[("platform", FlagType::Str)])?;
            let args = split_ws(rest);
            let alias = match args.as_slice() {
                [_] => None,
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if !valid {
                        return Err(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            quote(name)
                        ));
                    }
                    Some(name.to_ascii_lowercase())
                }
                _ => return Err("FROM requires either one or three arguments (FROM image [AS name])".to_string()),
            };
            InstructionKind::From {
                image: args[0].clone(),
                platform: f.remove("platform"),
                alias,
            }
        }
        "RUN" => {
            let mut f = flags(&[("network", FlagType::Str)])?;
            if rest.is_empty() {
                return Err(at_least_one());
            }
            let command = command_form(rest)?;
            if matches!(&command, CommandForm::Exec(w) if w.is_empty()) {
                return Err(at_least_one());
            }
            let mut heredocs = Vec::new();
            if matches!(command, CommandForm::Shell(_)) && line.contains("<<") {
                let words = subst::raw_words(line).map_err(|e| e.to_string())?;
                for word in words {
                    if let Some(head) = heredoc_head(&word)? {
                        heredocs.push(reader.heredoc(&head)?);
                    }
                }
            }
            InstructionKind::Run {
                command,
                heredocs,
                network: f.remove("network"),
            }
        }
        "CMD" | "ENTRYPOINT" => {
            flags(&[])?;
            let command = command_form(rest)?;
            if keyword == "CMD" {
                InstructionKind::Cmd(command)
            } else {
                InstructionKind::Entrypoint(command)
            }
        }
        "SHELL" => {
            flags(&[])?;
            if rest.is_empty() {
                return Err(at_least_one());
            }
            match json_array(rest)? {
                Some(words) if !words.is_empty() => InstructionKind::Shell(words),
                Some(_) => return Err(at_least_one()),
                None => return Err("SHELL requires the arguments to be in JSON form".to_string()),
            }
        }
        "ENV" | "LABEL" => {
            flags(&[])?;
            let pairs = name_values(&keyword, rest, escape)?;
            if keyword == "ENV" {
                InstructionKind::Env(pairs)
            } else {
                InstructionKind::Label(pairs)
            }
        }
        "ARG" => {
            flags(&[])?;
            let words = quoted_words(rest, escape);
            if words.is_empty() {
                return Err(at_least_one());
            }
            let args = words
                .into_iter()
                .map(|w| match w.split_once('=') {
                    Some(("", _)) => Err("ARG names can not be blank".to_string()),
                    Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
                    None => Ok((w, None)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            InstructionKind::Arg(args)
        }
        "MAINTAINER" | "USER" | "WORKDIR" | "STOPSIGNAL" => {
            flags(&[])?;
            if rest.is_empty() {
                return Err(exactly_one());
            }
            let value = rest.to_string();
            match keyword.as_str() {
                "MAINTAINER" => InstructionKind::Maintainer(value),
                "USER" => InstructionKind::User(value),
                "WORKDIR" => InstructionKind::Workdir(value),
                _ => InstructionKind::StopSignal(value),
            }
        }
        "EXPOSE" => {
            flags(&[])?;
            let ports = split_ws(rest);
            if ports.is_empty() {
                return Err(at_least_one());
            }
            InstructionKind::Expose(ports)
        }
        "VOLUME" => {
            flags(&[])?;
            let paths = match json_array(rest)? {
                Some(words) => words,
                None => split_ws(rest),
            };
            if paths.is_empty() {
                return Err(at_least_one());
            }
            if paths.iter().any(|p| p.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".to_string());
            }
            InstructionKind::Volume(paths)
        }
        "HEALTHCHECK" => {
            let mut f = flags(&[
                ("interval", FlagType::Str),
                ("timeout", FlagType::Str),
                ("start-period", FlagType::Str),
                ("start-interval", FlagType::Str),
                ("retries", FlagType::Str),
            ])?;
            let (typ, cmd) = match rest.find(char::is_whitespace) {
                Some(i) => (&rest[..i], rest[i..].trim_start()),
                None => (rest, ""),
            };
            let test = match typ.to_ascii_uppercase().as_str() {
                "" => return Err(at_least_one()),
                "NONE" => {
                    if !cmd.is_empty() {
                        return Err("HEALTHCHECK NONE takes no arguments".to_string());
                    }
                    if !f.is_empty() {
                        return Err("HEALTHCHECK NONE takes no flags".to_string());
                    }
                    None
                }
                "CMD" => {
                    if cmd.is_empty() {
                        return Err("missing command after HEALTHCHECK CMD".to_string());
                    }
                    Some(command_form(cmd)?)
                }
                _ => return Err(format!("unknown type {} in HEALTHCHECK (try CMD or NONE)", quote(typ))),
            };
            InstructionKind::Healthcheck(Healthcheck {
                test,
                interval: f.remove("interval"),
                timeout: f.remove("timeout"),
                start_period: f.remove("start-period"),
                start_interval: f.remove("start-interval"),
                retries: f.remove("retries"),
            })
        }
        "ONBUILD" => {
            flags(&[])?;
            if onbuild {
                return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string());
            }
            if rest.is_empty() {
                return Err(at_least_one());
            }
            let trigger_word = keyword_of(rest).to_ascii_uppercase();
            if matches!(trigger_word.as_str(), "ONBUILD") {
                return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string());
            }
            if matches!(trigger_word.as_str(), "FROM" | "MAINTAINER") {
                return Err(format!("{trigger_word} isn't allowed as an ONBUILD trigger"));
            }
            // Parse the trigger now, so a bad one fails this build rather
            // than every build on top of the image; keep the heredoc lines it
            // read so that it parses the same way then.
            let start = reader.next_no;
            let trigger = Logical {
                pos: logical.pos,
                text: rest.to_string(),
            };
            let before = reader.lines.clone();
            instruction(&trigger, escape, reader, true)?;
            let read = reader.next_no - start;
            let mut text = rest.to_string();
            for line in before.take(read) {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(line);
            }
            InstructionKind::Onbuild(text)
        }
        "COPY" | "ADD" => {
            let mut allowed = vec![
                ("chown", FlagType::Str),
                ("chmod", FlagType::Str),
                ("link", FlagType::Bool),
            ];
            if keyword == "COPY" {
                allowed.push(("from", FlagType::Str));
            } else {
                allowed.push(("checksum", FlagType::Str));
                allowed.push(("keep-git-dir", FlagType::Bool));
            }
            let mut f = flags(&allowed)?;
            let (words, json) = match json_array(rest)? {
                Some(words) => (words, true),
                None => (split_ws(rest), false),
            };
            if words.len() < 2 {
                return Err(format!(
                    "{keyword} requires at least two arguments, but only {} provided: \
                     the destination could not be determined",
                    if words.is_empty() { "none was" } else { "one was" }
                ));
            }
            let mut args = CopyArgs {
                dest: words[words.len() - 1].clone(),
                from: f.remove("from"),
                chown: f.remove("chown"),
                chmod: f.remove("chmod"),
                link: f.remove("link").as_deref() == Some("true"),
                checksum: f.remove("checksum"),
                keep_git_dir: f.remove("keep-git-dir").as_deref() == Some("true"),
                ..CopyArgs::default()
            };
            for source in &words[..words.len() - 1] {
                match if json { None } else { heredoc_head(source)? } {
                    Some(head) => args.heredocs.push(reader.heredoc(&head)?),
                    None => args.sources.push(source.clone()),
                }
            }
            if keyword == "COPY" {
                InstructionKind::Copy(args)
            } else {
                InstructionKind::Add(args)
            }
        }
        _ => {
            let hint = did_you_mean(word, INSTRUCTIONS.iter().copied())
                .map(|s| format!(" (did you mean {}?)", s.to_ascii_uppercase()))
                .unwrap_or_default();
            return Err(format!("unknown instruction: {}{hint}", quote(word)));
        }
    };
    Ok(Instruction {
        pos: logical.pos,
        text,
        kind,
    })
}

impl fmt::Display for CommandForm {
    /// As Docker shows a command: the shell text, or the JSON array.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandForm::Shell(s) => f.write_str(s),
            CommandForm::Exec(words) => {
                let json = serde_json::to_string(words).map_err(|_| fmt::Error)?;
                f.write_str(&json)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Dockerfile {
        parse(text, "Dockerfile").unwrap_or_else(|e| panic!("{e}"))
    }

    fn perr(text: &str) -> DockerfileError {
        match parse(text, "Dockerfile") {
            Ok(d) => panic!("expected an error, parsed {d:#?}"),
            Err(e) => e,
        }
    }

    fn kinds(stage: &Stage) -> Vec<&InstructionKind> {
        stage.instructions.iter().map(|i| &i.kind).collect()
    }

    #[test]
    fn a_multi_stage_file_gives_stages_args_and_positions() {
        let d = p(r#"# syntax=docker/dockerfile:1
ARG GO=1.22
ARG BASE
FROM golang:${GO} AS Build
WORKDIR /src
COPY --link go.mod go.sum ./
RUN go build -o /out/app .

  FROM --platform=linux/amd64 scratch
COPY --from=build /out/app /app
ENTRYPOINT ["/app"]
"#);
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.escape, '\\');
        assert_eq!(d.global_args.len(), 2);
        assert_eq!(
            d.global_args[0].kind,
            InstructionKind::Arg(vec![("GO".into(), Some("1.22".into()))])
        );
        assert_eq!(d.global_args[1].kind, InstructionKind::Arg(vec![("BASE".into(), None)]));
        assert_eq!(d.stages.len(), 2);
        let build = &d.stages[0];
        assert_eq!(build.name.as_deref(), Some("build"));
        assert_eq!(build.from.pos, Pos { line: 4, column: 1 });
        assert_eq!(
            build.from.kind,
            InstructionKind::From {
                image: "golang:${GO}".into(),
                platform: None,
                alias: Some("build".into())
            }
        );
        assert_eq!(build.instructions[1].pos, Pos { line: 6, column: 1 });
        assert_eq!(build.instructions[1].text, "COPY --link go.mod go.sum ./");
        let InstructionKind::Copy(copy) = &build.instructions[1].kind else {
            panic!()
        };
        assert_eq!(copy.sources, ["go.mod", "go.sum"]);
        assert_eq!(copy.dest, "./");
        assert!(copy.link);
        let final_stage = &d.stages[1];
        assert_eq!(final_stage.index, 1);
        assert_eq!(final_stage.from.pos, Pos { line: 9, column: 3 });
        assert_eq!(
            final_stage.from.kind,
            InstructionKind::From {
                image: "scratch".into(),
                platform: Some("linux/amd64".into()),
                alias: None
            }
        );
        let InstructionKind::Copy(copy) = &final_stage.instructions[0].kind else {
            panic!()
        };
        assert_eq!(copy.from.as_deref(), Some("build"));
        assert_eq!(
            final_stage.instructions[1].kind,
            InstructionKind::Entrypoint(CommandForm::Exec(vec!["/app".into()]))
        );
        assert_eq!(d.stage("BUILD").map(|s| s.index), Some(0));
        assert_eq!(d.stage("1").map(|s| s.index), Some(1));
        assert!(d.stage("nope").is_none());
        assert!(d.stage("2").is_none());
    }

    #[test]
    fn continuations_join_lines_and_drop_comments_and_blank_lines_inside() {
        let d = p("FROM busybox\nrun echo a \\\n# a comment inside\n\n    && echo b \\  \n  && echo c\nCMD x\n");
        let run = &d.stages[0].instructions[0];
        assert_eq!(run.text, "RUN echo a     && echo b   && echo c");
        assert_eq!(
            run.kind,
            InstructionKind::Run {
                command: CommandForm::Shell("echo a     && echo b   && echo c".into()),
                heredocs: vec![],
                network: None
            }
        );
        assert_eq!(run.pos, Pos { line: 2, column: 1 });
        assert_eq!(d.stages[0].instructions[1].pos, Pos { line: 7, column: 1 });
        // An escaped escape at the end is not a continuation.
        let d = p("FROM busybox\nRUN echo \\\\\nCMD y\n");
        assert_eq!(d.stages[0].instructions.len(), 2);
    }

    #[test]
    fn backtick_escape_directive_changes_continuations_and_keeps_backslashes() {
        let d = p("# escape=`\nFROM mcr.microsoft.com/windows\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n  /s\n");
        assert_eq!(d.escape, '`');
        let ins = &d.stages[0].instructions;
        let InstructionKind::Copy(copy) = &ins[0].kind else {
            panic!()
        };
        assert_eq!(copy.dest, "c:\\");
        assert_eq!(
            ins[1].kind,
            InstructionKind::Run {
                command: CommandForm::Shell("dir c:\\   /s".into()),
                heredocs: vec![],
                network: None
            }
        );
        // Without the directive the same file is one COPY swallowing the RUN.
        let d = p("FROM w\nCOPY testfile.txt c:\\\nRUN dir c:\\\n");
        assert_eq!(d.stages[0].instructions.len(), 1);
    }

    #[test]
    fn directives_only_count_before_anything_else_and_only_once() {
        let d = p("#!/usr/bin/env docker-build\n# ESCAPE = `\n# check=skip=all\nFROM x\n");
        assert_eq!(d.escape, '`');
        // After a comment, it is a comment.
        let d = p("# hello\n# escape=`\nFROM x\n");
        assert_eq!(d.escape, '\\');
        let d = p("\n# escape=`\nFROM x\n");
        assert_eq!(d.escape, '\\');
        let e = perr("# escape=`\n# escape=\\\nFROM x\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2:1: only one escape parser directive can be used"
        );
        let e = perr("# escape=x\nFROM x\n");
        assert!(e.message.contains("invalid escape token"), "{e}");
    }

    #[test]
    fn exec_and_shell_forms_follow_docker_json_rules() {
        let d = p(r#"FROM x
CMD ["echo", "a \"b\"", "\u00e9"]
RUN [ -f /etc/passwd ] && echo ok
ENTRYPOINT [ "bad json", ]
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
CMD []
RUN ["sh", "-c", "echo \
  joined"]
"#);
        let k = kinds(&d.stages[0]);
        assert_eq!(
            *k[0],
            InstructionKind::Cmd(CommandForm::Exec(vec!["echo".into(), "a \"b\"".into(), "é".into()]))
        );
        assert_eq!(
            *k[1],
            InstructionKind::Run {
                command: CommandForm::Shell("[ -f /etc/passwd ] && echo ok".into()),
                heredocs: vec![],
                network: None
            }
        );
        assert_eq!(
            *k[2],
            InstructionKind::Entrypoint(CommandForm::Shell("[ \"bad json\", ]".into()))
        );
        assert_eq!(
            *k[3],
            InstructionKind::Shell(vec!["/bin/bash".into(), "-o".into(), "pipefail".into(), "-c".into()])
        );
        assert_eq!(*k[4], InstructionKind::Cmd(CommandForm::Exec(vec![])));
        assert_eq!(
            *k[5],
            InstructionKind::Run {
                command: CommandForm::Exec(vec!["sh".into(), "-c".into(), "echo   joined".into()]),
                heredocs: vec![],
                network: None
            }
        );
        let e = perr("FROM x\nCMD [\"a\", 1]\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2:1: when using JSON array syntax, arrays must be comprised of strings only"
        );
        let e = perr("FROM x\nSHELL /bin/sh -c\n");
        assert!(e.message.contains("JSON form"), "{e}");
    }

    #[test]
    fn heredocs_anywhere_in_run_and_as_copy_sources() {
        let d = p("FROM x\nRUN <<EOF\necho $HOME\nEOF\nRUN cat <<'A' > /a && python3 - <<-B\n$not\nA\n\tprint(1)\n\tB\nCOPY <<conf /etc/app.conf\nkey=$V\nconf\nCMD done\n");
        let ins = &d.stages[0].instructions;
        assert_eq!(ins.len(), 4);
        let InstructionKind::Run { command, heredocs, .. } = &ins[0].kind else {
            panic!()
        };
        assert_eq!(*command, CommandForm::Shell("<<EOF".into()));
        assert_eq!(
            heredocs,
            &[Heredoc {
                name: "EOF".into(),
                content: "echo $HOME\n".into(),
                expand: true,
                strip_tabs: false
            }]
        );
        let InstructionKind::Run { heredocs, .. } = &ins[1].kind else {
            panic!()
        };
        // Bodies follow one another in the order of the words.
        assert_eq!(heredocs.len(), 2);
        assert_eq!(heredocs[0].name, "A");
        assert!(!heredocs[0].expand);
        assert_eq!(heredocs[0].content, "$not\n");
        assert_eq!(heredocs[1].name, "B");
        assert!(heredocs[1].strip_tabs && heredocs[1].expand);
        assert_eq!(heredocs[1].content, "print(1)\n");
        let InstructionKind::Copy(copy) = &ins[2].kind else {
            panic!()
        };
        assert!(copy.sources.is_empty());
        assert_eq!(copy.dest, "/etc/app.conf");
        assert_eq!(copy.heredocs[0].name, "conf");
        assert_eq!(copy.heredocs[0].content, "key=$V\n");
        assert_eq!(ins[3].pos.line, 13);
        // <<- strips the tabs before the body lines and the terminator.
        let d = p("FROM x\nRUN <<-EOT\n\t\techo hi\n\tEOT\n");
        let InstructionKind::Run { heredocs, .. } = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(heredocs[0].content, "echo hi\n");
        // A heredoc in exec form is not one.
        let d = p("FROM x\nRUN [\"cat\", \"<<EOF\"]\nCMD x\n");
        assert_eq!(d.stages[0].instructions.len(), 2);
    }

    #[test]
    fn an_unterminated_heredoc_is_refused_at_its_instruction() {
        let e = perr("FROM x\nRUN <<EOF\necho\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated heredoc \"EOF\""), "{e}");
    }

    #[test]
    fn every_instruction_parses_into_its_kind() {
        let d = p(r#"FROM base
MAINTAINER Jane <j@example.com>
ENV A=1 B="two words" C=three\ words
ENV OLD form value
LABEL "com.example.v"="1.0" multi=a\ b
ARG X Y=2 Z=
EXPOSE 80/tcp 53/udp
VOLUME ["/data", "/logs"]
VOLUME /a /b
USER app:app
WORKDIR /srv
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --start-interval=1s --retries=3 CMD curl -f http://localhost/
HEALTHCHECK NONE
ONBUILD RUN echo built on
ADD --chmod=644 --checksum=sha256:abc https://example.com/f.tgz /f/
ADD --keep-git-dir=true git@host:repo.git /src
RUN --network=none true
"#);
        let k = kinds(&d.stages[0]);
        assert_eq!(*k[0], InstructionKind::Maintainer("Jane <j@example.com>".into()));
        assert_eq!(
            *k[1],
            InstructionKind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("C".into(), "three\\ words".into())
            ])
        );
        assert_eq!(*k[2], InstructionKind::Env(vec![("OLD".into(), "form value".into())]));
        assert_eq!(
            *k[3],
            InstructionKind::Label(vec![
                ("\"com.example.v\"".into(), "\"1.0\"".into()),
                ("multi".into(), "a\\ b".into())
            ])
        );
        assert_eq!(
            *k[4],
            InstructionKind::Arg(vec![
                ("X".into(), None),
                ("Y".into(), Some("2".into())),
                ("Z".into(), Some("".into()))
            ])
        );
        assert_eq!(*k[5], InstructionKind::Expose(vec!["80/tcp".into(), "53/udp".into()]));
        assert_eq!(*k[6], InstructionKind::Volume(vec!["/data".into(), "/logs".into()]));
        assert_eq!(*k[7], InstructionKind::Volume(vec!["/a".into(), "/b".into()]));
        assert_eq!(*k[8], InstructionKind::User("app:app".into()));
        assert_eq!(*k[9], InstructionKind::Workdir("/srv".into()));
        assert_eq!(*k[10], InstructionKind::StopSignal("SIGTERM".into()));
        assert_eq!(
            *k[11],
            InstructionKind::Healthcheck(Healthcheck {
                test: Some(CommandForm::Shell("curl -f http://localhost/".into())),
                interval: Some("5s".into()),
                timeout: Some("3s".into()),
                start_period: Some("1s".into()),
                start_interval: Some("1s".into()),
                retries: Some("3".into()),
            })
        );
        assert_eq!(*k[12], InstructionKind::Healthcheck(Healthcheck::default()));
        assert_eq!(*k[13], InstructionKind::Onbuild("RUN echo built on".into()));
        let InstructionKind::Add(add) = k[14] else { panic!() };
        assert_eq!(add.chmod.as_deref(), Some("644"));
        assert_eq!(add.checksum.as_deref(), Some("sha256:abc"));
        assert_eq!(add.sources, ["https://example.com/f.tgz"]);
        let InstructionKind::Add(add) = k[15] else { panic!() };
        assert!(add.keep_git_dir);
        assert!(matches!(k[16], InstructionKind::Run { network: Some(n), .. } if n == "none"));
    }

    #[test]
    fn onbuild_triggers_parse_again_with_their_heredocs() {
        let d = p("FROM x\nONBUILD COPY <<EOF /f\nhello\nEOF\nCMD x\n");
        let InstructionKind::Onbuild(trigger) = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(trigger, "COPY <<EOF /f\nhello\nEOF\n");
        assert_eq!(d.stages[0].instructions.len(), 2);
        let ins = parse_instruction(trigger, "base image trigger").unwrap();
        let InstructionKind::Copy(copy) = ins.kind else {
            panic!()
        };
        assert_eq!(copy.heredocs[0].content, "hello\n");
        let e = parse_instruction("RUN a\nRUN b", "trigger").unwrap_err();
        assert_eq!(e.to_string(), "trigger:2:1: expected one instruction, found more");
        assert!(parse_instruction("BOGUS x", "trigger").is_err());
    }

    #[test]
    fn onbuild_refuses_onbuild_from_and_maintainer_triggers() {
        for (trigger, want) in [
            ("ONBUILD something", "chaining ONBUILD"),
            ("onbuild RUN x", "chaining ONBUILD"),
            ("FROM y", "FROM isn't allowed as an ONBUILD trigger"),
            ("MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
            ("BOGUS", "unknown instruction"),
            ("", "ONBUILD requires at least one argument"),
        ] {
            let e = perr(&format!("FROM x\nONBUILD {trigger}\n"));
            assert_eq!((e.line, e.column), (2, 1));
            assert!(e.message.contains(want), "{trigger}: {e}");
        }
    }

    #[test]
    fn structural_errors_name_file_line_and_column() {
        let cases: &[(&str, &str, (usize, usize))] = &[
            ("", "file with no instructions", (1, 1)),
            ("# only a comment\n\n", "file with no instructions", (1, 1)),
            ("ARG A\n", "there is no FROM", (1, 1)),
            ("ARG A\nRUN x\nFROM y\n", "RUN comes before the first FROM", (2, 1)),
            (
                "FROM a\n  RUNN echo\n",
                "unknown instruction: \"RUNN\" (did you mean RUN?)",
                (2, 3),
            ),
            ("FROM a\nCOPY onlyone\n", "COPY requires at least two arguments", (2, 1)),
            ("FROM a\nCOPY --foo=1 a b\n", "unknown flag: \"foo\"", (2, 1)),
            ("FROM a\nCOPY --chwon=1 a b\n", "did you mean --chown?", (2, 1)),
            (
                "FROM a\nCOPY --from=a --from=b a b\n",
                "duplicate flag specified: --from",
                (2, 1),
            ),
            ("FROM a\nCOPY --from a b\n", "missing a value on flag: --from", (2, 1)),
            ("FROM a\nCOPY --link=maybe a b\n", "expecting boolean value", (2, 1)),
            ("FROM a\nADD --from=x a b\n", "unknown flag", (2, 1)),
            ("FROM a\nENV --x=1 A=b\n", "ENV takes no flags", (2, 1)),
            (
                "FROM a\nRUN --mount=type=cache,target=/c true\n",
                "RUN --mount is not supported by berth",
                (2, 1),
            ),
            ("FROM a AS x\nFROM b AS X\n", "duplicate stage name \"x\"", (2, 1)),
            ("FROM a AS 1x\n", "invalid name for build stage", (1, 1)),
            ("FROM a b\n", "FROM requires either one or three arguments", (1, 1)),
            ("FROM a\nENV A\n", "ENV must have two arguments", (2, 1)),
            ("FROM a\nENV A=1 B\n", "can't find = in \"B\"", (2, 1)),
            ("FROM a\nARG =x\n", "ARG names can not be blank", (2, 1)),
            ("FROM a\nUSER\n", "USER requires exactly one argument", (2, 1)),
            ("FROM a\nRUN\n", "RUN requires at least one argument", (2, 1)),
            ("FROM a\nHEALTHCHECK NONE x\n", "takes no arguments", (2, 1)),
            ("FROM a\nHEALTHCHECK --retries=1 NONE\n", "takes no flags", (2, 1)),
            (
                "FROM a\nHEALTHCHECK CMD\n",
                "missing command after HEALTHCHECK CMD",
                (2, 1),
            ),
            ("FROM a\nHEALTHCHECK SOMETIMES x\n", "unknown type", (2, 1)),
            ("FROM a\nVOLUME [\"\"]\n", "can not be an empty string", (2, 1)),
        ];
        for (text, want, (line, column)) in cases {
            let e = perr(text);
            assert!(e.message.contains(want), "{text:?}: got {e}");
            assert_eq!((e.line, e.column), (*line, *column), "{text:?}: {e}");
            assert_eq!(e.file, "Dockerfile");
        }
    }

    #[test]
    fn flags_take_quotes_and_stop_at_the_first_other_word() {
        let d = p("FROM x\nCOPY --chown=\"app user\":g --chmod=0755 -- --weird /dst\n");
        let InstructionKind::Copy(copy) = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(copy.chown.as_deref(), Some("app user:g"));
        assert_eq!(copy.chmod.as_deref(), Some("0755"));
        assert_eq!(copy.sources, ["--weird"]);
    }

    #[test]
    fn a_ten_megabyte_line_parses_and_a_huge_unknown_keyword_gives_a_short_message() {
        let big = "x".repeat(10 << 20);
        let d = p(&format!("FROM busybox\nRUN echo {big}\n"));
        let InstructionKind::Run {
            command: CommandForm::Shell(s),
            ..
        } = &d.stages[0].instructions[0].kind
        else {
            panic!()
        };
        assert_eq!(s.len(), big.len() + 5);
        let e = perr(&format!("FROM busybox\n{big}\n"));
        assert!(e.to_string().len() < 200, "message is {} bytes", e.to_string().len());
        // Terminal escapes in a keyword are shown escaped.
        let e = perr("FROM a\n\u{1b}[2J x\n");
        assert!(!e.message.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn crlf_files_and_a_bom_parse_like_unix_ones() {
        let d = p("\u{feff}FROM a\r\nRUN echo a \\\r\n  b\r\nCMD [\"x\"]\r\n");
        let k = kinds(&d.stages[0]);
        assert_eq!(
            *k[0],
            InstructionKind::Run {
                command: CommandForm::Shell("echo a   b".into()),
                heredocs: vec![],
                network: None
            }
        );
        assert_eq!(*k[1], InstructionKind::Cmd(CommandForm::Exec(vec!["x".into()])));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever the text, parsing returns (no panic), and positions stay
        /// inside the file.
        #[test]
        fn parsing_any_text_returns_with_positions_inside_the_file(
            text in "((FROM|RUN|COPY|ONBUILD|ENV|ARG|HEALTHCHECK|CMD|# escape=`|#|x)?[ a-z\\\\`\"'<\\-\\[\\]=$:{}\t]{0,12}\r?\n){0,8}"
        ) {
            let lines = text.split('\n').count();
            match parse(&text, "f") {
                Ok(d) => {
                    for i in d.global_args.iter().chain(d.stages.iter().flat_map(|s| std::iter::once(&s.from).chain(&s.instructions))) {
                        proptest::prop_assert!(i.pos.line >= 1 && i.pos.line <= lines, "{:?}", i);
                        proptest::prop_assert!(i.pos.column >= 1);
                    }
                }
                Err(e) => {
                    proptest::prop_assert!(e.line >= 1 && e.line <= lines.max(1), "{}", e);
                    proptest::prop_assert!(e.to_string().starts_with("f:"));
                }
            }
        }
    }

    #[test]
    fn command_forms_print_as_docker_shows_them() {
        assert_eq!(CommandForm::Shell("echo hi".into()).to_string(), "echo hi");
        assert_eq!(
            CommandForm::Exec(vec!["a".into(), "b c".into()]).to_string(),
            "[\"a\",\"b c\"]"
        );
    }
}
