//! Reading YAML text into [`Node`] trees, within budgets.
//!
//! serde-saphyr reads each document keeping the line and column of every
//! value. Its budget refuses alias bombs and deep nesting before they cost
//! time or memory, and it rejects duplicate keys. Sources larger than
//! [`MAX_SOURCE_BYTES`] are refused before they are read at all.
//!
//! [`source_from_bytes`] turns a file's bytes into text first, locating what
//! cannot be manifest text (invalid UTF-8, NUL bytes) as precisely as the
//! YAML problems are.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::MessageFormatter;

use super::node::{attach_raw_text, to_usize, Node, Pos, Problem};
use super::{printable, Diagnostic, Source};

/// Deepest nesting of mappings and sequences accepted in a document; real
/// manifests need about six levels.
pub const MAX_DEPTH: usize = 32;

/// Most nodes that aliases may replay in one document. Legitimate manifests
/// reuse a few small anchors; a "billion laughs" needs millions.
pub const MAX_ALIAS_EVENTS: usize = 10_000;

/// Largest manifest text accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 << 20;

/// Refuses a source of `len` bytes if it is larger than [`MAX_SOURCE_BYTES`],
/// at line 1 column 1, naming its size and the limit.
pub(super) fn check_size(file: &str, len: usize) -> Result<(), Diagnostic> {
    if len <= MAX_SOURCE_BYTES {
        return Ok(());
    }
    Err(refused(
        file,
        Pos { line: 1, column: 1 },
        format!(
            "refused: the file is {} ({len} bytes), larger than the limit of {}",
            mib(len),
            mib(MAX_SOURCE_BYTES)
        ),
        String::new(),
    ))
}

/// `bytes` in MiB, to one decimal unless it is a whole number of MiB.
fn mib(bytes: usize) -> String {
    const MIB: usize = 1 << 20;
    match bytes % MIB {
        0 => format!("{} MiB", bytes / MIB),
        rest => format!("{}.{} MiB", bytes / MIB, rest * 10 / MIB),
    }
}

/// The bytes of a manifest file as a [`Source`] named `file`, or why they
/// cannot be one, located at line 1 column 1 or at the first offending byte.
///
/// Callers read files as bytes and hand them here rather than reading them
/// into a `String`, which fails on bad input without saying where.
///
/// # Errors
///
/// - more than [`MAX_SOURCE_BYTES`]: refused before anything else is looked at;
/// - a NUL byte: binary input, such as an image or archive given by mistake;
/// - bytes that are not UTF-8 (a Latin-1 or UTF-16 file), at the first of them.
///
/// Whichever of the last two comes first in the file is reported.
pub fn source_from_bytes(file: &str, bytes: &[u8]) -> Result<Source, Diagnostic> {
    check_size(file, bytes.len())?;
    let (text, bad) = match std::str::from_utf8(bytes) {
        Ok(text) => (text, None),
        // The prefix up to the first invalid byte is valid UTF-8 by definition.
        Err(e) => (
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
            Some(e),
        ),
    };
    if let Some(nul) = text.find('\0') {
        return Err(refused(
            file,
            position(&text[..nul]),
            "binary input refused: NUL byte; a manifest is UTF-8 YAML text".to_owned(),
            snippet(bytes, nul),
        ));
    }
    if let Some(e) = bad {
        let at = e.valid_up_to();
        let message = match e.error_len() {
            Some(_) => format!(
                "not UTF-8: invalid byte 0x{:02x}; a manifest is UTF-8 YAML text",
                bytes[at]
            ),
            None => "not UTF-8: the file ends inside a character; a manifest is UTF-8 YAML text".to_owned(),
        };
        return Err(refused(file, position(text), message, snippet(bytes, at)));
    }
    Ok(Source {
        file: file.to_owned(),
        text: text.to_owned(),
    })
}

fn refused(file: &str, at: Pos, message: String, snippet: String) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: at.line,
        column: at.column,
        field: String::new(),
        message,
        snippet,
    }
}

