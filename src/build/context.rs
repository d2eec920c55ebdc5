//! One build's context directory: which files a `COPY`/`ADD` source names,
//! their content hash for the step cache, the files the copier writes, and a
//! cheap "did the context change" for declarative builds.
//!
//! Rules, as Docker's:
//! - sources are relative to the context, a leading `/` included; one that
//!   cleans to outside it (`../x`, `/../x` is `/x`, so only the former) is
//!   refused;
//! - a source with `*`, `?` or `[` is a Go `filepath.Match` pattern matched
//!   one path element at a time; a source matching nothing is an error;
//! - files excluded by `.dockerignore` do not exist for the build;
//! - a symlink is never followed out of the context: as the last element of
//!   a source or inside a copied directory it is copied as a link; in the
//!   middle of a source path it is resolved inside the context, its `..`
//!   stopping at the context root (as BuildKit's scoped resolution does).
//!
//! Hashes cover names, types, permission bits, uid/gid, sizes, link targets
//! and file contents, never times (BuildKit does the same), so `touch` or a
//! fresh checkout does not invalidate the cache.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ignore::{clean, IgnoreRules};

/// How many symlinks resolving one source may pass through (Linux's limit).
const MAX_LINK_HOPS: usize = 40;

/// A context that cannot be read, or a source it does not have.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context path is not a directory.
    #[error("build context {} is not a directory", .path.display())]
    NotADirectory { path: PathBuf },
    /// A source names something outside the context.
    #[error("forbidden path outside the build context: {source_path:?}")]
    Outside { source_path: String },
    /// A plain source that does not exist, or that `.dockerignore` excludes.
    #[error("{source_path:?}: not found (not in the build context, or excluded by .dockerignore)")]
    NotFound { source_path: String },
    /// A pattern that matches nothing in the context.
    #[error("no source files were specified: nothing in the build context matches {source_path:?}")]
    NoMatch { source_path: String },
    /// A malformed pattern (`[a-`).
    #[error("bad source pattern {source_path:?}: {reason}")]
    BadPattern { source_path: String, reason: String },
    /// Symlinks in a source's path that loop.
    #[error("too many levels of symbolic links resolving {source_path:?}")]
    LinkLoop { source_path: String },
    /// Reading a file or directory failed.
    #[error("reading {} in the build context: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T, E = ContextError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A build's context directory with its ignore rules.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    ignore: IgnoreRules,
}

