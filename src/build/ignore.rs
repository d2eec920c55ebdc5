//! `.dockerignore` with Docker's rules (moby/patternmatcher and its
//! `ignorefile.ReadAll`):
//!
//! - a line starting with `#` is a comment; blank lines are skipped; each
//!   line is trimmed;
//! - `!` makes an exception (re-includes what an earlier line excluded);
//! - a pattern is cleaned as Go's `filepath.Clean` does, and a leading `/`
//!   (or `./`) is dropped: patterns are relative to the context;
//! - `*` matches within one path element, `?` one character, `[...]` a class,
//!   `\` escapes, and `**` any number of elements (none included);
//! - the last matching line wins, and a pattern that matches a parent
//!   directory matches everything under it.
//!
//! An excluded directory can still hold re-included files (`dir` then
//! `!dir/keep`): walkers must look inside excluded directories when
//! [`IgnoreRules::has_exceptions`] says so, and test each file.

use std::io;
use std::path::{Path, PathBuf};

use regex::Regex;

/// The patterns of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Regex(Regex),
}

/// A `.dockerignore` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// A line is not a valid pattern.
    #[error("{file}:{line}:1: bad .dockerignore pattern {pattern:?}: {reason}")]
    BadPattern {
        file: String,
        line: usize,
        pattern: String,
        reason: String,
    },
    /// The file exists but cannot be read.
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Parses `.dockerignore` text.
pub fn parse_ignore(text: &str) -> Result<IgnoreRules, IgnoreError> {
    parse_named(text, ".dockerignore")
}

/// Reads the ignore file for a build: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over `<context>/.dockerignore` (as BuildKit and buildah);
/// neither existing means nothing is ignored. `dockerfile` is relative to
/// `context_dir` (or absolute).
pub fn read_ignore(context_dir: &Path, dockerfile: &str) -> Result<IgnoreRules, IgnoreError> {
    let beside = {
        let mut p = context_dir.join(dockerfile).into_os_string();
        p.push(".dockerignore");
        PathBuf::from(p)
    };
    for path in [beside, context_dir.join(".dockerignore")] {
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                return parse_named(&text, &path.display().to_string());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(IgnoreError::Read { path, source }),
        }
    }
    Ok(IgnoreRules::default())
}

fn parse_named(text: &str, file: &str) -> Result<IgnoreRules, IgnoreError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.starts_with('#') {
            continue;
        }
        let mut p = raw.trim();
        if p.is_empty() {
            continue;
        }
        let bad = |reason: &str| IgnoreError::BadPattern {
            file: file.to_string(),
            line: i + 1,
            pattern: raw.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        let exclusion = p.starts_with('!');
        if exclusion {
            p = p[1..].trim();
            if p.is_empty() {
                return Err(bad("illegal exclusion pattern: \"!\""));
            }
        }
        let mut cleaned = clean(p);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        let matcher = compile(&cleaned).map_err(|reason| bad(&reason))?;
        patterns.push(Pattern { exclusion, matcher });
    }
    Ok(IgnoreRules { patterns })
}

