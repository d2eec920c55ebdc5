//! Variable substitution and quote removal with Docker's shell-word rules.
//!
//! This follows BuildKit's `frontend/dockerfile/shell/lex.go`, which both the
//! legacy builder and BuildKit use for the instructions where Docker expands
//! variables (`ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR
//! ONBUILD`, the flags of `COPY`/`ADD`/`FROM`/`RUN`, and unquoted heredocs):
//!
//! - `'…'` is taken literally; `"…"` expands `$` and lets the escape character
//!   escape `"`, `$` and itself (any other escape stays as written);
//! - outside quotes the escape character escapes any character, and a
//!   trailing escape is dropped;
//! - `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`,
//!   `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`,
//!   `${VAR%%pat}`, `${VAR/pat/repl}`, `${VAR//pat/repl}` (patterns: `*`, `?`
//!   and `\` escapes), and the positional/special names (`$1`, `$@`…), which
//!   are never set in a Dockerfile;
//! - an unset variable expands to the empty string.
//!
//! Where lex.go shares one word buffer between nesting levels (so `a${x:-y}`
//! split into words loses the `a`), berth keeps one per level: the result is
//! what a shell would give.
//!
//! Nesting (`${a:-${b:-…}}`, quotes inside defaults) is bounded by
//! [`MAX_DEPTH`], so hostile input gets an error, never a stack overflow.

use std::collections::BTreeSet;

/// How deep `${…}` expansions may nest inside one another.
pub const MAX_DEPTH: usize = 64;

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// The word after substitution and quote removal.
    pub text: String,
    /// Every variable name the word read, set or not: a build arg that a step
    /// reads belongs in its cache key even when it is unset.
    pub used: BTreeSet<String>,
}

/// A word that cannot be expanded. `word` is the whole input, as given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubstError {
    /// `${` with no closing brace.
    #[error("failed to process \"{}\": syntax error: missing '}}'", short(.word))]
    MissingBrace { word: String },
    /// `${}`, `${:x}`, `${{x}`.
    #[error("failed to process \"{}\": syntax error: bad substitution", short(.word))]
    BadSubstitution { word: String },
    /// `${VAR` followed by a character that is not a known operator, or `:#`/`:%`.
    #[error("failed to process \"{}\": unsupported modifier ({modifier}) in substitution", short(.word))]
    UnsupportedModifier { word: String, modifier: String },
    /// A quote that is never closed.
    #[error(
        "failed to process \"{}\": unexpected end of statement while looking for matching {quote}",
        short(.word)
    )]
    UnterminatedQuote { word: String, quote: &'static str },
    /// `${VAR?msg}` / `${VAR:?msg}` on an unset (or empty) variable.
    #[error("failed to process \"{}\": {name}: {message}", short(.word))]
    Required {
        word: String,
        name: String,
        message: String,
    },
    /// A `#`, `%` or `/` pattern with an escape other than `\*`, `\?`, `\\`.
    #[error("failed to process \"{}\": invalid pattern ({}) in substitution", short(.word), short(.pattern))]
    BadPattern { word: String, pattern: String },
    /// Expansions nested deeper than [`MAX_DEPTH`].
    #[error("failed to process \"{}\": substitutions nested deeper than {MAX_DEPTH} levels", short(.word))]
    TooDeep { word: String },
}