impl Context {
    /// Opens `dir` (which must be a directory) as a context.
    pub fn open(dir: &Path, ignore: IgnoreRules) -> Result<Context> {
        let meta = fs::metadata(dir).map_err(io_err(dir))?;
        if !meta.is_dir() {
            return Err(ContextError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(Context {
            root: dir.to_path_buf(),
            ignore,
        })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `.dockerignore` rules the context applies.
    pub fn ignore(&self) -> &IgnoreRules {
        &self.ignore
    }

    /// The relative paths a COPY/ADD source names, in order: one for a plain
    /// path (`"."` for the context itself), each match for a pattern.
    pub fn resolve(&self, source: &str) -> Result<Vec<String>> {
        let cleaned = context_relative(source)?;
        if has_wildcards(&cleaned) {
            let components: Vec<&str> = cleaned.split('/').collect();
            for c in &components {
                Pattern::parse(c).map_err(|reason| ContextError::BadPattern {
                    source_path: source.to_string(),
                    reason,
                })?;
            }
            let mut found = Vec::new();
            self.glob(String::new(), &components, &mut found)?;
            if found.is_empty() {
                return Err(ContextError::NoMatch {
                    source_path: source.to_string(),
                });
            }
            return Ok(found);
        }
        let rel = self.resolve_links(&cleaned, source)?;
        let path = self.path(&rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(ContextError::NotFound {
                    source_path: source.to_string(),
                })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        // An excluded directory still counts when an exception re-includes
        // something inside it.
        if rel != "." && self.ignore.excluded(&rel) && (!meta.is_dir() || self.walk(&rel)?.is_empty()) {
            return Err(ContextError::NotFound {
                source_path: source.to_string(),
            });
        }
        Ok(vec![rel])
    }

    /// A content hash of `rels` (as [`Context::resolve`] returns them):
    /// `sha256:<hex>`, the same on any machine for the same tree.
    pub fn hash(&self, rels: &[String]) -> Result<String> {
        let mut h = Sha256::new();
        for rel in rels {
            h.update(b"source\0");
            h.update(rel.as_bytes());
            h.update(b"\0");
            let entries = self.entries(rel)?;
            for (name, meta) in &entries {
                h.update(self.entry_digest(name, meta)?);
            }
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }

    /// The files the copier writes for `rel`: `rel` itself if it is not a
    /// directory, else everything under it (not itself), parents before
    /// children, names sorted, with `lstat` metadata; excluded entries are
    /// left out (an excluded directory's re-included children are listed
    /// without it). Symlinks are listed, never followed.
    pub fn walk(&self, rel: &str) -> Result<Vec<(String, Metadata)>> {
        let cleaned = context_relative(rel)?;
        let rel = self.resolve_links(&cleaned, rel)?;
        let path = self.path(&rel);
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if !meta.is_dir() {
            if self.ignore.excluded(&rel) {
                return Ok(Vec::new());
            }
            return Ok(vec![(rel, meta)]);
        }
        let mut out = Vec::new();
        // Iterative, so a deep tree cannot overflow the stack.
        let mut stack = vec![rel];
        while let Some(dir) = stack.pop() {
            let dir_path = self.path(&dir);
            let mut names = Vec::new();
            for entry in fs::read_dir(&dir_path).map_err(io_err(&dir_path))? {
                let entry = entry.map_err(io_err(&dir_path))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let child = if dir == "." { name } else { format!("{dir}/{name}") };
                let child_path = self.path(&child);
                let meta = fs::symlink_metadata(&child_path).map_err(io_err(&child_path))?;
                let excluded = self.ignore.excluded(&child);
                if meta.is_dir() {
                    if !excluded || self.ignore.has_exceptions() {
                        subdirs.push(child.clone());
                    }
                    if !excluded {
                        out.push((child, meta));
                    }
                } else if !excluded {
                    out.push((child, meta));
                }
            }
            // Depth-first in name order: the listing is pre-order once the
            // output is sorted below.
            stack.extend(subdirs.into_iter().rev());
        }
        out.sort_by(|a, b| path_order(&a.0, &b.0));
        Ok(out)
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel == "." {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// `rel` itself (if it is a file or a link) or what [`Context::walk`] lists.
    fn entries(&self, rel: &str) -> Result<Vec<(String, Metadata)>> {
        self.walk(rel)
    }

    /// One entry's hash: name, type, permissions, owner, size, link target,
    /// content; no times.
    fn entry_digest(&self, name: &str, meta: &Metadata) -> Result<[u8; 32]> {
        let mut h = Sha256::new();
        let ft = meta.file_type();
        let kind: &[u8] = if ft.is_dir() {
            b"d"
        } else if ft.is_symlink() {
            b"l"
        } else if ft.is_file() {
            b"f"
        } else {
            b"o"
        };
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(kind);
        h.update(meta.mode().to_le_bytes());
        h.update(meta.uid().to_le_bytes());
        h.update(meta.gid().to_le_bytes());
        let path = self.path(name);
        if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err(&path))?;
            h.update(target.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            h.update(meta.len().to_le_bytes());
            h.update(file_digest(&path)?);
        } else if !ft.is_dir() {
            h.update(meta.rdev().to_le_bytes());
        }
        Ok(h.finalize().into())
    }

    /// Resolves symlinks in the middle of `rel` inside the context (the last
    /// element is left as it is); `..` from a link stops at the root.
    fn resolve_links(&self, rel: &str, source: &str) -> Result<String> {
        if rel == "." {
            return Ok(rel.to_string());
        }
        let mut pending: VecDeque<String> = rel.split('/').map(str::to_string).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop_front() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(comp);
            if pending.is_empty() {
                break;
            }
            let path = self.root.join(resolved.join("/"));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return Err(ContextError::LinkLoop {
                            source_path: source.to_string(),
                        });
                    }
                    let target = fs::read_link(&path).map_err(io_err(&path))?;
                    let target = target.to_string_lossy().into_owned();
                    resolved.pop();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    for part in target.split('/').rev() {
                        pending.push_front(part.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(if resolved.is_empty() {
            ".".to_string()
        } else {
            resolved.join("/")
        })
    }

    /// Matches `components` one directory level at a time from `dir`.
    fn glob(&self, dir: String, components: &[&str], found: &mut Vec<String>) -> Result<()> {
        let Some((first, rest)) = components.split_first() else {
            return Ok(());
        };
        let dir_path = self.path(if dir.is_empty() { "." } else { &dir });
        if !has_wildcards(first) {
            // A literal element: no need to list the directory.
            let child = if dir.is_empty() {
                unescape(first)
            } else {
                format!("{dir}/{}", unescape(first))
            };
            return self.glob_entry(child, rest, found);
        }
        let pattern = Pattern::parse(first).map_err(|reason| ContextError::BadPattern {
            source_path: components.join("/"),
            reason,
        })?;
        let entries = match fs::read_dir(&dir_path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(()),
            Err(e) => return Err(io_err(&dir_path)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir_path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if pattern.matches(&name) {
                names.push(name);
            }
        }
        names.sort();
        for name in names {
            let child = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            self.glob_entry(child, rest, found)?;
        }
        Ok(())
    }

    fn glob_entry(&self, child: String, rest: &[&str], found: &mut Vec<String>) -> Result<()> {
        let path = self.path(&child);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let excluded = self.ignore.excluded(&child);
        if rest.is_empty() {
            if !excluded || (meta.is_dir() && !self.walk(&child)?.is_empty()) {
                found.push(child);
            }
            return Ok(());
        }
        // Only real directories are descended: a link in the middle of a
        // pattern is not followed.
        if meta.is_dir() && (!excluded || self.ignore.has_exceptions()) {
            self.glob(child, rest, found)?;
        }
        Ok(())
    }
}

/// `source` cleaned and made relative to the context: an absolute path is
/// cleaned as one (so `/../x` is `/x`), a relative one may not climb out.
fn context_relative(source: &str) -> Result<String> {
    let cleaned = clean(source);
    if let Some(rooted) = cleaned.strip_prefix('/') {
        return Ok(if rooted.is_empty() {
            ".".to_string()
        } else {
            rooted.to_string()
        });
    }
    if cleaned == ".." || cleaned.starts_with("../") {
        return Err(ContextError::Outside {
            source_path: source.to_string(),
        });
    }
    Ok(cleaned)
}

/// Parents before children, siblings by name: compare element by element.
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

fn file_digest(path: &Path) -> Result<[u8; 32]> {
    // O_NOFOLLOW: a file swapped for a link after the lstat is refused,
    // not read through.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Go's `containsWildcards`: `*`, `?` or `[` not escaped by `\`.
fn has_wildcards(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// One path element of Go's `filepath.Match`.
#[derive(Debug)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

#[derive(Debug)]
struct Pattern(Vec<Tok>);

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, String> {
        let mut toks = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => toks.push(Tok::Lit(chars.next().ok_or("pattern ends with an escape")?)),
                '[' => {
                    let negated = chars.peek() == Some(&'^');
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let c = chars.next().ok_or("unterminated character class")?;
                        if c == ']' && !ranges.is_empty() {
                            break;
                        }
                        let lo = if c == '\\' {
                            chars.next().ok_or("unterminated character class")?
                        } else {
                            c
                        };
                        if lo == ']' && ranges.is_empty() && c == ']' {
                            return Err("empty character class".to_string());
                        }
                        let hi = if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some('\\') => chars.next().ok_or("unterminated character class")?,
                                Some(']') | None => return Err("bad range in character class".to_string()),
                                Some(h) => h,
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err("bad range in character class".to_string());
                        }
                        ranges.push((lo, hi));
                    }
                    toks.push(Tok::Class { negated, ranges });
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern(toks))
    }

    /// Whether the whole of `name` matches: the classic star-backtracking
    /// match, O(len(name) × len(pattern)) at worst.
    fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().collect();
        let toks = &self.0;
        let (mut t, mut p) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < toks.len() {
                let one = match &toks[p] {
                    Tok::Star => {
                        star = Some((p, t));
                        p += 1;
                        continue;
                    }
                    Tok::Lit(c) => *c == text[t],
                    Tok::Any => text[t] != '/',
                    Tok::Class { negated, ranges } => {
                        text[t] != '/' && ranges.iter().any(|&(lo, hi)| lo <= text[t] && text[t] <= hi) != *negated
                    }
                };
                if one {
                    p += 1;
                    t += 1;
                    continue;
                }
            }
            match star {
                Some((sp, st)) if text[st] != '/' => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                _ => return false,
            }
        }
        toks[p..].iter().all(|t| matches!(t, Tok::Star))
    }
}

/// What [`context_digest`] remembers about each path between runs, so that
/// only files whose size, mtime, ctime or inode moved are read again. It
/// serializes, so the caller can keep it beside its cache records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatCache {
    entries: BTreeMap<String, StatEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StatEntry {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    /// The entry's digest (as [`Context::hash`] computes it), hex.
    digest: String,
}

impl StatCache {
    /// How many paths it remembers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A digest of the whole context (ignored files left out), reading only files
/// whose stat moved since `cache` saw them, and the paths that changed since
/// the digest `cache` last held (added, removed or modified; every path on a
/// first run), sorted. `cache` is updated to this run.
pub fn context_digest(dir: &Path, ignore: IgnoreRules, cache: &mut StatCache) -> Result<(String, Vec<String>)> {
    let ctx = Context::open(dir, ignore)?;
    let mut next = BTreeMap::new();
    let mut changed = Vec::new();
    let mut h = Sha256::new();
    for (name, meta) in ctx.walk(".")? {
        let stat = |digest: String| StatEntry {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
            digest,
        };
        let previous = cache.entries.get(&name);
        let fresh = stat(String::new());
        let entry = match previous {
            Some(p)
                if p.size == fresh.size
                    && p.mtime_ns == fresh.mtime_ns
                    && p.ctime_ns == fresh.ctime_ns
                    && p.ino == fresh.ino
                    && p.dev == fresh.dev =>
            {
                p.clone()
            }
            _ => stat(hex::encode(ctx.entry_digest(&name, &meta)?)),
        };
        if previous.map(|p| &p.digest) != Some(&entry.digest) {
            changed.push(name.clone());
        }
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(entry.digest.as_bytes());
        next.insert(name, entry);
    }
    changed.extend(cache.entries.keys().filter(|k| !next.contains_key(*k)).cloned());
    changed.sort();
    cache.entries = next;
    Ok((format!("sha256:{}", hex::encode(h.finalize())), changed))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;
    use crate::build::ignore::parse_ignore;

    /// A context tree: `app/main.py`, `app/lib/util.py`, `app/README.md`,
    /// `docs/a.md`, `docs/b.txt`, `top.txt`, `secret.key`.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("app/lib")).unwrap();
        fs::create_dir_all(root.join("docs")).unwrap();
        for (path, content) in [
            ("app/main.py", "print('hi')\n"),
            ("app/lib/util.py", "X = 1\n"),
            ("app/README.md", "# app\n"),
            ("docs/a.md", "a\n"),
            ("docs/b.txt", "b\n"),
            ("top.txt", "top\n"),
            ("secret.key", "k\n"),
        ] {
            fs::write(root.join(path), content).unwrap();
        }
        dir
    }

    fn ctx(dir: &Path, ignore: &str) -> Context {
        Context::open(dir, parse_ignore(ignore).unwrap()).unwrap()
    }

    fn names(entries: &[(String, Metadata)]) -> Vec<&str> {
        entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn plain_sources_resolve_relative_to_the_context_even_when_absolute() {
        let dir = tree();
        let c = ctx(dir.path(), "");
        assert_eq!(c.resolve("app/main.py").unwrap(), ["app/main.py"]);
        assert_eq!(c.resolve("/app/main.py").unwrap(), ["app/main.py"]);
        assert_eq!(c.resolve("./app//lib/").unwrap(), ["app/lib"]);
        assert_eq!(c.resolve(".").unwrap(), ["."]);
        assert_eq!(c.resolve("/").unwrap(), ["."]);
        // `/../x` cleans to `/x`: inside, as in Docker.
        assert_eq!(c.resolve("/../top.txt").unwrap(), ["top.txt"]);
        let e = c.resolve("missing.txt").unwrap_err();
        assert!(matches!(e, ContextError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("\"missing.txt\": not found"), "{e}");
        assert!(matches!(c.resolve("top.txt/x"), Err(ContextError::NotFound { .. })));
    }

    #[test]
    fn sources_outside_the_context_are_refused() {
        let dir = tree();
        let c = ctx(dir.path(), "");
        for bad in ["..", "../x", "app/../../x", "./../../etc/passwd"] {
            let e = c.resolve(bad).unwrap_err();
            assert!(matches!(e, ContextError::Outside { .. }), "{bad}: {e}");
            assert!(matches!(c.walk(bad), Err(ContextError::Outside { .. })), "{bad}");
        }
        assert!(matches!(c.resolve("../*"), Err(ContextError::Outside { .. })));
    }

    #[test]
    fn globs_match_one_element_at_a_time_and_in_name_order() {
        let dir = tree();
        let c = ctx(dir.path(), "");
        assert_eq!(c.resolve("*.txt").unwrap(), ["top.txt"]);
        assert_eq!(c.resolve("docs/*").unwrap(), ["docs/a.md", "docs/b.txt"]);
        assert_eq!(c.resolve("*/*.md").unwrap(), ["app/README.md", "docs/a.md"]);
        assert_eq!(c.resolve("app/[lm]*").unwrap(), ["app/lib", "app/main.py"]);
        assert_eq!(c.resolve("app/[^lm]*").unwrap(), ["app/README.md"]);
        assert_eq!(c.resolve("d?cs").unwrap(), ["docs"]);
        assert_eq!(c.resolve("/docs/?.md").unwrap(), ["docs/a.md"]);
        let e = c.resolve("*.rs").unwrap_err();
        assert!(matches!(e, ContextError::NoMatch { .. }), "{e}");
        assert!(e.to_string().starts_with("no source files were specified"), "{e}");
        assert!(matches!(c.resolve("app/[a-"), Err(ContextError::BadPattern { .. })));
    }

    #[test]
    fn ignored_files_do_not_exist_for_the_build() {
        let dir = tree();
        let c = ctx(dir.path(), "*.key\ndocs\n!docs/a.md\n**/*.md\n!app/README.md\n");
        assert!(matches!(c.resolve("secret.key"), Err(ContextError::NotFound { .. })));
        assert!(matches!(c.resolve("*.key"), Err(ContextError::NoMatch { .. })));
        assert!(matches!(c.resolve("docs/b.txt"), Err(ContextError::NotFound { .. })));
        // `docs` is excluded but `!docs/a.md` re-included… until `**/*.md`.
        assert!(matches!(c.resolve("docs/a.md"), Err(ContextError::NotFound { .. })));
        assert_eq!(c.resolve("app/README.md").unwrap(), ["app/README.md"]);
        let all = c.walk(".").unwrap();
        assert_eq!(
            names(&all),
            [
                "app",
                "app/README.md",
                "app/lib",
                "app/lib/util.py",
                "app/main.py",
                "top.txt"
            ]
        );
        // An excluded directory with a re-included child is reachable.
        let c = ctx(dir.path(), "docs\n!docs/b.txt\n");
        assert_eq!(c.resolve("docs").unwrap(), ["docs"]);
        assert_eq!(names(&c.walk("docs").unwrap()), ["docs/b.txt"]);
        assert_eq!(c.resolve("do*").unwrap(), ["docs"]);
        assert!(!names(&c.walk(".").unwrap()).contains(&"docs"));
    }

    #[test]
    fn walk_lists_parents_before_children_and_a_file_as_itself() {
        let dir = tree();
        let c = ctx(dir.path(), "");
        assert_eq!(
            names(&c.walk("app").unwrap()),
            ["app/README.md", "app/lib", "app/lib/util.py", "app/main.py"]
        );
        let one = c.walk("app/main.py").unwrap();
        assert_eq!(names(&one), ["app/main.py"]);
        assert!(one[0].1.is_file());
    }

    #[test]
    fn a_symlink_out_of_the_context_is_a_link_and_never_followed() {
        let dir = tree();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("passwd"), "root:x:0:0\n").unwrap();
        symlink(outside.path(), dir.path().join("out")).unwrap();
        symlink("/etc/passwd", dir.path().join("app/pw")).unwrap();
        symlink("../../../../..", dir.path().join("app/up")).unwrap();
        let c = ctx(dir.path(), "");
        // The link itself is the source, listed as a link.
        assert_eq!(c.resolve("app/pw").unwrap(), ["app/pw"]);
        let listed = c.walk("app").unwrap();
        let pw = listed.iter().find(|(n, _)| n == "app/pw").unwrap();
        assert!(pw.1.file_type().is_symlink());
        assert!(c.walk("out").unwrap()[0].1.file_type().is_symlink());
        // Through a link, the path is resolved inside the context: `out`
        // points at an absolute directory, so `out/passwd` is `<ctx>/<that
        // dir>/passwd`, which does not exist in the context.
        assert!(matches!(c.resolve("out/passwd"), Err(ContextError::NotFound { .. })));
        // `app/up/top.txt` climbs out and stops at the root: it is top.txt.
        assert_eq!(c.resolve("app/up/top.txt").unwrap(), ["top.txt"]);
        // Hashing a tree with an outside link reads the link, not the target.
        let before = c.hash(&["app".to_string()]).unwrap();
        fs::write(outside.path().join("passwd"), "changed\n").unwrap();
        assert_eq!(c.hash(&["app".to_string()]).unwrap(), before);
        // A loop of links is an error, not a hang.
        symlink("loop2", dir.path().join("loop1")).unwrap();
        symlink("loop1", dir.path().join("loop2")).unwrap();
        assert!(matches!(c.resolve("loop1/x"), Err(ContextError::LinkLoop { .. })));
    }

    #[test]
    fn the_hash_ignores_times_but_sees_content_mode_and_names() {
        let dir = tree();
        let c = ctx(dir.path(), "");
        let rels = c.resolve("app").unwrap();
        let h0 = c.hash(&rels).unwrap();
        assert!(h0.starts_with("sha256:") && h0.len() == 71, "{h0}");
        assert_eq!(c.hash(&rels).unwrap(), h0, "stable across calls");
        // touch: a new mtime, same hash.
        let f = fs::File::options()
            .write(true)
            .open(dir.path().join("app/main.py"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
            .unwrap();
        drop(f);
        assert_eq!(c.hash(&rels).unwrap(), h0, "mtime must not count");
        // content
        fs::write(dir.path().join("app/main.py"), "print('bye')\n").unwrap();
        let h1 = c.hash(&rels).unwrap();
        assert_ne!(h1, h0);
        // mode
        fs::set_permissions(dir.path().join("app/main.py"), fs::Permissions::from_mode(0o755)).unwrap();
        let h2 = c.hash(&rels).unwrap();
        assert_ne!(h2, h1);
        // a rename inside
        fs::rename(dir.path().join("app/lib/util.py"), dir.path().join("app/lib/utils.py")).unwrap();
        assert_ne!(c.hash(&rels).unwrap(), h2);
        // ignored files do not count
        let c2 = ctx(dir.path(), "app/README.md\n");
        let h3 = c2.hash(&rels).unwrap();
        fs::write(dir.path().join("app/README.md"), "changed\n").unwrap();
        assert_eq!(c2.hash(&rels).unwrap(), h3);
    }

    #[test]
    fn the_same_tree_in_two_places_hashes_the_same() {
        let a = tree();
        let b = tree();
        let rels = vec!["app".to_string(), "top.txt".to_string()];
        assert_eq!(
            ctx(a.path(), "").hash(&rels).unwrap(),
            ctx(b.path(), "").hash(&rels).unwrap()
        );
        // Source order is part of the hash (COPY a b /d differs from COPY b a /d).
        let swapped = vec!["top.txt".to_string(), "app".to_string()];
        assert_ne!(
            ctx(a.path(), "").hash(&rels).unwrap(),
            ctx(a.path(), "").hash(&swapped).unwrap()
        );
    }

    #[test]
    fn context_digest_rehashes_only_moved_files_and_names_what_changed() {
        let dir = tree();
        let mut cache = StatCache::default();
        let ignore = || parse_ignore("*.key\n").unwrap();
        let (d0, changed) = context_digest(dir.path(), ignore(), &mut cache).unwrap();
        assert!(changed.contains(&"app/main.py".to_string()));
        assert!(!changed.contains(&"secret.key".to_string()));
        assert_eq!(cache.len(), 9);
        let (d1, changed) = context_digest(dir.path(), ignore(), &mut cache).unwrap();
        assert_eq!(d1, d0);
        assert!(changed.is_empty(), "{changed:?}");
        // An ignored file changing changes nothing.
        fs::write(dir.path().join("secret.key"), "other\n").unwrap();
        let (d2, changed) = context_digest(dir.path(), ignore(), &mut cache).unwrap();
        assert_eq!((d2.as_str(), changed.len()), (d0.as_str(), 0));
        // One source edit: a new digest, and that file named.
        fs::write(dir.path().join("app/main.py"), "print('v2')\n").unwrap();
        let (d3, changed) = context_digest(dir.path(), ignore(), &mut cache).unwrap();
        assert_ne!(d3, d0);
        assert_eq!(changed, ["app/main.py"]);
        // A removal is a change too.
        fs::remove_file(dir.path().join("docs/b.txt")).unwrap();
        let (_, changed) = context_digest(dir.path(), ignore(), &mut cache).unwrap();
        assert_eq!(changed, ["docs/b.txt"]);
        // A file whose stat is unchanged is not read again: poison the
        // cached digest and see it survive (only stat is compared).
        let entry = cache.entries.get_mut("top.txt").unwrap();
        entry.digest = "poisoned".to_string();
        let (_, changed) = context_digest(dir.path(), ignore(), &mut cache).unwrap();
        assert!(changed.is_empty());
        assert_eq!(cache.entries["top.txt"].digest, "poisoned");
        // The cache round-trips through JSON.
        let json = serde_json::to_string(&cache).unwrap();
        assert_eq!(serde_json::from_str::<StatCache>(&json).unwrap(), cache);
    }

    #[test]
    fn open_refuses_a_file_as_context() {
        let dir = tree();
        let e = Context::open(&dir.path().join("top.txt"), IgnoreRules::default()).unwrap_err();
        assert!(matches!(e, ContextError::NotADirectory { .. }), "{e}");
        assert!(matches!(
            Context::open(&dir.path().join("nope"), IgnoreRules::default()),
            Err(ContextError::Io { .. })
        ));
    }

    #[test]
    fn go_filepath_match_rules_for_one_element() {
        let m = |p: &str, s: &str| Pattern::parse(p).unwrap().matches(s);
        assert!(m("*", "abc"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abd"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("[\\]]", "]"));
        // Pathological star patterns stay fast.
        let p = format!("{}b", "*a".repeat(200));
        assert!(!m(&p, &"a".repeat(5000)));
        for bad in ["[", "[a-", "[]", "x\\", "[z-a]"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    /// filepath.Match by plain recursion: slow, obviously right, for
    /// checking the star-backtracking matcher against.
    fn reference_match(p: &[Tok], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((Tok::Star, rest)) => (0..=t.len()).any(|i| reference_match(rest, &t[i..])),
            Some((tok, rest)) => {
                let Some((&c, t_rest)) = t.split_first() else {
                    return false;
                };
                let one = match tok {
                    Tok::Lit(l) => *l == c,
                    Tok::Any => true,
                    Tok::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated,
                    Tok::Star => unreachable!(),
                };
                one && reference_match(rest, t_rest)
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn the_glob_matcher_agrees_with_plain_recursion(
            pattern in "([ab*?]|\\[a\\]|\\[\\^b\\]){0,7}",
            name in "[abc]{0,8}",
        ) {
            let parsed = Pattern::parse(&pattern).unwrap();
            let chars: Vec<char> = name.chars().collect();
            proptest::prop_assert_eq!(parsed.matches(&name), reference_match(&parsed.0, &chars), "{} vs {}", pattern, name);
        }
    }

    #[test]
    fn a_deep_tree_is_listed_whole_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = dir.path().to_path_buf();
        for _ in 0..300 {
            p.push("d");
        }
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("leaf"), "x").unwrap();
        let c = ctx(dir.path(), "");
        let all = c.walk(".").unwrap();
        assert_eq!(all.len(), 301);
        assert!(all.last().unwrap().0.ends_with("/leaf"));
    }
}