/// The position just after `before`, the text that precedes it: 1-based
/// line, and column in characters as serde-saphyr counts them.
fn position(before: &str) -> Pos {
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The line of `bytes` holding byte `at`, decoded as far as it can be and cut
/// short: a binary file may have no line breaks at all.
fn snippet(bytes: &[u8], at: usize) -> String {
    const MAX_CHARS: usize = 120;
    let start = bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = bytes[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| at + i);
    let line = String::from_utf8_lossy(&bytes[start..end]);
    let line: String = line.trim_end_matches('\r').chars().take(MAX_CHARS).collect();
    printable(&line)
}

/// Every non-empty YAML document of `text`, as a node tree or as the problem
/// that stopped it.
///
/// Goes on after a document that fails to deserialize, and stops after a
/// syntax error or a budget breach.
pub(super) fn documents(text: &str) -> Vec<Result<Node, Problem>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut bytes = text.as_bytes();
    serde_saphyr::read_with_options::<_, Node>(&mut bytes, yaml_options())
        .map(|item| match item {
            Ok(mut root) => {
                attach_raw_text(&mut root, &lines);
                Ok(root)
            }
            Err(err) => {
                let (line, column) = err
                    .location()
                    .map(|l| (to_usize(l.line()), to_usize(l.column())))
                    .unwrap_or((0, 0));
                Err(Problem {
                    path: String::new(),
                    at: Pos { line, column },
                    message: yaml_message(&err),
                })
            }
        })
        .collect()
}

fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // Only `true`/`false` are booleans: `yes`, `on`, `n` stay text (the "Norway problem").
        strict_booleans: true,
        // `.inf` and `.nan` reach the types as text; a number field then says
        // what it expected instead of the whole document failing.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        // berth renders its own snippets.
        with_snippet: false,
        emit_comments: false,
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: 100_000,
            max_total_scalar_bytes: MAX_SOURCE_BYTES,
            max_reader_input_bytes: Some(MAX_SOURCE_BYTES),
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EVENTS,
            max_replay_stack_depth: MAX_DEPTH,
        },
    }
}