/// The first 80 characters of `s`, so a 10 MB word makes a readable message.
fn short(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Expands `word` as one word (ENV values, WORKDIR, USER, flag values…):
/// whitespace is kept.
pub fn expand(word: &str, lookup: &dyn Fn(&str) -> Option<String>, escape: char) -> Result<Expanded, SubstError> {
    let mut lexer = Lexer::new(word, lookup, escape, Mode::default());
    let (text, _) = lexer.top_level(false)?;
    Ok(Expanded { text, used: lexer.used })
}

/// Expands `text` and splits it into words as Docker does for EXPOSE, VOLUME,
/// COPY/ADD sources and FROM: the split happens after substitution, unquoted
/// whitespace (including whitespace a variable expanded to) separates words,
/// quoted and escaped whitespace does not.
pub fn expand_words(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<(Vec<String>, BTreeSet<String>), SubstError> {
    let mut lexer = Lexer::new(text, lookup, escape, Mode::default());
    let (_, words) = lexer.top_level(true)?;
    Ok((words, lexer.used))
}

/// Expands a heredoc body (`COPY <<EOF` with an unquoted delimiter) as
/// BuildKit's `ExpandRaw` does: `$VAR`s and `\` escapes are processed, quotes
/// are ordinary characters (the body is a file or a script, not a word).
pub fn expand_raw(content: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, SubstError> {
    let mode = Mode {
        skip_quotes: true,
        ..Mode::default()
    };
    let mut lexer = Lexer::new(content, lookup, '\\', mode);
    let (text, _) = lexer.top_level(false)?;
    Ok(Expanded { text, used: lexer.used })
}

/// The raw lexing the parser needs to find heredoc words (`RUN cat <<EOF`):
/// quotes and escapes kept, unset variables left as written, split into words.
pub(crate) fn raw_words(text: &str) -> Result<Vec<String>, SubstError> {
    let none = |_: &str| None;
    let mode = Mode {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        heredoc_words: true,
        ..Mode::default()
    };
    let mut lexer = Lexer::new(text, &none, '\\', mode);
    Ok(lexer.top_level(true)?.1)
}

/// Quote removal of a heredoc delimiter, with and without keeping quotes (to
/// tell `<<EOF` from `<<"EOF"`): `(word, raw_word)` or None when it is not one
/// word.
pub(crate) fn heredoc_word(text: &str) -> Result<Option<(String, String)>, SubstError> {
    let none = |_: &str| None;
    let plain = Mode {
        skip_unset: true,
        ..Mode::default()
    };
    let words = Lexer::new(text, &none, '\\', plain).top_level(true)?.1;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = Mode {
        raw_quotes: true,
        skip_unset: true,
        ..Mode::default()
    };
    let raw_words = Lexer::new(text, &none, '\\', raw).top_level(true)?.1;
    match (words.into_iter().next(), raw_words.into_iter().next()) {
        (Some(w), Some(r)) => Ok(Some((w, r))),
        _ => Ok(None),
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Mode {
    /// Keep the quote characters in the output.
    raw_quotes: bool,
    /// Keep escape characters in the output.
    raw_escapes: bool,
    /// Leave references to unset variables as written.
    skip_unset: bool,
    /// Quotes are ordinary characters.
    skip_quotes: bool,
    /// `<<` takes the blanks after it into its word (`<< EOF` is one
    /// heredoc word, as lex.go's `processPossibleHeredoc` makes it).
    heredoc_words: bool,
}

/// Words collected at one nesting level.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_str(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    escape: char,
    mode: Mode,
    depth: usize,
    used: BTreeSet<String>,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str, lookup: &'a dyn Fn(&str) -> Option<String>, escape: char, mode: Mode) -> Self {
        Lexer {
            src,
            pos: 0,
            lookup,
            escape,
            mode,
            depth: 0,
            used: BTreeSet::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn word(&self) -> String {
        self.src.to_string()
    }

    fn get(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_string());
        (self.lookup)(name)
    }

    fn top_level(&mut self, split: bool) -> Result<(String, Vec<String>), SubstError> {
        let raw = self.mode.raw_escapes;
        self.process_until(None, raw, split)
    }

    /// Reads up to `stop` (consumed) or the end: the text, and its words when
    /// `split`. `raw_escapes` keeps escape characters (patterns need them).
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        split: bool,
    ) -> Result<(String, Vec<String>), SubstError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, if split { words.finish() } else { Vec::new() }));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    if split {
                        words.add_str(&value);
                    }
                }
                '<' if self.mode.heredoc_words && self.src[self.pos..].starts_with("<<") => {
                    let start = self.pos;
                    self.pos += 2;
                    while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
                        self.next();
                    }
                    let value = &self.src[start..self.pos];
                    result.push_str(value);
                    if split {
                        words.add_raw_str(value);
                    }
                }
                '\'' if !self.mode.skip_quotes => {
                    let value = self.single_quote()?;
                    result.push_str(&value);
                    if split {
                        words.add_raw_str(&value);
                    }
                }
                '"' if !self.mode.skip_quotes => {
                    let value = self.double_quote()?;
                    result.push_str(&value);
                    if split {
                        words.add_raw_str(&value);
                    }
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if raw_escapes {
                            result.push(ch);
                            if split {
                                words.add_raw_char(ch);
                            }
                        }
                        // An escape at the very end is dropped, as lex.go does.
                        let Some(escaped) = self.next() else { break };
                        result.push(escaped);
                        if split {
                            words.add_raw_char(escaped);
                        }
                    } else {
                        result.push(ch);
                        if split {
                            words.add_char(ch);
                        }
                    }
                }
            }
        }
        if stop.is_some() {
            // The caller turns this into a missing-brace/slash error.
            return Err(SubstError::MissingBrace { word: self.word() });
        }
        Ok((result, if split { words.finish() } else { Vec::new() }))
    }

    fn single_quote(&mut self) -> Result<String, SubstError> {
        let mut out = String::new();
        let open = self.next();
        if self.mode.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(SubstError::UnterminatedQuote {
                        word: self.word(),
                        quote: "single-quote",
                    })
                }
                Some('\'') => {
                    if self.mode.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, SubstError> {
        let mut out = String::new();
        let open = self.next();
        if self.mode.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(SubstError::UnterminatedQuote {
                        word: self.word(),
                        quote: "double-quote",
                    })
                }
                Some('"') => {
                    self.next();
                    if self.mode.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.mode.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // An escape right before the end is ignored; the
                            // missing quote is reported on the next turn.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> Result<String, SubstError> {
        if self.depth >= MAX_DEPTH {
            return Err(SubstError::TooDeep { word: self.word() });
        }
        self.depth += 1;
        let result = self.dollar_inner();
        self.depth -= 1;
        result
    }

    fn dollar_inner(&mut self) -> Result<String, SubstError> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get(&name) {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err(SubstError::MissingBrace { word: self.word() }),
            Some('{' | '}' | ':') => return Err(SubstError::BadSubstitution { word: self.word() }),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err(SubstError::MissingBrace { word: self.word() });
        };
        let mut modifier = op.to_string();
        let mut null_is_unset = false;
        match op {
            '}' => {
                return Ok(match self.get(&name) {
                    Some(v) => v,
                    None if self.mode.skip_unset => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            ':' => {
                null_is_unset = true;
                op = self
                    .next()
                    .ok_or_else(|| SubstError::MissingBrace { word: self.word() })?;
                modifier.push(op);
            }
            _ => {}
        }
        match op {
            '+' | '-' | '?' | '#' | '%' => {
                let pattern_op = op == '#' || op == '%';
                if null_is_unset && pattern_op {
                    return Err(SubstError::UnsupportedModifier {
                        word: self.word(),
                        modifier,
                    });
                }
                let (word, _) = self.process_until(Some('}'), pattern_op, false)?;
                let value = self.get(&name);
                if self.mode.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
                match op {
                    '-' => Ok(if unset { word } else { value.unwrap_or_default() }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if unset {
                            let message = if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".to_string()
                            } else {
                                "is not allowed to be empty".to_string()
                            };
                            return Err(SubstError::Required {
                                word: self.word(),
                                name,
                                message,
                            });
                        }
                        Ok(value.unwrap_or_default())
                    }
                    _ => {
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let glob = Glob::parse(&pattern).ok_or_else(|| SubstError::BadPattern {
                            word: self.word(),
                            pattern: pattern.clone(),
                        })?;
                        Ok(if op == '#' {
                            glob.trim_prefix(&value, greedy)
                        } else {
                            glob.trim_suffix(&value, greedy)
                        })
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, _) = self.process_until(Some('/'), true, false)?;
                let (replacement, _) = self.process_until(Some('}'), true, false)?;
                let value = self.get(&name);
                let Some(value) = value else {
                    if self.mode.skip_unset {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let glob = Glob::parse(&pattern).ok_or_else(|| SubstError::BadPattern {
                    word: self.word(),
                    pattern: pattern.clone(),
                })?;
                Ok(glob.replace(&value, &replacement, all))
            }
            _ => Err(SubstError::UnsupportedModifier {
                word: self.word(),
                modifier,
            }),
        }
    }
}

/// A `${VAR#pattern}` pattern: `*` any string, `?` any character, `\x` a
/// literal `*`, `?` or `\`; `\}` and `\/` are the brace and slash themselves.
#[derive(Debug)]
enum Tok {
    Lit(char),
    Any,
    Star,
}

struct Glob(Vec<Tok>);

impl Glob {
    fn parse(pattern: &str) -> Option<Glob> {
        let mut toks = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => match chars.next() {
                    Some(e @ ('*' | '?' | '\\' | '}' | '/')) => toks.push(Tok::Lit(e)),
                    _ => return None,
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        Some(Glob(toks))
    }

    /// Lengths (in chars) of the prefixes of `text` the whole pattern matches,
    /// by simulating the pattern as an NFA: O(len(text) × len(pattern)).
    fn prefix_matches<I: Iterator<Item = char>>(toks: &[Tok], text: I) -> Vec<usize> {
        let n = toks.len();
        let closure = |states: &mut Vec<bool>| {
            for i in 0..n {
                if states[i] && matches!(toks[i], Tok::Star) {
                    states[i + 1] = true;
                }
            }
        };
        let mut states = vec![false; n + 1];
        states[0] = true;
        closure(&mut states);
        let mut ends = Vec::new();
        if states[n] {
            ends.push(0);
        }
        let mut next = vec![false; n + 1];
        for (k, c) in text.enumerate() {
            next.iter_mut().for_each(|s| *s = false);
            let mut any = false;
            for i in 0..n {
                if !states[i] {
                    continue;
                }
                match toks[i] {
                    Tok::Star => {
                        next[i] = true;
                        any = true;
                    }
                    Tok::Any => {
                        next[i + 1] = true;
                        any = true;
                    }
                    Tok::Lit(l) if l == c => {
                        next[i + 1] = true;
                        any = true;
                    }
                    Tok::Lit(_) => {}
                }
            }
            if !any {
                break;
            }
            closure(&mut next);
            std::mem::swap(&mut states, &mut next);
            if states[n] {
                ends.push(k + 1);
            }
        }
        ends
    }

    fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let ends = Self::prefix_matches(&self.0, value.chars());
        let cut = if longest { ends.last() } else { ends.first() };
        match cut {
            Some(&n) => value.chars().skip(n).collect(),
            None => value.to_string(),
        }
    }

    fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let reversed: Vec<Tok> = self
            .0
            .iter()
            .rev()
            .map(|t| match t {
                Tok::Lit(c) => Tok::Lit(*c),
                Tok::Any => Tok::Any,
                Tok::Star => Tok::Star,
            })
            .collect();
        let ends = Self::prefix_matches(&reversed, value.chars().rev());
        let cut = if longest { ends.last() } else { ends.first() };
        match cut {
            Some(&n) => {
                let keep = value.chars().count() - n;
                value.chars().take(keep).collect()
            }
            None => value.to_string(),
        }
    }

    /// Replaces the leftmost-longest match (every non-overlapping one with
    /// `all`), as `${VAR/pat/repl}` does with lex.go's greedy pattern.
    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= chars.len() {
            if replaced && !all {
                out.extend(&chars[i..]);
                return out;
            }
            let ends = Self::prefix_matches(&self.0, chars[i..].iter().copied());
            match ends.last() {
                Some(&n) => {
                    out.push_str(replacement);
                    replaced = true;
                    if n == 0 {
                        if let Some(c) = chars.get(i) {
                            out.push(*c);
                        }
                        i += 1;
                    } else {
                        i += n;
                    }
                }
                None => {
                    if let Some(c) = chars.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ex(word: &str, vars: &HashMap<String, String>) -> Result<String, SubstError> {
        let lookup = |k: &str| vars.get(k).cloned();
        expand(word, &lookup, '\\').map(|e| e.text)
    }

    #[test]
    fn docker_reference_examples_expand_as_documented() {
        // From the Dockerfile reference, "Environment replacement".
        let vars = env(&[("FOO", "/bar"), ("variable", "value"), ("abc", "hello")]);
        let table: &[(&str, &str)] = &[
            ("$FOO", "/bar"),
            ("${FOO}", "/bar"),
            ("${FOO}/baz", "/bar/baz"),
            ("${variable:-word}", "value"),
            ("${unset:-word}", "word"),
            ("${variable:+word}", "word"),
            ("${unset:+word}", ""),
            ("\\$FOO", "$FOO"),
            ("\\${FOO}", "${FOO}"),
            ("'$FOO'", "$FOO"),
            ("\"$FOO\"", "/bar"),
            ("$unset", ""),
            ("a${unset}b", "ab"),
            // ENV abc=hello; ENV abc=bye def=$abc → def is hello.
            ("$abc", "hello"),
            ("${abc}_world", "hello_world"),
            // lex.go's own table (envVarTest): escapes, quotes, specials.
            ("he\\'llo", "he'llo"),
            ("he\\\\llo", "he\\llo"),
            ("\"he\\\"llo\"", "he\"llo"),
            ("\"he\\llo\"", "he\\llo"),
            ("'he\\llo'", "he\\llo"),
            ("$", "$"),
            ("$1", ""),
            ("${FOO:-x}y", "/bary"),
            ("${FOO-x}", "/bar"),
            ("${FOO+x}", "x"),
            ("${unset-x}", "x"),
            ("${unset+x}", ""),
            ("trailing\\", "trailing"),
        ];
        for (word, want) in table {
            assert_eq!(ex(word, &vars).as_deref(), Ok(*want), "expanding {word:?}");
        }
    }

    #[test]
    fn empty_and_unset_differ_only_without_the_colon() {
        let vars = env(&[("E", "")]);
        assert_eq!(ex("${E:-d}", &vars).unwrap(), "d");
        assert_eq!(ex("${E-d}", &vars).unwrap(), "");
        assert_eq!(ex("${E:+p}", &vars).unwrap(), "");
        assert_eq!(ex("${E+p}", &vars).unwrap(), "p");
        assert_eq!(ex("${E?}", &vars).unwrap(), "");
        let err = ex("${E:?must be set}", &vars).unwrap_err();
        assert!(err.to_string().ends_with("E: must be set"), "{err}");
        let err = ex("${U?}", &vars).unwrap_err();
        assert!(err.to_string().ends_with("U: is not allowed to be unset"), "{err}");
        let err = ex("${E:?}", &vars).unwrap_err();
        assert!(err.to_string().ends_with("E: is not allowed to be empty"), "{err}");
    }

    #[test]
    fn pattern_modifiers_trim_and_replace_as_lex_go() {
        let vars = env(&[("P", "/usr/local/bin/app.tar.gz"), ("S", "aXbXc")]);
        let table: &[(&str, &str)] = &[
            ("${P#*/}", "usr/local/bin/app.tar.gz"),
            ("${P##*/}", "app.tar.gz"),
            ("${P%.*}", "/usr/local/bin/app.tar"),
            ("${P%%.*}", "/usr/local/bin/app"),
            ("${P#nomatch}", "/usr/local/bin/app.tar.gz"),
            ("${S/X/-}", "a-bXc"),
            ("${S//X/-}", "a-b-c"),
            ("${S/X*/}", "a"),
            ("${S/?/Z}", "ZXbXc"),
            ("${S#\\*}", "aXbXc"),
            ("${unset//a/b}", ""),
        ];
        for (word, want) in table {
            assert_eq!(ex(word, &vars).as_deref(), Ok(*want), "expanding {word:?}");
        }
    }

    #[test]
    fn malformed_substitutions_are_refused_with_docker_messages() {
        let vars = env(&[]);
        let cases: &[(&str, &str)] = &[
            ("${", "missing '}'"),
            ("${FOO", "missing '}'"),
            ("${FOO:-x", "missing '}'"),
            ("${}", "bad substitution"),
            ("${:x}", "bad substitution"),
            ("${{x}", "bad substitution"),
            ("${a b}", "unsupported modifier ( ) in substitution"),
            ("${a:#x}", "unsupported modifier (:#) in substitution"),
            ("'open", "matching single-quote"),
            ("\"open", "matching double-quote"),
            ("${a#\\x}", "invalid pattern"),
        ];
        for (word, want) in cases {
            let err = ex(word, &vars).expect_err(word);
            assert!(err.to_string().contains(want), "{word:?}: {err}");
        }
    }

    #[test]
    fn used_names_include_unset_ones_and_nested_defaults() {
        let vars = env(&[("A", "1")]);
        let lookup = |k: &str| vars.get(k).cloned();
        let e = expand("$A ${B:-${C}} '$D' \\$E", &lookup, '\\').unwrap();
        assert_eq!(e.text, "1  $D $E");
        assert_eq!(e.used.into_iter().collect::<Vec<_>>(), ["A", "B", "C"]);
    }

    #[test]
    fn backtick_is_the_escape_when_the_dockerfile_says_so() {
        let vars = env(&[("X", "v")]);
        let lookup = |k: &str| vars.get(k).cloned();
        assert_eq!(expand("`$X c:\\dir", &lookup, '`').unwrap().text, "$X c:\\dir");
        assert_eq!(expand("\"`\"`$X\"", &lookup, '`').unwrap().text, "\"$X");
    }

    #[test]
    fn words_split_after_substitution_but_not_inside_quotes_or_escapes() {
        let vars = env(&[("PORTS", "80/tcp  443"), ("ONE", "a b")]);
        let lookup = |k: &str| vars.get(k).cloned();
        let (words, used) = expand_words("$PORTS 53/udp", &lookup, '\\').unwrap();
        assert_eq!(words, ["80/tcp", "443", "53/udp"]);
        assert!(used.contains("PORTS"));
        let (words, _) = expand_words("\"$ONE\" c\\ d 'e f' x${ONE}y", &lookup, '\\').unwrap();
        assert_eq!(words, ["a b", "c d", "e f", "xa", "by"]);
        let (words, _) = expand_words("   ", &lookup, '\\').unwrap();
        assert!(words.is_empty());
    }

    #[test]
    fn raw_words_keep_quotes_escapes_and_unset_references() {
        let words = raw_words("cat <<'EOF' > \"$out\" \\x ${y:-z}").unwrap();
        assert_eq!(words, ["cat", "<<'EOF'", ">", "\"$out\"", "\\x", "${y:-z}"]);
        assert_eq!(heredoc_word("\"EOF\"").unwrap(), Some(("EOF".into(), "\"EOF\"".into())));
        assert_eq!(heredoc_word("EOF").unwrap(), Some(("EOF".into(), "EOF".into())));
        assert_eq!(heredoc_word("a b").unwrap(), None);
    }

    #[test]
    fn heredoc_bodies_expand_variables_but_keep_quotes() {
        let vars = env(&[("NAME", "world")]);
        let lookup = |k: &str| vars.get(k).cloned();
        let e = expand_raw("echo \"hello $NAME\" '${NAME}' \\$NAME\n", &lookup).unwrap();
        assert_eq!(e.text, "echo \"hello world\" 'world' $NAME\n");
        assert!(e.used.contains("NAME"));
        // An unmatched quote in a script is fine.
        assert_eq!(expand_raw("it's\n", &lookup).unwrap().text, "it's\n");
    }

    #[test]
    fn blanks_after_heredoc_markers_join_the_word() {
        let words = raw_words("RUN cat << EOF >f && cat <<-\t\"X\"").unwrap();
        // lex.go only takes the blanks right after `<<`, not after `<<-`.
        assert_eq!(words, ["RUN", "cat", "<< EOF", ">f", "&&", "cat", "<<-", "\"X\""]);
        // Elsewhere `<<` is just text.
        let lookup = |_: &str| None;
        assert_eq!(expand_words("a << b", &lookup, '\\').unwrap().0, ["a", "<<", "b"]);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        // ${a:-${a:-${a:-…}}} 10 000 levels deep.
        let n = 10_000;
        let word = format!("{}x{}", "${a:-".repeat(n), "}".repeat(n));
        let err = ex(&word, &env(&[])).unwrap_err();
        assert!(matches!(err, SubstError::TooDeep { .. }), "{err}");
        assert!(err.to_string().len() < 300, "message quotes the whole word");
        // Just under the bound still works.
        let ok = format!("{}x{}", "${a:-".repeat(MAX_DEPTH - 1), "}".repeat(MAX_DEPTH - 1));
        assert_eq!(ex(&ok, &env(&[])).unwrap(), "x");
        // Quotes inside defaults count as nesting too.
        let quoted = format!("{}x{}", "${a:-\"".repeat(n), "\"}".repeat(n));
        assert!(matches!(ex(&quoted, &env(&[])), Err(SubstError::TooDeep { .. })));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Any word either expands or is refused: no panic, whatever the
        /// braces, quotes and escapes.
        #[test]
        fn any_word_expands_or_is_refused(word in "[a-zA-Z_$\\{\\}:\\-+?#%/*\\\\'\" `]{0,24}") {
            let vars = env(&[("a", "x y"), ("b", "")]);
            let lookup = |k: &str| vars.get(k).cloned();
            let _ = expand(&word, &lookup, '\\');
            let _ = expand(&word, &lookup, '`');
            let _ = expand_words(&word, &lookup, '\\');
            let _ = expand_raw(&word, &lookup);
            let _ = raw_words(&word);
        }

        /// Text with nothing special in it comes back unchanged.
        #[test]
        fn plain_text_is_left_alone(word in "[a-zA-Z0-9_./:=@-]{0,32}") {
            let lookup = |_: &str| Some("never".to_string());
            proptest::prop_assert_eq!(expand(&word, &lookup, '\\').unwrap().text, word);
        }
    }

    #[test]
    fn a_ten_megabyte_word_expands_in_one_pass() {
        let big = "a".repeat(10 << 20);
        let vars = env(&[("BIG", &big)]);
        let out = ex("$BIG$BIG", &vars).unwrap();
        assert_eq!(out.len(), 20 << 20);
        // A pattern trim over it stays linear in the value.
        let out = ex("${BIG%%a*}", &vars).unwrap();
        assert_eq!(out, "");
    }
}