impl IgnoreRules {
    /// Whether `rel_path` (relative to the context, `/`-separated) is left
    /// out of the build, itself or through a parent directory.
    pub fn excluded(&self, rel_path: &str) -> bool {
        let file = clean(rel_path.trim_start_matches('/'));
        if file == "." {
            return false;
        }
        let parents: Vec<&str> = file.match_indices('/').map(|(i, _)| &file[..i]).collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // Only an exclusion can change a match, and only a match can be
            // undone by an exception: skip the rest (patternmatcher does too).
            if pattern.exclusion != matched {
                continue;
            }
            let hit = pattern.matches(&file) || parents.iter().any(|p| pattern.matches(p));
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether some `!` line may re-include files inside excluded directories.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(s) => s == path,
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// patternmatcher's translation of a pattern into a regex: `*` → `[^/]*`,
/// `?` → `[^/]`, `**` → `(.*/)?` (or `.*` at the end), classes and escapes
/// kept; a pattern with none of these is compared as a string.
fn compile(pattern: &str) -> Result<Matcher, String> {
    let mut re = String::from("(?s)^");
    let mut plain = true;
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' => {
                plain = false;
                if chars.peek() == Some(&'*') {
                    chars.next();
                    if chars.peek() == Some(&'/') {
                        chars.next();
                    }
                    if chars.peek().is_none() {
                        re.push_str(".*");
                    } else if !re.ends_with("(.*/)?") {
                        // `**/**/` is `**/`: collapsing keeps a pattern of a
                        // thousand `**` as small as one.
                        re.push_str("(.*/)?");
                    }
                } else {
                    re.push_str("[^/]*");
                }
            }
            '?' => {
                plain = false;
                re.push_str("[^/]");
            }
            '\\' => match chars.next() {
                Some(c) => {
                    plain = false;
                    re.push_str(&regex::escape(&c.to_string()));
                }
                None => re.push_str("\\\\"),
            },
            '[' => {
                plain = false;
                re.push_str(&class(&mut chars)?);
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    if plain {
        return Ok(Matcher::Exact(pattern.to_string()));
    }
    re.push('$');
    regex::RegexBuilder::new(&re)
        .size_limit(1 << 24)
        .build()
        .map(Matcher::Regex)
        .map_err(|e| format!("cannot compile it: {}", e.to_string().lines().last().unwrap_or("")))
}

/// A `[...]` class of Go's `filepath.Match` (the `[` already read): `^`
/// negates, `a-z` ranges, `\` escapes; it never matches `/`.
fn class(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<String, String> {
    // Go's classes never match the separator, negated or not: intersect.
    let mut out = String::from("[[^/]&&[");
    if chars.peek() == Some(&'^') {
        chars.next();
        out.push('^');
    }
    let mut empty = true;
    loop {
        let Some(c) = chars.next() else {
            return Err("unterminated character class".to_string());
        };
        match c {
            ']' if !empty => break,
            ']' => return Err("empty character class".to_string()),
            '\\' => {
                let Some(e) = chars.next() else {
                    return Err("unterminated character class".to_string());
                };
                out.push_str(&class_char(e));
            }
            '-' if !empty && chars.peek().is_some_and(|&n| n != ']') => out.push('-'),
            c => out.push_str(&class_char(c)),
        }
        empty = false;
    }
    out.push_str("]]");
    Ok(out)
}

/// One character inside a regex class, escaped if the regex syntax gives it
/// a meaning there.
fn class_char(c: char) -> String {
    if matches!(c, '[' | ']' | '\\' | '^' | '-' | '&' | '~') {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        parse_ignore(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_documentation_examples_match_as_documented() {
        // The example .dockerignore of Docker's build-context docs.
        let r = rules("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(r.excluded("somedir/temporary.txt"));
        assert!(r.excluded("somedir/temp"));
        assert!(r.excluded("somedir/subdir/temporary.txt"));
        assert!(r.excluded("tempa"));
        assert!(r.excluded("tempb"));
        assert!(!r.excluded("temp"));
        assert!(!r.excluded("temporary.txt"));
        assert!(!r.excluded("a/b/c/temp"));
        // `**` matches any number of directories, including none.
        let r = rules("**/*.go\n");
        assert!(r.excluded("main.go"));
        assert!(r.excluded("cmd/app/main.go"));
        assert!(!r.excluded("main.gox"));
        // Exceptions: everything markdown but the README.
        let r = rules("*.md\n!README.md\n");
        assert!(r.excluded("CHANGES.md"));
        assert!(!r.excluded("README.md"));
        // The last line wins: README-secret.md is out again.
        let r = rules("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(r.excluded("CHANGES.md"));
        assert!(!r.excluded("README.md"));
        assert!(!r.excluded("README-public.md"));
        assert!(r.excluded("README-secret.md"));
        // …and the other order lets every README in.
        let r = rules("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!r.excluded("README-secret.md"));
    }

    #[test]
    fn paths_are_cleaned_and_rooted_at_the_context() {
        let r = rules("/build/\n./dist\nlogs//old/../*.log\n  spaced  \n#not/a/pattern\n\n");
        assert!(r.excluded("build"));
        assert!(r.excluded("build/out.o"));
        assert!(r.excluded("dist/app.js"));
        assert!(r.excluded("logs/a.log"));
        assert!(!r.excluded("logs/old/a.log"));
        assert!(r.excluded("spaced"));
        assert!(!r.excluded("#not/a/pattern"));
        assert!(!r.excluded("."));
        assert!(!r.is_empty());
        // A '#' after leading blanks is a pattern, as in Docker.
        let r = rules("  #x\n");
        assert!(r.excluded("#x"));
    }

    #[test]
    fn a_parent_excluded_still_lets_an_exception_reach_a_child() {
        let r = rules("vendor\n!vendor/keep/**\n");
        assert!(r.excluded("vendor"));
        assert!(r.excluded("vendor/drop.c"));
        assert!(!r.excluded("vendor/keep/a.c"));
        assert!(!r.excluded("vendor/keep/deep/b.c"));
        assert!(r.has_exceptions());
        assert!(!rules("vendor\n").has_exceptions());
    }

    #[test]
    fn classes_and_escapes_follow_go_filepath_match() {
        let r = rules("file[0-9].txt\n[^a]x\n\\*star\nd[^a]y\n");
        assert!(r.excluded("file7.txt"));
        assert!(!r.excluded("filex.txt"));
        assert!(r.excluded("bx"));
        assert!(!r.excluded("ax"));
        assert!(r.excluded("dby"));
        assert!(!r.excluded("d/y"), "a class never matches the separator");
        assert!(r.excluded("*star"));
        assert!(!r.excluded("xstar"));
    }

    #[test]
    fn bad_patterns_are_refused_with_their_line() {
        for (text, line, want) in [
            ("ok\n!\n", 2, "illegal exclusion pattern"),
            ("a\nb\n[abc\n", 3, "unterminated character class"),
            ("[]x\n", 1, "empty character class"),
        ] {
            let e = parse_ignore(text).unwrap_err();
            let IgnoreError::BadPattern { line: l, .. } = &e else {
                panic!("{e}")
            };
            assert_eq!(*l, line, "{e}");
            assert!(e.to_string().contains(want), "{e}");
            assert!(e.to_string().starts_with(&format!(".dockerignore:{line}:1: ")), "{e}");
        }
    }

    #[test]
    fn a_thousand_double_stars_compile_and_match_in_linear_time() {
        let pattern = format!("{}x", "**/".repeat(1000));
        let r = rules(&pattern);
        assert!(r.excluded("a/b/c/x"));
        assert!(r.excluded("x"));
        assert!(!r.excluded(&format!("{}y", "a/".repeat(5000))));
        let stars = "*".repeat(2000);
        let r = rules(&format!("{stars}z\n"));
        assert!(r.excluded("a/b/z"));
        assert!(!r.excluded(&"a".repeat(100_000)));
    }

    #[test]
    fn the_file_beside_the_dockerfile_wins_over_the_context_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("docker")).unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "from-context\n").unwrap();
        let r = read_ignore(dir.path(), "docker/app.Dockerfile").unwrap();
        assert!(r.excluded("from-context"));
        std::fs::write(dir.path().join("docker/app.Dockerfile.dockerignore"), "from-beside\n").unwrap();
        let r = read_ignore(dir.path(), "docker/app.Dockerfile").unwrap();
        assert!(r.excluded("from-beside"));
        assert!(!r.excluded("from-context"));
        let empty = tempfile::tempdir().unwrap();
        assert!(read_ignore(empty.path(), "Dockerfile").unwrap().is_empty());
        // A directory where the file should be is an error, not "no rules".
        std::fs::create_dir(empty.path().join(".dockerignore")).unwrap();
        let e = read_ignore(empty.path(), "Dockerfile").unwrap_err();
        assert!(matches!(e, IgnoreError::Read { .. }), "{e}");
        // Errors in the file name it.
        std::fs::write(dir.path().join("docker/app.Dockerfile.dockerignore"), "ok\n[\n").unwrap();
        let e = read_ignore(dir.path(), "docker/app.Dockerfile").unwrap_err();
        assert!(e.to_string().contains("app.Dockerfile.dockerignore:2:1"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any file parses or is refused with a line, and matching never panics.
        #[test]
        fn any_ignore_file_parses_or_is_refused(
            text in "(!?[a-z/.*?\\[\\]^\\\\#! -]{0,10}\n){0,6}",
            path in "[a-z/.]{0,12}",
        ) {
            match parse_ignore(&text) {
                Ok(r) => { let _ = r.excluded(&path); }
                Err(IgnoreError::BadPattern { line, .. }) => proptest::prop_assert!((1..=6).contains(&line)),
                Err(e) => proptest::prop_assert!(false, "{}", e),
            }
        }

        /// Cleaning is idempotent, as Go's is.
        #[test]
        fn clean_is_idempotent(path in "[a./]{0,12}") {
            let once = clean(&path);
            proptest::prop_assert_eq!(clean(&once), once.clone());
        }
    }

    #[test]
    fn go_clean_rules() {
        for (input, want) in [
            ("", "."),
            ("a//b/./c/", "a/b/c"),
            ("../x", "../x"),
            ("a/../../x", "../x"),
            ("/../x", "/x"),
            ("/", "/"),
            ("./", "."),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }
}