/// A message for a YAML-level error (syntax, duplicate key, refused input),
/// without serde-saphyr's "at line X, column Y" suffix: the diagnostic has those.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    let mut inner = err.without_snippet();
    while let E::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    let bomb = || {
        format!("refused: aliases expand to more than {MAX_ALIAS_EVENTS} nodes (an alias bomb?); write the values out")
    };
    let deep = || format!("refused: nested more than {MAX_DEPTH} levels deep");
    match inner {
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => bomb(),
        E::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => deep(),
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::MergeKeys { .. } => bomb(),
            _ => format!(
                "refused: {}",
                printable(&serde_saphyr::UserMessageFormatter.format_message(inner))
            ),
        },
        other => {
            let message = printable(&serde_saphyr::UserMessageFormatter.format_message(other));
            // The scanner enforces the flow nesting limit itself, with this wording.
            if message.contains("recursion limit") {
                deep()
            } else {
                message
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::manifest::parse;
    use crate::manifest::testing::{errors, find, render, source};

    #[test]
    fn yaml_errors_are_located_and_the_other_documents_still_checked() {
        let text = "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: a, name: b}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {name: ok, colour: red}\n---\nmetadata: [unclosed\n";
        let d = errors(text);
        let dup = find(&d, "duplicate mapping key `name`");
        assert_eq!((dup.line, dup.column), (3, 21));
        find(&d, "unknown field `colour`");
        let syntax = d.last().unwrap();
        assert_eq!((syntax.line, syntax.field.as_str()), (9, ""));
        assert!(syntax.message.contains("unclosed"), "{}", render(&d));

        let d = errors("a: 1\nb: [1, 2\nc: 3\n");
        assert_eq!(d[0].message, "illegal placement of ':' indicator");
        assert_eq!((d[0].line, d[0].column), (3, 2));
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let mut text =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); 9].join(",");
            text.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
        }
        let start = Instant::now();
        let d = errors(&text);
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        find(&d, "refused: aliases expand to more than");
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        let flow = format!("spec: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let block: String = (0..500).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
        for text in [flow, block] {
            let start = Instant::now();
            let d = errors(&text);
            assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
            find(&d, &format!("refused: nested more than {MAX_DEPTH} levels deep"));
        }
    }

    #[test]
    fn oversized_sources_are_refused_without_reading_them() {
        let text = "#".repeat(MAX_SOURCE_BYTES + 1);
        let d = errors(&text);
        let e = find(
            &d,
            "refused: the file is 16.0 MiB (16777217 bytes), larger than the limit of 16 MiB",
        );
        assert_eq!((e.file.as_str(), e.line, e.column), ("m.yaml", 1, 1));
        // At the limit exactly, the text is read.
        assert_eq!(check_size("m.yaml", MAX_SOURCE_BYTES), Ok(()));
    }

    #[test]
    fn a_50_mb_file_is_refused_at_line_1_column_1_naming_its_size_and_the_limit() {
        let text = "a: 1\n".repeat(10_000_000);
        let d = parse(&[source("big.yaml", &text)]).unwrap_err();
        assert_eq!(d.len(), 1, "{}", render(&d));
        assert_eq!(
            d[0].to_string(),
            "big.yaml:1:1: refused: the file is 47.6 MiB (50000000 bytes), larger than the limit of 16 MiB"
        );
        // The same through `source_from_bytes`, before the bytes are decoded.
        let mut bytes = text.into_bytes();
        bytes[0] = 0xff;
        assert_eq!(source_from_bytes("big.yaml", &bytes), Err(d[0].clone()));
    }

    #[test]
    fn utf8_bytes_become_a_source_unchanged() {
        let text = "# café ☕\napiVersion: berth/v1\r\n";
        let s = source_from_bytes("m.yaml", text.as_bytes()).unwrap();
        assert_eq!(s, source("m.yaml", text));
        assert_eq!(source_from_bytes("e.yaml", b""), Ok(source("e.yaml", "")));
    }

    #[test]
    fn invalid_utf8_is_located_at_its_first_bad_byte() {
        // Latin-1 `é` in the third line, after a two-byte `ü` on the same line.
        let e = source_from_bytes(
            "m.yaml",
            b"apiVersion: berth/v1\nkind: Volume\nmetadata: {name: \xc3\xbc caf\xe9}\n",
        )
        .unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.column, e.field.as_str()),
            ("m.yaml", 3, 23, "")
        );
        assert_eq!(e.message, "not UTF-8: invalid byte 0xe9; a manifest is UTF-8 YAML text");
        assert_eq!(e.snippet, "metadata: {name: ü caf\u{fffd}}");

        let e = source_from_bytes("m.yaml", b"\xff\xfek\x00i\x00").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("invalid byte 0xff"), "{e}");

        let e = source_from_bytes("m.yaml", b"a: 1\nb: \xe2\x98").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        assert!(e.message.contains("ends inside a character"), "{e}");
    }

    #[test]
    fn nul_bytes_are_refused_as_binary_input_with_their_position() {
        let e = source_from_bytes("m.yaml", b"a: 1\nb: x\x00y\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 5));
        assert_eq!(
            e.message,
            "binary input refused: NUL byte; a manifest is UTF-8 YAML text"
        );
        assert_eq!(e.snippet, "b: x\\u{0}y");

        // An ELF binary: its NUL comes before its first invalid byte.
        let e = source_from_bytes("berth", b"\x7fELF\x02\x01\x01\x00\x00\xff").unwrap_err();
        assert_eq!((e.line, e.column), (1, 8));
        find(std::slice::from_ref(&e), "binary input refused");

        // Invalid UTF-8 before the first NUL is reported as such.
        let e = source_from_bytes("m.png", b"\x89PNG\r\n\x1a\n\x00").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.starts_with("not UTF-8"), "{e}");
    }
}
