//! Reading YAML text into [`Node`] trees, within budgets.
//!
//! serde-saphyr reads each document keeping the line and column of every
//! value. Its budget refuses alias bombs and deep nesting before they cost
//! time or memory, and it rejects duplicate keys. Sources larger than
//! [`MAX_SOURCE_BYTES`] are refused before they are read at all.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::MessageFormatter;

use super::node::{attach_raw_text, to_usize, Node, Pos, Problem};
use super::{printable, Diagnostic};

/// Deepest nesting of mappings and sequences accepted in a document; real
/// manifests need about six levels.
pub const MAX_DEPTH: usize = 32;

/// Most nodes that aliases may replay in one document. Legitimate manifests
/// reuse a few small anchors; a "billion laughs" needs millions.
pub const MAX_ALIAS_EVENTS: usize = 10_000;

/// Largest manifest text accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 << 20;

/// Refuses a source of `len` bytes if it is larger than [`MAX_SOURCE_BYTES`].
pub(super) fn check_size(file: &str, len: usize) -> Result<(), Diagnostic> {
    if len <= MAX_SOURCE_BYTES {
        return Ok(());
    }
    Err(Diagnostic {
        file: file.to_owned(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("manifest of {len} bytes refused: at most {MAX_SOURCE_BYTES} bytes are accepted"),
        snippet: String::new(),
    })
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
    use crate::manifest::testing::{errors, find, render};

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
        find(&d, "bytes refused");
    }
}
